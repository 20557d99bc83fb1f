/** The tampering matrix against our own verifier, at the pure level. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import { earliestExpiry, TrustedMetadata, verifyRepositoryMetadata } from '../../src/formats/tuf/client.js';
import { makeFixture, expiresAt, fixtureKey, type TufFixture } from '../helpers/tuf-fixture.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const DAY = 24 * 3600 * 1000;
const PAST = expiresAt(NOW, -1000);
const HOST = 'os/host-1.0.0.tar.gz';

const code = (c: ErrorCode, where?: string) => (e: unknown) => {
  assert.ok(isSlipwayError(e), `not a SlipwayError: ${String(e)}`);
  assert.equal(e.code, c, e.message);
  if (where !== undefined) assert.equal(e.where, where);
  return true;
};

const rejects = (fx: TufFixture, c: ErrorCode, where?: string) => assert.rejects(fx.verify(), code(c, where));
const flipHex = (s: string): string => (s[0] === '0' ? '1' : '0') + s.slice(1);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const bytes = (fx: TufFixture, file: string): Buffer => {
  const b = fx.metadata.get(file);
  assert.ok(b, file);
  return b;
};

test('a valid repository verifies; targets are found, checked and located', async () => {
  const fx = await makeFixture({ now: NOW });
  const tm = await fx.verify();
  assert.equal(tm.root.version, 1);
  assert.equal(tm.timestamp.version, 1);
  assert.equal(tm.snapshot.version, 1);
  assert.equal(tm.targets.version, 1);
  assert.equal(tm.snapshotFile(), '1.snapshot.json');
  assert.equal(tm.targetsFile(), '1.targets.json');
  assert.equal(tm.nextRootFile(), '2.root.json');
  const content = fx.targets.get(HOST);
  assert.ok(content);
  assert.equal(tm.targetFile(HOST), `os/${sha256(content)}.host-1.0.0.tar.gz`);
  assert.deepEqual(fx.targetFiles.get(tm.targetFile(HOST)), content);
  assert.equal(tm.verifyTarget(HOST, { length: content.length, sha256: sha256(content) }).length, 1000);
  assert.equal(tm.verifyTargetBytes(HOST, content).length, 1000);
  assert.equal(earliestExpiry(tm).toISOString(), new Date(NOW.getTime() + 7 * DAY).toISOString());
});

test('expired timestamp, snapshot, targets and root: TUF_EXPIRED naming the file', async () => {
  for (const [role, file] of [
    ['timestamp', 'timestamp.json'],
    ['snapshot', '1.snapshot.json'],
    ['targets', '1.targets.json'],
    ['root', '1.root.json'],
  ] as const) {
    const fx = await makeFixture({ now: NOW });
    await fx.resign(role, (s) => (s.expires = PAST), { updateParents: true });
    await rejects(fx, 'TUF_EXPIRED', file);
    // Upload checks may ignore expiry.
    await fx.verify({ ignoreExpiry: true });
  }
});

test('expiry: a role expires at its expires time exactly (like tuf-js and python-tuf)', async () => {
  const fx = await makeFixture({ now: NOW });
  await assert.rejects(fx.verify({ now: fx.expires }), code('TUF_EXPIRED'));
  await fx.verify({ now: new Date(fx.expires.getTime() - 1000) });
});

test('bad signature and missing signature: TUF_THRESHOLD_NOT_MET', async () => {
  let fx = await makeFixture({ now: NOW });
  await fx.tamper('timestamp', (env) => {
    env.signatures = env.signatures.map((s) => ({ ...s, sig: flipHex(s.sig) }));
  });
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', 'timestamp.json');

  fx = await makeFixture({ now: NOW });
  await fx.tamper('snapshot', (env) => (env.signatures = []), { updateParents: true });
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', '1.snapshot.json');

  fx = await makeFixture({ now: NOW });
  await fx.tamper('targets', (env) => (env.signatures = [{ keyid: 'ab'.repeat(32), sig: '00'.repeat(64) }]), {
    updateParents: true,
  });
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', '1.targets.json');
});

test('threshold 2: one signature, or one signature twice, is not enough', async () => {
  const opts = { now: NOW, keyCount: { targets: 2, snapshot: 2 }, thresholds: { targets: 2, snapshot: 2 } };
  let fx = await makeFixture(opts);
  await fx.verify();

  fx = await makeFixture(opts);
  await fx.tamper('targets', (env) => (env.signatures = env.signatures.slice(0, 1)), { updateParents: true });
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', '1.targets.json');

  fx = await makeFixture(opts);
  await fx.tamper(
    'snapshot',
    (env) => {
      const [first] = env.signatures;
      assert.ok(first);
      env.signatures = [first, first];
    },
    { updateParents: true },
  );
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', '1.snapshot.json');
});

test("signed by another role's key: TUF_THRESHOLD_NOT_MET", async () => {
  for (const [role, other, file] of [
    ['timestamp', 'snapshot', 'timestamp.json'],
    ['snapshot', 'timestamp', '1.snapshot.json'],
    ['targets', 'root', '1.targets.json'],
  ] as const) {
    const fx = await makeFixture({ now: NOW });
    await fx.resign(role, undefined, { signers: fx.signers[other], updateParents: true });
    await rejects(fx, 'TUF_THRESHOLD_NOT_MET', file);
  }
});

test('body edited after signing: TUF_THRESHOLD_NOT_MET', async () => {
  let fx = await makeFixture({ now: NOW });
  await fx.tamper('timestamp', (env) => (env.signed.expires = expiresAt(NOW, 30 * DAY)));
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', 'timestamp.json');

  fx = await makeFixture({ now: NOW });
  await fx.tamper(
    'targets',
    (env) => {
      const t = env.signed.targets[HOST];
      assert.ok(t);
      t.hashes.sha256 = sha256(Buffer.from('evil'));
    },
    { updateParents: true },
  );
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', '1.targets.json');

  fx = await makeFixture({ now: NOW });
  await fx.tamper('root', (env) => (env.signed.consistent_snapshot = false));
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', '1.root.json');
});

test('hash and length mismatch: timestamp → snapshot', async () => {
  let fx = await makeFixture({ now: NOW });
  const before = bytes(fx, '1.snapshot.json').length;
  // Same length, other bytes: only the hash can tell.
  const after = await fx.resign('snapshot', (s) => (s.expires = expiresAt(NOW, 8 * DAY)));
  assert.equal(after.length, before);
  await rejects(fx, 'TUF_HASH_MISMATCH', '1.snapshot.json');

  fx = await makeFixture({ now: NOW });
  await fx.resign('snapshot', (s) => Object.assign(s, { note: 'longer' }));
  await rejects(fx, 'TUF_LENGTH_MISMATCH', '1.snapshot.json');
});

test('hash and length mismatch: snapshot → targets', async () => {
  let fx = await makeFixture({ now: NOW });
  const before = bytes(fx, '1.targets.json').length;
  const after = await fx.resign('targets', (s) => (s.expires = expiresAt(NOW, 8 * DAY)));
  assert.equal(after.length, before);
  await rejects(fx, 'TUF_HASH_MISMATCH', '1.targets.json');

  fx = await makeFixture({ now: NOW });
  await fx.resign('targets', (s) => Object.assign(s, { note: 'longer' }));
  await rejects(fx, 'TUF_LENGTH_MISMATCH', '1.targets.json');

  // A parent listing only hashes we do not know cannot vouch for anything.
  fx = await makeFixture({ now: NOW });
  await fx.resign(
    'snapshot',
    (s) => {
      const m = s.meta['targets.json'];
      assert.ok(m);
      m.hashes = { blake3: 'ab' };
    },
    { updateParents: true },
  );
  await rejects(fx, 'TUF_HASH_MISMATCH', '1.targets.json');
});

test('hash and length mismatch: targets → target content', async () => {
  const fx = await makeFixture({ now: NOW });
  const tm = await fx.verify();
  const content = fx.targets.get(HOST);
  assert.ok(content);
  assert.throws(
    () => tm.verifyTarget(HOST, { length: content.length + 1, sha256: sha256(content) }),
    code('TUF_LENGTH_MISMATCH', HOST),
  );
  assert.throws(
    () => tm.verifyTarget(HOST, { length: content.length, sha256: sha256(Buffer.from('x')) }),
    code('TUF_HASH_MISMATCH', HOST),
  );
  // Target content changed in the repository (same length, same stored name).
  const path = fx.targetPath(HOST);
  const evil = Buffer.from(content);
  evil[0] = (evil[0] ?? 0) ^ 0xff;
  fx.targetFiles.set(path, evil);
  assert.throws(
    () => tm.verifyTargetBytes(HOST, fx.targetFiles.get(tm.targetFile(HOST)) ?? Buffer.alloc(0)),
    code('TUF_HASH_MISMATCH', HOST),
  );
  assert.throws(() => tm.verifyTargetBytes(HOST, content.subarray(1)), code('TUF_LENGTH_MISMATCH', HOST));
  assert.throws(() => tm.findTarget('os/other.tar.gz'), code('TUF_TARGET_UNKNOWN'));
  assert.throws(() => tm.findTarget('constructor'), code('TUF_TARGET_UNKNOWN'));
  assert.throws(() => tm.findTarget('__proto__'), code('TUF_TARGET_UNKNOWN'));
});

test('version differs from what the parent lists: TUF_VERSION_MISMATCH', async () => {
  let fx = await makeFixture({ now: NOW });
  await fx.resign('snapshot', (s) => (s.version = 2), { updateParents: true });
  await rejects(fx, 'TUF_VERSION_MISMATCH', '1.snapshot.json');

  fx = await makeFixture({ now: NOW });
  await fx.resign('targets', (s) => (s.version = 2), { updateParents: true });
  await rejects(fx, 'TUF_VERSION_MISMATCH', '1.targets.json');
});

test('wrong _type: TUF_WRONG_TYPE', async () => {
  for (const [role, file] of [
    ['timestamp', 'timestamp.json'],
    ['snapshot', '1.snapshot.json'],
    ['targets', '1.targets.json'],
  ] as const) {
    const fx = await makeFixture({ now: NOW });
    await fx.resign(role, (s) => Object.assign(s, { _type: role === 'targets' ? 'snapshot' : 'targets' }), {
      updateParents: true,
    });
    await rejects(fx, 'TUF_WRONG_TYPE', file);
  }
  // A root rotation that is something else.
  const fx = await makeFixture({ now: NOW });
  fx.metadata.set('2.root.json', bytes(fx, '1.targets.json'));
  await rejects(fx, 'TUF_WRONG_TYPE', '2.root.json');
});

test('timestamp rollback against the client cache: TUF_ROLLBACK', async () => {
  const fx = await makeFixture({ now: NOW });
  const v1 = bytes(fx, 'timestamp.json');
  const v2 = await fx.resign('timestamp', (s) => (s.version = 2));
  fx.metadata.set('timestamp.json', v1);
  await assert.rejects(fx.verify({ cached: { timestamp: v2 } }), code('TUF_ROLLBACK', 'timestamp.json'));

  // The same at the state-machine level.
  const tm = new TrustedMetadata(fx.trustedRoot, { now: NOW });
  tm.loadTrustedTimestamp(v2);
  assert.throws(
    () => {
      tm.updateTimestamp(v1, 'timestamp.json');
    },
    code('TUF_ROLLBACK', 'timestamp.json'),
  );
  // An equal or newer one is fine.
  const tm2 = new TrustedMetadata(fx.trustedRoot, { now: NOW });
  tm2.loadTrustedTimestamp(v1);
  tm2.updateTimestamp(v2, 'timestamp.json');
  tm2.updateTimestamp(v2, 'timestamp.json');
  assert.equal(tm2.timestamp.version, 2);
});

test('timestamp listing an older snapshot than the cached one: TUF_ROLLBACK', async () => {
  const fx = await makeFixture({ now: NOW });
  const original = bytes(fx, 'timestamp.json');
  const cached = await fx.resign('timestamp', (s) => {
    const m = s.meta['snapshot.json'];
    assert.ok(m);
    m.version = 5;
  });
  fx.metadata.set('timestamp.json', original);
  await fx.resign('timestamp', (s) => (s.version = 2));
  await assert.rejects(fx.verify({ cached: { timestamp: cached } }), code('TUF_ROLLBACK', 'timestamp.json'));
});

test('snapshot rollback against the client cache: TUF_ROLLBACK', async () => {
  // The cached snapshot knew targets.json version 5; the repository now offers version 1.
  let fx = await makeFixture({ now: NOW });
  const original = bytes(fx, '1.snapshot.json');
  const cached = await fx.resign('snapshot', (s) => {
    const m = s.meta['targets.json'];
    assert.ok(m);
    m.version = 5;
  });
  fx.metadata.set('1.snapshot.json', original);
  await assert.rejects(fx.verify({ cached: { snapshot: cached } }), code('TUF_ROLLBACK', '1.snapshot.json'));

  // The cached snapshot listed a role the new one dropped.
  fx = await makeFixture({ now: NOW });
  const original2 = bytes(fx, '1.snapshot.json');
  const cached2 = await fx.resign('snapshot', (s) => (s.meta['role1.json'] = { version: 1 }));
  fx.metadata.set('1.snapshot.json', original2);
  const tm = new TrustedMetadata(fx.trustedRoot, { now: NOW });
  tm.loadTrustedSnapshot(cached2);
  tm.updateTimestamp(bytes(fx, 'timestamp.json'), 'timestamp.json');
  assert.throws(
    () => {
      tm.updateSnapshot(original2, '1.snapshot.json');
    },
    code('TUF_ROLLBACK', '1.snapshot.json'),
  );

  // The cached snapshot itself is newer than what the timestamp points to.
  fx = await makeFixture({ now: NOW, version: 2 });
  const original3 = bytes(fx, '2.snapshot.json');
  const cached3 = await fx.resign('snapshot', (s) => (s.version = 3));
  fx.metadata.set('2.snapshot.json', original3);
  await assert.rejects(fx.verify({ cached: { snapshot: cached3 } }), code('TUF_ROLLBACK', '2.snapshot.json'));
});

test('root rotation signed by the old and new keys is accepted, twice over', async () => {
  const fx = await makeFixture({ now: NOW });
  await fx.rotateRoot();
  let tm = await fx.verify();
  assert.equal(tm.root.version, 2);
  assert.equal(tm.rootFile, '2.root.json');
  const r3 = await fx.rotateRoot({ thresholds: {} });
  assert.equal(r3.file, '3.root.json');
  tm = await fx.verify();
  assert.equal(tm.root.version, 3);
  assert.deepEqual(tm.root.roles.root.keyids, [fx.signers.root[0]?.keyId]);
  // maxRootRotations stops early (the spec's cap on rotations per update).
  const capped = await verifyRepositoryMetadata(fx.read, {
    trustedRoot: fx.trustedRoot,
    now: NOW,
    maxRootRotations: 1,
  });
  assert.equal(capped.root.version, 2);
});

test('root rotation not signed by the old keys, or not by the new ones: TUF_THRESHOLD_NOT_MET', async () => {
  let fx = await makeFixture({ now: NOW });
  await fx.rotateRoot({ signedBy: 'new' });
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', '2.root.json');

  fx = await makeFixture({ now: NOW });
  await fx.rotateRoot({ signedBy: 'old' });
  await rejects(fx, 'TUF_THRESHOLD_NOT_MET', '2.root.json');
});

test('root rotation skipping a version: TUF_VERSION_MISMATCH', async () => {
  const fx = await makeFixture({ now: NOW });
  await fx.rotateRoot({ version: 3 });
  await rejects(fx, 'TUF_VERSION_MISMATCH', '2.root.json');
});

test('expired intermediate roots are fine; an expired final root is not', async () => {
  const fx = await makeFixture({ now: NOW });
  await fx.resign('root', (r) => (r.expires = PAST));
  await fx.rotateRoot();
  await fx.verify();
  await fx.resign('root', (r) => (r.expires = PAST));
  await rejects(fx, 'TUF_EXPIRED', '2.root.json');
});

test('a root rotation that changes the timestamp keys drops the cached timestamp (§5.3.11)', async () => {
  const fx = await makeFixture({ now: NOW });
  const cached = await fx.resign('timestamp', (s) => (s.version = 9));
  await fx.rotateRoot({ roleKeys: { timestamp: [fixtureKey('timestamp-new')] } });
  await fx.resign('timestamp', (s) => (s.version = 2));
  const tm = await fx.verify({ cached: { timestamp: cached } });
  assert.equal(tm.timestamp.version, 2);

  // A rotation of the root keys alone keeps the cache, which then catches the rollback.
  const fx2 = await makeFixture({ now: NOW });
  const cached2 = await fx2.resign('timestamp', (s) => (s.version = 9));
  await fx2.rotateRoot();
  await fx2.resign('timestamp', (s) => (s.version = 2));
  await assert.rejects(
    fx2.verify({ cached: { timestamp: cached2 } }),
    code('TUF_ROLLBACK', 'timestamp.json'),
  );
});

test('trusted root: must parse and meet its own threshold; missing files are reported', async () => {
  const fx = await makeFixture({ now: NOW });
  assert.throws(
    () => new TrustedMetadata(Buffer.from('nope'), { now: NOW }),
    code('TUF_METADATA_INVALID', 'root.json'),
  );
  await fx.tamper('root', (env) => (env.signatures = []));
  assert.throws(
    () => new TrustedMetadata(fx.trustedRoot, { now: NOW }),
    code('TUF_THRESHOLD_NOT_MET', 'root.json'),
  );

  const fx2 = await makeFixture({ now: NOW });
  fx2.metadata.delete('timestamp.json');
  await rejects(fx2, 'TUF_METADATA_INVALID', 'timestamp.json');
  const fx3 = await makeFixture({ now: NOW });
  fx3.metadata.delete('1.targets.json');
  await rejects(fx3, 'TUF_METADATA_INVALID', '1.targets.json');
});

test('the state machine refuses steps out of order', async () => {
  const fx = await makeFixture({ now: NOW });
  const tm = new TrustedMetadata(fx.trustedRoot, { now: NOW });
  assert.throws(() => {
    tm.updateSnapshot(bytes(fx, '1.snapshot.json'), 's');
  }, code('INTERNAL'));
  assert.throws(() => tm.targets, code('INTERNAL'));
  tm.updateTimestamp(bytes(fx, 'timestamp.json'), 'timestamp.json');
  const fx2 = await makeFixture({ now: NOW });
  await fx2.rotateRoot();
  assert.throws(() => {
    tm.updateRoot(bytes(fx2, '2.root.json'), '2.root.json');
  }, code('INTERNAL'));
});
