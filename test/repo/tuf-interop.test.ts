/**
 * tuf-js as an independent TUF 1.0 client (specs/tuf-repo.md, "Clients that
 * must accept what we write"): it must read a repository our assembler wrote
 * and download every target; and every tampering the spec forbids must be
 * rejected by it AND by our own verifier, case by case from one table.
 *
 * Our verifier gets an injected clock (the fixture's `now`); tuf-js always
 * uses the real clock, so expired metadata is built with `expires` in the past.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import type { Updater } from 'tuf-js';
import { SlipwayError, type ErrorCode } from '../../src/core/errors.js';
import { encodeArtifactsDocument } from '../../src/formats/repo-artifacts.js';
import { verifyRepositoryMetadata, type TrustedMetadata } from '../../src/formats/tuf/client.js';
import { keyIdOf, type Signer } from '../../src/formats/tuf/keys.js';
import { serializeMetadata, type SnapshotMeta, type TargetsMeta } from '../../src/formats/tuf/metadata.js';
import { signMetadata } from '../../src/formats/tuf/sign.js';
import { verifyRepositoryZip } from '../../src/repo/verify.js';
import {
  assembleFake,
  readZipFiles,
  sha256,
  tufjsDirs,
  tufjsUpdater,
  writeZip,
  type TufjsDirs,
} from '../helpers/fake-repo.js';
import { tempDir } from '../helpers/tmp.js';
import { expiresAt, makeFixture, type FixtureOptions, type TufFixture } from '../helpers/tuf-fixture.js';
import { serveFiles } from '../helpers/tuf-server.js';

const HOUR = 3600 * 1000;

// ---------------------------------------------------------------------------
// tuf-js plumbing

/** Downloads `name` with tuf-js and returns the bytes it wrote. */
async function tufjsDownload(u: Updater, name: string): Promise<Buffer> {
  const info = await u.getTargetInfo(name);
  assert.ok(info !== undefined, `tuf-js does not find target ${name}`);
  const file = await u.downloadTarget(info);
  return fs.readFileSync(file);
}

/**
 * What a tuf-js rejection must look like: the error's class (tuf-js sets no
 * `name`, so the constructor's). Snapshot and targets failures come wrapped
 * in a RuntimeError whose message carries the inner error's.
 */
interface TufJsRejects {
  error: string;
  message?: RegExp;
  /** For DownloadHTTPError. */
  statusCode?: number;
}

function tufjsRejection(expect: TufJsRejects): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof Error, `tuf-js threw a non-Error: ${String(err)}`);
    const cls = err.constructor.name;
    assert.equal(cls, expect.error, `tuf-js threw ${cls}: ${err.message}`);
    if (expect.message !== undefined) assert.match(err.message, expect.message);
    if (expect.statusCode !== undefined) {
      assert.equal((err as Error & { statusCode?: number }).statusCode, expect.statusCode);
    }
    return true;
  };
}

function slipwayCode(code: ErrorCode, where?: string): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof SlipwayError, `expected a SlipwayError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `${err.code}: ${err.message} (${err.where ?? ''})`);
    if (where !== undefined) assert.equal(err.where, where, `${err.code}: ${err.message}`);
    return true;
  };
}

// ---------------------------------------------------------------------------
// 1. an assembled repository, read by tuf-js

test('tuf-js refreshes an assembled repository (tufaceous fake.toml) and downloads every target', async () => {
  const now = new Date();
  const result = await assembleFake(tempDir(), { now });
  assert.ok(result.generatedKey?.startsWith('ed25519:'), 'a throwaway key');
  const files = await readZipFiles(result.output, 'repo/', { onlyUnder: true });
  const root = files.get('metadata/1.root.json');
  assert.ok(root !== undefined);

  // The target list, from our verifier over the same files (injected clock).
  const tm = await verifyRepositoryMetadata((f) => Promise.resolve(files.get(`metadata/${f}`)), {
    trustedRoot: root,
    now,
  });
  const names = Object.keys(tm.targets.targets).sort();
  const reported = new Map(result.artifacts.map((a) => [a.target, a]));
  for (const t of reported.keys()) assert.ok(names.includes(t), `targets metadata lacks ${t}`);
  const extra = names.filter((n) => !reported.has(n));
  assert.deepEqual(extra, ['artifacts.json', 'installinator_document-1.0.0.json']);

  const server = await serveFiles(files);
  try {
    const u = tufjsUpdater({ baseUrl: server.url, trustedRoot: root });
    await u.refresh();
    assert.equal(server.count('metadata/2.root.json'), 1, 'tuf-js looks for the next root');
    for (const name of names) {
      const bytes = await tufjsDownload(u, name);
      const want = tm.targets.targets[name]?.hashes.sha256;
      assert.equal(sha256(bytes), want, name);
      const stored = files.get(`targets/${tm.targetFile(name)}`);
      assert.ok(stored !== undefined, `${name} is stored under its hash name`);
      assert.equal(sha256(stored), want, name);
      const a = reported.get(name);
      if (a !== undefined) {
        assert.equal(sha256(bytes), a.sha256, `${name}: the assembler's report`);
        assert.equal(bytes.length, a.size, `${name}: the assembler's size`);
      }
      assert.equal(server.count(`targets/${tm.targetFile(name)}`), 1, `${name} fetched once, by hash name`);
    }
    assert.equal(names.length, result.artifacts.length + 2);
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------------------
// 2. the tampering matrix

const ARTIFACT = 'gimlet_sp-fake-gimlet-sp-1.0.0.tar.gz';
const ARTIFACT_DATA = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 0xff));
const NESTED = 'nested/dir/file.bin';

/** artifacts.json names the artifact, so the zip verifier streams it too. */
const TARGETS: FixtureOptions['targets'] = {
  'artifacts.json': encodeArtifactsDocument({
    system_version: '1.0.0',
    artifacts: [{ name: 'fake-gimlet-sp', version: '1.0.0', kind: 'gimlet_sp', target: ARTIFACT }],
  }),
  [ARTIFACT]: ARTIFACT_DATA,
  [NESTED]: 'a target below a directory\n',
};

/** A role's body signed (as is) with `signers` and stored as `file` under metadata/. */
async function signInto(
  fx: TufFixture,
  file: string,
  signed: SnapshotMeta | TargetsMeta,
  signers: readonly Signer[],
): Promise<Buffer> {
  const bytes = serializeMetadata(await signMetadata(signed, signers));
  fx.metadata.set(file, bytes);
  return bytes;
}

function metaFileOf(
  version: number,
  bytes: Buffer,
): { version: number; length: number; hashes: { sha256: string } } {
  return { version, length: bytes.length, hashes: { sha256: sha256(bytes) } };
}

/** Sets `_type` whatever the role's type says. */
function setType(signed: { _type: string }, type: string): void {
  signed._type = type;
}

function flipHex(hex: string): string {
  const last = hex.charAt(hex.length - 1);
  return hex.slice(0, -1) + (last === '0' ? '1' : '0');
}

function flipByte(data: Buffer, at: number): Buffer {
  const out = Buffer.from(data);
  out[at] = (out[at] ?? 0) ^ 0xff;
  return out;
}

/** A tamper that stores `data` in place of the artifact's target file. */
function replaceArtifact(data: Buffer): (fx: TufFixture) => Promise<void> {
  return (fx) => {
    fx.targetFiles.set(fx.targetPath(ARTIFACT), data);
    return Promise.resolve();
  };
}

interface Case {
  name: string;
  fixture?: FixtureOptions;
  /**
   * Rollback cases: the client first updates against the good repository
   * (tuf-js with the same metadata dir; ours keeps timestamp and snapshot as
   * its `cached` state), then meets the tampered one.
   */
  rollback?: boolean;
  tamper(fx: TufFixture): Promise<unknown>;
  /** Our code; `zip` cases are checked by verifyRepositoryZip (targets), the rest by verifyRepositoryMetadata. */
  ours: ErrorCode;
  /** The file our error names (its `where`). */
  oursAt?: string;
  oursVia?: 'metadata' | 'zip';
  /** Where tuf-js fails: refresh() (default) or downloadTarget() of `target`. */
  tufjsAt?: 'refresh' | 'download';
  target?: string;
  tufjs: TufJsRejects;
  /**
   * A case the spec forbids that tuf-js is known to accept: ours stays
   * enforced, and the test pins tuf-js' behaviour (it must still accept), so
   * a tuf-js release that closes the gap fails here and the case becomes a
   * plain one.
   */
  tufjsGap?: string;
}

const past = (fx: TufFixture): string => expiresAt(fx.now, -HOUR);
const wrappedSnapshot = (inner: RegExp): TufJsRejects => ({
  error: 'RuntimeError',
  message: new RegExp(`Unable to load snapshot metadata.*${inner.source}`),
});
const wrappedTargets = (inner: RegExp): TufJsRejects => ({
  error: 'RuntimeError',
  message: new RegExp(`Unable to load targets.*${inner.source}`),
});

const CASES: Case[] = [
  // --- expiry
  {
    name: 'expired timestamp',
    tamper: (fx) => fx.resign('timestamp', (s) => (s.expires = past(fx))),
    ours: 'TUF_EXPIRED',
    oursAt: 'timestamp.json',
    tufjs: { error: 'ExpiredMetadataError', message: /timestamp\.json is expired/ },
  },
  {
    name: 'expired snapshot',
    tamper: (fx) => fx.resign('snapshot', (s) => (s.expires = past(fx)), { updateParents: true }),
    ours: 'TUF_EXPIRED',
    oursAt: '1.snapshot.json',
    tufjs: wrappedSnapshot(/snapshot\.json is expired/),
  },
  {
    name: 'expired targets',
    tamper: (fx) => fx.resign('targets', (s) => (s.expires = past(fx)), { updateParents: true }),
    ours: 'TUF_EXPIRED',
    oursAt: '1.targets.json',
    tufjs: wrappedTargets(/targets\.json is expired/),
  },
  {
    name: 'expired root',
    tamper: (fx) => fx.resign('root', (s) => (s.expires = past(fx))),
    ours: 'TUF_EXPIRED',
    oursAt: '1.root.json',
    tufjs: { error: 'ExpiredMetadataError', message: /Final root\.json is expired/ },
  },
  // --- signatures
  {
    name: 'bad signature (timestamp)',
    tamper: (fx) =>
      fx.tamper('timestamp', (env) => {
        for (const s of env.signatures) s.sig = flipHex(s.sig);
      }),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: 'timestamp.json',
    tufjs: { error: 'UnsignedMetadataError', message: /timestamp was signed by 0\/1 keys/ },
  },
  {
    name: 'bad signature (targets)',
    tamper: (fx) =>
      fx.tamper(
        'targets',
        (env) => {
          for (const s of env.signatures) s.sig = flipHex(s.sig);
        },
        { updateParents: true },
      ),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: '1.targets.json',
    tufjs: wrappedTargets(/targets was signed by 0\/1 keys/),
  },
  {
    name: 'missing signature (timestamp)',
    tamper: (fx) => fx.tamper('timestamp', (env) => (env.signatures = [])),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: 'timestamp.json',
    tufjs: { error: 'UnsignedMetadataError', message: /timestamp was signed by 0\/1 keys/ },
  },
  {
    name: 'missing signature (snapshot)',
    tamper: (fx) => fx.tamper('snapshot', (env) => (env.signatures = []), { updateParents: true }),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: '1.snapshot.json',
    tufjs: wrappedSnapshot(/snapshot was signed by 0\/1 keys/),
  },
  {
    name: 'threshold not met (1 of 2 timestamp keys)',
    fixture: { keyCount: { timestamp: 2 }, thresholds: { timestamp: 2 } },
    tamper: (fx) => fx.resign('timestamp', undefined, { signers: fx.signers.timestamp.slice(0, 1) }),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: 'timestamp.json',
    tufjs: { error: 'UnsignedMetadataError', message: /timestamp was signed by 1\/2 keys/ },
  },
  {
    name: 'threshold not met by a duplicated signature (threshold 2)',
    fixture: { keyCount: { timestamp: 2 }, thresholds: { timestamp: 2 } },
    async tamper(fx) {
      await fx.resign('timestamp', undefined, { signers: fx.signers.timestamp.slice(0, 1) });
      return fx.tamper('timestamp', (env) => {
        const [sig] = env.signatures;
        assert.ok(sig !== undefined);
        env.signatures = [sig, { ...sig }];
      });
    },
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: 'timestamp.json',
    // tuf-js refuses the file outright.
    tufjs: { error: 'ValueError', message: /multiple signatures found for keyid/ },
  },
  {
    name: 'threshold not met by one key listed under two keyids (threshold 2)',
    async tamper(fx) {
      // The same public key again, under a second keyid (an extra field changes the keyid).
      const signer = fx.signers.timestamp[0];
      assert.ok(signer !== undefined);
      const twin = { ...signer.key, keyid_hash_algorithms: ['sha256'] };
      const twinId = keyIdOf(twin);
      await fx.resign('root', (s) => {
        (s.keys as Record<string, unknown>)[twinId] = twin;
        s.roles.timestamp = { keyids: [signer.keyId, twinId].sort(), threshold: 2 };
      });
      await fx.resign('timestamp', undefined, { signers: [signer] });
      return fx.tamper('timestamp', (env) => {
        const [sig] = env.signatures;
        assert.ok(sig !== undefined);
        env.signatures = [sig, { keyid: twinId, sig: sig.sig }];
      });
    },
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: 'timestamp.json',
    tufjs: { error: 'UnsignedMetadataError', message: /timestamp was signed by 1\/2 keys/ },
    tufjsGap:
      'tuf-js 5.0.1 counts distinct keyids, not distinct keys (@tufjs/models Metadata.verifyDelegate), so it accepts this',
  },
  {
    name: "signed by the wrong role's key (timestamp signed by the snapshot key)",
    tamper: (fx) => fx.resign('timestamp', undefined, { signers: fx.signers.snapshot }),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: 'timestamp.json',
    tufjs: { error: 'UnsignedMetadataError', message: /timestamp was signed by 0\/1 keys/ },
  },
  {
    name: "signed by the wrong role's key (targets signed by the root key)",
    tamper: (fx) => fx.resign('targets', undefined, { signers: fx.signers.root, updateParents: true }),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: '1.targets.json',
    tufjs: wrappedTargets(/targets was signed by 0\/1 keys/),
  },
  {
    name: 'body edited after signing (timestamp version)',
    tamper: (fx) => fx.tamper('timestamp', (env) => (env.signed.version += 1)),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: 'timestamp.json',
    tufjs: { error: 'UnsignedMetadataError', message: /timestamp was signed by 0\/1 keys/ },
  },
  {
    name: "body edited after signing (a target's hash in targets)",
    tamper: (fx) =>
      fx.tamper(
        'targets',
        (env) => {
          const t = env.signed.targets[ARTIFACT];
          assert.ok(t !== undefined);
          t.hashes = { sha256: sha256(Buffer.from('evil')) };
        },
        { updateParents: true },
      ),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: '1.targets.json',
    tufjs: wrappedTargets(/targets was signed by 0\/1 keys/),
  },
  // --- length, hash and version against the parent
  {
    name: 'hash mismatch timestamp → snapshot',
    tamper: (fx) =>
      fx.resign('timestamp', (s) => {
        const m = s.meta['snapshot.json'];
        assert.ok(m !== undefined);
        m.hashes = { sha256: sha256(Buffer.from('other')) };
      }),
    ours: 'TUF_HASH_MISMATCH',
    oursAt: '1.snapshot.json',
    tufjs: wrappedSnapshot(/Expected hash/),
  },
  {
    name: 'length mismatch timestamp → snapshot (listed shorter)',
    tamper: (fx) =>
      fx.resign('timestamp', (s) => {
        const m = s.meta['snapshot.json'];
        assert.ok(m?.length !== undefined);
        m.length -= 1;
      }),
    ours: 'TUF_LENGTH_MISMATCH',
    oursAt: '1.snapshot.json',
    // DownloadLengthMismatchError, inside the RuntimeError.
    tufjs: wrappedSnapshot(/Max length reached/),
  },
  {
    name: 'hash mismatch snapshot → targets',
    tamper: (fx) =>
      fx.resign(
        'snapshot',
        (s) => {
          const m = s.meta['targets.json'];
          assert.ok(m !== undefined);
          m.hashes = { sha256: sha256(Buffer.from('other')) };
        },
        { updateParents: true },
      ),
    ours: 'TUF_HASH_MISMATCH',
    oursAt: '1.targets.json',
    tufjs: wrappedTargets(/Expected hash/),
  },
  {
    name: 'length mismatch snapshot → targets (listed longer)',
    tamper: (fx) =>
      fx.resign(
        'snapshot',
        (s) => {
          const m = s.meta['targets.json'];
          assert.ok(m?.length !== undefined);
          m.length += 1;
        },
        { updateParents: true },
      ),
    ours: 'TUF_LENGTH_MISMATCH',
    oursAt: '1.targets.json',
    tufjs: wrappedTargets(/Expected length/),
  },
  {
    name: 'version mismatch with the parent (snapshot says 7, timestamp lists 1)',
    tamper: (fx) => fx.resign('snapshot', (s) => (s.version = 7), { updateParents: true }),
    ours: 'TUF_VERSION_MISMATCH',
    oursAt: '1.snapshot.json',
    tufjs: wrappedSnapshot(/Snapshot version doesn't match timestamp/),
  },
  {
    name: 'version mismatch with the parent (targets says 7, snapshot lists 1)',
    tamper: (fx) => fx.resign('targets', (s) => (s.version = 7), { updateParents: true }),
    ours: 'TUF_VERSION_MISMATCH',
    oursAt: '1.targets.json',
    tufjs: wrappedTargets(/Version 7 of targets does not match snapshot version 1/),
  },
  {
    name: "wrong _type (timestamp.json says 'snapshot')",
    tamper: (fx) =>
      fx.resign('timestamp', (s) => {
        setType(s, 'snapshot');
      }),
    ours: 'TUF_WRONG_TYPE',
    oursAt: 'timestamp.json',
    tufjs: { error: 'ValueError', message: /expected 'timestamp', got snapshot/ },
  },
  {
    name: "wrong _type (targets file says 'snapshot')",
    tamper: (fx) =>
      fx.resign(
        'targets',
        (s) => {
          setType(s, 'snapshot');
        },
        { updateParents: true },
      ),
    ours: 'TUF_WRONG_TYPE',
    oursAt: '1.targets.json',
    tufjs: wrappedTargets(/expected 'targets', got snapshot/),
  },
  // --- rollback (the client has seen version 2)
  {
    name: 'rollback of timestamp (version 2 → 1)',
    rollback: true,
    tamper: (fx) => fx.resign('timestamp', (s) => (s.version = 1)),
    ours: 'TUF_ROLLBACK',
    oursAt: 'timestamp.json',
    tufjs: { error: 'BadVersionError', message: /timestamp version 1 is less than current version 2/ },
  },
  {
    name: 'rollback of snapshot (a newer timestamp lists snapshot 1 after 2)',
    rollback: true,
    async tamper(fx) {
      const old: SnapshotMeta = { ...fx.envelope('snapshot').signed, version: 1 };
      const bytes = await signInto(fx, '1.snapshot.json', old, fx.signers.snapshot);
      return fx.resign('timestamp', (s) => {
        s.version = 3;
        s.meta['snapshot.json'] = metaFileOf(1, bytes);
      });
    },
    ours: 'TUF_ROLLBACK',
    oursAt: 'timestamp.json',
    tufjs: { error: 'BadVersionError', message: /snapshot version 1 is less than current version 2/ },
  },
  {
    name: 'rollback of targets (a newer snapshot lists targets 1 after 2)',
    rollback: true,
    async tamper(fx) {
      const oldTargets: TargetsMeta = { ...fx.envelope('targets').signed, version: 1 };
      const targetsBytes = await signInto(fx, '1.targets.json', oldTargets, fx.signers.targets);
      const snapshot: SnapshotMeta = {
        ...fx.envelope('snapshot').signed,
        version: 3,
        meta: { 'targets.json': metaFileOf(1, targetsBytes) },
      };
      const snapshotBytes = await signInto(fx, '3.snapshot.json', snapshot, fx.signers.snapshot);
      return fx.resign('timestamp', (s) => {
        s.version = 3;
        s.meta['snapshot.json'] = metaFileOf(3, snapshotBytes);
      });
    },
    ours: 'TUF_ROLLBACK',
    oursAt: '3.snapshot.json',
    tufjs: wrappedSnapshot(/version 1 of targets\.json is less than current version 2/),
  },
  // --- targets
  {
    name: 'target content changed (same length)',
    tamper: replaceArtifact(flipByte(ARTIFACT_DATA, 100)),
    ours: 'TUF_HASH_MISMATCH',
    oursVia: 'zip',
    tufjsAt: 'download',
    tufjs: { error: 'LengthOrHashMismatchError', message: /Expected hash/ },
  },
  {
    name: 'target content changed (one byte longer)',
    tamper: replaceArtifact(Buffer.concat([ARTIFACT_DATA, Buffer.from('!')])),
    ours: 'TUF_LENGTH_MISMATCH',
    oursVia: 'zip',
    tufjsAt: 'download',
    tufjs: { error: 'DownloadLengthMismatchError', message: /Max length reached/ },
  },
  {
    name: 'target content changed (one byte shorter)',
    tamper: replaceArtifact(ARTIFACT_DATA.subarray(1)),
    ours: 'TUF_LENGTH_MISMATCH',
    oursVia: 'zip',
    tufjsAt: 'download',
    tufjs: { error: 'LengthOrHashMismatchError', message: /Expected length/ },
  },
  {
    name: 'target not stored under its hash name (served only under the plain name)',
    tamper: (fx) => {
      const stored = fx.targetPath(ARTIFACT);
      const data = fx.targetFiles.get(stored);
      assert.ok(data !== undefined);
      fx.targetFiles.delete(stored);
      fx.targetFiles.set(ARTIFACT, data);
      return Promise.resolve();
    },
    ours: 'REPO_LAYOUT_INVALID',
    oursVia: 'zip',
    tufjsAt: 'download',
    tufjs: { error: 'DownloadHTTPError', statusCode: 404 },
  },
  // --- root rotation
  {
    name: 'root rotation not signed by the old keys',
    tamper: (fx) => fx.rotateRoot({ signedBy: 'new' }),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: '2.root.json',
    tufjs: { error: 'UnsignedMetadataError', message: /root was signed by 0\/1 keys/ },
  },
  {
    name: 'root rotation not signed by the new keys',
    tamper: (fx) => fx.rotateRoot({ signedBy: 'old' }),
    ours: 'TUF_THRESHOLD_NOT_MET',
    oursAt: '2.root.json',
    tufjs: { error: 'UnsignedMetadataError', message: /root was signed by 0\/1 keys/ },
  },
  {
    name: 'root rotation skipping a version (2.root.json says version 3)',
    tamper: (fx) => fx.rotateRoot({ version: 3 }),
    ours: 'TUF_VERSION_MISMATCH',
    oursAt: '2.root.json',
    tufjs: { error: 'BadVersionError', message: /Expected version 2, got 3/ },
  },
];

/** The fixture's repository as a zip under `repo/`, as an upload would bring it. */
async function fixtureZip(fx: TufFixture): Promise<string> {
  const file = path.join(tempDir(), 'repo.zip');
  await writeZip(
    file,
    [...fx.repoFiles()].map(([name, data]) => ({ name: `repo/${name}`, data })),
  );
  return file;
}

function ourVerify(
  fx: TufFixture,
  cached?: { timestamp?: Uint8Array; snapshot?: Uint8Array },
): Promise<TrustedMetadata> {
  return verifyRepositoryMetadata(fx.read, {
    trustedRoot: fx.trustedRoot,
    trustedRootName: '1.root.json',
    now: fx.now,
    ...(cached === undefined ? {} : { cached }),
  });
}

function refill(served: Map<string, Buffer>, fx: TufFixture): void {
  served.clear();
  for (const [name, data] of fx.repoFiles()) served.set(name, data);
}

async function runCase(c: Case, t: TestContext): Promise<void> {
  const fx = await makeFixture({ targets: TARGETS, version: c.rollback === true ? 2 : 1, ...c.fixture });
  const served = new Map<string, Buffer>();
  refill(served, fx);
  const server = await serveFiles(served);
  try {
    let client: TufjsDirs | undefined;
    let cached: { timestamp?: Uint8Array; snapshot?: Uint8Array } | undefined;
    if (c.rollback === true) {
      // Both clients first see the good repository, and keep what they saw.
      client = tufjsDirs(fx.trustedRoot);
      await tufjsUpdater({ baseUrl: server.url, dirs: client }).refresh();
      cached = {
        timestamp: fx.metadata.get('timestamp.json'),
        snapshot: fx.metadata.get(fx.fileOf('snapshot')),
      };
      await ourVerify(fx, cached);
    }
    await c.tamper(fx);
    refill(served, fx);

    // Ours, with the injected clock.
    if (c.oursVia === 'zip') {
      await ourVerify(fx); // the metadata is fine: only the target is wrong
      await assert.rejects(
        verifyRepositoryZip(await fixtureZip(fx), {
          trustedRoot: fx.trustedRoot,
          now: fx.now,
          skipAllPresent: true,
        }),
        slipwayCode(c.ours),
      );
    } else {
      await assert.rejects(ourVerify(fx, cached), slipwayCode(c.ours, c.oursAt));
    }

    // tuf-js, with the real clock.
    const u = tufjsUpdater({ baseUrl: server.url, dirs: client ?? tufjsDirs(fx.trustedRoot) });
    const tufjs = async (): Promise<void> => {
      if (c.tufjsAt === 'download') {
        await u.refresh();
        const info = await u.getTargetInfo(c.target ?? ARTIFACT);
        assert.ok(info !== undefined);
        await assert.rejects(u.downloadTarget(info), tufjsRejection(c.tufjs));
      } else {
        await assert.rejects(u.refresh(), tufjsRejection(c.tufjs));
      }
    };
    if (c.tufjsGap === undefined) await tufjs();
    else {
      await t.test(`known tuf-js gap: ${c.tufjsGap}`, async () => {
        await u.refresh();
      });
    }
  } finally {
    await server.close();
  }
}

describe('tampering: rejected by our verifier and by tuf-js', () => {
  test('baseline: the untampered fixture is accepted by both, every target downloads', async () => {
    const fx = await makeFixture({ targets: TARGETS });
    const tm = await ourVerify(fx);
    // The injected clock decides expiry for us.
    await assert.rejects(
      verifyRepositoryMetadata(fx.read, { trustedRoot: fx.trustedRoot, now: fx.expires }),
      slipwayCode('TUF_EXPIRED'),
    );
    const zip = await fixtureZip(fx);
    const r = await verifyRepositoryZip(zip, {
      trustedRoot: fx.trustedRoot,
      now: fx.now,
      skipAllPresent: true,
    });
    assert.deepEqual(
      r.artifacts.map((a) => a.target),
      [ARTIFACT],
    );
    const server = await serveFiles(fx.repoFiles());
    try {
      const u = tufjsUpdater({ baseUrl: server.url, trustedRoot: fx.trustedRoot });
      await u.refresh();
      for (const [name, data] of fx.targets) {
        assert.deepEqual(await tufjsDownload(u, name), data, name);
        assert.equal(server.count(`targets/${tm.targetFile(name)}`), 1, name);
      }
      assert.equal(server.count(`targets/${NESTED}`), 0);
    } finally {
      await server.close();
    }
  });

  for (const c of CASES) {
    test(c.name, (t) => runCase(c, t));
  }

  test('a valid root rotation (2.root.json signed by the old and the new keys) is accepted by both', async () => {
    const fx = await makeFixture({ targets: TARGETS });
    const { file } = await fx.rotateRoot();
    assert.equal(file, '2.root.json');
    const tm = await ourVerify(fx);
    assert.equal(tm.root.version, 2);
    const server = await serveFiles(fx.repoFiles());
    try {
      const client = tufjsDirs(fx.trustedRoot);
      const u = tufjsUpdater({ baseUrl: server.url, dirs: client });
      await u.refresh();
      const persisted = JSON.parse(fs.readFileSync(path.join(client.metadataDir, 'root.json'), 'utf8')) as {
        signed: { version: number };
      };
      assert.equal(persisted.signed.version, 2, 'tuf-js now trusts root version 2');
      assert.deepEqual(await tufjsDownload(u, ARTIFACT), ARTIFACT_DATA);
      assert.equal(server.count('metadata/3.root.json'), 1);
    } finally {
      await server.close();
    }
  });

  test('a 3.root.json without 2.root.json is never seen by either client', async () => {
    const fx = await makeFixture({ targets: TARGETS });
    const rootBefore = fx.trustedRoot;
    const { bytes } = await fx.rotateRoot({ version: 3 });
    fx.metadata.delete('2.root.json');
    fx.metadata.set('3.root.json', bytes);
    const tm = await ourVerify(fx);
    assert.equal(tm.root.version, 1);
    const server = await serveFiles(fx.repoFiles());
    try {
      const client = tufjsDirs(fx.trustedRoot);
      await tufjsUpdater({ baseUrl: server.url, dirs: client }).refresh();
      assert.equal(server.count('metadata/3.root.json'), 0);
      assert.deepEqual(fs.readFileSync(path.join(client.metadataDir, 'root.json')), rootBefore);
    } finally {
      await server.close();
    }
  });
});
