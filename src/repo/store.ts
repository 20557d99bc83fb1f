/**
 * The receiving side of repository uploads (a rack control plane's, as in
 * Omicron): a body is streamed to a temp file in `STORE/tmp` and hashed on
 * the way, verified like `slipway repo verify` (expiry ignored, per spec),
 * then moved to `STORE/repos/<sha256>.zip` and recorded in `STORE/index.json`.
 *
 * Plan, then apply: verification runs outside the lock (uploads of different
 * versions verify concurrently); the decision (insert, already there,
 * conflict) and the two renames run under one in-process lock. A rejected
 * upload leaves nothing: its temp file is removed, index and repos/ untouched.
 * A crash leaves at worst a temp file or an unindexed zip, removed on open.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../core/atomic-file.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { type Reporter, silentReporter, warn } from '../core/events.js';
import type { HashedArtifact } from '../formats/repo-artifacts.js';
import { verifyRepositoryZip } from './verify.js';

export const DEFAULT_MAX_UPLOAD = 16 * 1024 ** 3;
const MAX_INDEX_BYTES = 64 * 1024 * 1024;
const MAX_FILE_NAME = 1024;
/** Body chunks are gathered up to this size before one write. */
const WRITE_BATCH = 1 << 20;

export type StoredArtifact = HashedArtifact;

/** One line of index.json. */
export interface StoredRepo {
  system_version: string;
  sha256: string;
  file_name: string;
  valid_until: string;
  targets_role_version: number;
  uploaded_at: string;
  artifacts: StoredArtifact[];
}

/** Omicron's TufRepoMeta. */
export interface RepoView {
  hash: string;
  targets_role_version: number;
  valid_until: string;
  system_version: string;
  file_name: string;
}

/** Omicron's TufArtifactMeta (the fields we have). */
export interface ArtifactView {
  id: { name: string; version: string; kind: string };
  hash: string;
  size: number;
}

/** Omicron's TufRepoInsertResponse. */
export interface InsertResponse {
  recorded: { repo: RepoView; artifacts: ArtifactView[] };
  status: 'inserted' | 'already_exists';
}

export function repoView(r: StoredRepo): RepoView {
  return {
    hash: r.sha256,
    targets_role_version: r.targets_role_version,
    valid_until: r.valid_until,
    system_version: r.system_version,
    file_name: r.file_name,
  };
}

export function insertResponse(r: StoredRepo, status: InsertResponse['status']): InsertResponse {
  return {
    recorded: {
      repo: repoView(r),
      artifacts: r.artifacts.map((a) => ({
        id: { name: a.name, version: a.version, kind: a.kind },
        hash: a.sha256,
        size: a.size,
      })),
    },
    status,
  };
}

const SEMVER_PARTS = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

function compareIdentifiers(a: string, b: string): number {
  const an = /^\d+$/.test(a);
  const bn = /^\d+$/.test(b);
  if (an && bn) return Number(a) - Number(b) || a.length - b.length;
  if (an !== bn) return an ? -1 : 1; // numeric identifiers sort before alphanumeric ones
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Semver precedence (semver.org §11); non-semver strings sort after, by text; ties by text. */
export function compareSemver(a: string, b: string): number {
  const ma = SEMVER_PARTS.exec(a);
  const mb = SEMVER_PARTS.exec(b);
  const byText = a < b ? -1 : a > b ? 1 : 0;
  if (ma === null || mb === null) return ma === mb ? byText : ma === null ? 1 : -1;
  for (let i = 1; i <= 3; i++) {
    const d = compareIdentifiers(ma[i] ?? '0', mb[i] ?? '0');
    if (d !== 0) return d;
  }
  const pa = ma[4];
  const pb = mb[4];
  if (pa === undefined || pb === undefined) {
    if (pa !== pb) return pa === undefined ? 1 : -1; // a release sorts after its pre-releases
    return byText;
  }
  const ia = pa.split('.');
  const ib = pb.split('.');
  for (let i = 0; i < Math.min(ia.length, ib.length); i++) {
    const d = compareIdentifiers(ia[i] ?? '', ib[i] ?? '');
    if (d !== 0) return d;
  }
  return ia.length - ib.length || byText;
}

function fail(where: string, why: string): never {
  throw new SlipwayError('REPO_STORE_INVALID', `index.json: ${why}`, { where });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function field<T>(o: Record<string, unknown>, key: string, where: string, check: (v: unknown) => v is T): T {
  const v = o[key];
  if (!check(v)) fail(where, `${key} is missing or has the wrong type`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isSha256 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);

/** index.json → its records, every field checked; duplicates of a hash or a version are refused. */
export function parseIndex(bytes: Uint8Array, where: string): StoredRepo[] {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new SlipwayError('REPO_STORE_INVALID', `index.json is not valid JSON: ${(err as Error).message}`, {
      where,
      cause: err,
    });
  }
  if (!isObject(doc) || !Array.isArray(doc.repos)) fail(where, 'expected {"repos": [...]}');
  const out: StoredRepo[] = [];
  const hashes = new Set<string>();
  const versions = new Set<string>();
  for (const [i, r] of (doc.repos as unknown[]).entries()) {
    const w = `${where}: repos[${i}]`;
    if (!isObject(r)) fail(w, 'not an object');
    const artifacts = field(r, 'artifacts', w, Array.isArray).map((a: unknown, j): StoredArtifact => {
      const aw = `${w}.artifacts[${j}]`;
      if (!isObject(a)) fail(aw, 'not an object');
      return {
        kind: field(a, 'kind', aw, isString),
        name: field(a, 'name', aw, isString),
        version: field(a, 'version', aw, isString),
        target: field(a, 'target', aw, isString),
        sha256: field(a, 'sha256', aw, isSha256),
        size: field(a, 'size', aw, isCount),
      };
    });
    const rec: StoredRepo = {
      system_version: field(r, 'system_version', w, isString),
      sha256: field(r, 'sha256', w, isSha256),
      file_name: field(r, 'file_name', w, isString),
      valid_until: field(r, 'valid_until', w, isString),
      targets_role_version: field(r, 'targets_role_version', w, isCount),
      uploaded_at: field(r, 'uploaded_at', w, isString),
      artifacts,
    };
    if (hashes.has(rec.sha256)) fail(w, `sha256 ${rec.sha256} is listed twice`);
    if (versions.has(rec.system_version)) fail(w, `system version ${rec.system_version} is listed twice`);
    hashes.add(rec.sha256);
    versions.add(rec.system_version);
    out.push(rec);
  }
  return out;
}

export function encodeIndex(repos: readonly StoredRepo[]): string {
  const sorted = [...repos].sort((a, b) => compareSemver(a.system_version, b.system_version));
  return `${JSON.stringify({ repos: sorted }, null, 2)}\n`;
}

/** The upload's file_name query parameter: required, printable, bounded. */
export function checkFileName(name: string | null | undefined): string {
  if (name === null || name === undefined || name === '') {
    throw new SlipwayError('INVALID_ARGUMENT', 'the upload needs a file_name query parameter');
  }
  // eslint-disable-next-line no-control-regex
  if (name.length > MAX_FILE_NAME || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new SlipwayError('INVALID_ARGUMENT', 'file_name is too long or contains control characters');
  }
  return name;
}

/** A tiny FIFO mutex: each holder runs after the previous one settled. */
class Lock {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

export interface StoreOptions {
  /** Bytes of the trusted root.json; default each repository's own 1.root.json (development). */
  trustedRoot?: Uint8Array;
  now?: () => Date;
  /** Largest body accepted, in bytes (default 16 GiB). */
  maxUpload?: number;
  reporter?: Reporter;
}

export interface UploadOptions {
  fileName: string | null | undefined;
  /** The Content-Length the client declared, when it did: refused early above the cap. */
  declaredLength?: number;
  signal?: AbortSignal;
  /** Called once the body is on disk (e.g. to lift an idle timeout while verifying). */
  onReceived?: (bytes: number) => void;
}

export class RepoStore {
  readonly dir: string;
  readonly maxUpload: number;
  readonly #options: StoreOptions;
  readonly #byHash = new Map<string, StoredRepo>();
  readonly #byVersion = new Map<string, StoredRepo>();
  readonly #lock = new Lock();

  private constructor(dir: string, options: StoreOptions) {
    this.dir = dir;
    this.#options = options;
    this.maxUpload = options.maxUpload ?? DEFAULT_MAX_UPLOAD;
  }

  get #tmpDir(): string {
    return path.join(this.dir, 'tmp');
  }

  get #reposDir(): string {
    return path.join(this.dir, 'repos');
  }

  get #indexFile(): string {
    return path.join(this.dir, 'index.json');
  }

  /**
   * Opens (creating) a store: reads index.json, removes leftovers of a crash
   * (temp uploads, index temp files, zips the index does not list) and checks
   * that every indexed zip is there.
   */
  static async open(dir: string, options: StoreOptions = {}): Promise<RepoStore> {
    const store = new RepoStore(path.resolve(dir), options);
    await store.#load();
    return store;
  }

  async #load(): Promise<void> {
    try {
      await fsp.mkdir(this.#reposDir, { recursive: true });
      await fsp.rm(this.#tmpDir, { recursive: true, force: true });
      await fsp.mkdir(this.#tmpDir, { recursive: true });
    } catch (err) {
      throw fromSystemError(err, 'cannot prepare the upload store', this.dir);
    }
    let records: StoredRepo[] = [];
    let bytes: Buffer | undefined;
    try {
      const st = await fsp.stat(this.#indexFile);
      if (st.size > MAX_INDEX_BYTES) fail(this.#indexFile, `larger than ${MAX_INDEX_BYTES} bytes`);
      bytes = await fsp.readFile(this.#indexFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw fromSystemError(err, 'cannot read', this.#indexFile);
    }
    if (bytes !== undefined) records = parseIndex(bytes, this.#indexFile);
    for (const r of records) {
      this.#byHash.set(r.sha256, r);
      this.#byVersion.set(r.system_version, r);
    }
    const reporter = this.#options.reporter ?? silentReporter;
    for (const name of await fsp.readdir(this.dir)) {
      // writeFileAtomic's temp files for index.json.
      if (name.startsWith('.index.json.') && name.endsWith('.tmp'))
        await fsp.rm(path.join(this.dir, name), { force: true });
    }
    for (const name of await fsp.readdir(this.#reposDir)) {
      const m = /^([0-9a-f]{64})\.zip$/.exec(name);
      if (m?.[1] !== undefined && this.#byHash.has(m[1])) continue;
      warn(
        reporter,
        `upload store: removing ${name}, which index.json does not list (an interrupted upload)`,
      );
      await fsp.rm(path.join(this.#reposDir, name), { recursive: true, force: true });
    }
    for (const r of records) {
      const st = await fsp.stat(this.zipPathOf(r)).catch(() => undefined);
      if (st?.isFile() !== true) {
        fail(this.#indexFile, `system version ${r.system_version}: ${this.zipPathOf(r)} is missing`);
      }
    }
  }

  /** Every stored repository, in semver order of system version. */
  list(): StoredRepo[] {
    return [...this.#byVersion.values()].sort((a, b) => compareSemver(a.system_version, b.system_version));
  }

  get(systemVersion: string): StoredRepo | undefined {
    return this.#byVersion.get(systemVersion);
  }

  zipPathOf(r: StoredRepo): string {
    return path.join(this.#reposDir, `${r.sha256}.zip`);
  }

  /**
   * Receives one repository zip from `body`, verifies it and records it.
   * Throws a coded SlipwayError (and leaves nothing behind) when rejected.
   */
  async upload(body: AsyncIterable<Buffer>, options: UploadOptions): Promise<InsertResponse> {
    const fileName = checkFileName(options.fileName);
    if (options.declaredLength !== undefined && options.declaredLength > this.maxUpload) {
      throw this.#tooLarge(options.declaredLength);
    }
    const temp = path.join(this.#tmpDir, `upload-${randomBytes(8).toString('hex')}.zip`);
    try {
      const { sha256, size } = await this.#receive(body, temp, options.signal);
      options.onReceived?.(size);
      if (options.declaredLength !== undefined && size !== options.declaredLength) {
        throw new SlipwayError(
          'REPO_UPLOAD_INCOMPLETE',
          `received ${size} bytes of the ${options.declaredLength} announced`,
        );
      }
      // The same bytes were verified when first stored: nothing to do again.
      const known = this.#byHash.get(sha256);
      if (known !== undefined) return insertResponse(known, 'already_exists');
      const now = (this.#options.now ?? (() => new Date()))();
      const v = await verifyRepositoryZip(temp, {
        now,
        ignoreExpiry: true,
        sha256,
        ...(this.#options.trustedRoot !== undefined ? { trustedRoot: this.#options.trustedRoot } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
      const record: StoredRepo = {
        system_version: v.systemVersion,
        sha256,
        file_name: fileName,
        valid_until: v.validUntil,
        targets_role_version: v.targetsVersion,
        uploaded_at: now.toISOString(),
        artifacts: v.artifacts.map((a) => ({
          kind: a.kind,
          name: a.name,
          version: a.version,
          target: a.target,
          sha256: a.sha256,
          size: a.size,
        })),
      };
      return await this.#lock.run(() => this.#commit(temp, record));
    } finally {
      await fsp.rm(temp, { force: true });
    }
  }

  #tooLarge(size: number): SlipwayError {
    return new SlipwayError(
      'REPO_UPLOAD_TOO_LARGE',
      `the upload is ${size > this.maxUpload ? `${size} bytes, ` : ''}larger than the limit of ${this.maxUpload} bytes`,
    );
  }

  /** The body into `temp`, hashed and capped on the way, fsynced. */
  async #receive(
    body: AsyncIterable<Buffer>,
    temp: string,
    signal: AbortSignal | undefined,
  ): Promise<{ sha256: string; size: number }> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(temp, 'wx', 0o644);
    } catch (err) {
      throw fromSystemError(err, 'cannot create an upload file in', this.#tmpDir);
    }
    const hash = createHash('sha256');
    let size = 0;
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async (): Promise<void> => {
      if (batched === 0) return;
      const chunks = batch;
      batch = [];
      batched = 0;
      try {
        await fh.writev(chunks);
      } catch (err) {
        throw fromSystemError(err, 'cannot write', temp);
      }
    };
    try {
      try {
        for await (const chunk of body) {
          signal?.throwIfAborted();
          size += chunk.length;
          if (size > this.maxUpload) throw this.#tooLarge(size);
          hash.update(chunk);
          batch.push(chunk);
          batched += chunk.length;
          if (batched >= WRITE_BATCH) await flush();
        }
      } catch (err) {
        if (err instanceof SlipwayError) throw err;
        if (signal?.aborted === true)
          throw new SlipwayError('INTERRUPTED', 'the server is shutting down', { cause: err });
        throw new SlipwayError(
          'REPO_UPLOAD_INCOMPLETE',
          `the upload stopped after ${size} bytes: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      await flush();
      await fh.sync();
    } finally {
      await fh.close().catch(() => undefined);
    }
    return { sha256: hash.digest('hex'), size };
  }

  /** Under the lock: insert, or report it already there, or refuse a second repo for a version. */
  async #commit(temp: string, record: StoredRepo): Promise<InsertResponse> {
    const known = this.#byHash.get(record.sha256);
    if (known !== undefined) return insertResponse(known, 'already_exists');
    const other = this.#byVersion.get(record.system_version);
    if (other !== undefined) {
      throw new SlipwayError(
        'REPO_CONFLICT',
        `system version ${record.system_version} is already stored as a different repository (sha256 ${other.sha256}, ${other.file_name}); this one is ${record.sha256}`,
      );
    }
    const dest = this.zipPathOf(record);
    const next = [...this.#byHash.values(), record];
    try {
      await fsp.rename(temp, dest);
      await fsyncDir(this.#reposDir);
    } catch (err) {
      throw fromSystemError(err, 'cannot store', dest);
    }
    try {
      await writeFileAtomic(this.#indexFile, encodeIndex(next));
    } catch (err) {
      await fsp.rm(dest, { force: true });
      throw err;
    }
    this.#byHash.set(record.sha256, record);
    this.#byVersion.set(record.system_version, record);
    return insertResponse(record, 'inserted');
  }
}
