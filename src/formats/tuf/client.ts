/**
 * The TUF 1.0 client workflow (specification §5) as a pure state machine
 * over bytes: the caller fetches, this decides. Every failed check is a
 * coded SlipwayError whose `where` is the file that failed it.
 */
import { createHash } from 'node:crypto';
import { sha256Hex } from '../../core/digest.js';
import { isSlipwayError, SlipwayError, type ErrorCode } from '../../core/errors.js';
import {
  own,
  parseExpires,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  targetPathFor,
  type DelegatedRole,
  type Envelope,
  type MetaFile,
  type RoleKeys,
  type RootMeta,
  type SnapshotMeta,
  type TargetFile,
  type TargetsMeta,
  type TimestampMeta,
} from './metadata.js';
import { checkThreshold } from './sign.js';

/** Hash algorithms we can check; others listed beside one of these are skipped. */
const HASH_ALGORITHMS = ['sha256', 'sha512'] as const;
/** The spec's default cap on delegated roles visited in one target search. */
export const MAX_DELEGATIONS = 32;
export const DEFAULT_MAX_ROOT_ROTATIONS = 32;

export interface TrustedMetadataOptions {
  /** The reference time of this update (the spec fixes it once, at the start). */
  now: Date;
  /** For uploads of repositories whose metadata may since have expired. */
  ignoreExpiry?: boolean;
  /** Name of the trusted root in errors (default `root.json`). */
  where?: string;
}

function fail(code: ErrorCode, message: string, where: string): never {
  throw new SlipwayError(code, message, { where });
}

function misuse(message: string): never {
  throw new SlipwayError('INTERNAL', `TUF client used out of order: ${message}`);
}

/** Length and every supported hash of `bytes` against what the parent role lists. */
function checkFile(
  bytes: Uint8Array,
  meta: { length?: number; hashes?: Record<string, string> },
  parent: string,
  where: string,
): void {
  if (meta.length !== undefined && bytes.length !== meta.length) {
    fail('TUF_LENGTH_MISMATCH', `${bytes.length} bytes, but ${parent} lists ${meta.length}`, where);
  }
  if (meta.hashes === undefined) return;
  let checked = 0;
  for (const alg of HASH_ALGORITHMS) {
    const want = own(meta.hashes, alg);
    if (want === undefined) continue;
    checked++;
    const got = createHash(alg).update(bytes).digest('hex');
    if (got !== want) fail('TUF_HASH_MISMATCH', `${alg} ${got}, but ${parent} lists ${want}`, where);
  }
  if (checked === 0) {
    fail('TUF_HASH_MISMATCH', `${parent} lists no hash we can check (${HASH_ALGORITHMS.join(', ')})`, where);
  }
}

/** A role's version must be the one its parent (timestamp or snapshot) lists. */
function checkListedVersion(
  role: string,
  version: number,
  listed: number,
  parent: string,
  where: string,
): void {
  if (version !== listed) {
    fail('TUF_VERSION_MISMATCH', `${role} version ${version}, ${parent} lists ${listed}`, where);
  }
}

function sameKeys(a: RoleKeys, b: RoleKeys): boolean {
  return a.keyids.length === b.keyids.length && a.keyids.every((k) => b.keyids.includes(k));
}

/** fnmatch on one path segment (`*`, `?`, `[…]`); never throws. */
function matchSegment(pattern: string, segment: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      let j = i + 1;
      if (pattern[j] === '!') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j++;
      if (j >= pattern.length) re += '\\[';
      else {
        let body = pattern.slice(i + 1, j).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        else if (body.startsWith('^')) body = `\\${body}`;
        re += `[${body}]`;
        i = j;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }
  try {
    return new RegExp(`^${re}$`, 's').test(segment);
  } catch {
    return false;
  }
}

/** A delegation's `paths` glob (segment by segment, so `*` never crosses `/`). */
export function matchesPathPattern(pattern: string, name: string): boolean {
  const p = pattern.split('/');
  const n = name.split('/');
  return p.length === n.length && p.every((seg, i) => matchSegment(seg, n[i] ?? ''));
}

export function isDelegatedPath(role: DelegatedRole, name: string): boolean {
  if (role.path_hash_prefixes !== undefined) {
    const h = sha256Hex(name);
    return role.path_hash_prefixes.some((prefix) => h.startsWith(prefix));
  }
  return role.paths?.some((p) => matchesPathPattern(p, name)) ?? false;
}

type Walk =
  | { kind: 'found'; file: TargetFile; role: string }
  | { kind: 'pending'; role: string; delegator: string }
  | { kind: 'none' };

export class TrustedMetadata {
  readonly #now: Date;
  readonly #ignoreExpiry: boolean;
  #root: Envelope<RootMeta>;
  #rootFile: string;
  #timestamp: Envelope<TimestampMeta> | undefined;
  #snapshot: Envelope<SnapshotMeta> | undefined;
  #targets: Envelope<TargetsMeta> | undefined;
  #snapshotFile = '';
  /** The client's cached state from its last update, for rollback checks. */
  #prevTimestamp: TimestampMeta | undefined;
  #prevSnapshot: SnapshotMeta | undefined;
  readonly #delegated = new Map<string, TargetsMeta>();

  constructor(trustedRootBytes: Uint8Array, opts: TrustedMetadataOptions) {
    const where = opts.where ?? 'root.json';
    this.#now = opts.now;
    this.#ignoreExpiry = opts.ignoreExpiry ?? false;
    const root = parseRoot(trustedRootBytes, where);
    // Trusted by fiat, but a root that does not meet its own threshold is a broken one.
    checkThreshold(root, root.signed.keys, root.signed.roles.root, 'root', where);
    this.#root = root;
    this.#rootFile = where;
  }

  get root(): RootMeta {
    return this.#root.signed;
  }

  get timestamp(): TimestampMeta {
    return (this.#timestamp ?? misuse('no trusted timestamp yet')).signed;
  }

  get snapshot(): SnapshotMeta {
    return (this.#snapshot ?? misuse('no trusted snapshot yet')).signed;
  }

  get targets(): TargetsMeta {
    return (this.#targets ?? misuse('no trusted targets yet')).signed;
  }

  /** A delegated targets role, if it has been loaded. */
  delegated(role: string): TargetsMeta | undefined {
    return this.#delegated.get(role);
  }

  /** The file name the trusted root was read from. */
  get rootFile(): string {
    return this.#rootFile;
  }

  #checkExpiry(expires: string, role: string, where: string): void {
    if (this.#ignoreExpiry) return;
    if (this.#now.getTime() >= parseExpires(expires, where).getTime()) {
      fail('TUF_EXPIRED', `${role} expired at ${expires}`, where);
    }
  }

  // --- §5.3 root ----------------------------------------------------------

  updateRoot(bytes: Uint8Array, where: string): void {
    if (this.#timestamp !== undefined) misuse('root update after timestamp');
    const env = parseRoot(bytes, where);
    const old = this.#root.signed;
    checkThreshold(env, old.keys, old.roles.root, 'root (by the trusted root keys)', where);
    if (env.signed.version !== old.version + 1) {
      fail('TUF_VERSION_MISMATCH', `root version ${env.signed.version}, expected ${old.version + 1}`, where);
    }
    checkThreshold(env, env.signed.keys, env.signed.roles.root, 'root (by its own keys)', where);
    // §5.3.11: new timestamp or snapshot keys void the cached timestamp and snapshot (fast-forward recovery).
    const next = env.signed.roles;
    if (!sameKeys(old.roles.timestamp, next.timestamp) || !sameKeys(old.roles.snapshot, next.snapshot)) {
      this.#prevTimestamp = undefined;
      this.#prevSnapshot = undefined;
    }
    this.#root = env;
    this.#rootFile = where;
  }

  /** `N+1.root.json`: the next root to look for. */
  nextRootFile(): string {
    return `${this.#root.signed.version + 1}.root.json`;
  }

  // --- the client's local cache --------------------------------------------

  /** A timestamp from an earlier update; signatures checked, expiry not. */
  loadTrustedTimestamp(bytes: Uint8Array, where = 'timestamp.json'): void {
    if (this.#timestamp !== undefined) misuse('cached timestamp loaded after update');
    const env = parseTimestamp(bytes, where);
    const root = this.#root.signed;
    checkThreshold(env, root.keys, root.roles.timestamp, 'timestamp', where);
    this.#prevTimestamp = env.signed;
  }

  /** A snapshot from an earlier update; signatures checked, expiry and hashes not. */
  loadTrustedSnapshot(bytes: Uint8Array, where = 'snapshot.json'): void {
    if (this.#snapshot !== undefined) misuse('cached snapshot loaded after update');
    const env = parseSnapshot(bytes, where);
    const root = this.#root.signed;
    checkThreshold(env, root.keys, root.roles.snapshot, 'snapshot', where);
    this.#prevSnapshot = env.signed;
  }

  // --- §5.4 timestamp -------------------------------------------------------

  updateTimestamp(bytes: Uint8Array, where: string): void {
    if (this.#snapshot !== undefined) misuse('timestamp update after snapshot');
    // §5.3.10: the final root must not be expired.
    this.#checkExpiry(this.#root.signed.expires, 'root', this.#rootFile);
    const env = parseTimestamp(bytes, where);
    const root = this.#root.signed;
    checkThreshold(env, root.keys, root.roles.timestamp, 'timestamp', where);
    const prev = this.#timestamp?.signed ?? this.#prevTimestamp;
    if (prev !== undefined) {
      if (env.signed.version < prev.version) {
        fail(
          'TUF_ROLLBACK',
          `timestamp version ${env.signed.version} is below trusted ${prev.version}`,
          where,
        );
      }
      const was = own(prev.meta, 'snapshot.json')?.version ?? 0;
      const now = own(env.signed.meta, 'snapshot.json')?.version ?? 0;
      if (now < was) fail('TUF_ROLLBACK', `snapshot version ${now} is below trusted ${was}`, where);
    }
    this.#checkExpiry(env.signed.expires, 'timestamp', where);
    this.#timestamp = env;
  }

  #snapshotMeta(): MetaFile {
    const ts = this.#timestamp ?? misuse('snapshot before timestamp');
    return own(ts.signed.meta, 'snapshot.json') ?? misuse('timestamp without snapshot.json');
  }

  /** The snapshot file the timestamp points to. */
  snapshotFile(): string {
    const meta = this.#snapshotMeta();
    return this.#root.signed.consistent_snapshot ? `${meta.version}.snapshot.json` : 'snapshot.json';
  }

  // --- §5.5 snapshot --------------------------------------------------------

  updateSnapshot(bytes: Uint8Array, where: string): void {
    if (this.#targets !== undefined) misuse('snapshot update after targets');
    const meta = this.#snapshotMeta();
    checkFile(bytes, meta, 'timestamp', where);
    const env = parseSnapshot(bytes, where);
    const root = this.#root.signed;
    checkThreshold(env, root.keys, root.roles.snapshot, 'snapshot', where);
    checkListedVersion('snapshot', env.signed.version, meta.version, 'timestamp', where);
    const prev = this.#snapshot?.signed ?? this.#prevSnapshot;
    if (prev !== undefined) {
      if (env.signed.version < prev.version) {
        fail(
          'TUF_ROLLBACK',
          `snapshot version ${env.signed.version} is below trusted ${prev.version}`,
          where,
        );
      }
      for (const [file, old] of Object.entries(prev.meta)) {
        const cur = own(env.signed.meta, file);
        if (cur === undefined)
          fail('TUF_ROLLBACK', `${file} was listed by the trusted snapshot, now is not`, where);
        if (cur.version < old.version) {
          fail('TUF_ROLLBACK', `${file} version ${cur.version} is below trusted ${old.version}`, where);
        }
      }
    }
    this.#checkExpiry(env.signed.expires, 'snapshot', where);
    this.#snapshot = env;
    this.#snapshotFile = where;
  }

  #roleMeta(role: string): MetaFile {
    const snap = this.#snapshot ?? misuse(`${role} before snapshot`);
    const meta = own(snap.signed.meta, `${role}.json`);
    if (meta === undefined)
      fail('TUF_METADATA_INVALID', `snapshot does not list ${role}.json`, this.#snapshotFile);
    return meta;
  }

  #roleFile(role: string, fileRole: string): string {
    const meta = this.#roleMeta(role);
    return this.#root.signed.consistent_snapshot ? `${meta.version}.${fileRole}.json` : `${fileRole}.json`;
  }

  /** The top-level targets file the snapshot points to. */
  targetsFile(): string {
    return this.#roleFile('targets', 'targets');
  }

  /** A delegated role's file; the name is URI-encoded as other clients do. */
  delegatedTargetsFile(role: string): string {
    return this.#roleFile(role, encodeURIComponent(role));
  }

  // --- §5.6 targets ---------------------------------------------------------

  updateTargets(bytes: Uint8Array, where: string): void {
    if (this.#targets !== undefined) misuse('targets updated twice');
    const meta = this.#roleMeta('targets');
    checkFile(bytes, meta, 'snapshot', where);
    const env = parseTargets(bytes, where);
    const root = this.#root.signed;
    checkThreshold(env, root.keys, root.roles.targets, 'targets', where);
    checkListedVersion('targets', env.signed.version, meta.version, 'snapshot', where);
    this.#checkExpiry(env.signed.expires, 'targets', where);
    this.#targets = env;
  }

  updateDelegatedTargets(roleName: string, bytes: Uint8Array, where: string, delegator = 'targets'): void {
    const parent = delegator === 'targets' ? this.#targets?.signed : this.#delegated.get(delegator);
    if (parent === undefined) misuse(`delegated role '${roleName}' before its delegator '${delegator}'`);
    const role = parent.delegations?.roles.find((r) => r.name === roleName);
    if (role === undefined || parent.delegations === undefined) {
      fail('TUF_METADATA_INVALID', `'${delegator}' does not delegate to '${roleName}'`, where);
    }
    const meta = this.#roleMeta(roleName);
    checkFile(bytes, meta, 'snapshot', where);
    const env = parseTargets(bytes, where);
    checkThreshold(env, parent.delegations.keys, role, roleName, where);
    checkListedVersion(roleName, env.signed.version, meta.version, 'snapshot', where);
    this.#checkExpiry(env.signed.expires, roleName, where);
    this.#delegated.set(roleName, env.signed);
  }

  /** Preorder depth-first search of the delegation graph (§5.6.7). */
  #walk(name: string): Walk {
    const top = (this.#targets ?? misuse('target lookup before targets')).signed;
    const stack: [role: string, delegator: string][] = [['targets', '']];
    const visited = new Set<string>();
    while (visited.size < MAX_DELEGATIONS + 1) {
      const next = stack.pop();
      if (next === undefined) break;
      const [role, delegator] = next;
      if (visited.has(role)) continue;
      visited.add(role);
      const meta = role === 'targets' ? top : this.#delegated.get(role);
      if (meta === undefined) return { kind: 'pending', role, delegator };
      const file = own(meta.targets, name);
      if (file !== undefined) return { kind: 'found', file, role };
      const children: [string, string][] = [];
      for (const d of meta.delegations?.roles ?? []) {
        if (!isDelegatedPath(d, name)) continue;
        children.push([d.name, role]);
        if (d.terminating) {
          stack.length = 0;
          break;
        }
      }
      stack.push(...children.reverse());
    }
    return { kind: 'none' };
  }

  /** The next delegated role to load to look `name` up, or undefined when none is needed. */
  nextDelegation(name: string): { role: string; delegator: string } | undefined {
    const w = this.#walk(name);
    return w.kind === 'pending' ? { role: w.role, delegator: w.delegator } : undefined;
  }

  findTarget(name: string): TargetFile {
    const w = this.#walk(name);
    if (w.kind === 'found') return w.file;
    if (w.kind === 'pending') {
      fail('TUF_TARGET_UNKNOWN', `target '${name}' is delegated to '${w.role}', which is not loaded`, name);
    }
    return fail('TUF_TARGET_UNKNOWN', `target '${name}' is not listed by the targets role`, name);
  }

  /** Checks a downloaded target's length and hashes against the trusted metadata. */
  verifyTarget(name: string, actual: { length: number; sha256: string; sha512?: string }): TargetFile {
    const t = this.findTarget(name);
    if (actual.length !== t.length) {
      fail('TUF_LENGTH_MISMATCH', `target is ${actual.length} bytes, targets lists ${t.length}`, name);
    }
    let checked = 0;
    for (const alg of HASH_ALGORITHMS) {
      const want = own(t.hashes, alg);
      const got = actual[alg];
      if (want === undefined || got === undefined) continue;
      checked++;
      if (got !== want) fail('TUF_HASH_MISMATCH', `target ${alg} ${got}, targets lists ${want}`, name);
    }
    if (checked === 0)
      fail('TUF_HASH_MISMATCH', `targets lists no ${HASH_ALGORITHMS.join(' or ')} hash`, name);
    return t;
  }

  /** verifyTarget over the bytes themselves. */
  verifyTargetBytes(name: string, bytes: Uint8Array): TargetFile {
    const t = this.findTarget(name);
    checkFile(bytes, t, 'targets', name);
    return t;
  }

  /** Where a target is stored, relative to `targets/` (hash-prefixed under consistent snapshots). */
  targetFile(name: string): string {
    const t = this.findTarget(name);
    const segments = name.split('/');
    if (
      name.startsWith('/') ||
      name.includes('\\') ||
      segments.some((s) => s === '' || s === '.' || s === '..')
    ) {
      fail('PATH_UNSAFE', `target name '${name}' is not a safe relative path`, name);
    }
    if (!this.#root.signed.consistent_snapshot) return name;
    // Clients name the file by the first listed hash; we prefer sha256.
    const hash = own(t.hashes, 'sha256') ?? Object.values(t.hashes)[0] ?? '';
    if (!/^[0-9a-f]+$/.test(hash))
      fail('TUF_METADATA_INVALID', `target '${name}' has a malformed hash`, name);
    return targetPathFor(name, hash);
  }
}

/** The earliest `expires` of root, timestamp, snapshot and targets: the repository's "valid until". */
export function earliestExpiry(tm: TrustedMetadata): Date {
  const all = [tm.root, tm.timestamp, tm.snapshot, tm.targets].map((m) =>
    parseExpires(m.expires, `${m._type}.json`),
  );
  return new Date(Math.min(...all.map((d) => d.getTime())));
}

export type MetadataReader = (metadataFile: string) => Promise<Uint8Array | undefined>;

async function need(read: MetadataReader, file: string): Promise<Uint8Array> {
  const bytes = await read(file);
  if (bytes === undefined) fail('TUF_METADATA_INVALID', `${file} is missing`, file);
  return bytes;
}

/**
 * The whole top-level update: roots while `N+1.root.json` exists, then
 * timestamp, snapshot and targets. `read` is the only I/O, and it is the caller's.
 */
export async function verifyRepositoryMetadata(
  read: MetadataReader,
  opts: {
    trustedRoot: Uint8Array;
    now: Date;
    ignoreExpiry?: boolean;
    maxRootRotations?: number;
    /** Name of the trusted root in errors (default `root.json`). */
    trustedRootName?: string;
    /** The client's cache from its last update (rollback protection); ignored when it does not verify. */
    cached?: { timestamp?: Uint8Array; snapshot?: Uint8Array };
  },
): Promise<TrustedMetadata> {
  const tm = new TrustedMetadata(opts.trustedRoot, {
    now: opts.now,
    ignoreExpiry: opts.ignoreExpiry,
    where: opts.trustedRootName,
  });
  const max = opts.maxRootRotations ?? DEFAULT_MAX_ROOT_ROTATIONS;
  for (let i = 0; i < max; i++) {
    const file = tm.nextRootFile();
    const bytes = await read(file);
    if (bytes === undefined) break;
    tm.updateRoot(bytes, file);
  }
  // A cache that no longer verifies (say, after a key rotation) is dropped, as §5.3.11 asks.
  const cached = opts.cached ?? {};
  try {
    if (cached.timestamp !== undefined) tm.loadTrustedTimestamp(cached.timestamp);
  } catch (err) {
    if (!isSlipwayError(err) || err.code === 'INTERNAL') throw err;
  }
  try {
    if (cached.snapshot !== undefined) tm.loadTrustedSnapshot(cached.snapshot);
  } catch (err) {
    if (!isSlipwayError(err) || err.code === 'INTERNAL') throw err;
  }
  tm.updateTimestamp(await need(read, 'timestamp.json'), 'timestamp.json');
  const snapshotFile = tm.snapshotFile();
  tm.updateSnapshot(await need(read, snapshotFile), snapshotFile);
  const targetsFile = tm.targetsFile();
  tm.updateTargets(await need(read, targetsFile), targetsFile);
  return tm;
}

/** Finds a target, loading the delegated roles its search needs through `read`. */
export async function resolveTarget(
  tm: TrustedMetadata,
  read: MetadataReader,
  name: string,
): Promise<TargetFile> {
  for (let i = 0; i < MAX_DELEGATIONS; i++) {
    const next = tm.nextDelegation(name);
    if (next === undefined) break;
    const file = tm.delegatedTargetsFile(next.role);
    tm.updateDelegatedTargets(next.role, await need(read, file), file, next.delegator);
  }
  return tm.findTarget(name);
}
