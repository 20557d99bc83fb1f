import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { canonicalJsonBytes, type CanonicalValue } from '../../src/core/canonical-json.js';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import {
  buildRepositoryMetadata,
  newRoot,
  rotateRoot,
  targetPathFor,
  type RoleSigners,
} from '../../src/formats/tuf/build.js';
import { localSigner, verifySignature } from '../../src/formats/tuf/keys.js';
import {
  formatExpires,
  parseEnvelope,
  parseExpires,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  serializeMetadata,
  type Envelope,
} from '../../src/formats/tuf/metadata.js';
import { countValidSignatures, signMetadata } from '../../src/formats/tuf/sign.js';
import { fixtureKey, makeFixture } from '../helpers/tuf-fixture.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const code = (c: ErrorCode, where?: string) => (e: unknown) =>
  isSlipwayError(e, c) && (where === undefined || e.where === where);
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const signers = (): RoleSigners => ({
  root: [localSigner(fixtureKey('root-0'))],
  targets: [localSigner(fixtureKey('targets-0'))],
  snapshot: [localSigner(fixtureKey('snapshot-0'))],
  timestamp: [localSigner(fixtureKey('timestamp-0'))],
});

test('expires: written without fractional seconds, read with or without', () => {
  assert.equal(formatExpires(new Date('2030-01-02T03:04:05.678Z')), '2030-01-02T03:04:05Z');
  assert.equal(parseExpires('2030-01-02T03:04:05Z', 'x').toISOString(), '2030-01-02T03:04:05.000Z');
  assert.equal(parseExpires('2030-01-02T03:04:05.25Z', 'x').toISOString(), '2030-01-02T03:04:05.250Z');
  for (const bad of [
    '2030-01-02 03:04:05Z',
    '2030-01-02T03:04:05+00:00',
    '2030-02-30T00:00:00Z',
    '2030-01-02',
    '',
  ]) {
    assert.throws(() => parseExpires(bad, 'f.json'), code('TUF_METADATA_INVALID', 'f.json'), bad);
  }
  assert.throws(() => formatExpires(new Date(NaN)), code('INVALID_ARGUMENT'));
});

test('a built repository: file names, fields, hashes over the exact file bytes', async () => {
  const s = signers();
  const expires = new Date('2030-01-08T00:00:00.500Z');
  const { root, files } = await buildRepositoryMetadata({
    signers: s,
    expires,
    version: 3,
    targets: { 'a/b.txt': { length: 1, sha256: 'ab'.repeat(32) } },
  });
  assert.deepEqual([...files.keys()].sort(), [
    '1.root.json',
    '3.snapshot.json',
    '3.targets.json',
    'timestamp.json',
  ]);
  for (const bytes of files.values()) {
    assert.equal(bytes.toString(), `${JSON.stringify(JSON.parse(bytes.toString()), null, 2)}\n`);
    assert.ok(!bytes.toString().includes('.500Z'));
  }
  assert.equal(root.signed.spec_version, '1.0.0');
  assert.equal(root.signed.version, 1);
  assert.equal(root.signed.consistent_snapshot, true);
  assert.equal(root.signed.expires, '2030-01-08T00:00:00Z');
  for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
    assert.deepEqual(root.signed.roles[role], { keyids: [s[role][0]?.keyId], threshold: 1 });
  }
  const sha = (b: Buffer | undefined): string =>
    createHash('sha256')
      .update(b ?? '')
      .digest('hex');
  const targetsBytes = files.get('3.targets.json');
  const snapshotBytes = files.get('3.snapshot.json');
  const snap = parseSnapshot(snapshotBytes ?? Buffer.alloc(0), 's');
  assert.deepEqual(snap.signed.meta, {
    'targets.json': { version: 3, length: targetsBytes?.length, hashes: { sha256: sha(targetsBytes) } },
  });
  const ts = parseTimestamp(files.get('timestamp.json') ?? Buffer.alloc(0), 't');
  assert.deepEqual(ts.signed.meta, {
    'snapshot.json': { version: 3, length: snapshotBytes?.length, hashes: { sha256: sha(snapshotBytes) } },
  });
  const targets = parseTargets(targetsBytes ?? Buffer.alloc(0), 'x');
  assert.deepEqual(targets.signed.targets, { 'a/b.txt': { length: 1, hashes: { sha256: 'ab'.repeat(32) } } });
});

test('builders refuse bad input; signers must match a given root', async () => {
  const s = signers();
  assert.throws(() => newRoot(s, { expires: NOW, thresholds: { root: 2 } }), code('INVALID_ARGUMENT'));
  assert.throws(() => newRoot({ ...s, snapshot: [] }, { expires: NOW }), code('INVALID_ARGUMENT'));
  for (const [name, sha256] of [
    ['../x', 'ab'.repeat(32)],
    ['/x', 'ab'.repeat(32)],
    ['a//b', 'ab'.repeat(32)],
    ['x', 'AB'.repeat(32)],
  ] as const) {
    await assert.rejects(
      buildRepositoryMetadata({
        signers: s,
        expires: NOW,
        version: 1,
        targets: { [name]: { length: 1, sha256 } },
      }),
      code('INVALID_ARGUMENT'),
      name,
    );
  }
  const { root } = await buildRepositoryMetadata({ signers: s, expires: NOW, version: 1, targets: {} });
  await assert.rejects(
    buildRepositoryMetadata({
      signers: { ...s, targets: [localSigner(fixtureKey('intruder'))] },
      root,
      expires: NOW,
      version: 2,
      targets: {},
    }),
    code('TUF_THRESHOLD_NOT_MET', '2.targets.json'),
  );
});

test('rotateRoot: version + 1, signed by the old and the new root keys', async () => {
  const s = signers();
  const { root } = await buildRepositoryMetadata({ signers: s, expires: NOW, version: 1, targets: {} });
  const next = { ...s, root: [localSigner(fixtureKey('root-new'))] };
  const rotated = await rotateRoot(root, next, s.root, { expires: NOW });
  assert.equal(rotated.signed.version, 2);
  assert.deepEqual(
    rotated.signatures.map((x) => x.keyid).sort(),
    [s.root[0]?.keyId, next.root[0]?.keyId].sort(),
  );
  await assert.rejects(
    rotateRoot(root, next, next.root, { expires: NOW }),
    code('TUF_THRESHOLD_NOT_MET', '2.root.json'),
  );
});

test('targetPathFor puts the hash before the basename', () => {
  assert.equal(targetPathFor('a.tar.gz', 'ff'), 'ff.a.tar.gz');
  assert.equal(targetPathFor('dir/sub/a.tar.gz', 'ff'), 'dir/sub/ff.a.tar.gz');
});

test('canonical JSON: newline, quotes, backslash and non-ASCII in a custom field sign and verify', async () => {
  const note = 'line1\nline2 "quoted" back\\slash ünïcödé € 🚀 \u0001';
  const fx = await makeFixture({ now: NOW, targets: { 'x.txt': { data: 'x', custom: { note } } } });
  const tm = await fx.verify();
  assert.deepEqual(tm.findTarget('x.txt').custom, { note });
  const env = fx.envelope('targets');
  const canonical = canonicalJsonBytes(env.signed as unknown as CanonicalValue);
  // Raw control characters and UTF-8; only " and \ escaped (unlike JSON.stringify).
  assert.ok(canonical.includes(Buffer.from('line1\nline2 \\"quoted\\" back\\\\slash ünïcödé € 🚀 \u0001')));
  assert.ok(!canonical.includes(Buffer.from('\\n')));
  assert.ok(!canonical.includes(Buffer.from('\\u0001')));
  const sig = env.signatures[0];
  const key = fx.signers.targets[0]?.key;
  assert.ok(sig && key);
  assert.equal(verifySignature(key, canonical, sig.sig), true);
  // The file itself is ordinary pretty JSON.
  assert.ok(fx.metadata.get(fx.fileOf('targets'))?.includes(Buffer.from('line1\\nline2')));
});

test('parsing keeps unknown fields, so signatures over them still verify', async () => {
  const s = signers();
  const body = { ...newRoot(s, { expires: NOW }), x_vendor: { nested: [1, 'two'] } };
  const env = await signMetadata(body, s.root);
  const bytes = serializeMetadata({ ...env, extra_outer: true } as Envelope<unknown>);
  const parsed = parseRoot(bytes, 'root.json');
  assert.deepEqual((parsed.signed as unknown as Record<string, unknown>).x_vendor, { nested: [1, 'two'] });
  assert.equal(countValidSignatures(parsed, parsed.signed.keys, parsed.signed.roles.root), 1);
});

test('parse guards: TUF_METADATA_INVALID with file and JSON path', async () => {
  const fx = await makeFixture({ now: NOW });
  const base = fx.envelope('timestamp');
  const variant = (
    edit: (d: Record<string, unknown> & { signed: Record<string, unknown> }) => void,
  ): Buffer => {
    const d = structuredClone(base) as unknown as Record<string, unknown> & {
      signed: Record<string, unknown>;
    };
    edit(d);
    return json(d);
  };
  const cases: [string, Buffer, string][] = [
    ['not JSON', Buffer.from('{'), 'timestamp.json'],
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), 'timestamp.json'],
    ['array', json([]), 'timestamp.json:$'],
    ['no signed', variant((d) => Reflect.deleteProperty(d, 'signed')), 'timestamp.json:signed'],
    ['signatures not array', variant((d) => (d.signatures = {})), 'timestamp.json:signatures'],
    [
      'signature keyid',
      variant((d) => (d.signatures = [{ keyid: 1, sig: '' }])),
      'timestamp.json:signatures[0].keyid',
    ],
    ['version 0', variant((d) => (d.signed.version = 0)), 'timestamp.json:signed.version'],
    ['version string', variant((d) => (d.signed.version = '1')), 'timestamp.json:signed.version'],
    ['float', variant((d) => (d.signed.version = 1.5)), 'timestamp.json'],
    [
      'spec_version 2',
      variant((d) => (d.signed.spec_version = '2.0.0')),
      'timestamp.json:signed.spec_version',
    ],
    ['expires', variant((d) => (d.signed.expires = 'tomorrow')), 'timestamp.json:signed.expires'],
    ['no snapshot.json', variant((d) => (d.signed.meta = {})), 'timestamp.json:signed.meta'],
    [
      'meta version',
      variant((d) => (d.signed.meta = { 'snapshot.json': { version: -1 } })),
      'timestamp.json:signed.meta["snapshot.json"].version',
    ],
    [
      'empty hashes',
      variant((d) => (d.signed.meta = { 'snapshot.json': { version: 1, hashes: {} } })),
      'timestamp.json:signed.meta["snapshot.json"].hashes',
    ],
  ];
  for (const [what, bytes, where] of cases) {
    assert.throws(() => parseTimestamp(bytes, 'timestamp.json'), code('TUF_METADATA_INVALID', where), what);
  }
  assert.throws(
    () => parseEnvelope(Buffer.alloc(100, 0x20), 'big.json', 99),
    code('TUF_METADATA_INVALID', 'big.json'),
  );
  assert.throws(() => parseSnapshot(json(base), 'timestamp.json'), code('TUF_WRONG_TYPE', 'timestamp.json'));

  const root = fx.envelope('root') as unknown as {
    signed: { roles: Record<string, unknown>; keys: unknown };
  };
  const rootVariant = (edit: (r: typeof root) => void): Buffer => {
    const r = structuredClone(root);
    edit(r);
    return json(r);
  };
  assert.throws(
    () =>
      parseRoot(
        rootVariant((r) => delete r.signed.roles.snapshot),
        '1.root.json',
      ),
    code('TUF_METADATA_INVALID', '1.root.json:signed.roles.snapshot'),
  );
  assert.throws(
    () =>
      parseRoot(
        rootVariant((r) => (r.signed.roles.root = { keyids: ['a', 'a'], threshold: 1 })),
        '1.root.json',
      ),
    code('TUF_METADATA_INVALID', '1.root.json:signed.roles.root.keyids'),
  );
  assert.throws(
    () =>
      parseRoot(
        rootVariant((r) => (r.signed.keys = { k: { keytype: 'ed25519' } })),
        '1.root.json',
      ),
    code('TUF_METADATA_INVALID', '1.root.json:signed.keys.k.scheme'),
  );
  // Keys of other types parse (they just never verify).
  assert.doesNotThrow(() =>
    parseRoot(
      rootVariant((r) => {
        (r.signed.keys as Record<string, unknown>).rsa = {
          keytype: 'rsa',
          scheme: 'rsassa-pss-sha256',
          keyval: { public: 'PEM' },
        };
      }),
      '1.root.json',
    ),
  );
});

test('targets guards: target files and delegations', async () => {
  const fx = await makeFixture({ now: NOW });
  const base = fx.envelope('targets') as unknown as { signed: Record<string, unknown> };
  const t = (signed: Record<string, unknown>): Buffer =>
    json({ ...base, signed: { ...base.signed, ...signed } });
  const role = { name: 'r', keyids: [], threshold: 1, terminating: false, paths: ['*'] };
  const cases: [string, Buffer, string][] = [
    [
      'length',
      t({ targets: { a: { length: -1, hashes: { sha256: 'x' } } } }),
      'x.json:signed.targets.a.length',
    ],
    ['hashes', t({ targets: { a: { length: 1 } } }), 'x.json:signed.targets.a.hashes'],
    [
      'custom',
      t({ targets: { a: { length: 1, hashes: { s: 'x' }, custom: 'c' } } }),
      'x.json:signed.targets.a.custom',
    ],
    ['roles', t({ delegations: { keys: {}, roles: {} } }), 'x.json:signed.delegations.roles'],
    [
      'terminating',
      t({ delegations: { keys: {}, roles: [{ ...role, terminating: 'no' }] } }),
      'x.json:signed.delegations.roles[0].terminating',
    ],
    [
      'both path kinds',
      t({ delegations: { keys: {}, roles: [{ ...role, path_hash_prefixes: ['a'] }] } }),
      'x.json:signed.delegations.roles[0]',
    ],
    [
      'top-level name',
      t({ delegations: { keys: {}, roles: [{ ...role, name: 'snapshot' }] } }),
      'x.json:signed.delegations.roles[0].name',
    ],
    ['twice', t({ delegations: { keys: {}, roles: [role, role] } }), 'x.json:signed.delegations.roles[1]'],
  ];
  for (const [what, bytes, where] of cases) {
    assert.throws(() => parseTargets(bytes, 'x.json'), code('TUF_METADATA_INVALID', where), what);
  }
});
