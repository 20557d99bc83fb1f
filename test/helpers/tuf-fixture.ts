/**
 * A valid, signed TUF repository held in memory, with knobs to break it.
 * Used by our verifier's tampering tests and by the tuf-js interop test
 * (serve `repoFiles()` over HTTP and give the client `trustedRoot`).
 */
import { createHash, type KeyObject } from 'node:crypto';
import {
  buildRepositoryMetadata,
  newRoot,
  rotateRoot,
  type RoleSigners,
  type Thresholds,
} from '../../src/formats/tuf/build.js';
import { TrustedMetadata, verifyRepositoryMetadata } from '../../src/formats/tuf/client.js';
import { localSigner, privateKeyFromSeed, type Signer } from '../../src/formats/tuf/keys.js';
import {
  formatExpires,
  serializeMetadata,
  targetPathFor,
  TOP_LEVEL_ROLES,
  type Envelope,
  type RoleName,
  type RootMeta,
  type SnapshotMeta,
  type TargetsMeta,
  type TimestampMeta,
} from '../../src/formats/tuf/metadata.js';
import { signMetadata } from '../../src/formats/tuf/sign.js';

export interface RoleBodies {
  root: RootMeta;
  targets: TargetsMeta;
  snapshot: SnapshotMeta;
  timestamp: TimestampMeta;
}

export type TargetSpec = string | Buffer | { data: string | Buffer; custom?: Record<string, unknown> };

export interface FixtureOptions {
  /** The reference time; default the real clock, so that clients like tuf-js agree. */
  now?: Date;
  /** How long metadata stays valid after `now` (default one week). */
  validityMs?: number;
  /** Keys per role; default deterministic keys (`keyCount` of them, default 1). */
  keys?: Partial<Record<RoleName, KeyObject[]>>;
  keyCount?: Partial<Record<RoleName, number>>;
  thresholds?: Thresholds;
  targets?: Record<string, TargetSpec>;
  /** Version of targets, snapshot and timestamp (default 1). */
  version?: number;
}

export const DEFAULT_TARGETS: Record<string, TargetSpec> = {
  'artifacts.json': '{"system_version": "1.0.0", "artifacts": []}',
  'os/host-1.0.0.tar.gz': Buffer.alloc(1000, 7),
};

const DAY = 24 * 3600 * 1000;

/** A deterministic ed25519 key: the same label gives the same key in every run. */
export function fixtureKey(label: string): KeyObject {
  return privateKeyFromSeed(createHash('sha256').update(`slipway-tuf-fixture:${label}`).digest());
}

export interface ResignOptions {
  /** Sign with these instead of the role's signers. */
  signers?: readonly Signer[];
  /** Also update the parents' length and hashes (targets → snapshot → timestamp), keeping their versions. */
  updateParents?: boolean;
}

export interface RotateOptions {
  /** The new root keys (default one fresh deterministic key). */
  newKeys?: KeyObject[];
  /** Who signs the new root (default both, as the spec requires). */
  signedBy?: 'both' | 'old' | 'new';
  /** New keys for other roles too (the fixture signs with them from then on). */
  roleKeys?: Partial<Record<Exclude<RoleName, 'root'>, KeyObject[]>>;
  /** Override the version inside the file (the file is still named `N+1.root.json`). */
  version?: number;
  thresholds?: Thresholds;
}

export interface TufFixture {
  readonly now: Date;
  readonly expires: Date;
  readonly keys: Record<RoleName, KeyObject[]>;
  readonly signers: RoleSigners;
  /** Files under `metadata/`, by name (`1.root.json`, `timestamp.json`, …). */
  readonly metadata: Map<string, Buffer>;
  /** Target contents by target name. */
  readonly targets: Map<string, Buffer>;
  /** Files under `targets/`, by stored name (`<sha256>.<basename>`). */
  readonly targetFiles: Map<string, Buffer>;
  /** `1.root.json` as it is now: what a client trusts out of band. */
  readonly trustedRoot: Buffer;
  /** The file a role's metadata lives in (`N.root.json` for the newest root). */
  fileOf(role: RoleName): string;
  envelope<R extends RoleName>(role: R): Envelope<RoleBodies[R]>;
  /** Edits a role's body and signs it again; returns the new bytes. */
  resign<R extends RoleName>(
    role: R,
    mutate?: (signed: RoleBodies[R]) => void,
    opts?: ResignOptions,
  ): Promise<Buffer>;
  /**
   * Edits a role's file (body and/or signatures) WITHOUT signing it again:
   * tampering after signing. Parents are updated (and re-signed) if asked.
   */
  tamper<R extends RoleName>(
    role: R,
    edit: (env: Envelope<RoleBodies[R]>) => void,
    opts?: { updateParents?: boolean },
  ): Promise<Buffer>;
  /** Writes `N+1.root.json` for new root keys; the fixture's root signers become the new ones. */
  rotateRoot(opts?: RotateOptions): Promise<{ file: string; bytes: Buffer }>;
  /** The stored path (under `targets/`) of a target, from the current targets metadata. */
  targetPath(name: string): string;
  /** Reader for verifyRepositoryMetadata over `metadata`. */
  readonly read: (file: string) => Promise<Uint8Array | undefined>;
  /** The whole repository: `metadata/…` and `targets/…`. */
  repoFiles(): Map<string, Buffer>;
  /** Runs our client over the repository from `1.root.json`. */
  verify(opts?: {
    now?: Date;
    ignoreExpiry?: boolean;
    cached?: { timestamp?: Uint8Array; snapshot?: Uint8Array };
  }): Promise<TrustedMetadata>;
}

function contentOf(spec: TargetSpec): { data: Buffer; custom?: Record<string, unknown> } {
  if (typeof spec === 'string') return { data: Buffer.from(spec) };
  if (Buffer.isBuffer(spec)) return { data: spec };
  return { data: Buffer.from(spec.data), custom: spec.custom };
}

export async function makeFixture(opts: FixtureOptions = {}): Promise<TufFixture> {
  const now = opts.now ?? new Date();
  const expires = new Date(now.getTime() + (opts.validityMs ?? 7 * DAY));
  const version = opts.version ?? 1;
  const keys = {} as Record<RoleName, KeyObject[]>;
  const signers = {} as RoleSigners;
  for (const role of TOP_LEVEL_ROLES) {
    const n = opts.keyCount?.[role] ?? 1;
    keys[role] = opts.keys?.[role] ?? Array.from({ length: n }, (_, i) => fixtureKey(`${role}-${i}`));
    signers[role] = keys[role].map(localSigner);
  }
  let thresholds = opts.thresholds;
  let previousRootSigners: Signer[] = [];

  const targets = new Map<string, Buffer>();
  const targetFiles = new Map<string, Buffer>();
  const inputs: Record<string, { length: number; sha256: string; custom?: Record<string, unknown> }> = {};
  for (const [name, spec] of Object.entries(opts.targets ?? DEFAULT_TARGETS)) {
    const { data, custom } = contentOf(spec);
    const sha256 = createHash('sha256').update(data).digest('hex');
    targets.set(name, data);
    targetFiles.set(targetPathFor(name, sha256), data);
    inputs[name] = { length: data.length, sha256, ...(custom === undefined ? {} : { custom }) };
  }

  const built = await buildRepositoryMetadata({ signers, thresholds, expires, version, targets: inputs });
  const metadata = new Map(built.files);
  const files: Record<RoleName, string> = {
    root: '1.root.json',
    targets: `${version}.targets.json`,
    snapshot: `${version}.snapshot.json`,
    timestamp: 'timestamp.json',
  };

  const bytesOf = (file: string): Buffer => {
    const b = metadata.get(file);
    if (b === undefined) throw new Error(`fixture has no ${file}`);
    return b;
  };
  const envelope = <R extends RoleName>(role: R): Envelope<RoleBodies[R]> =>
    JSON.parse(bytesOf(files[role]).toString('utf8')) as Envelope<RoleBodies[R]>;
  const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

  // Writes a role's file; with updateParents, its parent lists the new length and hash (same version).
  const store = async (role: RoleName, bytes: Buffer, updateParents: boolean): Promise<Buffer> => {
    metadata.set(files[role], bytes);
    const parent = role === 'targets' ? 'snapshot' : role === 'snapshot' ? 'timestamp' : undefined;
    if (updateParents && parent !== undefined) {
      await resign(
        parent,
        (s) => {
          const entry = s.meta[`${role}.json`];
          if (entry === undefined) throw new Error(`${parent} does not list ${role}.json`);
          entry.length = bytes.length;
          entry.hashes = { sha256: sha256(bytes) };
        },
        { updateParents: true },
      );
    }
    return bytes;
  };

  const resign = async <R extends RoleName>(
    role: R,
    mutate?: (signed: RoleBodies[R]) => void,
    o: ResignOptions = {},
  ): Promise<Buffer> => {
    const env = envelope(role);
    mutate?.(env.signed);
    // A rotated root stays signed by the previous root's keys too, as clients require.
    const by = o.signers ?? (role === 'root' ? [...previousRootSigners, ...signers.root] : signers[role]);
    const bytes = serializeMetadata(await signMetadata(env.signed, by));
    return store(role, bytes, o.updateParents === true);
  };

  const fx: TufFixture = {
    now,
    expires,
    keys,
    signers,
    metadata,
    targets,
    targetFiles,
    get trustedRoot() {
      return bytesOf('1.root.json');
    },
    fileOf: (role) => files[role],
    envelope,
    resign,
    tamper(role, edit, o = {}) {
      const env = envelope(role);
      edit(env);
      return store(role, serializeMetadata(env), o.updateParents === true);
    },
    async rotateRoot(o = {}) {
      const current = envelope('root');
      const next = current.signed.version + 1;
      const newKeys = o.newKeys ?? [fixtureKey(`root-v${next}`)];
      const newSigners: RoleSigners = { ...signers, root: newKeys.map(localSigner) };
      for (const [role, ks] of Object.entries(o.roleKeys ?? {}) as [RoleName, KeyObject[]][]) {
        newSigners[role] = ks.map(localSigner);
      }
      const th = o.thresholds ?? thresholds;
      const signedBy = o.signedBy ?? 'both';
      let env: Envelope<RootMeta>;
      if (signedBy === 'both' && o.version === undefined) {
        env = await rotateRoot(current, newSigners, signers.root, { expires, thresholds: th });
      } else {
        const body = newRoot(newSigners, {
          version: o.version ?? next,
          expires,
          thresholds: th,
          consistentSnapshot: current.signed.consistent_snapshot,
        });
        const by =
          signedBy === 'old'
            ? signers.root
            : signedBy === 'new'
              ? newSigners.root
              : [...signers.root, ...newSigners.root];
        env = await signMetadata(body, by);
      }
      const file = `${next}.root.json`;
      const bytes = serializeMetadata(env);
      metadata.set(file, bytes);
      files.root = file;
      keys.root = newKeys;
      previousRootSigners = signers.root;
      for (const role of TOP_LEVEL_ROLES) signers[role] = newSigners[role];
      for (const [role, ks] of Object.entries(o.roleKeys ?? {}) as [RoleName, KeyObject[]][]) keys[role] = ks;
      thresholds = th;
      return { file, bytes };
    },
    targetPath(name) {
      const t = envelope('targets').signed.targets[name];
      const h = t?.hashes.sha256;
      if (h === undefined) throw new Error(`fixture targets do not list ${name}`);
      return targetPathFor(name, h);
    },
    read: (file) => Promise.resolve(metadata.get(file)),
    repoFiles() {
      const out = new Map<string, Buffer>();
      for (const [name, bytes] of metadata) out.set(`metadata/${name}`, bytes);
      for (const [name, bytes] of targetFiles) out.set(`targets/${name}`, bytes);
      return out;
    },
    verify(o = {}) {
      return verifyRepositoryMetadata(fx.read, {
        trustedRoot: fx.trustedRoot,
        trustedRootName: '1.root.json',
        now: o.now ?? now,
        ignoreExpiry: o.ignoreExpiry,
        cached: o.cached,
      });
    },
  };
  return fx;
}

/** `now` shifted by `ms`, in the metadata's expiry form. */
export function expiresAt(now: Date, ms: number): string {
  return formatExpires(new Date(now.getTime() + ms));
}
