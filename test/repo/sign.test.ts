/**
 * `slipway repo sign` and `rotate-root` on real repositories: assembled from
 * tufaceous' fake manifest, checked with our verifier and with tuf-js over
 * loopback HTTP, as zips and as extracted directories.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ZipReader } from '../../src/archive/zip-read.js';
import { sha256OfFile } from '../../src/archive/zip-write.js';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import type { CliContext } from '../../src/cli/context.js';
import { repoSignCommand } from '../../src/cli/repo-sign.js';
import {
  generateKey,
  keyIdOf,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  publicKeyOf,
  serializeMetadata,
  verifyRepositoryMetadata,
  type RoleName,
  type RoleSigners,
  type Signer,
} from '../../src/formats/tuf/index.js';
import { extractRepository, loadSigners, verifyRepositoryZip } from '../../src/repo/index.js';
import type { KeyOptions } from '../../src/repo/keys.js';
import { rotateRepositoryRoot, signRepository, type SignResult } from '../../src/repo/sign.js';
import {
  assembleFake,
  readZipFiles,
  readZipMetadata,
  tufjsDirs,
  tufjsUpdater,
  writeZip,
} from '../helpers/fake-repo.js';
import { tempDir } from '../helpers/tmp.js';
import { withServer } from '../helpers/tuf-server.js';
import { quietCliContext } from '../helpers/cli.js';

const tmp = tempDir('slipway-sign-');
/** One clock for assembling and signing, so version bumps are exactly +1 (real time: tuf-js checks expiry). */
const clock = new Date();

type Key = ReturnType<typeof generateKey>;

function signersOf(...keys: Key[]): Signer[] {
  return loadSigners({ keys: keys.map((k) => k.text), env: {} }).signers.root;
}

function allRoles(...keys: Key[]): RoleSigners {
  return loadSigners({ keys: keys.map((k) => k.text), env: {} }).signers;
}

function idOf(k: Key): string {
  return keyIdOf(publicKeyOf(k.privateKey));
}

/** A fresh directory holding one assembled repository zip. */
async function assembleWith(
  name: string,
  key: Pick<KeyOptions, 'keys' | 'roleKeys'>,
  thresholds?: Partial<Record<RoleName, number>>,
): Promise<string> {
  return (await assembleFake(path.join(tmp, name), { key, thresholds, now: clock })).output;
}

async function zipTargets(zip: string): Promise<string[]> {
  const reader = await ZipReader.open(zip);
  try {
    return reader.entries
      .filter((e) => !e.name.startsWith('repo/metadata/'))
      .map((e) => `${e.name} ${e.size} ${e.crc32}`);
  } finally {
    await reader.close();
  }
}

function need(files: Map<string, Buffer>, name: string): Buffer {
  const b = files.get(name);
  assert.ok(b !== undefined, `${name} is missing`);
  return b;
}

/** Versions and file names of the top-level chain. */
function chainOf(files: Map<string, Buffer> | ((name: string) => Buffer)): {
  timestamp: number;
  snapshot: number;
  targets: number;
  snapshotBytes: Buffer;
  targetsBytes: Buffer;
} {
  const get = typeof files === 'function' ? files : (n: string) => need(files, n);
  const ts = parseTimestamp(get('timestamp.json'), 'timestamp.json').signed;
  const snapVersion = ts.meta['snapshot.json']?.version ?? 0;
  const snapshotBytes = get(`${snapVersion}.snapshot.json`);
  const snap = parseSnapshot(snapshotBytes, 'snapshot').signed;
  const targetsVersion = snap.meta['targets.json']?.version ?? 0;
  const targetsBytes = get(`${targetsVersion}.targets.json`);
  assert.equal(parseTargets(targetsBytes, 'targets').signed.version, targetsVersion);
  return {
    timestamp: ts.version,
    snapshot: snap.version,
    targets: targetsVersion,
    snapshotBytes,
    targetsBytes,
  };
}

/** Rewrites one entry of a zip into a new zip (to break a repository on purpose). */
async function rewriteZipEntry(
  src: string,
  dst: string,
  name: string,
  edit: (b: Buffer) => Buffer,
): Promise<void> {
  const files = await readZipFiles(src, '');
  await writeZip(
    dst,
    [...files].map(([n, data]) => ({ name: n, data: n === name ? edit(data) : data })),
  );
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isSlipwayError(err, code), `expected ${code}, got ${String(err)}`);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

/** tuf-js from `trustedRoot` against a served repository directory: refresh, then fetch artifacts.json. */
async function tufJsFetch(
  repoDir: string,
  trustedRoot: Buffer,
): Promise<{ artifacts: string; rootVersion: number }> {
  const dirs = tufjsDirs(trustedRoot);
  return withServer(repoDir, async (server) => {
    const updater = tufjsUpdater({ baseUrl: server.url, dirs });
    await updater.refresh();
    const info = await updater.getTargetInfo('artifacts.json');
    assert.ok(info !== undefined, 'tuf-js finds artifacts.json');
    const file = await updater.downloadTarget(info);
    const rootVersion = parseRoot(fs.readFileSync(path.join(dirs.metadataDir, 'root.json')), 'root.json')
      .signed.version;
    return { artifacts: fs.readFileSync(file, 'utf8'), rootVersion };
  });
}

/** Our client over a repository directory, from `trustedRoot` (default its own 1.root.json). */
async function verifyDir(dir: string, trustedRoot?: Buffer): Promise<{ root: number; timestamp: number }> {
  const read = (name: string): Promise<Uint8Array | undefined> => {
    const p = path.join(dir, 'metadata', name);
    return Promise.resolve(fs.existsSync(p) ? fs.readFileSync(p) : undefined);
  };
  const tm = await verifyRepositoryMetadata(read, {
    trustedRoot: trustedRoot ?? fs.readFileSync(path.join(dir, 'metadata', '1.root.json')),
    now: clock,
  });
  return { root: tm.root.version, timestamp: tm.timestamp.version };
}

function roles(r: SignResult): string[] {
  return r.changes.map((c) => `${c.role} ${c.action}`);
}

test('rotate-root: new keys signed by the old root; verifiers trusting the old root walk 1 → 2 (ours and tuf-js)', async () => {
  const k1 = generateKey();
  const k2 = generateKey();
  const zip = await assembleWith('rotate', { keys: [k1.text] });
  const before = await readZipMetadata(zip);
  const oldRoot = need(before, '1.root.json');
  const targetsBefore = await zipTargets(zip);
  const chainBefore = chainOf(before);
  const artifacts = (await verifyRepositoryZip(zip, { now: new Date() })).artifacts.length;

  const r = await rotateRepositoryRoot(zip, {
    now: clock,
    newSigners: allRoles(k2),
    oldRootSigners: signersOf(k1),
  });
  assert.equal(r.rootVersion, 2);
  assert.equal(r.format, 'zip');
  assert.deepEqual(roles(r), [
    'root rotated',
    'targets re-signed',
    'snapshot re-signed',
    'timestamp re-signed',
  ]);
  const rootChange = r.changes[0];
  assert.deepEqual([rootChange?.oldVersion, rootChange?.version], [1, 2]);
  assert.deepEqual(new Set(rootChange?.signedBy), new Set([idOf(k1), idOf(k2)]));
  assert.deepEqual(r.unusedKeys, []);

  const after = await readZipMetadata(zip);
  const chain = chainOf(after);
  assert.ok(chain.targets > chainBefore.targets && chain.snapshot > chainBefore.snapshot);
  assert.ok(chain.timestamp > chainBefore.timestamp);
  // The old root stays, byte for byte; superseded versioned files are gone from the zip.
  assert.deepEqual(need(after, '1.root.json'), oldRoot);
  assert.deepEqual(
    [...after.keys()],
    [
      '1.root.json',
      '2.root.json',
      `${chain.targets}.targets.json`,
      `${chain.snapshot}.snapshot.json`,
      'timestamp.json',
    ],
  );
  const newRoot = parseRoot(need(after, '2.root.json'), '2.root.json').signed;
  for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
    assert.deepEqual(newRoot.roles[role].keyids, [idOf(k2)]);
  }
  assert.deepEqual(Object.keys(newRoot.keys), [idOf(k2)]);
  // Targets copied unchanged, in their order.
  assert.deepEqual(await zipTargets(zip), targetsBefore);
  assert.equal(fs.readFileSync(`${zip}.sha256.txt`, 'utf8'), `${await sha256OfFile(zip)}\n`);

  const v = await verifyRepositoryZip(zip, { now: new Date(), trustedRoot: oldRoot });
  assert.equal(v.rootVersion, 2);
  const v2 = await verifyRepositoryZip(zip, { now: new Date(), trustedRoot: need(after, '2.root.json') });
  assert.equal(v2.rootVersion, 2);
  assert.equal(v2.artifacts.length, artifacts);

  const dir = path.join(path.dirname(zip), 'extracted');
  await extractRepository(zip, dir, { verify: true, now: clock, trustedRoot: oldRoot });
  const fetched = await tufJsFetch(dir, oldRoot);
  assert.equal(fetched.rootVersion, 2);
  assert.equal((JSON.parse(fetched.artifacts) as { system_version: string }).system_version, '1.0.0');
});

test('rotate-root without (or with the wrong) old key: TUF_THRESHOLD_NOT_MET, the zip untouched, no temp files', async () => {
  const k1 = generateKey();
  const k2 = generateKey();
  const k3 = generateKey();
  const zip = await assembleWith('rotate-refused', { keys: [k1.text] });
  const dir = path.dirname(zip);
  const bytes = fs.readFileSync(zip);
  const listing = fs.readdirSync(dir).sort();
  const sums = fs.readFileSync(`${zip}.sha256.txt`);
  for (const old of [[], signersOf(k3)]) {
    await rejectsWith(
      rotateRepositoryRoot(zip, { now: clock, newSigners: allRoles(k2), oldRootSigners: old }),
      'TUF_THRESHOLD_NOT_MET',
      /0 of root v1's 1 root key given/,
    );
    assert.ok(fs.readFileSync(zip).equals(bytes));
    assert.ok(fs.readFileSync(`${zip}.sha256.txt`).equals(sums));
    assert.deepEqual(fs.readdirSync(dir).sort(), listing);
  }
  // Also to another output: nothing appears there.
  const out = path.join(dir, 'out.zip');
  await rejectsWith(
    rotateRepositoryRoot(zip, { now: clock, newSigners: allRoles(k2), oldRootSigners: [], output: out }),
    'TUF_THRESHOLD_NOT_MET',
  );
  assert.deepEqual(fs.readdirSync(dir).sort(), listing);
  // Keeping the root key needs no --old-key: the new root key is an old one.
  const r = await rotateRepositoryRoot(zip, {
    now: clock,
    newSigners: { ...allRoles(k1), timestamp: signersOf(k2) },
    oldRootSigners: [],
  });
  assert.equal(r.rootVersion, 2);
  await verifyRepositoryZip(zip, { now: new Date() });
});

test('threshold 2: a root signed by A alone fails; --add-signature with B completes it', async () => {
  const a = generateKey();
  const b = generateKey();
  const c = generateKey();
  const zip = await assembleWith(
    'threshold',
    { keys: [a.text], roleKeys: { root: [a.text, b.text] } },
    { root: 2 },
  );
  await verifyRepositoryZip(zip, { now: new Date() });
  const root = parseRoot(need(await readZipMetadata(zip), '1.root.json'), '1.root.json');
  assert.equal(root.signed.roles.root.threshold, 2);
  assert.equal(root.signatures.length, 2);

  const onlyA = path.join(path.dirname(zip), 'only-a.zip');
  await rewriteZipEntry(zip, onlyA, 'repo/metadata/1.root.json', (bytes) => {
    const env = parseRoot(bytes, '1.root.json');
    return serializeMetadata({ ...env, signatures: env.signatures.filter((s) => s.keyid !== idOf(b)) });
  });
  await rejectsWith(verifyRepositoryZip(onlyA, { now: new Date() }), 'TUF_THRESHOLD_NOT_MET');

  // A key that is not a root key adds nothing, and nothing is written.
  const unsigned = fs.readFileSync(onlyA);
  await rejectsWith(
    signRepository(onlyA, { now: clock, roles: ['root'], addSignature: true, keys: signersOf(c) }),
    'TUF_THRESHOLD_NOT_MET',
    /none of the given keys is a root key/,
  );
  assert.ok(fs.readFileSync(onlyA).equals(unsigned));
  // A again: written, but still one of two.
  const again = await signRepository(onlyA, {
    now: clock,
    roles: ['root'],
    addSignature: true,
    keys: signersOf(a),
  });
  assert.equal(again.complete, false);
  assert.match(again.pending ?? '', /threshold 2/);
  // Rotating away needs both old root keys.
  await rejectsWith(
    rotateRepositoryRoot(zip, { now: clock, newSigners: allRoles(c), oldRootSigners: signersOf(a) }),
    'TUF_THRESHOLD_NOT_MET',
    /1 of root v1's 2 root keys given.*threshold 2/,
  );

  const r = await signRepository(onlyA, {
    now: clock,
    roles: ['root'],
    addSignature: true,
    keys: signersOf(b),
  });
  assert.equal(r.complete, true);
  assert.deepEqual(r.changes, [
    {
      role: 'root',
      action: 'signature added',
      file: '1.root.json',
      oldVersion: 1,
      version: 1,
      expires: root.signed.expires,
      signedBy: [idOf(b)],
      signatures: 2,
      threshold: 2,
    },
  ]);
  await verifyRepositoryZip(onlyA, { now: new Date() });
  // Same body, signatures in keyid order, one per key: byte for byte the assembled root.
  const completed = need(await readZipMetadata(onlyA), '1.root.json');
  assert.deepEqual(completed, need(await readZipMetadata(zip), '1.root.json'));
  assert.deepEqual(await zipTargets(onlyA), await zipTargets(zip));
});

test('online timestamp key: only the timestamp is re-signed, by T; R cannot', async () => {
  const rk = generateKey();
  const tk = generateKey();
  const zip = await assembleWith('online', { keys: [rk.text], roleKeys: { timestamp: [tk.text] } });
  const before = await readZipMetadata(zip);
  const chainBefore = chainOf(before);

  const bytes = fs.readFileSync(zip);
  await rejectsWith(
    signRepository(zip, { now: clock, roles: ['timestamp'], keys: signersOf(rk) }),
    'TUF_THRESHOLD_NOT_MET',
    /cannot sign timestamp: 0 of the given keys are among its 1 key in root v1/,
  );
  assert.ok(fs.readFileSync(zip).equals(bytes));

  const r = await signRepository(zip, { now: clock, keys: signersOf(tk) });
  assert.deepEqual(roles(r), ['timestamp re-signed']);
  assert.deepEqual(r.changes[0]?.signedBy, [idOf(tk)]);
  const after = await readZipMetadata(zip);
  const chain = chainOf(after);
  assert.equal(chain.timestamp, chainBefore.timestamp + 1);
  assert.equal(chain.snapshot, chainBefore.snapshot);
  assert.equal(chain.targets, chainBefore.targets);
  assert.ok(chain.snapshotBytes.equals(chainBefore.snapshotBytes));
  assert.ok(chain.targetsBytes.equals(chainBefore.targetsBytes));
  const v = await verifyRepositoryZip(zip, { now: new Date() });
  assert.equal(v.rootVersion, 1);

  // An explicit later clock sets the version (seconds), and --expiry the validity.
  const later = new Date(Date.now() + 3600_000);
  const r2 = await signRepository(zip, { now: later, keys: signersOf(tk), validFor: 3600_000 });
  assert.equal(r2.changes[0]?.version, Math.floor(later.getTime() / 1000));
  assert.equal(
    r2.changes[0]?.expires,
    new Date(Math.floor(later.getTime() / 1000) * 1000 + 3600_000).toISOString().replace('.000Z', 'Z'),
  );
  await verifyRepositoryZip(zip, { now: new Date() });
});

test('re-signing targets cascades to snapshot and timestamp; their keys are needed too', async () => {
  const rk = generateKey();
  const tk = generateKey();
  const zip = await assembleWith('cascade', { keys: [rk.text], roleKeys: { timestamp: [tk.text] } });
  const before = await readZipMetadata(zip);
  const chainBefore = chainOf(before);
  const bytes = fs.readFileSync(zip);
  await rejectsWith(
    signRepository(zip, { now: clock, roles: ['targets'], keys: signersOf(rk) }),
    'TUF_THRESHOLD_NOT_MET',
    /cannot sign timestamp/,
  );
  assert.ok(fs.readFileSync(zip).equals(bytes));

  const r = await signRepository(zip, { now: clock, roles: ['targets'], keys: signersOf(rk, tk) });
  assert.deepEqual(roles(r), ['targets re-signed', 'snapshot re-signed', 'timestamp re-signed']);
  const after = await readZipMetadata(zip);
  const chain = chainOf(after);
  assert.equal(chain.targets, chainBefore.targets + 1);
  assert.equal(chain.snapshot, chainBefore.snapshot + 1);
  assert.equal(chain.timestamp, chainBefore.timestamp + 1);
  assert.deepEqual(
    [...after.keys()],
    ['1.root.json', `${chain.targets}.targets.json`, `${chain.snapshot}.snapshot.json`, 'timestamp.json'],
  );
  await verifyRepositoryZip(zip, { now: new Date() });

  // A signature the targets role already has: same bytes, so its parents need no change.
  const same = await signRepository(zip, {
    now: clock,
    roles: ['targets'],
    addSignature: true,
    keys: signersOf(rk),
  });
  assert.deepEqual(roles(same), ['targets signature added']);
  assert.equal(same.changes[0]?.version, chain.targets);
  assert.deepEqual(await readZipMetadata(zip), after);

  // snapshot cascades to timestamp only; root re-signed gets the next version.
  const s = await signRepository(zip, { now: clock, roles: ['snapshot', 'root'], keys: signersOf(rk, tk) });
  assert.deepEqual(roles(s), ['root re-signed', 'snapshot re-signed', 'timestamp re-signed']);
  const v = await verifyRepositoryZip(zip, { now: new Date() });
  assert.equal(v.rootVersion, 2);

  // Written elsewhere with -o: the input stays; dry runs write nothing.
  const input = fs.readFileSync(zip);
  const out = path.join(path.dirname(zip), 'out.zip');
  const dry = await signRepository(zip, { now: clock, keys: signersOf(tk), output: out, dryRun: true });
  assert.equal(dry.dryRun, true);
  assert.equal(fs.existsSync(out), false);
  await signRepository(zip, { now: clock, keys: signersOf(tk), output: out });
  assert.ok(fs.readFileSync(zip).equals(input));
  assert.equal(fs.readFileSync(`${out}.sha256.txt`, 'utf8'), `${await sha256OfFile(out)}\n`);
  await verifyRepositoryZip(out, { now: new Date() });
});

test('an extracted directory: timestamp and targets re-signed in place, root rotated; tuf-js follows', async () => {
  const rk = generateKey();
  const tk = generateKey();
  const nk = generateKey();
  const zip = await assembleWith('directory', { keys: [rk.text], roleKeys: { timestamp: [tk.text] } });
  const dir = path.join(path.dirname(zip), 'repo');
  await extractRepository(zip, dir, { verify: true, now: clock });
  const meta = path.join(dir, 'metadata');
  const read = (n: string): Buffer => fs.readFileSync(path.join(meta, n));
  const oldRoot = read('1.root.json');
  const chainBefore = chainOf(read);

  const t = await signRepository(dir, { now: clock, keys: signersOf(tk) });
  assert.equal(t.format, 'directory');
  assert.equal(t.sha256, undefined);
  assert.equal((await verifyDir(dir)).timestamp, chainBefore.timestamp + 1);

  await rejectsWith(signRepository(dir, { now: clock, keys: signersOf(rk) }), 'TUF_THRESHOLD_NOT_MET');
  await rejectsWith(
    signRepository(dir, { now: clock, keys: signersOf(tk), output: path.join(tmp, 'x.zip') }),
    'INVALID_ARGUMENT',
  );

  await signRepository(dir, { now: clock, roles: ['targets'], keys: signersOf(rk, tk) });
  const chain = chainOf(read);
  assert.equal(chain.targets, chainBefore.targets + 1);
  // Consistent snapshots: the older versioned files stay for clients mid-update.
  assert.ok(fs.existsSync(path.join(meta, `${chainBefore.targets}.targets.json`)));
  assert.ok(fs.existsSync(path.join(meta, `${chainBefore.snapshot}.snapshot.json`)));
  await verifyDir(dir);

  const r = await rotateRepositoryRoot(dir, {
    now: clock,
    newSigners: allRoles(nk),
    oldRootSigners: signersOf(rk),
  });
  assert.equal(r.rootVersion, 2);
  assert.ok(read('1.root.json').equals(oldRoot));
  assert.equal((await verifyDir(dir, oldRoot)).root, 2);
  const leftovers = fs.readdirSync(meta).filter((n) => n.endsWith('.tmp'));
  assert.deepEqual(leftovers, []);
  const fetched = await tufJsFetch(dir, oldRoot);
  assert.equal(fetched.rootVersion, 2);
  assert.match(fetched.artifacts, /"system_version": "1\.0\.0"/);
});

test('CLI: rotate-root and sign turn flags into options; bad flags are USAGE errors', async () => {
  const k1 = generateKey();
  const k2 = generateKey();
  const zip = await assembleWith('cli', { keys: [k1.text] });
  const keyFile = path.join(path.dirname(zip), 'k2.key');
  fs.writeFileSync(keyFile, `${k2.text}\n`, { mode: 0o600 });
  const ctx: CliContext = quietCliContext();
  const rot = await repoSignCommand(
    'rotate-root',
    [zip, '--new-key', `file:${keyFile}`, '--old-key', k1.text, '--expiry', '2d'],
    ctx,
  );
  assert.match(rot.human, /root rotated, root v2/);
  assert.match(rot.human, /^ {2}root +rotated +v1 → v2 .* 1\/1 signatures/m);
  assert.match(rot.human, /^sha256 [0-9a-f]{64} /m);
  await verifyRepositoryZip(zip, { now: new Date() });

  process.env.SLIPWAY_SIGN_TEST_KEY = k2.text;
  try {
    const s = await repoSignCommand(
      'sign',
      [zip, '-k', 'env:SLIPWAY_SIGN_TEST_KEY', '--role', 'targets'],
      ctx,
    );
    assert.match(s.human, /^ {2}targets +re-signed/m);
    assert.match(s.human, /^ {2}timestamp +re-signed/m);
  } finally {
    delete process.env.SLIPWAY_SIGN_TEST_KEY;
  }
  await verifyRepositoryZip(zip, { now: new Date() });

  await rejectsWith(repoSignCommand('sign', [zip, '-k', k2.text, '--role', 'bogus'], ctx), 'USAGE');
  await rejectsWith(repoSignCommand('rotate-root', [zip, '--old-key', k2.text], ctx), 'USAGE', /--new-key/);
  await rejectsWith(repoSignCommand('sign', [zip, '-k', 'ed25519:nope'], ctx), 'TUF_KEY_INVALID');
});
