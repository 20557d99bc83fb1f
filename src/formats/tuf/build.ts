/**
 * Pure builders for a repository's TUF metadata. The repository assembler
 * calls these with its signers and writes the returned files.
 */
import { sha256Hex } from '../../core/digest.js';
import { SlipwayError } from '../../core/errors.js';
import type { Signer, TufKey } from './keys.js';
import {
  formatExpires,
  serializeMetadata,
  SPEC_VERSION,
  TOP_LEVEL_ROLES,
  type Envelope,
  type RoleKeys,
  type RoleName,
  type RootMeta,
  type SnapshotMeta,
  type TargetFile,
  type TargetsMeta,
  type TimestampMeta,
} from './metadata.js';
import { checkThreshold, signMetadata } from './sign.js';
import { TrustedMetadata } from './client.js';

export { targetPathFor } from './metadata.js';

export interface RoleSigners {
  root: Signer[];
  targets: Signer[];
  snapshot: Signer[];
  timestamp: Signer[];
}

/** Signature thresholds per role; 1 where absent. */
export interface Thresholds {
  root?: number;
  targets?: number;
  snapshot?: number;
  timestamp?: number;
}

export interface TargetInput {
  length: number;
  sha256: string;
  custom?: Record<string, unknown>;
}

const SHA256 = /^[0-9a-f]{64}$/;

function bad(message: string): never {
  throw new SlipwayError('INVALID_ARGUMENT', message);
}

function checkVersion(version: number, what: string): void {
  if (!Number.isSafeInteger(version) || version < 1) bad(`${what} version must be an integer >= 1`);
}

export function newRoot(
  signers: RoleSigners,
  opts: { version?: number; expires: Date; thresholds?: Thresholds; consistentSnapshot?: boolean },
): RootMeta {
  const version = opts.version ?? 1;
  checkVersion(version, 'root');
  const keys: Record<string, TufKey> = {};
  const roles = {} as Record<RoleName, RoleKeys>;
  for (const role of TOP_LEVEL_ROLES) {
    const keyids: string[] = [];
    for (const s of signers[role]) {
      if (!keyids.includes(s.keyId)) keyids.push(s.keyId);
      keys[s.keyId] = s.key;
    }
    const threshold = opts.thresholds?.[role] ?? 1;
    if (keyids.length === 0) bad(`the ${role} role needs at least one key`);
    if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > keyids.length) {
      bad(`the ${role} role's threshold must be between 1 and its ${keyids.length} key(s), not ${threshold}`);
    }
    roles[role] = { keyids: keyids.sort(), threshold };
  }
  const sortedKeys = Object.fromEntries(
    Object.entries(keys).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return {
    _type: 'root',
    spec_version: SPEC_VERSION,
    version,
    expires: formatExpires(opts.expires),
    consistent_snapshot: opts.consistentSnapshot ?? true,
    keys: sortedKeys,
    roles,
  };
}

function checkTargetName(name: string): void {
  const segments = name.split('/');
  if (name === '' || name.includes('\\') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    bad(`target name '${name}' must be a relative path without empty, '.' or '..' segments`);
  }
}

export function newTargets(opts: {
  version: number;
  expires: Date;
  targets: Record<string, TargetInput>;
}): TargetsMeta {
  checkVersion(opts.version, 'targets');
  const targets: Record<string, TargetFile> = {};
  for (const name of Object.keys(opts.targets).sort()) {
    const t = opts.targets[name];
    if (t === undefined) continue;
    checkTargetName(name);
    if (!Number.isSafeInteger(t.length) || t.length < 0) bad(`target '${name}': bad length ${t.length}`);
    if (!SHA256.test(t.sha256)) bad(`target '${name}': sha256 must be 64 lowercase hex digits`);
    const file: TargetFile = { length: t.length, hashes: { sha256: t.sha256 } };
    if (t.custom !== undefined) file.custom = t.custom;
    // defineProperty: a target named __proto__ must stay a plain entry.
    Object.defineProperty(targets, name, {
      value: file,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return {
    _type: 'targets',
    spec_version: SPEC_VERSION,
    version: opts.version,
    expires: formatExpires(opts.expires),
    targets,
  };
}

function metaFileOf(
  version: number,
  bytes: Uint8Array,
): { version: number; length: number; hashes: { sha256: string } } {
  return { version, length: bytes.length, hashes: { sha256: sha256Hex(bytes) } };
}

export function newSnapshot(opts: {
  version: number;
  expires: Date;
  targets: { version: number; bytes: Uint8Array };
}): SnapshotMeta {
  checkVersion(opts.version, 'snapshot');
  return {
    _type: 'snapshot',
    spec_version: SPEC_VERSION,
    version: opts.version,
    expires: formatExpires(opts.expires),
    meta: { 'targets.json': metaFileOf(opts.targets.version, opts.targets.bytes) },
  };
}

export function newTimestamp(opts: {
  version: number;
  expires: Date;
  snapshot: { version: number; bytes: Uint8Array };
}): TimestampMeta {
  checkVersion(opts.version, 'timestamp');
  return {
    _type: 'timestamp',
    spec_version: SPEC_VERSION,
    version: opts.version,
    expires: formatExpires(opts.expires),
    meta: { 'snapshot.json': metaFileOf(opts.snapshot.version, opts.snapshot.bytes) },
  };
}

function distinct(signers: readonly Signer[]): Signer[] {
  const seen = new Set<string>();
  return signers.filter((s) => !seen.has(s.keyId) && seen.add(s.keyId));
}

/**
 * Signs a whole repository's metadata: `N.root.json`, `<v>.targets.json`,
 * `<v>.snapshot.json` and `timestamp.json` (names relative to `metadata/`).
 * The result is verified with our own client before it is returned, so a
 * signer that does not match the root fails here rather than in the field.
 */
export async function buildRepositoryMetadata(opts: {
  signers: RoleSigners;
  thresholds?: Thresholds;
  expires: Date;
  rootVersion?: number;
  root?: Envelope<RootMeta>;
  version: number;
  targets: Record<string, TargetInput>;
}): Promise<{ root: Envelope<RootMeta>; files: Map<string, Buffer> }> {
  const { signers, expires, version } = opts;
  const root =
    opts.root ??
    (await signMetadata(
      newRoot(signers, { version: opts.rootVersion ?? 1, expires, thresholds: opts.thresholds }),
      signers.root,
    ));
  const rootFile = `${root.signed.version}.root.json`;
  const rootBytes = serializeMetadata(root);

  const targets = await signMetadata(
    newTargets({ version, expires, targets: opts.targets }),
    signers.targets,
  );
  const targetsBytes = serializeMetadata(targets);
  const snapshot = await signMetadata(
    newSnapshot({ version, expires, targets: { version, bytes: targetsBytes } }),
    signers.snapshot,
  );
  const snapshotBytes = serializeMetadata(snapshot);
  const timestamp = await signMetadata(
    newTimestamp({ version, expires, snapshot: { version, bytes: snapshotBytes } }),
    signers.timestamp,
  );
  const timestampBytes = serializeMetadata(timestamp);

  const consistent = root.signed.consistent_snapshot;
  const files = new Map<string, Buffer>([
    [rootFile, rootBytes],
    [consistent ? `${version}.targets.json` : 'targets.json', targetsBytes],
    [consistent ? `${version}.snapshot.json` : 'snapshot.json', snapshotBytes],
    ['timestamp.json', timestampBytes],
  ]);

  // Expiry is the caller's business (no clock here); everything else must verify.
  const tm = new TrustedMetadata(rootBytes, { now: new Date(0), ignoreExpiry: true, where: rootFile });
  tm.updateTimestamp(timestampBytes, 'timestamp.json');
  tm.updateSnapshot(snapshotBytes, tm.snapshotFile());
  tm.updateTargets(targetsBytes, tm.targetsFile());
  return { root, files };
}

/**
 * The next root (version + 1) for new keys, signed by the old root keys and
 * the new ones, so clients that trust the old root accept it.
 */
export async function rotateRoot(
  current: Envelope<RootMeta>,
  newSigners: RoleSigners,
  oldRootSigners: Signer[],
  opts: { expires: Date; thresholds?: Thresholds },
): Promise<Envelope<RootMeta>> {
  const signed = newRoot(newSigners, {
    version: current.signed.version + 1,
    expires: opts.expires,
    thresholds: opts.thresholds,
    consistentSnapshot: current.signed.consistent_snapshot,
  });
  const env = await signMetadata(signed, distinct([...oldRootSigners, ...newSigners.root]));
  const where = `${signed.version}.root.json`;
  checkThreshold(env, current.signed.keys, current.signed.roles.root, 'root (old keys)', where);
  checkThreshold(env, signed.keys, signed.roles.root, 'root', where);
  return env;
}
