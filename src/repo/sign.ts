/**
 * `slipway repo sign` and `slipway repo rotate-root`: new metadata for an
 * existing repository, a zip or an extracted directory (specs/tuf-repo.md).
 *
 * Plan, then apply: the repository's metadata is read, every key checked
 * against the root (threshold errors name the role and how many of its keys
 * were given), the new metadata signed in memory and verified with our own
 * client from the repository's `1.root.json`; only then is anything written.
 * A zip is rewritten whole (targets are copied entry by entry, never
 * extracted) and replaced atomically; a directory gets its new metadata
 * files one by one, `timestamp.json` last, so a client never sees a
 * timestamp that points at a snapshot not yet there.
 */
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ZipReader } from '../archive/zip-read.js';
import { ZipWriter, sha256OfFile } from '../archive/zip-write.js';
import { openAtomic, writeFileAtomic } from '../core/atomic-file.js';
import { sha256Hex } from '../core/digest.js';
import { SlipwayError, fromSystemError, isSlipwayError } from '../core/errors.js';
import {
  countValidSignatures,
  formatExpires,
  own,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  rotateRoot,
  serializeMetadata,
  signMetadata,
  verifyRepositoryMetadata,
  type Envelope,
  type MetaFile,
  type MetadataReader,
  type RoleName,
  type RoleSigners,
  type RootMeta,
  type Signature,
  type Signer,
  type SnapshotMeta,
  type TargetsMeta,
  type Thresholds,
  type TimestampMeta,
} from '../formats/tuf/index.js';
import { DEFAULT_VALIDITY_MS } from './assemble.js';
import { checkRepoZipPaths } from './verify.js';

const MAX_METADATA_BYTES = 16 * 1024 * 1024;
const METADATA_PREFIX = 'repo/metadata/';
/** More root versions than this in one repository is not a repository we wrote. */
const MAX_ROOTS = 1024;
const ROLE_ORDER: readonly RoleName[] = ['root', 'targets', 'snapshot', 'timestamp'];

// ---------------------------------------------------------------------------
// Where the metadata lives: a zip or a directory

/** A repository's metadata files, read and replaced as a whole. */
export interface RepoFiles {
  readonly format: 'zip' | 'directory';
  /** The repository read. */
  readonly path: string;
  /** Where commit() writes: the same zip (replaced atomically), another zip, or the directory itself. */
  readonly output: string;
  /** `metadata/<name>`, or undefined when there is no such file. */
  readMetadata(name: string): Promise<Buffer | undefined>;
  /**
   * Writes the new state. `newMetadata` holds every non-root metadata file of
   * that state (timestamp, snapshot, targets) and the root files that are new
   * or changed; roots not in it stay as they are.
   */
  commit(newMetadata: Map<string, Buffer>): Promise<{ sha256?: string }>;
  close(): Promise<void>;
}

/** Top-level metadata a new state replaces; anything else (roots, delegated roles) is kept. */
function isReplaced(name: string): boolean {
  return /^(\d+\.)?(targets|snapshot)\.json$/.test(name) || name === 'timestamp.json';
}

/** Roots first (by version), then delegated roles, targets, snapshot, timestamp: the order a client reads them. */
function metadataOrder(name: string): number {
  const m = /^(\d+)\.root\.json$/.exec(name);
  if (m !== null) return Number(m[1]);
  if (/^(\d+\.)?targets\.json$/.test(name)) return Number.MAX_SAFE_INTEGER - 2;
  if (/^(\d+\.)?snapshot\.json$/.test(name)) return Number.MAX_SAFE_INTEGER - 1;
  if (name === 'timestamp.json') return Number.MAX_SAFE_INTEGER;
  return Number.MAX_SAFE_INTEGER - 3;
}

function byMetadataOrder(a: string, b: string): number {
  return metadataOrder(a) - metadataOrder(b) || (a < b ? -1 : a > b ? 1 : 0);
}

class ZipRepoFiles implements RepoFiles {
  readonly format = 'zip';
  readonly path: string;
  readonly output: string;
  readonly #reader: ZipReader;

  private constructor(file: string, output: string, reader: ZipReader) {
    this.path = file;
    this.output = output;
    this.#reader = reader;
  }

  static async open(file: string, output: string): Promise<ZipRepoFiles> {
    const reader = await ZipReader.open(file);
    try {
      checkRepoZipPaths(reader.entries, file);
    } catch (err) {
      await reader.close();
      throw err;
    }
    return new ZipRepoFiles(file, output, reader);
  }

  async readMetadata(name: string): Promise<Buffer | undefined> {
    const e = this.#reader.get(`${METADATA_PREFIX}${name}`);
    return e === undefined ? undefined : this.#reader.readEntry(e, MAX_METADATA_BYTES);
  }

  async commit(newMetadata: Map<string, Buffer>): Promise<{ sha256: string }> {
    const reader = this.#reader;
    const file = await openAtomic(this.output);
    try {
      const zip = await ZipWriter.create(file);
      // Targets (and anything else outside metadata/) are copied as they are, in their order.
      for (const e of reader.entries) {
        if (e.name.startsWith(METADATA_PREFIX)) continue;
        await zip.addEntry(e.name, { stream: await reader.openEntry(e), size: e.size });
      }
      const metadata = new Map<string, Buffer>();
      for (const e of reader.entries) {
        if (!e.name.startsWith(METADATA_PREFIX)) continue;
        const name = e.name.slice(METADATA_PREFIX.length);
        if (isReplaced(name) || newMetadata.has(name)) continue;
        metadata.set(name, await reader.readEntry(e, MAX_METADATA_BYTES));
      }
      for (const [name, bytes] of newMetadata) metadata.set(name, bytes);
      for (const name of [...metadata.keys()].sort(byMetadataOrder)) {
        const bytes = metadata.get(name);
        if (bytes !== undefined) await zip.addEntry(`${METADATA_PREFIX}${name}`, { data: bytes });
      }
      await zip.finish();
      await file.commit();
    } catch (err) {
      await file.abort();
      throw err;
    }
    const sha256 = await sha256OfFile(this.output);
    await writeFileAtomic(`${this.output}.sha256.txt`, `${sha256}\n`);
    return { sha256 };
  }

  close(): Promise<void> {
    return this.#reader.close();
  }
}

class DirectoryRepoFiles implements RepoFiles {
  readonly format = 'directory';
  readonly path: string;
  readonly output: string;
  readonly #metadataDir: string;

  constructor(dir: string) {
    this.path = dir;
    this.output = dir;
    this.#metadataDir = path.join(dir, 'metadata');
  }

  async readMetadata(name: string): Promise<Buffer | undefined> {
    const file = path.join(this.#metadataDir, name);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fromSystemError(err, 'cannot read', file);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new SlipwayError('TUF_METADATA_INVALID', 'not a regular file', { where: file });
      if (st.size > MAX_METADATA_BYTES) {
        throw new SlipwayError(
          'TUF_METADATA_INVALID',
          `metadata is ${st.size} bytes, over ${MAX_METADATA_BYTES}`,
          {
            where: file,
          },
        );
      }
      return await fh.readFile();
    } catch (err) {
      if (err instanceof SlipwayError) throw err;
      throw fromSystemError(err, 'cannot read', file);
    } finally {
      await fh.close();
    }
  }

  async commit(newMetadata: Map<string, Buffer>): Promise<Record<string, never>> {
    // Consistent snapshots: new versioned files first, timestamp.json (which points at them) last.
    for (const name of [...newMetadata.keys()].sort(byMetadataOrder)) {
      const bytes = newMetadata.get(name);
      if (bytes === undefined) continue;
      const current = await this.readMetadata(name);
      if (current?.equals(bytes) === true) continue;
      await writeFileAtomic(path.join(this.#metadataDir, name), bytes);
    }
    return {};
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A zip file or a directory holding `metadata/` (as `slipway repo extract` writes it). */
export async function openRepoFiles(repo: string, output?: string): Promise<RepoFiles> {
  const input = path.resolve(repo);
  let isDir: boolean;
  try {
    isDir = (await fsp.stat(input)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SlipwayError('NOT_FOUND', `no such repository: ${repo}`, { where: repo });
    }
    throw fromSystemError(err, 'cannot read', input);
  }
  if (!isDir) return ZipRepoFiles.open(input, path.resolve(output ?? input));
  if (output !== undefined && path.resolve(output) !== input) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      'a directory repository is updated in place; -o applies to zips',
      {
        where: repo,
      },
    );
  }
  const isMetadataDir = await fsp.stat(path.join(input, 'metadata')).then(
    (st) => st.isDirectory(),
    () => false,
  );
  if (!isMetadataDir) {
    throw new SlipwayError('REPO_LAYOUT_INVALID', `${repo} has no metadata/ directory`, { where: repo });
  }
  return new DirectoryRepoFiles(input);
}

// ---------------------------------------------------------------------------
// The current state

interface Doc<T> {
  name: string;
  bytes: Buffer;
  env: Envelope<T>;
}

interface RepoState {
  /** `1.root.json` … `N.root.json`. */
  roots: Doc<RootMeta>[];
  timestamp: Doc<TimestampMeta>;
  snapshot: Doc<SnapshotMeta>;
  targets: Doc<TargetsMeta>;
}

function fileName(root: RootMeta, role: 'targets' | 'snapshot', version: number): string {
  return root.consistent_snapshot ? `${version}.${role}.json` : `${role}.json`;
}

function lastOf<T>(list: readonly T[]): T {
  const last = list[list.length - 1];
  if (last === undefined) throw new SlipwayError('INTERNAL', 'empty list');
  return last;
}

/**
 * Reads every root and the top-level chain the timestamp points at. Parsed
 * with guards, not yet trusted: the new state is verified as a whole later
 * (a root still collecting signatures must be readable here).
 */
async function loadState(files: RepoFiles): Promise<RepoState> {
  const need = async (name: string): Promise<Buffer> => {
    const bytes = await files.readMetadata(name);
    if (bytes === undefined) {
      throw new SlipwayError('TUF_METADATA_INVALID', `metadata/${name} is missing`, { where: files.path });
    }
    return bytes;
  };
  const rootFiles: { name: string; bytes: Buffer }[] = [
    { name: '1.root.json', bytes: await need('1.root.json') },
  ];
  for (let v = 2; v <= MAX_ROOTS; v++) {
    const name = `${v}.root.json`;
    const bytes = await files.readMetadata(name);
    if (bytes === undefined) break;
    rootFiles.push({ name, bytes });
  }
  const roots = rootFiles.map(({ name, bytes }, i): Doc<RootMeta> => {
    const env = parseRoot(bytes, name);
    if (env.signed.version !== i + 1) {
      throw new SlipwayError('TUF_VERSION_MISMATCH', `root version ${env.signed.version} in ${name}`, {
        where: name,
      });
    }
    return { name, bytes, env };
  });
  const root = lastOf(roots).env.signed;
  const tsBytes = await need('timestamp.json');
  const timestamp = {
    name: 'timestamp.json',
    bytes: tsBytes,
    env: parseTimestamp(tsBytes, 'timestamp.json'),
  };
  const snapName = fileName(root, 'snapshot', metaOf(timestamp.env.signed, 'snapshot.json').version);
  const snapBytes = await need(snapName);
  const snapshot = { name: snapName, bytes: snapBytes, env: parseSnapshot(snapBytes, snapName) };
  const targetsName = fileName(
    root,
    'targets',
    metaOf(snapshot.env.signed, 'targets.json', snapName).version,
  );
  const targetsBytes = await need(targetsName);
  const targets = { name: targetsName, bytes: targetsBytes, env: parseTargets(targetsBytes, targetsName) };
  return { roots, timestamp, snapshot, targets };
}

function metaOf(
  signed: { meta: Record<string, MetaFile> },
  file: string,
  where = 'timestamp.json',
): MetaFile {
  const m = own(signed.meta, file);
  if (m === undefined) throw new SlipwayError('TUF_METADATA_INVALID', `does not list ${file}`, { where });
  return m;
}

// ---------------------------------------------------------------------------
// Signing

/** What happened to one role. */
export interface RoleChange {
  role: RoleName;
  /** `rotated` (a root with new keys), `re-signed` (new version), `signature added` (same body and version). */
  action: 'rotated' | 're-signed' | 'signature added';
  file: string;
  oldVersion: number;
  version: number;
  expires: string;
  /** Keyids that signed in this run. */
  signedBy: string[];
  /** Valid signatures of the role's keys now, and how many it needs. */
  signatures: number;
  threshold: number;
}

export interface SignResult {
  repo: string;
  format: 'zip' | 'directory';
  output: string;
  /** sha256 of the output zip (also in `<zip>.sha256.txt`). */
  sha256?: string;
  rootVersion: number;
  changes: RoleChange[];
  /** False while an offline ceremony still lacks signatures (`--add-signature`); then `pending` says which. */
  complete: boolean;
  pending?: string;
  /** Given keys that signed nothing. */
  unusedKeys: string[];
  dryRun: boolean;
}

export interface CommonSignOptions {
  /** The clock: new versions are at least its seconds, expiry counts from it. */
  now: Date;
  /** Validity of re-signed metadata from `now`, in milliseconds (default one week). */
  validFor?: number;
  /** For a zip: write the result here instead of replacing the input. */
  output?: string;
  /** Plan and sign in memory, write nothing. */
  dryRun?: boolean;
}

export interface SignOptions extends CommonSignOptions {
  /** Each role is signed by those keys listed for it in the root. */
  keys: readonly Signer[];
  /** Default `['timestamp']`. */
  roles?: readonly RoleName[];
  /**
   * Add the keys' signatures to the current metadata of the roles without
   * changing body or version (an offline ceremony for a threshold above 1).
   */
  addSignature?: boolean;
}

export interface RotateRootOptions extends CommonSignOptions {
  /** Keys of every role in the new root (all of them sign the new metadata). */
  newSigners: RoleSigners;
  /** Keys of the current root (to reach its threshold; new root keys that were old ones count too). */
  oldRootSigners: readonly Signer[];
  /** Thresholds of the new root; default those of the current root. */
  thresholds?: Thresholds;
}

function distinct(signers: readonly Signer[]): Signer[] {
  const seen = new Set<string>();
  return signers.filter((s) => !seen.has(s.keyId) && seen.add(s.keyId));
}

function within(keys: readonly Signer[], keyids: readonly string[]): Signer[] {
  return distinct(keys).filter((k) => keyids.includes(k.keyId));
}

function short(keyid: string): string {
  return keyid.slice(0, 16);
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The given keys of `role` in `root`; TUF_THRESHOLD_NOT_MET (naming how many were given) when too few. */
function roleSigners(role: RoleName, root: RootMeta, keys: readonly Signer[], where: string): Signer[] {
  const { keyids, threshold } = root.roles[role];
  const signers = within(keys, keyids);
  if (signers.length < threshold) {
    throw new SlipwayError(
      'TUF_THRESHOLD_NOT_MET',
      `cannot sign ${role}: ${signers.length} of the given keys ${signers.length === 1 ? 'is' : 'are'} among its ${plural(keyids.length, 'key')} in root v${root.version} (${keyids.map(short).join(', ')}), threshold ${threshold}`,
      { where },
    );
  }
  return signers;
}

/** The envelope with the signers' signatures added (or replaced): one per key, in keyid order. */
async function addSignatures<T>(env: Envelope<T>, signers: readonly Signer[]): Promise<Envelope<T>> {
  const fresh = await signMetadata(env.signed, signers);
  const byId = new Map<string, Signature>();
  for (const s of env.signatures) if (!byId.has(s.keyid)) byId.set(s.keyid, s);
  for (const s of fresh.signatures) byId.set(s.keyid, s);
  const signatures = [...byId.values()].sort((a, b) => (a.keyid < b.keyid ? -1 : a.keyid > b.keyid ? 1 : 0));
  return { signed: env.signed, signatures };
}

/**
 * Whether the parent's entry still describes the child: always when the
 * child's file is as it was; else by version, length and every hash listed
 * (an algorithm we cannot compute means the entry must be rewritten).
 */
function stillListed(meta: MetaFile, child: Doc<{ version: number }>, before: Doc<unknown>): boolean {
  if (child.bytes.equals(before.bytes)) return true;
  if (meta.version !== child.env.signed.version) return false;
  if (meta.length !== undefined && meta.length !== child.bytes.length) return false;
  return Object.entries(meta.hashes ?? {}).every(
    ([alg, want]) =>
      (alg === 'sha256' || alg === 'sha512') && createHash(alg).update(child.bytes).digest('hex') === want,
  );
}

function metaFileOf(version: number, bytes: Buffer): MetaFile {
  return { version, length: bytes.length, hashes: { sha256: sha256Hex(bytes) } };
}

interface Plan {
  /** Every role's resulting document. */
  root: Doc<RootMeta>;
  timestamp: Doc<TimestampMeta>;
  snapshot: Doc<SnapshotMeta>;
  targets: Doc<TargetsMeta>;
  /** Root files written (new or changed). */
  rootFiles: Map<string, Buffer>;
  changes: RoleChange[];
  used: Set<string>;
}

interface ChainRequest {
  resign: ReadonlySet<RoleName>;
  addSignature: ReadonlySet<RoleName>;
  keys: readonly Signer[];
  nowSeconds: number;
  expires: string;
}

function change<T>(
  role: RoleName,
  action: RoleChange['action'],
  doc: Doc<T>,
  oldVersion: number,
  signers: readonly Signer[],
  root: RootMeta,
): RoleChange {
  const signed = doc.env.signed as { version: number; expires: string };
  return {
    role,
    action,
    file: doc.name,
    oldVersion,
    version: signed.version,
    expires: signed.expires,
    signedBy: signers.map((s) => s.keyId),
    signatures: countValidSignatures(doc.env, root.keys, root.roles[role]),
    threshold: root.roles[role].threshold,
  };
}

/**
 * Targets, then snapshot, then timestamp under `root`: each requested role
 * is re-signed or gets signatures added, and a parent whose entry no longer
 * describes its child's new bytes is re-signed too (the cascade).
 */
async function updateChain(state: RepoState, root: RootMeta, req: ChainRequest, plan: Plan): Promise<void> {
  const { keys, nowSeconds, expires } = req;
  const bump = (v: number): number => Math.max(v + 1, nowSeconds);

  const step = async <T extends { version: number; expires: string }>(
    role: 'targets' | 'snapshot' | 'timestamp',
    doc: Doc<T>,
    mustResign: boolean,
    body: (signed: T) => T,
    nameOf: (version: number) => string,
  ): Promise<Doc<T>> => {
    const oldVersion = doc.env.signed.version;
    if (req.resign.has(role) || mustResign) {
      const signers = roleSigners(role, root, keys, doc.name);
      const version = bump(oldVersion);
      const signed = body({ ...doc.env.signed, version, expires });
      const env = await signMetadata(signed, signers);
      const next = { name: nameOf(version), bytes: serializeMetadata(env), env };
      for (const s of signers) plan.used.add(s.keyId);
      plan.changes.push(change(role, 're-signed', next, oldVersion, signers, root));
      return next;
    }
    if (req.addSignature.has(role)) {
      const signers = within(keys, root.roles[role].keyids);
      if (signers.length === 0) {
        throw new SlipwayError(
          'TUF_THRESHOLD_NOT_MET',
          `cannot add a ${role} signature: none of the given keys is among its keys in root v${root.version} (${root.roles[role].keyids.map(short).join(', ')})`,
          { where: doc.name },
        );
      }
      const env = await addSignatures(doc.env, signers);
      const next = { name: doc.name, bytes: serializeMetadata(env), env };
      for (const s of signers) plan.used.add(s.keyId);
      plan.changes.push(change(role, 'signature added', next, oldVersion, signers, root));
      return next;
    }
    return doc;
  };

  const targets = await step(
    'targets',
    state.targets,
    false,
    (s) => s,
    (v) => fileName(root, 'targets', v),
  );
  const snapshotLists = stillListed(
    metaOf(state.snapshot.env.signed, 'targets.json', state.snapshot.name),
    targets,
    state.targets,
  );
  const snapshot = await step(
    'snapshot',
    state.snapshot,
    !snapshotLists,
    (s) => ({
      ...s,
      meta: { ...s.meta, 'targets.json': metaFileOf(targets.env.signed.version, targets.bytes) },
    }),
    (v) => fileName(root, 'snapshot', v),
  );
  const timestampLists = stillListed(
    metaOf(state.timestamp.env.signed, 'snapshot.json'),
    snapshot,
    state.snapshot,
  );
  const timestamp = await step(
    'timestamp',
    state.timestamp,
    !timestampLists,
    (s) => ({
      ...s,
      meta: { ...s.meta, 'snapshot.json': metaFileOf(snapshot.env.signed.version, snapshot.bytes) },
    }),
    () => 'timestamp.json',
  );
  plan.targets = targets;
  plan.snapshot = snapshot;
  plan.timestamp = timestamp;
}

function emptyPlan(state: RepoState): Plan {
  return {
    root: lastOf(state.roots),
    targets: state.targets,
    snapshot: state.snapshot,
    timestamp: state.timestamp,
    rootFiles: new Map(),
    changes: [],
    used: new Set(),
  };
}

function expiresFrom(options: CommonSignOptions): { nowSeconds: number; expires: string; expiresAt: Date } {
  const t = options.now.getTime();
  if (!Number.isFinite(t)) throw new SlipwayError('INVALID_ARGUMENT', 'the clock is not a valid date');
  const validFor = options.validFor ?? DEFAULT_VALIDITY_MS;
  if (!Number.isSafeInteger(validFor) || validFor <= 0) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `validity must be a positive number of milliseconds, not ${validFor}`,
    );
  }
  const nowSeconds = Math.floor(t / 1000);
  const expiresAt = new Date(nowSeconds * 1000 + validFor);
  return { nowSeconds, expires: formatExpires(expiresAt), expiresAt };
}

/** The rotation: `N+1.root.json` for the new keys, then targets, snapshot and timestamp re-signed by them. */
async function planRotation(state: RepoState, options: RotateRootOptions): Promise<Plan> {
  const { nowSeconds, expires, expiresAt } = expiresFrom(options);
  const current = lastOf(state.roots);
  const old = current.env.signed;
  const oldKeys = within([...options.oldRootSigners, ...options.newSigners.root], old.roles.root.keyids);
  if (oldKeys.length < old.roles.root.threshold) {
    throw new SlipwayError(
      'TUF_THRESHOLD_NOT_MET',
      `rotate-root: ${oldKeys.length} of root v${old.version}'s ${plural(old.roles.root.keyids.length, 'root key')} given (--old-key), threshold ${old.roles.root.threshold}; the new root must be signed by the old keys too`,
      { where: current.name },
    );
  }
  for (const role of ROLE_ORDER) {
    if (options.newSigners[role].length === 0) {
      throw new SlipwayError('INVALID_ARGUMENT', `rotate-root: no new key for the ${role} role`);
    }
  }
  const thresholds: Thresholds = {
    root: old.roles.root.threshold,
    targets: old.roles.targets.threshold,
    snapshot: old.roles.snapshot.threshold,
    timestamp: old.roles.timestamp.threshold,
    ...options.thresholds,
  };
  const env = await rotateRoot(current.env, options.newSigners, oldKeys, { expires: expiresAt, thresholds });
  const next: Doc<RootMeta> = { name: `${env.signed.version}.root.json`, bytes: serializeMetadata(env), env };
  const plan = emptyPlan(state);
  plan.root = next;
  plan.rootFiles.set(next.name, next.bytes);
  const rootSigners = distinct([...oldKeys, ...options.newSigners.root]);
  plan.changes.push(change('root', 'rotated', next, old.version, rootSigners, env.signed));
  for (const s of rootSigners) plan.used.add(s.keyId);
  await updateChain(
    state,
    env.signed,
    {
      resign: new Set<RoleName>(['targets', 'snapshot', 'timestamp']),
      addSignature: new Set(),
      keys: distinct([
        ...options.newSigners.targets,
        ...options.newSigners.snapshot,
        ...options.newSigners.timestamp,
      ]),
      nowSeconds,
      expires,
    },
    plan,
  );
  return plan;
}

async function planSigning(state: RepoState, options: SignOptions): Promise<Plan> {
  const { nowSeconds, expires } = expiresFrom(options);
  const roles = new Set<RoleName>(options.roles ?? ['timestamp']);
  for (const r of roles) {
    if (!ROLE_ORDER.includes(r)) throw new SlipwayError('INVALID_ARGUMENT', `unknown role '${r}'`);
  }
  if (options.keys.length === 0) throw new SlipwayError('TUF_KEY_INVALID', 'no signing key given');
  const addSignature = options.addSignature ?? false;
  const plan = emptyPlan(state);
  const current = lastOf(state.roots);
  const root = current.env.signed;
  if (roles.has('root')) {
    if (addSignature) {
      // The root's own keys, and the previous root's (whose threshold this root must meet too).
      const previous = state.roots[state.roots.length - 2]?.env.signed;
      const allowed = [...root.roles.root.keyids, ...(previous?.roles.root.keyids ?? [])];
      const signers = within(options.keys, allowed);
      if (signers.length === 0) {
        throw new SlipwayError(
          'TUF_THRESHOLD_NOT_MET',
          `cannot add a root signature: none of the given keys is a root key of root v${root.version}${previous === undefined ? '' : ` or v${previous.version}`}`,
          { where: current.name },
        );
      }
      const env = await addSignatures(current.env, signers);
      const next = { name: current.name, bytes: serializeMetadata(env), env };
      plan.root = next;
      plan.rootFiles.set(next.name, next.bytes);
      plan.changes.push(change('root', 'signature added', next, root.version, signers, root));
      for (const s of signers) plan.used.add(s.keyId);
    } else {
      // Same keys, next version: signed by the current root keys, which are also the new root's.
      const signers = roleSigners('root', root, options.keys, current.name);
      const env = await signMetadata<RootMeta>({ ...root, version: root.version + 1, expires }, signers);
      const next = { name: `${env.signed.version}.root.json`, bytes: serializeMetadata(env), env };
      plan.root = next;
      plan.rootFiles.set(next.name, next.bytes);
      plan.changes.push(change('root', 're-signed', next, root.version, signers, env.signed));
      for (const s of signers) plan.used.add(s.keyId);
    }
  }
  await updateChain(
    state,
    plan.root.env.signed,
    {
      resign: addSignature ? new Set() : roles,
      addSignature: addSignature ? roles : new Set(),
      keys: options.keys,
      nowSeconds,
      expires,
    },
    plan,
  );
  return plan;
}

// ---------------------------------------------------------------------------
// Verify, then apply

function newMetadataOf(plan: Plan): Map<string, Buffer> {
  const files = new Map(plan.rootFiles);
  files.set(plan.targets.name, plan.targets.bytes);
  files.set(plan.snapshot.name, plan.snapshot.bytes);
  files.set(plan.timestamp.name, plan.timestamp.bytes);
  return files;
}

/**
 * The new state through our own client, from the repository's `1.root.json`
 * (expiry aside: roles not re-signed keep theirs) with the old timestamp and
 * snapshot as its cache, so a version going backwards is caught too.
 */
async function verifyPlan(
  files: RepoFiles,
  state: RepoState,
  newMetadata: Map<string, Buffer>,
  now: Date,
): Promise<number> {
  const read: MetadataReader = async (name) => {
    const fresh = newMetadata.get(name);
    if (fresh !== undefined) return fresh;
    return isReplaced(name) ? undefined : files.readMetadata(name);
  };
  const first = state.roots[0];
  if (first === undefined) throw new SlipwayError('INTERNAL', 'a repository without 1.root.json was loaded');
  const trustedRoot = newMetadata.get('1.root.json') ?? first.bytes;
  const tm = await verifyRepositoryMetadata(read, {
    trustedRoot,
    now,
    ignoreExpiry: true,
    trustedRootName: '1.root.json',
    cached: { timestamp: state.timestamp.bytes, snapshot: state.snapshot.bytes },
  });
  return tm.root.version;
}

async function apply(
  repo: string,
  options: CommonSignOptions,
  addSignature: boolean,
  givenKeys: readonly Signer[],
  makePlan: (state: RepoState) => Promise<Plan>,
): Promise<SignResult> {
  const files = await openRepoFiles(repo, options.output);
  try {
    const state = await loadState(files);
    const plan = await makePlan(state);
    const newMetadata = newMetadataOf(plan);
    let complete = true;
    let pending: string | undefined;
    let rootVersion = plan.root.env.signed.version;
    try {
      rootVersion = await verifyPlan(files, state, newMetadata, options.now);
    } catch (err) {
      // A ceremony collecting signatures one key at a time writes each step.
      if (!addSignature || !isSlipwayError(err, 'TUF_THRESHOLD_NOT_MET')) throw err;
      complete = false;
      pending = `${err.where === undefined ? '' : `${err.where}: `}${err.message}`;
    }
    const dryRun = options.dryRun ?? false;
    const written = dryRun ? {} : await files.commit(newMetadata);
    return {
      repo: files.path,
      format: files.format,
      output: files.output,
      ...(written.sha256 !== undefined ? { sha256: written.sha256 } : {}),
      rootVersion,
      changes: plan.changes,
      complete,
      ...(pending !== undefined ? { pending } : {}),
      unusedKeys: distinct(givenKeys)
        .map((k) => k.keyId)
        .filter((id) => !plan.used.has(id)),
      dryRun,
    };
  } finally {
    await files.close();
  }
}

/**
 * Writes `N+1.root.json` with the new keys, signed by a threshold of the
 * current root's keys and of the new ones, and re-signs targets, snapshot and
 * timestamp with the new keys. Clients that trust any earlier root walk to it.
 */
export async function rotateRepositoryRoot(repo: string, options: RotateRootOptions): Promise<SignResult> {
  const given = [...options.oldRootSigners, ...ROLE_ORDER.flatMap((r) => options.newSigners[r])];
  return apply(repo, options, false, given, (state) => planRotation(state, options));
}

/**
 * Re-signs roles (new versions and expiry; targets cascades to snapshot and
 * timestamp, snapshot to timestamp), or with `addSignature` adds signatures
 * to their current metadata. Keys must be the roles' keys in the root.
 */
export async function signRepository(repo: string, options: SignOptions): Promise<SignResult> {
  return apply(repo, options, options.addSignature ?? false, options.keys, (state) =>
    planSigning(state, options),
  );
}
