/**
 * The pure half of `slipway release upload` (specs/release-process.md, "upload"): what a build
 * directory must hold to be published, and which objects to upload, skip or delete given the
 * local files (already hashed) and the remote listing (already fetched). No fs, no network: the
 * I/O lives in s3-upload.ts, which reads both sides, calls buildUploadPlan and runs the result.
 *
 * The order of the plan is the order of publication, so that nobody ever sees half a release:
 *   1. the release's files (artifacts, their .sha256 files) under <product>/<product>-<VERSION>/,
 *   2. that directory's manifest.json (it lists the files above, so it comes after them),
 *   3. the docs, new and changed files under manual/<MAJOR>/ (and manual/stable/ when official),
 *   4. the docs' stale files (deleted only once the new ones are up),
 *   5. <product>/latest.json, the pointer everyone follows, last of all.
 */
import { SlipwayError } from '../core/errors.js';
import { formatSize } from '../core/size.js';
import { compareVersions } from './config.js';
import { CHECKSUM_SUFFIX, MANIFEST_FILE, type ManifestFile } from './plan.js';

/** A file of the build, hashed. */
export interface LocalFile {
  /** The path under its group's prefix, '/'-separated (`foo-1.0.tar.gz`, `guide/index.html`). */
  rel: string;
  /** Where it is on disk. */
  path: string;
  size: number;
  sha256: string;
  /**
   * The file's identity and timestamps when it was hashed (`dev:ino:size:mtimeNs:ctimeNs`):
   * apply checks it again after sending the bytes instead of hashing them a second time.
   */
  stamp?: string;
}

/** An object as listed (ListObjectsV2) and, where it could be a skip, inspected (HeadObject). */
export interface RemoteObject {
  key: string;
  size: number;
  /** The `sha256` user metadata (x-amz-meta-sha256), when read and present. */
  sha256?: string | undefined;
}

/** A multipart upload left pending by an interrupted run (invisible, but it holds storage). */
export interface PendingMultipart {
  bucket: string;
  key: string;
  uploadId: string;
}

export type ObjectGroup = 'release' | 'docs' | 'latest';
/** `keep`: latest.json already names a newer release and is left alone. */
export type ObjectAction = 'upload' | 'skip' | 'delete' | 'keep';

/** The phases of publication, run one after another (objects within one phase in parallel). */
export const PHASES = ['release files', 'release manifest', 'docs', 'stale docs', 'latest'] as const;
export type Phase = (typeof PHASES)[number];

export interface PlannedObject {
  phase: Phase;
  group: ObjectGroup;
  action: ObjectAction;
  bucket: string;
  key: string;
  /** The local size (uploads, skips) or the remote one (deletions). */
  size: number;
  /** The local sha256 (uploads, skips). */
  sha256?: string;
  /** The local file (uploads, skips). */
  file?: string;
  /** LocalFile.stamp of that file. */
  stamp?: string;
  contentType?: string;
  cacheControl?: string;
  /** Why: `new`, `sha256 differs`, `same sha256 and size`, `not in the build`, … */
  reason: string;
}

export interface UploadPlan {
  product: string;
  version: string;
  major: string;
  official: boolean;
  releasesBucket: string;
  docsBucket: string | undefined;
  /** `<product>/<product>-<VERSION>/` */
  releasePrefix: string;
  /** `manual/<MAJOR>/` and, for an official release, `manual/stable/` (none without docs). */
  docsPrefixes: string[];
  /** `<product>/latest.json` */
  latestKey: string;
  /** The version the remote latest.json names now, when it exists and can be read. */
  remoteLatestVersion: string | undefined;
  /** Every object, in publication order (see PHASES). */
  objects: PlannedObject[];
  /** Pending multipart uploads under the release prefix, aborted before anything is uploaded. */
  abortMultipart: PendingMultipart[];
  /** Things a user should know that do not stop the upload. */
  warnings: string[];
  totals: { upload: number; uploadBytes: number; skip: number; delete: number; keep: number };
}

export interface PlanInput {
  product: string;
  version: string;
  major: string;
  official: boolean;
  releasesBucket: string;
  docsBucket: string | undefined;
  release: { files: LocalFile[]; remote: RemoteObject[] };
  /** Absent when the build has no docs/ (or no docs bucket is configured: see docsSkipped). */
  docs?: { files: LocalFile[]; remote: Record<string, RemoteObject[]> };
  /** Why the build's docs are not synced (a warning in the plan). */
  docsSkipped?: string;
  latest: { file: LocalFile; remote: RemoteObject | undefined; remoteVersion: string | undefined };
  pendingMultipart: PendingMultipart[];
}

// ---------------------------------------------------------------- names and keys

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/** Product, version and major become key segments: one segment each, nothing that walks. */
export function checkReleaseNames(product: string, version: string, major: string): void {
  for (const [what, value] of [
    ['product', product],
    ['version', version],
    ['major', major],
  ] as const) {
    if (!NAME_RE.test(value) || value.length > 128) {
      throw new SlipwayError(
        'RELEASE_CONFIG_INVALID',
        `the release ${what} '${value.slice(0, 100)}' cannot be part of an object key: use letters, digits and . _ + - (not first), at most 128 characters`,
        { where: what },
      );
    }
  }
}

export function releasePrefix(product: string, version: string): string {
  return `${product}/${product}-${version}/`;
}

export function latestKey(product: string): string {
  return `${product}/latest.json`;
}

/** Where the docs go: `manual/<MAJOR>/`, and `manual/stable/` as well for an official release. */
export function docsPrefixes(major: string, official: boolean): string[] {
  return official ? [`manual/${major}/`, 'manual/stable/'] : [`manual/${major}/`];
}

const CONTENT_TYPES: [string, string][] = [
  ['.tar.gz', 'application/gzip'],
  ['.tgz', 'application/gzip'],
  ['.gz', 'application/gzip'],
  ['.xz', 'application/x-xz'],
  ['.zst', 'application/zstd'],
  ['.zip', 'application/zip'],
  ['.tar', 'application/x-tar'],
  ['.json', 'application/json'],
  ['.sha256', 'text/plain; charset=utf-8'],
  ['.txt', 'text/plain; charset=utf-8'],
  ['.md', 'text/markdown; charset=utf-8'],
  ['.html', 'text/html; charset=utf-8'],
  ['.htm', 'text/html; charset=utf-8'],
  ['.css', 'text/css; charset=utf-8'],
  ['.js', 'text/javascript; charset=utf-8'],
  ['.svg', 'image/svg+xml'],
  ['.png', 'image/png'],
  ['.jpg', 'image/jpeg'],
  ['.jpeg', 'image/jpeg'],
  ['.gif', 'image/gif'],
  ['.ico', 'image/x-icon'],
  ['.woff', 'font/woff'],
  ['.woff2', 'font/woff2'],
  ['.ttf', 'font/ttf'],
  ['.xml', 'application/xml'],
  ['.pdf', 'application/pdf'],
];

/** The Content-Type by file name (docs are served straight from the bucket; browsers need it). */
export function contentTypeOf(name: string): string {
  const lower = name.toLowerCase();
  for (const [ext, type] of CONTENT_TYPES) if (lower.endsWith(ext)) return type;
  return 'application/octet-stream';
}

// ---------------------------------------------------------------- the build directory

/** files/manifest.json of a build (written by `release build`). */
export interface ReleaseManifest {
  product: string;
  version: string;
  major: string;
  official: boolean;
  commit: string;
  name: string;
  files: ManifestFile[];
}

const SHA256_RE = /^[0-9a-f]{64}$/;
/** Bounds on what is read from the build directory (it is ours, but a stray file must not eat memory). */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
export const MAX_MANIFEST_FILES = 100_000;
export const MAX_CHECKSUM_FILE_BYTES = 4096;
export const MAX_LATEST_BYTES = 1024 * 1024;

/** RELEASE_BUILD_INVALID: the build directory is not one complete release. */
export function invalid(message: string, where: string, cause?: unknown): SlipwayError {
  return new SlipwayError('RELEASE_BUILD_INVALID', message, {
    where,
    ...(cause !== undefined ? { cause } : {}),
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A flat file name in files/: no separators, nothing hidden or walking. */
function isFlatName(name: string): boolean {
  return name !== '' && !name.includes('/') && !name.includes('\\') && !name.startsWith('.');
}

/** Parses and checks files/manifest.json (`where` names it in errors). */
export function parseReleaseManifest(text: string, where: string): ReleaseManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalid(`${where} is not valid JSON: ${(err as Error).message}`, where, err);
  }
  if (!isRecord(doc)) throw invalid(`${where} must hold a JSON object`, where);
  const str = (key: string): string => {
    const v = doc[key];
    if (typeof v !== 'string' || v === '')
      throw invalid(`${where}: '${key}' must be a non-empty string`, where);
    return v;
  };
  const official = doc.official;
  if (typeof official !== 'boolean') throw invalid(`${where}: 'official' must be true or false`, where);
  const files = doc.files;
  if (!Array.isArray(files)) throw invalid(`${where}: 'files' must be an array`, where);
  if (files.length > MAX_MANIFEST_FILES)
    throw invalid(`${where}: more than ${MAX_MANIFEST_FILES} files listed`, where);
  const seen = new Set<string>();
  const out: ManifestFile[] = files.map((f: unknown, i) => {
    const at = `${where}: files[${i}]`;
    if (!isRecord(f)) throw invalid(`${at} must be an object`, where);
    const { name, size, sha256 } = f;
    if (typeof name !== 'string' || !isFlatName(name))
      throw invalid(`${at}.name must be a plain file name (no '/', not hidden)`, where);
    if (name === MANIFEST_FILE) throw invalid(`${at}: manifest.json cannot list itself`, where);
    if (seen.has(name)) throw invalid(`${at}: '${name}' is listed twice`, where);
    seen.add(name);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
      throw invalid(`${at}.size must be a whole number of bytes`, where);
    if (typeof sha256 !== 'string' || !SHA256_RE.test(sha256))
      throw invalid(`${at}.sha256 must be 64 lowercase hex digits`, where);
    return { name, size, sha256 };
  });
  return {
    product: str('product'),
    version: str('version'),
    major: str('major'),
    official,
    commit: str('commit'),
    name: str('name'),
    files: out,
  };
}

/** Parses a sha256sum line (`<hex>  <name>\n`, or `<hex> *<name>` in binary mode) naming `name`. */
export function parseChecksumFile(text: string, name: string, where: string): string {
  const lines = text.split('\n').filter((l) => l !== '');
  const m = lines.length === 1 ? /^([0-9a-f]{64}) [ *](.+)$/.exec(lines[0] ?? '') : null;
  if (m?.[1] === undefined)
    throw invalid(`${where} must hold one line '<sha256>  ${name}' (sha256sum format)`, where);
  if (m[2] !== name) throw invalid(`${where} names '${m[2] ?? ''}', expected '${name}'`, where);
  return m[1];
}

/**
 * latest.json of a build: a JSON object whose `version` is the release being uploaded and whose
 * `manifestSha256`, when it has one, is that of the manifest.json being uploaded.
 */
export function checkLatestManifest(
  text: string,
  version: string,
  where: string,
  manifestSha256?: string,
): void {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalid(`${where} is not valid JSON: ${(err as Error).message}`, where, err);
  }
  if (!isRecord(doc) || typeof doc.version !== 'string')
    throw invalid(`${where} must be a JSON object with a 'version'`, where);
  if (doc.version !== version)
    throw invalid(`${where} names version ${doc.version}, but the release is ${version}`, where);
  if (
    manifestSha256 !== undefined &&
    doc.manifestSha256 !== undefined &&
    doc.manifestSha256 !== manifestSha256
  ) {
    throw invalid(
      `${where} names a manifest.json with sha256 ${JSON.stringify(doc.manifestSha256)}, but files/manifest.json has ${manifestSha256}`,
      where,
    );
  }
}

/** The `version` a remote latest.json names, or undefined when it cannot be read as one. */
export function latestVersionOf(text: string): string | undefined {
  try {
    const doc: unknown = JSON.parse(text);
    return isRecord(doc) && typeof doc.version === 'string' ? doc.version : undefined;
  } catch {
    return undefined;
  }
}

/** One entry of files/ as found on disk, hashed when it is a regular file. */
export interface BuildEntry {
  name: string;
  kind: 'file' | 'other';
  size: number;
  sha256?: string;
}

/**
 * Checks that files/ is exactly one complete release: the manifest is for this release; every
 * file it lists is there with its size and sha256; every other file is either listed or the
 * `.sha256` of a listed one; every artifact has a `.sha256` beside it that names it and holds
 * its real sha256. `checksums` maps each `.sha256` file's name to its text. Throws
 * RELEASE_BUILD_INVALID naming the first file that is wrong (`dir` prefixes the names).
 */
export function checkBuildFiles(args: {
  dir: string;
  manifest: ReleaseManifest;
  expect: { product: string; version: string; major: string; official: boolean };
  entries: BuildEntry[];
  checksums: ReadonlyMap<string, string>;
}): void {
  const { dir, manifest, expect, entries, checksums } = args;
  const manifestPath = `${dir}/${MANIFEST_FILE}`;
  for (const key of ['product', 'version', 'major', 'official'] as const) {
    if (manifest[key] !== expect[key]) {
      throw invalid(
        `${manifestPath} is for ${key} ${String(manifest[key])}, but the upload is for ${String(expect[key])}: rebuild the release (slipway release build)`,
        manifestPath,
      );
    }
  }
  const byName = new Map(entries.map((e) => [e.name, e]));
  for (const e of entries) {
    const where = `${dir}/${e.name}`;
    if (e.kind !== 'file') throw invalid(`${where} is not a regular file (files/ holds files only)`, where);
    if (!isFlatName(e.name)) throw invalid(`${where}: hidden files do not belong in files/`, where);
  }
  const listed = new Set<string>();
  for (const f of manifest.files) {
    const where = `${dir}/${f.name}`;
    const e = byName.get(f.name);
    if (e === undefined) throw invalid(`${where} is listed in manifest.json but missing`, where);
    if (e.size !== f.size) throw invalid(`${where} has ${e.size} bytes, manifest.json says ${f.size}`, where);
    if (e.sha256 !== f.sha256)
      throw invalid(`${where} has sha256 ${e.sha256 ?? '?'}, manifest.json says ${f.sha256}`, where);
    listed.add(f.name);
  }
  for (const e of entries) {
    if (e.name === MANIFEST_FILE) continue;
    const where = `${dir}/${e.name}`;
    if (e.name.endsWith(CHECKSUM_SUFFIX)) {
      const target = e.name.slice(0, -CHECKSUM_SUFFIX.length);
      const t = byName.get(target);
      if (t !== undefined) {
        const hex = parseChecksumFile(checksums.get(e.name) ?? '', target, where);
        if (hex !== t.sha256)
          throw invalid(`${where} says ${hex}, but ${target} has sha256 ${t.sha256 ?? '?'}`, where);
        continue;
      }
      if (!listed.has(e.name)) throw invalid(`${where} is the checksum of a missing file ${target}`, where);
    }
    if (!listed.has(e.name))
      throw invalid(`${where} is not listed in manifest.json (a stale or stray file?)`, where);
    if (!byName.has(`${e.name}${CHECKSUM_SUFFIX}`))
      throw invalid(`${where} has no ${e.name}${CHECKSUM_SUFFIX} beside it`, where);
  }
}

// ---------------------------------------------------------------- remote state → actions

/** Keys whose metadata must be read (HeadObject) to decide: those listed with the local size. */
export function keysToInspect(
  local: readonly LocalFile[],
  prefix: string,
  remote: readonly RemoteObject[],
): string[] {
  const sizes = new Map(local.map((f) => [prefix + f.rel, f.size]));
  return remote.filter((r) => sizes.get(r.key) === r.size).map((r) => r.key);
}

/** upload or skip: skip only when the object has this sha256 as metadata and this size. */
function decide(file: LocalFile, remote: RemoteObject | undefined): { action: ObjectAction; reason: string } {
  if (remote === undefined) return { action: 'upload', reason: 'new' };
  if (remote.size !== file.size) return { action: 'upload', reason: `size differs (${remote.size} there)` };
  if (remote.sha256 === undefined) return { action: 'upload', reason: 'no sha256 metadata there' };
  if (remote.sha256 !== file.sha256) return { action: 'upload', reason: 'sha256 differs' };
  return { action: 'skip', reason: 'same sha256 and size' };
}

/** An upload or a skip of a local file (`decision` from decide, or `keep` for latest.json). */
function fromLocal(
  phase: Phase,
  group: ObjectGroup,
  bucket: string,
  key: string,
  f: LocalFile,
  decision: { action: ObjectAction; reason: string },
): PlannedObject {
  return {
    phase,
    group,
    ...decision,
    bucket,
    key,
    size: f.size,
    sha256: f.sha256,
    file: f.path,
    ...(f.stamp !== undefined ? { stamp: f.stamp } : {}),
    contentType: contentTypeOf(f.rel),
  };
}

/** What compareVersions can order: the remote latest.json may hold anything. */
const VERSION_LIKE = /^\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.+-]*)?$/;

function compareKeys(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** The whole plan: every object with its action, in publication order. */
export function buildUploadPlan(input: PlanInput): UploadPlan {
  const { product, version, major, official, releasesBucket, docsBucket } = input;
  checkReleaseNames(product, version, major);
  const relPrefix = releasePrefix(product, version);
  const objects: PlannedObject[] = [];
  const warnings: string[] = [];

  // 1-2. The release's files; its manifest.json after the files it lists.
  const remoteRelease = new Map(input.release.remote.map((r) => [r.key, r]));
  const localKeys = new Set<string>();
  const releaseObjects: PlannedObject[] = [];
  for (const f of input.release.files) {
    const key = relPrefix + f.rel;
    localKeys.add(key);
    const phase = f.rel === MANIFEST_FILE ? 'release manifest' : 'release files';
    releaseObjects.push(
      fromLocal(phase, 'release', releasesBucket, key, f, decide(f, remoteRelease.get(key))),
    );
  }
  releaseObjects.sort(compareKeys);
  objects.push(...releaseObjects.filter((o) => o.phase === 'release files'));
  objects.push(...releaseObjects.filter((o) => o.phase === 'release manifest'));
  const strays = input.release.remote.filter((r) => !localKeys.has(r.key)).map((r) => r.key);
  if (strays.length > 0) {
    // A release directory is never pruned: its files may already be linked from elsewhere.
    warnings.push(
      `${strays.length} object(s) under s3://${releasesBucket}/${relPrefix} are not part of this build and are left as they are: ${strays.slice(0, 5).join(', ')}${strays.length > 5 ? ', …' : ''}`,
    );
  }

  // 3-4. The docs: new and changed files first, then what the build no longer has.
  const prefixes: string[] = [];
  if (input.docsSkipped !== undefined) warnings.push(input.docsSkipped);
  if (input.docs !== undefined && docsBucket !== undefined) {
    for (const prefix of docsPrefixes(major, official)) {
      prefixes.push(prefix);
      const remote = input.docs.remote[prefix] ?? [];
      const byKey = new Map(remote.map((r) => [r.key, r]));
      const keys = new Set<string>();
      const ups: PlannedObject[] = [];
      for (const f of input.docs.files) {
        const key = prefix + f.rel;
        keys.add(key);
        ups.push(fromLocal('docs', 'docs', docsBucket, key, f, decide(f, byKey.get(key))));
      }
      const dels: PlannedObject[] = remote
        .filter((r) => !keys.has(r.key))
        .map((r) => ({
          phase: 'stale docs',
          group: 'docs',
          action: 'delete',
          bucket: docsBucket,
          key: r.key,
          size: r.size,
          reason: 'not in the build',
        }));
      objects.push(...ups.sort(compareKeys), ...dels.sort(compareKeys));
    }
    // Keep the phases contiguous when there are two prefixes: all uploads, then all deletions.
    objects.sort((a, b) => PHASES.indexOf(a.phase) - PHASES.indexOf(b.phase));
  }

  // 5. latest.json, last; never moved back to an older release.
  const lf = input.latest.file;
  const lkey = latestKey(product);
  const remoteVersion = input.latest.remoteVersion;
  let latest = decide(lf, input.latest.remote);
  if (
    latest.action === 'upload' &&
    remoteVersion !== undefined &&
    VERSION_LIKE.test(remoteVersion) &&
    compareVersions(remoteVersion, version) > 0
  ) {
    latest = { action: 'keep', reason: `it names the newer ${remoteVersion}` };
    warnings.push(
      `s3://${releasesBucket}/${lkey} names ${remoteVersion}, newer than ${version}: it is left pointing there`,
    );
  }
  objects.push({
    ...fromLocal('latest', 'latest', releasesBucket, lkey, lf, latest),
    contentType: 'application/json',
    // The one object that changes in place: caches must ask again rather than serve an old pointer.
    cacheControl: 'no-cache',
  });

  const totals = { upload: 0, uploadBytes: 0, skip: 0, delete: 0, keep: 0 };
  for (const o of objects) {
    totals[o.action] += 1;
    if (o.action === 'upload') totals.uploadBytes += o.size;
  }
  return {
    product,
    version,
    major,
    official,
    releasesBucket,
    docsBucket,
    releasePrefix: relPrefix,
    docsPrefixes: prefixes,
    latestKey: lkey,
    remoteLatestVersion: remoteVersion,
    objects,
    abortMultipart: [...input.pendingMultipart].sort(compareKeys),
    warnings,
    totals,
  };
}

// ---------------------------------------------------------------- the plan, for people

/** The plan as `--dry-run` prints it: every object with its action and size, latest.json last. */
export function formatUploadPlan(plan: UploadPlan): string {
  const lines: string[] = [];
  const kind = plan.official ? 'official release' : 'release';
  lines.push(`upload ${plan.product} ${plan.version} (${kind}, major ${plan.major})`);
  const width = Math.max(6, ...plan.objects.map((o) => o.action.length));
  const row = (o: PlannedObject): string =>
    `    ${o.action.padEnd(width)}  ${formatSize(o.size).padStart(10)}  ${o.key}  (${o.reason})`;
  if (plan.abortMultipart.length > 0) {
    lines.push(`  pending multipart uploads of an interrupted run, aborted first:`);
    for (const m of plan.abortMultipart)
      lines.push(`    abort   s3://${m.bucket}/${m.key} (upload id ${m.uploadId})`);
  }
  let n = 0;
  for (const phase of PHASES) {
    const objs = plan.objects.filter((o) => o.phase === phase);
    if (objs.length === 0) continue;
    n += 1;
    const first = objs[0];
    const bucket = first === undefined ? '' : first.bucket;
    const title =
      phase === 'latest'
        ? `latest.json, LAST (now ${plan.remoteLatestVersion ?? 'absent'})`
        : phase === 'stale docs'
          ? 'stale docs, deleted after the new ones are up'
          : phase;
    lines.push(`  ${n}. ${title} → s3://${bucket}/`);
    for (const o of objs) lines.push(row(o));
  }
  for (const w of plan.warnings) lines.push(`  warning: ${w}`);
  const t = plan.totals;
  lines.push(
    `  total: ${t.upload} to upload (${formatSize(t.uploadBytes)}), ${t.skip} unchanged, ${t.delete} to delete${t.keep > 0 ? `, ${t.keep} kept` : ''}${plan.abortMultipart.length > 0 ? `, ${plan.abortMultipart.length} pending multipart upload(s) to abort` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
