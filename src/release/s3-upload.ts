/**
 * `slipway release upload`, the object storage half (specs/release-process.md, "upload"): a build
 * directory's files to s3://<releases>/<product>/<product>-<VERSION>/, its docs synced to
 * manual/<MAJOR>/ (and manual/stable/ for an official release), and <product>/latest.json last.
 *
 * Plan, then apply. planReleaseUpload reads both sides and writes nothing: it hashes every local
 * file and checks it against files/manifest.json and the .sha256 files (RELEASE_BUILD_INVALID),
 * lists the remote prefixes (the first request, so wrong credentials end here with
 * RELEASE_S3_AUTH and nothing written) and reads the sha256 metadata of the objects that could
 * be skips; upload-plan.ts turns that into actions. applyReleaseUpload runs the plan phase by
 * phase, several files at once and each file's multipart parts in parallel (lib-storage).
 *
 * Why a re-run always finishes the job and nobody sees half a release:
 * - every object carries its sha256 as metadata (x-amz-meta-sha256); an object with the same
 *   sha256 and size is skipped, anything else is sent again;
 * - S3 makes an object visible under its key only once its PUT or CompleteMultipartUpload has
 *   succeeded, so a killed run leaves whole objects or nothing (plus pending multipart uploads,
 *   which the next run aborts);
 * - a file is checked to be the one that was hashed (same inode, size, mtime and ctime: any
 *   write changes the ctime) once its bytes are read and before its upload completes; a file
 *   sent whole (up to partSize × queueSize) carries its sha256 as SigV4's payload hash, which
 *   the store checks against the bytes it receives; every object is read back (HeadObject: size
 *   and metadata) before the next phase. A file that changed since the plan, or an object that
 *   did not arrive whole, stops the run before latest.json moves. (Hashing the bytes a second
 *   time here would cost another sha256 pass over the release for what the ctime tells.)
 * - latest.json, the pointer readers follow, is written after everything it points at.
 *
 * Credentials come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
 * AWS_PROFILE, ~/.aws/credentials, …), never from Slipway's configuration. The SDK is loaded on
 * first use, not when this module is.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { sha256Hex } from '../core/digest.js';
import { SlipwayError } from '../core/errors.js';
import {
  buildUploadPlan,
  checkBuildFiles,
  checkLatestManifest,
  docsPrefixes,
  invalid as buildInvalid,
  keysToInspect,
  latestKey,
  latestVersionOf,
  MAX_CHECKSUM_FILE_BYTES,
  MAX_LATEST_BYTES,
  MAX_MANIFEST_BYTES,
  parseReleaseManifest,
  PHASES,
  releasePrefix,
  checkReleaseNames,
  type BuildEntry,
  type LocalFile,
  type PendingMultipart,
  type PlannedObject,
  type RemoteObject,
  type UploadPlan,
} from './upload-plan.js';
import { CHECKSUM_SUFFIX, LATEST_FILE, MANIFEST_FILE } from './plan.js';
import { s3HttpStatus, s3SdkError } from '../store/s3-error.js';

export { formatUploadPlan } from './upload-plan.js';
export type { PlannedObject, UploadPlan } from './upload-plan.js';

/** Where the buckets are. Credentials are not here: the SDK's default chain provides them. */
export interface S3Target {
  /** An S3-compatible endpoint (Ceph RGW, MinIO, …); absent: AWS itself. */
  endpoint?: string;
  region: string;
  /** Path-style URLs (`endpoint/bucket/key`); default true with a custom endpoint, false for AWS. */
  forcePathStyle?: boolean;
}

export interface ReleaseUploadInput {
  s3: S3Target;
  releasesBucket: string;
  /** Where the docs go; without it a build's docs/ is not synced (the plan warns). */
  docsBucket?: string;
  product: string;
  version: string;
  /** MAJOR: the first two components of the version (2.96.1 → 2.96). */
  major: string;
  official: boolean;
  /** The output of `release build`: files/, docs/ (optional), latest.json. */
  buildDir: string;
  /** Files uploaded at once (default 4); also the number of files hashed at once. */
  concurrency?: number;
  /** Multipart part size in bytes (default 16 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Parts of one file in flight (default 4): up to concurrency × queueSize × partSize bytes buffered. */
  queueSize?: number;
  signal?: AbortSignal;
  onProgress?: (e: UploadEvent) => void;
  /** Called after everything else is published and before latest.json is written (e.g. container images). */
  beforeLatest?: () => Promise<void>;
}

/** What apply reports as it goes (the CLI turns these into progress bars or lines). */
export type UploadEvent =
  | { kind: 'abort-multipart'; bucket: string; key: string }
  | { kind: 'phase'; phase: PlannedObject['phase']; objects: number }
  | { kind: 'start'; bucket: string; key: string; size: number }
  | { kind: 'progress'; bucket: string; key: string; loaded: number; size: number }
  | { kind: 'done'; bucket: string; key: string; size: number; action: 'uploaded' | 'skipped' }
  | { kind: 'deleted'; bucket: string; key: string };

export interface UploadResult {
  uploaded: number;
  skipped: number;
  deleted: number;
  /** Bytes of the objects uploaded. */
  bytes: number;
  /** Pending multipart uploads of an interrupted run that were aborted. */
  abortedMultipart: number;
}

export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 4;
const MIN_PART_SIZE = 5 * 1024 * 1024;
/** DeleteObjects takes at most 1000 keys. */
const DELETE_BATCH = 1000;
/** HeadObject requests in flight while planning (small requests: more than the upload concurrency). */
const HEAD_CONCURRENCY = 16;
const MAX_DOCS_FILES = 200_000;
const HASH_BUFFER = 1 << 20;

type Sdk = typeof import('@aws-sdk/client-s3');
type Storage = typeof import('@aws-sdk/lib-storage');

interface Ctx {
  sdk: Sdk;
  client: S3Client;
  /** The endpoint as errors name it. */
  endpoint: string;
  signal: AbortSignal | undefined;
}

// ---------------------------------------------------------------- client and errors

async function openS3(target: S3Target, signal: AbortSignal | undefined): Promise<Ctx> {
  // The SDK warns on every Node < 22 process; Slipway supports Node 20.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sdk = await import('@aws-sdk/client-s3');
  const config: S3ClientConfig = {
    region: target.region,
    forcePathStyle: target.forcePathStyle ?? target.endpoint !== undefined,
    // No trailing or flexible checksums the store may not speak (Ceph answers 411 to them);
    // the sha256 we care about travels as metadata and is checked after every upload.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 300_000 },
  };
  if (target.endpoint !== undefined) config.endpoint = target.endpoint;
  const client = new sdk.S3Client(config);
  // An object sent whole in one PutObject has the sha256 the plan found (its metadata): SigV4 then
  // signs that value instead of hashing the body once more, and the store checks it against the
  // bytes it receives (XAmzContentSHA256Mismatch otherwise), an end-to-end check for nothing.
  // Multipart parts are hashed by SigV4 as usual (their own sha256 is not known in advance).
  client.middlewareStack.add(
    (next, context) => (args) => {
      const sha256 = (args.input as { Metadata?: Record<string, string> }).Metadata?.sha256;
      const request = args.request as { headers?: Record<string, string> } | undefined;
      if (
        context.commandName === 'PutObjectCommand' &&
        sha256 !== undefined &&
        request?.headers !== undefined
      ) {
        request.headers['x-amz-content-sha256'] = sha256;
      }
      return next(args);
    },
    { step: 'build', name: 'slipwayKnownSha256' },
  );
  return {
    sdk,
    client,
    endpoint: target.endpoint ?? `AWS S3 (${target.region})`,
    signal,
  };
}

function isNotFound(err: unknown): boolean {
  const name = s3SdkError(err).name;
  return (
    name === 'NoSuchKey' || name === 'NotFound' || (s3HttpStatus(err) === 404 && name !== 'NoSuchBucket')
  );
}

const AUTH_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
]);

/**
 * An SDK failure as a SlipwayError naming the endpoint, bucket and key: refused credentials →
 * RELEASE_S3_AUTH, a missing bucket → RELEASE_ENV_INVALID, an abort → INTERRUPTED, the rest →
 * RELEASE_UPLOAD_FAILED. SlipwayErrors (a file that changed under us) pass through.
 */
function s3Failure(ctx: Ctx, err: unknown, action: string, bucket: string, key?: string): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const e = s3SdkError(err);
  const name = e.name ?? 'Error';
  const code = s3HttpStatus(err);
  const where = `s3://${bucket}/${key ?? ''}`;
  const detail = `${name}${code !== undefined ? ` (HTTP ${code})` : ''}: ${e.message ?? String(err)}`;
  if (ctx.signal?.aborted === true || name === 'AbortError') {
    return new SlipwayError('INTERRUPTED', `${action} ${where}: interrupted`, { cause: err, where });
  }
  if (name === 'CredentialsProviderError') {
    return new SlipwayError(
      'RELEASE_S3_AUTH',
      `no S3 credentials for bucket ${bucket} at ${ctx.endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (~/.aws/credentials) (${e.message ?? name})`,
      { cause: err, where },
    );
  }
  if (AUTH_ERRORS.has(name) || code === 403) {
    return new SlipwayError(
      'RELEASE_S3_AUTH',
      `${ctx.endpoint} refused the credentials for bucket ${bucket} (${action} ${where}): ${detail}; credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials`,
      { cause: err, where },
    );
  }
  if (name === 'NoSuchBucket') {
    return new SlipwayError(
      'RELEASE_ENV_INVALID',
      `the bucket ${bucket} does not exist at ${ctx.endpoint}: create it, or fix the environment's bucket names`,
      { cause: err, where },
    );
  }
  return new SlipwayError('RELEASE_UPLOAD_FAILED', `${action} ${where} at ${ctx.endpoint}: ${detail}`, {
    cause: err,
    where,
  });
}

function interrupted(signal: AbortSignal | undefined, where: string): void {
  if (signal?.aborted === true)
    throw new SlipwayError('INTERRUPTED', `interrupted before ${where}`, { where });
}

/**
 * Runs `fn` over `items`, `limit` at a time. After the first failure no new item starts; the
 * ones in flight finish (each object is whole or absent either way), then that failure is thrown.
 */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.err;
}

function positive(value: number | undefined, fallback: number, what: string, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min)
    throw new SlipwayError('INVALID_ARGUMENT', `${what} must be a whole number ≥ ${min}, got ${value}`);
  return value;
}

// ---------------------------------------------------------------- the local side

/** What identifies a file's content without reading it: any write changes the ctime. */
function stampOf(st: fs.BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * sha256 of a file, read into one reused buffer (the release is hashed in full at every plan:
 * a fresh buffer per read would be a gigabyte of garbage for a gigabyte of release).
 */
async function sha256OfFile(file: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(HASH_BUFFER);
  const fh = await fsp.open(file, 'r');
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** A file's stat (through a symbolic link); a dangling link or a vanished file is a broken build. */
async function statOrInvalid(file: string): Promise<fs.BigIntStats> {
  try {
    return await fsp.stat(file, { bigint: true });
  } catch (err) {
    throw buildInvalid(`${file} cannot be read: ${(err as Error).message}`, file, err);
  }
}

/** A small file's text, refused beyond `max` bytes. */
async function readBounded(file: string, max: number): Promise<string> {
  let st: fs.Stats;
  try {
    st = await fsp.stat(file);
  } catch (err) {
    throw buildInvalid(`${file} is missing: run \`slipway release build\` first`, file, err);
  }
  if (!st.isFile()) throw buildInvalid(`${file} is not a regular file`, file);
  if (st.size > max) throw buildInvalid(`${file} has ${st.size} bytes, more than the ${max} allowed`, file);
  return fsp.readFile(file, 'utf8');
}

interface LocalBuild {
  release: LocalFile[];
  docs: LocalFile[] | undefined;
  latest: LocalFile;
}

/** files/, docs/ and latest.json of a build: listed, hashed and checked. */
async function readBuild(
  input: ReleaseUploadInput,
  concurrency: number,
  signal: AbortSignal,
): Promise<LocalBuild> {
  const filesDir = path.join(input.buildDir, 'files');
  let dirents: fs.Dirent[];
  try {
    dirents = await fsp.readdir(filesDir, { withFileTypes: true });
  } catch (err) {
    throw buildInvalid(
      `${filesDir} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): run \`slipway release build\` first`,
      filesDir,
      err,
    );
  }
  const manifestPath = path.join(filesDir, MANIFEST_FILE);
  const manifest = parseReleaseManifest(await readBounded(manifestPath, MAX_MANIFEST_BYTES), manifestPath);
  const entries: BuildEntry[] = [];
  const checksums = new Map<string, string>();
  const stamps = new Map<string, string>();
  await pool(dirents.map((d) => d.name).sort(), concurrency, async (name) => {
    const file = path.join(filesDir, name);
    // Follows a symbolic link: the build may link its artifacts. Stamped before the hashing, so
    // that a write during it shows at apply.
    const st = await statOrInvalid(file);
    if (!st.isFile()) {
      entries.push({ name, kind: 'other', size: 0 });
      return;
    }
    if (name.endsWith(CHECKSUM_SUFFIX)) checksums.set(name, await readBounded(file, MAX_CHECKSUM_FILE_BYTES));
    stamps.set(name, stampOf(st));
    entries.push({
      name,
      kind: 'file',
      size: Number(st.size),
      sha256: await sha256OfFile(file, signal),
    });
  });
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  checkBuildFiles({
    dir: filesDir,
    manifest,
    expect: { product: input.product, version: input.version, major: input.major, official: input.official },
    entries,
    checksums,
  });
  const release = entries.map((e) => ({
    rel: e.name,
    path: path.join(filesDir, e.name),
    size: e.size,
    sha256: e.sha256 ?? '',
    stamp: stamps.get(e.name) ?? '',
  }));

  const latestPath = path.join(input.buildDir, LATEST_FILE);
  const latestStamp = await fsp.stat(latestPath, { bigint: true }).then(stampOf, () => '');
  const latestText = await readBounded(latestPath, MAX_LATEST_BYTES);
  const manifestEntry = entries.find((e) => e.name === MANIFEST_FILE);
  checkLatestManifest(latestText, input.version, latestPath, manifestEntry?.sha256);
  const latest = {
    rel: LATEST_FILE,
    path: latestPath,
    size: Buffer.byteLength(latestText),
    sha256: sha256Hex(latestText),
    stamp: latestStamp,
  };

  const docsDir = path.join(input.buildDir, 'docs');
  let docs: LocalFile[] | undefined;
  if (fs.existsSync(docsDir)) {
    // Without a docs bucket they are only mentioned in the plan: no need to hash them.
    docs = input.docsBucket === undefined ? [] : await readDocs(docsDir, concurrency, signal);
  }
  return { release, docs, latest };
}

/** Every regular file under docs/, hashed, with its '/'-separated path as `rel`. */
async function readDocs(root: string, concurrency: number, signal: AbortSignal): Promise<LocalFile[]> {
  const found: { rel: string; path: string; size: number; stamp: string }[] = [];
  const realRoot = await fsp.realpath(root);
  const walk = async (dir: string, rel: string): Promise<void> => {
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).sort();
    } catch (err) {
      throw buildInvalid(`${dir} cannot be read as a directory: ${(err as Error).message}`, dir, err);
    }
    for (const name of names) {
      const p = path.join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const lst = await fsp.lstat(p, { bigint: true });
      const st = lst.isSymbolicLink() ? await statOrInvalid(p) : lst;
      if (lst.isSymbolicLink()) {
        // Docs are public: a link out of docs/ (say, to ~/.aws/credentials) must not publish its target.
        const target = path.relative(realRoot, await fsp.realpath(p));
        if (target === '..' || target.startsWith(`..${path.sep}`) || path.isAbsolute(target))
          throw buildInvalid(`${p} links to a file outside ${root}; docs/ must not link out of itself`, p);
      }
      if (st.isDirectory()) {
        // A linked directory could loop or leave the tree: the docs are a plain tree.
        if (lst.isSymbolicLink())
          throw buildInvalid(`${p} is a link to a directory; docs/ must be a plain tree`, p);
        await walk(p, r);
      } else if (st.isFile()) {
        found.push({ rel: r, path: p, size: Number(st.size), stamp: stampOf(st) });
        if (found.length > MAX_DOCS_FILES)
          throw buildInvalid(`${root} has more than ${MAX_DOCS_FILES} files`, root);
      } else throw buildInvalid(`${p} is not a regular file or directory`, p);
    }
  };
  await walk(root, '');
  const out: LocalFile[] = found.map((f) => ({ ...f, sha256: '' }));
  await pool(out, concurrency, async (f) => {
    f.sha256 = await sha256OfFile(f.path, signal);
  });
  return out;
}

// ---------------------------------------------------------------- the remote side

async function listAll(ctx: Ctx, bucket: string, prefix: string): Promise<RemoteObject[]> {
  const out: RemoteObject[] = [];
  let token: string | undefined;
  do {
    let page;
    try {
      page = await ctx.client.send(
        new ctx.sdk.ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(token !== undefined ? { ContinuationToken: token } : {}),
        }),
        { abortSignal: ctx.signal },
      );
    } catch (err) {
      throw s3Failure(ctx, err, 'cannot list', bucket, prefix);
    }
    for (const o of page.Contents ?? []) {
      if (o.Key !== undefined) out.push({ key: o.Key, size: o.Size ?? 0 });
    }
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    if (page.IsTruncated === true && token === undefined) {
      throw new SlipwayError(
        'RELEASE_UPLOAD_FAILED',
        `listing s3://${bucket}/${prefix} at ${ctx.endpoint}: a truncated page without a continuation token`,
        { where: `s3://${bucket}/${prefix}` },
      );
    }
  } while (token !== undefined);
  return out;
}

/** Size and sha256 metadata of an object, or undefined when there is none. */
async function headObject(
  ctx: Ctx,
  bucket: string,
  key: string,
): Promise<{ size: number; sha256: string | undefined } | undefined> {
  try {
    const out = await ctx.client.send(new ctx.sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), {
      abortSignal: ctx.signal,
    });
    return { size: out.ContentLength ?? 0, sha256: out.Metadata?.sha256 };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw s3Failure(ctx, err, 'cannot read the metadata of', bucket, key);
  }
}

/** `listed` (the objects under `prefix`) with the sha256 metadata of those that could be skips. */
async function withMetadata(
  ctx: Ctx,
  bucket: string,
  prefix: string,
  local: readonly LocalFile[],
  listed: readonly RemoteObject[],
): Promise<RemoteObject[]> {
  const byKey = new Map(listed.map((r) => [r.key, { ...r }]));
  await pool(keysToInspect(local, prefix, listed), HEAD_CONCURRENCY, async (key) => {
    const head = await headObject(ctx, bucket, key);
    if (head === undefined)
      byKey.delete(key); // deleted since the listing
    else byKey.set(key, { key, ...head });
  });
  return [...byKey.values()];
}

/** The remote latest.json: size, sha256 metadata and the version it names. */
async function remoteLatest(
  ctx: Ctx,
  bucket: string,
  key: string,
): Promise<{ remote: RemoteObject | undefined; version: string | undefined }> {
  try {
    const out = await ctx.client.send(new ctx.sdk.GetObjectCommand({ Bucket: bucket, Key: key }), {
      abortSignal: ctx.signal,
    });
    const size = out.ContentLength ?? 0;
    const remote = { key, size, sha256: out.Metadata?.sha256 };
    if (out.Body === undefined || size > MAX_LATEST_BYTES) {
      out.Body?.transformToWebStream()
        .cancel()
        .catch(() => undefined);
      return { remote, version: undefined };
    }
    return { remote, version: latestVersionOf(await out.Body.transformToString()) };
  } catch (err) {
    if (isNotFound(err)) return { remote: undefined, version: undefined };
    throw s3Failure(ctx, err, 'cannot read', bucket, key);
  }
}

async function pendingMultipart(ctx: Ctx, bucket: string, prefix: string): Promise<PendingMultipart[]> {
  const out: PendingMultipart[] = [];
  let keyMarker: string | undefined;
  let idMarker: string | undefined;
  for (;;) {
    let page;
    try {
      page = await ctx.client.send(
        new ctx.sdk.ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: prefix,
          ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
          ...(idMarker !== undefined ? { UploadIdMarker: idMarker } : {}),
        }),
        { abortSignal: ctx.signal },
      );
    } catch (err) {
      throw s3Failure(ctx, err, 'cannot list the multipart uploads under', bucket, prefix);
    }
    for (const u of page.Uploads ?? []) {
      if (u.Key !== undefined && u.UploadId !== undefined)
        out.push({ bucket, key: u.Key, uploadId: u.UploadId });
    }
    if (
      page.IsTruncated !== true ||
      (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined)
    )
      break;
    keyMarker = page.NextKeyMarker;
    idMarker = page.NextUploadIdMarker;
  }
  return out;
}

/**
 * Reads the build (hashing and checking every file) and the remote state, and returns what an
 * upload would do. Writes nothing, locally or remotely.
 */
export async function planReleaseUpload(input: ReleaseUploadInput): Promise<UploadPlan> {
  checkReleaseNames(input.product, input.version, input.major);
  const concurrency = positive(input.concurrency, DEFAULT_CONCURRENCY, 'concurrency');
  // The local hashing (most of the time) runs while the SDK loads and the first listing is made;
  // that listing is awaited first, so that wrong credentials or a missing bucket are what a run
  // reports (and the hashing stops) even when the build is wrong as well.
  const stopHashing = new AbortController();
  const hashSignal =
    input.signal === undefined ? stopHashing.signal : AbortSignal.any([input.signal, stopHashing.signal]);
  const reading = readBuild(input, concurrency, hashSignal);
  reading.catch(() => undefined); // awaited below; this only keeps an early failure from being "unhandled"
  let ctx: Ctx | undefined;
  try {
    ctx = await openS3(input.s3, input.signal);
    const relPrefix = releasePrefix(input.product, input.version);
    const listing = await listAll(ctx, input.releasesBucket, relPrefix);
    const build = await reading;
    const releaseRemote = await withMetadata(ctx, input.releasesBucket, relPrefix, build.release, listing);
    const lkey = latestKey(input.product);
    const [latest, pending] = await Promise.all([
      remoteLatest(ctx, input.releasesBucket, lkey),
      pendingMultipart(ctx, input.releasesBucket, relPrefix),
    ]);
    let docs: { files: LocalFile[]; remote: Record<string, RemoteObject[]> } | undefined;
    let docsSkipped: string | undefined;
    if (build.docs !== undefined) {
      if (input.docsBucket === undefined) {
        docsSkipped = `${path.join(input.buildDir, 'docs')} is not synced: the environment names no docs bucket`;
      } else {
        const remote: Record<string, RemoteObject[]> = {};
        for (const prefix of docsPrefixes(input.major, input.official)) {
          const listed = await listAll(ctx, input.docsBucket, prefix);
          remote[prefix] = await withMetadata(ctx, input.docsBucket, prefix, build.docs, listed);
        }
        docs = { files: build.docs, remote };
      }
    }
    return buildUploadPlan({
      product: input.product,
      version: input.version,
      major: input.major,
      official: input.official,
      releasesBucket: input.releasesBucket,
      docsBucket: input.docsBucket,
      release: { files: build.release, remote: releaseRemote },
      ...(docs !== undefined ? { docs } : {}),
      ...(docsSkipped !== undefined ? { docsSkipped } : {}),
      latest: { file: build.latest, remote: latest.remote, remoteVersion: latest.version },
      pendingMultipart: pending,
    });
  } catch (err) {
    stopHashing.abort();
    await reading.catch(() => undefined);
    if (!(err instanceof SlipwayError) && input.signal?.aborted === true)
      throw new SlipwayError('INTERRUPTED', 'the upload plan was interrupted', { cause: err });
    throw err;
  } finally {
    ctx?.client.destroy();
  }
}

// ---------------------------------------------------------------- apply

/**
 * Passes a file's bytes through, and fails the stream (so the upload is aborted before it
 * completes) when they are not the file the plan was made from: not `size` bytes, or the file's
 * stamp (inode, size, mtime, ctime) differs once they are read. Without a stamp (a plan made
 * elsewhere) the bytes are hashed and compared with the plan's sha256 instead.
 */
class PlannedBytes extends Transform {
  readonly #hash: Hash | undefined;
  readonly #o: { file: string; size: number; sha256: string; stamp: string | undefined };
  #seen = 0;

  constructor(o: { file: string; size: number; sha256: string; stamp: string | undefined }) {
    super({ highWaterMark: 1 << 20 });
    this.#o = o;
    this.#hash = o.stamp === undefined || o.stamp === '' ? createHash('sha256') : undefined;
  }

  #changed(): SlipwayError {
    const { file } = this.#o;
    return buildInvalid(`${file} changed since the upload was planned: rebuild, then upload again`, file);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#o.size) {
      cb(this.#changed());
      return;
    }
    this.#hash?.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.#seen !== this.#o.size) {
      cb(this.#changed());
      return;
    }
    if (this.#hash !== undefined) {
      cb(this.#hash.digest('hex') === this.#o.sha256 ? null : this.#changed());
      return;
    }
    fs.stat(this.#o.file, { bigint: true }, (err, st) => {
      cb(err === null && stampOf(st) === this.#o.stamp ? null : this.#changed());
    });
  }
}

async function putObject(
  ctx: Ctx,
  storage: Storage,
  o: PlannedObject,
  opts: { partSize: number; queueSize: number; onProgress: ((e: UploadEvent) => void) | undefined },
): Promise<void> {
  const { bucket, key, size, sha256, file } = o;
  if (file === undefined || sha256 === undefined)
    throw new SlipwayError('INTERNAL', `planned upload of s3://${bucket}/${key} without a file`);
  interrupted(ctx.signal, `uploading s3://${bucket}/${key}`);
  opts.onProgress?.({ kind: 'start', bucket, key, size });
  const body = new PlannedBytes({ file, size, sha256, stamp: o.stamp });
  pipeline(fs.createReadStream(file, { highWaterMark: 1 << 20 }), body, () => {
    // A read error reaches the upload through `body` (pipeline destroys it with that error).
  });
  const controller = new AbortController();
  const onAbort = (): void => {
    controller.abort();
  };
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  const upload = new storage.Upload({
    client: ctx.client,
    params: {
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentLength: size,
      Metadata: { sha256 },
      ...(o.contentType !== undefined ? { ContentType: o.contentType } : {}),
      ...(o.cacheControl !== undefined ? { CacheControl: o.cacheControl } : {}),
    },
    // A file that fits in what a multipart upload of it would buffer anyway (partSize × queueSize,
    // 64 MiB by default) goes whole, in one PutObject: its known sha256 then spares SigV4 a pass
    // over the bytes and lets the store check them (see openS3). Bigger files go in parts.
    partSize: size <= opts.partSize * opts.queueSize ? Math.max(size, MIN_PART_SIZE) : opts.partSize,
    queueSize: opts.queueSize,
    // Upload aborts the multipart upload on failure: no parts are left to pay for.
    leavePartsOnError: false,
    abortController: controller,
  });
  if (opts.onProgress !== undefined) {
    const report = opts.onProgress;
    upload.on('httpUploadProgress', (p) => {
      report({ kind: 'progress', bucket, key, loaded: p.loaded ?? 0, size });
    });
  }
  try {
    await upload.done();
  } catch (err) {
    body.destroy();
    // The file's own failure (it changed, it cannot be read) as it is, else the store's.
    const bodyError = body.errored;
    if (bodyError instanceof SlipwayError) throw bodyError;
    if (bodyError !== null) throw buildInvalid(`cannot read ${file}: ${bodyError.message}`, file, bodyError);
    throw s3Failure(ctx, err, 'cannot upload', bucket, key);
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
  }
  // Read back what the store holds: CompleteMultipartUpload's answer says little (Ceph sends an
  // empty ETag), and the next phase must only start on whole, correctly labelled objects.
  const head = await headObject(ctx, bucket, key);
  if (head?.size !== size || head.sha256 !== sha256) {
    throw new SlipwayError(
      'RELEASE_UPLOAD_FAILED',
      `s3://${bucket}/${key} at ${ctx.endpoint} reads back as ${head === undefined ? 'missing' : `${head.size} bytes with sha256 metadata ${head.sha256 ?? '(none)'}`} after the upload; expected ${size} bytes, sha256 ${sha256}`,
      { where: `s3://${bucket}/${key}` },
    );
  }
  opts.onProgress?.({ kind: 'done', bucket, key, size, action: 'uploaded' });
}

async function deleteKeys(
  ctx: Ctx,
  bucket: string,
  keys: string[],
  onProgress: ((e: UploadEvent) => void) | undefined,
): Promise<void> {
  for (let i = 0; i < keys.length; i += DELETE_BATCH) {
    interrupted(ctx.signal, `deleting from s3://${bucket}/`);
    const batch = keys.slice(i, i + DELETE_BATCH);
    let out;
    try {
      out = await ctx.client.send(
        new ctx.sdk.DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
        { abortSignal: ctx.signal },
      );
    } catch (err) {
      throw s3Failure(ctx, err, 'cannot delete stale objects from', bucket, batch[0]);
    }
    const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
    const first = failed[0];
    if (first !== undefined) {
      const err = { name: first.Code, message: first.Message, $metadata: {} };
      throw s3Failure(
        ctx,
        err,
        `cannot delete (${failed.length} of ${batch.length} failed)`,
        bucket,
        first.Key,
      );
    }
    for (const key of batch) onProgress?.({ kind: 'deleted', bucket, key });
  }
}

/**
 * Runs a plan made by planReleaseUpload: aborts the multipart uploads an interrupted run left,
 * uploads the release's files (skipping what is there already), then its manifest.json, syncs
 * the docs (new and changed files, then deletion of stale ones), calls `beforeLatest`, and
 * writes latest.json last. Stops at the first failure, after the uploads in flight finish; a
 * re-run (plan again, apply again) completes the job.
 */
export async function applyReleaseUpload(input: ReleaseUploadInput, plan: UploadPlan): Promise<UploadResult> {
  const concurrency = positive(input.concurrency, DEFAULT_CONCURRENCY, 'concurrency');
  const partSize = positive(input.partSize, DEFAULT_PART_SIZE, 'partSize', MIN_PART_SIZE);
  const queueSize = positive(input.queueSize, DEFAULT_QUEUE_SIZE, 'queueSize');
  const { onProgress } = input;
  const storage = await import('@aws-sdk/lib-storage');
  const ctx = await openS3(input.s3, input.signal);
  const result: UploadResult = { uploaded: 0, skipped: 0, deleted: 0, bytes: 0, abortedMultipart: 0 };
  try {
    for (const m of plan.abortMultipart) {
      interrupted(ctx.signal, 'aborting pending multipart uploads');
      try {
        await ctx.client.send(
          new ctx.sdk.AbortMultipartUploadCommand({ Bucket: m.bucket, Key: m.key, UploadId: m.uploadId }),
          { abortSignal: ctx.signal },
        );
      } catch (err) {
        // Gone already (completed or aborted by someone else): nothing to clean.
        if (s3SdkError(err).name !== 'NoSuchUpload' && s3HttpStatus(err) !== 404)
          throw s3Failure(ctx, err, 'cannot abort a pending multipart upload of', m.bucket, m.key);
      }
      result.abortedMultipart += 1;
      onProgress?.({ kind: 'abort-multipart', bucket: m.bucket, key: m.key });
    }
    for (const phase of PHASES) {
      const objects = plan.objects.filter((o) => o.phase === phase);
      if (phase === 'latest' && input.beforeLatest !== undefined) {
        interrupted(ctx.signal, 'the step before latest.json');
        await input.beforeLatest();
      }
      if (objects.length === 0) continue;
      interrupted(ctx.signal, phase);
      onProgress?.({ kind: 'phase', phase, objects: objects.length });
      if (phase === 'stale docs') {
        const byBucket = new Map<string, string[]>();
        for (const o of objects) byBucket.set(o.bucket, [...(byBucket.get(o.bucket) ?? []), o.key]);
        for (const [bucket, keys] of byBucket) {
          await deleteKeys(ctx, bucket, keys, onProgress);
          result.deleted += keys.length;
        }
        continue;
      }
      // The biggest first: the phase ends soonest when the small files fill in at the end.
      const bySize = [...objects].sort((a, b) => b.size - a.size);
      await pool(bySize, concurrency, async (o) => {
        if (o.action !== 'upload') {
          result.skipped += 1;
          onProgress?.({ kind: 'done', bucket: o.bucket, key: o.key, size: o.size, action: 'skipped' });
          return;
        }
        await putObject(ctx, storage, o, { partSize, queueSize, onProgress });
        result.uploaded += 1;
        result.bytes += o.size;
      });
    }
    return result;
  } finally {
    ctx.client.destroy();
  }
}
