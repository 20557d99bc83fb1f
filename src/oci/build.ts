/**
 * `oci build`: rootfs sources (one per platform) into an OCI image layout:
 * one gzip layer, one config and one manifest per platform, and an image
 * index over them carrying the release annotations, tagged in index.json.
 *
 * Plan, then apply: every option and every rootfs is checked first (a bad
 * one leaves the output untouched, not even created); then the blobs are
 * streamed in (content-addressed, so an interrupted run only leaves blobs a
 * rerun reuses) and index.json is rewritten last, atomically.
 *
 * Deterministic: the layer tar is canonical (rootfs.ts), gzip is pigz-style
 * and independent of the worker count, JSON is encoded canonically
 * (formats/oci.ts), and the only time in it is `created`.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { silentReporter, type Reporter } from '../core/events.js';
import { createParallelGzip } from '../archive/pgzip.js';
import {
  ANNOTATION_CREATED,
  ANNOTATION_REF_NAME,
  MEDIA_TYPE_LAYER_TAR_GZIP,
  OCI_LAYOUT_FILE,
  encodeConfig,
  encodeIndex,
  encodeManifest,
  formatPlatform,
  parsePlatform,
  type Descriptor,
  type ImageConfig,
  type Platform,
} from '../formats/oci.js';
import { clockFrom } from '../repo/index.js';
import { OciLayout } from './layout.js';
import { planRootfs, type RootfsKind, type RootfsPlan } from './rootfs.js';

export interface OciBuildPlatform {
  platform: Platform;
  /** A directory, a tar or gzip'd tar, or a layer archive. */
  rootfs: string;
}

export interface OciBuildOptions {
  platforms: OciBuildPlatform[];
  /** The image layout directory (created when absent; an existing layout gets the new tag). */
  output: string;
  /** index.json's `org.opencontainers.image.ref.name` for the index; default 'latest'. */
  tag?: string;
  /** On the image index (org.opencontainers.image.created is added). */
  annotations?: Record<string, string>;
  /** config.Labels of every image. */
  labels?: Record<string, string>;
  entrypoint?: string[];
  cmd?: string[];
  /** `NAME=value` entries. */
  env?: string[];
  workingDir?: string;
  /** Default: SOURCE_DATE_EPOCH when set, else the epoch (never the wall clock: builds must repeat). */
  created?: Date;
  /** gzip level 0..9, default 6 (gzip's and pigz's default: images are pulled far more than built). */
  level?: number;
  /** gzip worker threads, default every core. */
  workers?: number;
  /** Where a gzip'd rootfs tarball is inflated while building (default: the OS temp directory). */
  tmpDir?: string;
  signal?: AbortSignal;
  reporter?: Reporter;
}

export interface OciBuildImage {
  platform: Platform;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** sha256 of the uncompressed layer (rootfs.diff_ids). */
  diffId: string;
}

export interface OciBuildResult {
  index: Descriptor;
  tag: string;
  images: OciBuildImage[];
}

/** What a build will do, with every input checked (for --dry-run, and the first half of a build). */
export interface OciBuildPlan {
  output: string;
  tag: string;
  created: string;
  annotations: Record<string, string>;
  platforms: {
    platform: string;
    rootfs: string;
    kind: RootfsKind;
    entries: number;
    contentBytes: number;
  }[];
}

const DEFAULT_TAG = 'latest';
const DEFAULT_LEVEL = 6;

// ---------------------------------------------------------------- pure checks

/** image-layout's ref.name grammar: components of alphanumerics joined by [-._:@+] or "--", split by '/'. */
const REF_NAME_RE =
  /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

function bad(where: string, message: string): SlipwayError {
  return new SlipwayError('INVALID_ARGUMENT', `${where}: ${message}`, { where });
}

export function checkRefName(tag: string): string {
  if (!REF_NAME_RE.test(tag)) {
    throw bad('--tag', `'${tag}' is not a valid ref name (letters and digits, joined by - . _ : @ + or /)`);
  }
  return tag;
}

function checkMap(m: Record<string, string> | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m ?? {})) {
    if (k === '') throw bad(what, 'empty key');
    if (typeof v !== 'string') throw bad(what, `value of '${k}' is not a string`);
    out[k] = v;
  }
  return out;
}

/** RFC 3339 as the image spec wants it; whole seconds drop the ".000". */
export function rfc3339(d: Date): string {
  if (Number.isNaN(d.getTime())) throw bad('created', 'not a valid date');
  return d.toISOString().replace('.000Z', 'Z');
}

function defaultCreated(env: NodeJS.ProcessEnv): Date {
  return env.SOURCE_DATE_EPOCH !== undefined && env.SOURCE_DATE_EPOCH !== '' ? clockFrom(env) : new Date(0);
}

/** The platforms, each checked (GOOS/GOARCH names) and unique. */
function checkPlatforms(list: readonly OciBuildPlatform[]): OciBuildPlatform[] {
  if (list.length === 0) throw bad('--platform', 'at least one platform is needed');
  const seen = new Set<string>();
  return list.map((p) => {
    const platform = parsePlatform(formatPlatform(p.platform));
    const name = formatPlatform(platform);
    if (seen.has(name)) throw bad('--platform', `${name} is given more than once`);
    seen.add(name);
    if (p.rootfs === '') throw bad('--platform', `${name} has an empty rootfs path`);
    return { platform, rootfs: p.rootfs };
  });
}

/** The image config for one platform (pure). */
export function imageConfig(
  o: Pick<OciBuildOptions, 'labels' | 'entrypoint' | 'cmd' | 'env' | 'workingDir'>,
  platform: Platform,
  created: string,
  diffId: string,
): ImageConfig {
  const config: ImageConfig['config'] = {};
  if (o.env !== undefined && o.env.length > 0) config.Env = [...o.env];
  if (o.entrypoint !== undefined) config.Entrypoint = [...o.entrypoint];
  if (o.cmd !== undefined) config.Cmd = [...o.cmd];
  if (o.workingDir !== undefined) config.WorkingDir = o.workingDir;
  if (o.labels !== undefined && Object.keys(o.labels).length > 0) config.Labels = { ...o.labels };
  const c: ImageConfig = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    config,
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created, created_by: 'slipway oci build' }],
  };
  if (platform.variant !== undefined) c.variant = platform.variant;
  return c;
}

interface Checked {
  platforms: OciBuildPlatform[];
  output: string;
  tag: string;
  created: Date;
  annotations: Record<string, string>;
  labels: Record<string, string>;
}

function checkOptions(o: OciBuildOptions): Checked {
  const platforms = checkPlatforms(o.platforms);
  if (o.output === '') throw bad('--output', 'empty path');
  const tag = checkRefName(o.tag ?? DEFAULT_TAG);
  const created = o.created ?? defaultCreated(process.env);
  const createdText = rfc3339(created);
  if (created.getTime() < 0) throw bad('created', 'before 1970');
  const annotations = checkMap(o.annotations, '--annotation');
  if (ANNOTATION_REF_NAME in annotations) {
    throw bad('--annotation', `${ANNOTATION_REF_NAME} is set from --tag in index.json`);
  }
  annotations[ANNOTATION_CREATED] ??= createdText;
  const labels = checkMap(o.labels, '--label');
  for (const e of o.env ?? []) {
    if (!/^[^=]+=/.test(e)) throw bad('--env', `'${e}' is not NAME=value`);
  }
  if (o.level !== undefined && (!Number.isInteger(o.level) || o.level < 0 || o.level > 9)) {
    throw bad('--level', `gzip level must be 0..9, got ${o.level}`);
  }
  return { platforms, output: o.output, tag, created, annotations, labels };
}

// ---------------------------------------------------------------- I/O

/** Fails (changing nothing) unless `dir` is absent, an empty directory, or a valid image layout. */
async function checkOutput(dir: string): Promise<void> {
  await OciLayout.checkWritable(dir);
  if (fs.existsSync(path.join(dir, OCI_LAYOUT_FILE))) await OciLayout.open(dir);
}

/** Plans every distinct rootfs (a source shared by platforms is read once); disposes all on error. */
async function planSources(c: Checked, o: OciBuildOptions, spool: boolean): Promise<Map<string, RootfsPlan>> {
  const plans = new Map<string, RootfsPlan>();
  try {
    for (const p of c.platforms) {
      const key = path.resolve(p.rootfs);
      if (plans.has(key)) continue;
      plans.set(
        key,
        await planRootfs(p.rootfs, {
          spool,
          ...(o.tmpDir !== undefined ? { tmpDir: o.tmpDir } : {}),
          ...(o.reporter !== undefined ? { reporter: o.reporter } : {}),
          ...(o.signal !== undefined ? { signal: o.signal } : {}),
        }),
      );
    }
  } catch (err) {
    await Promise.all([...plans.values()].map((p) => p.dispose()));
    throw err;
  }
  return plans;
}

function describePlan(c: Checked, plans: Map<string, RootfsPlan>): OciBuildPlan {
  return {
    output: c.output,
    tag: c.tag,
    created: rfc3339(c.created),
    annotations: Object.fromEntries(Object.entries(c.annotations).sort(([a], [b]) => (a < b ? -1 : 1))),
    platforms: c.platforms.map((p) => {
      const plan = plans.get(path.resolve(p.rootfs)) as RootfsPlan;
      return {
        platform: formatPlatform(p.platform),
        rootfs: p.rootfs,
        kind: plan.kind,
        entries: plan.entries.length,
        contentBytes: plan.contentBytes,
      };
    }),
  };
}

/** Checks every option and rootfs and says what a build would do; writes nothing. */
export async function planOciBuild(o: OciBuildOptions): Promise<OciBuildPlan> {
  const c = checkOptions(o);
  await checkOutput(c.output);
  const plans = await planSources(c, o, false);
  try {
    return describePlan(c, plans);
  } finally {
    await Promise.all([...plans.values()].map((p) => p.dispose()));
  }
}

interface LayerResult {
  layer: Descriptor;
  diffId: string;
  tarSize: number;
}

/** Small pieces (tar headers, small files) are gathered so the compressor sees few, large writes. */
const BATCH = 1 << 20;

/** tar → sha256 (diff_id) → parallel gzip → the layout, streaming. */
async function writeLayer(
  layout: OciLayout,
  plan: RootfsPlan,
  mtime: number,
  o: OciBuildOptions,
  task: string,
): Promise<LayerResult> {
  const reporter = o.reporter ?? silentReporter;
  const gzip = createParallelGzip({
    level: o.level ?? DEFAULT_LEVEL,
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
  });
  const stored = layout.putStream(gzip);
  const diff = createHash('sha256');
  let tarSize = 0;
  let reported = 0;
  reporter.emit({ kind: 'task-start', task, unit: 'bytes' });
  try {
    let pending: Buffer[] = [];
    let pendingSize = 0;
    const write = async (chunk: Buffer): Promise<void> => {
      diff.update(chunk);
      tarSize += chunk.length;
      if (tarSize - reported > 8 << 20) {
        reported = tarSize;
        reporter.emit({ kind: 'task-progress', task, done: tarSize });
      }
      if (!gzip.write(chunk)) await once(gzip, 'drain');
    };
    const flush = async (): Promise<void> => {
      if (pending.length === 0) return;
      const joined = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingSize);
      pending = [];
      pendingSize = 0;
      await write(joined);
    };
    try {
      // Fed by hand (not Readable.from): the source reads files synchronously and
      // writing straight into the compressor keeps its workers busy.
      for (const chunk of plan.tar(mtime)) {
        if (o.signal?.aborted === true) throw new SlipwayError('INTERRUPTED', 'interrupted');
        if (chunk.length >= BATCH / 4) {
          await flush();
          await write(chunk);
        } else {
          pending.push(chunk);
          pendingSize += chunk.length;
          if (pendingSize >= BATCH) await flush();
        }
      }
      await flush();
      gzip.end();
    } catch (err) {
      gzip.destroy(err instanceof Error ? err : new Error(String(err)));
      await stored.catch(() => undefined);
      throw err;
    }
    const blob = await stored;
    reporter.emit({ kind: 'task-end', task, ok: true, detail: `${tarSize} → ${blob.size} bytes` });
    return {
      layer: { mediaType: MEDIA_TYPE_LAYER_TAR_GZIP, digest: blob.digest, size: blob.size },
      diffId: `sha256:${diff.digest('hex')}`,
      tarSize,
    };
  } catch (err) {
    reporter.emit({ kind: 'task-end', task, ok: false });
    throw err;
  }
}

/** Builds (or adds to) an OCI image layout; see the file comment. */
export async function buildOciLayout(o: OciBuildOptions): Promise<OciBuildResult> {
  const c = checkOptions(o);
  await checkOutput(c.output);
  const plans = await planSources(c, o, true);
  try {
    const created = rfc3339(c.created);
    const mtime = Math.floor(c.created.getTime() / 1000);
    const layout = await OciLayout.create(c.output);
    const layers = new Map<RootfsPlan, LayerResult>();
    const images: OciBuildImage[] = [];
    for (const p of c.platforms) {
      const plan = plans.get(path.resolve(p.rootfs)) as RootfsPlan;
      let layer = layers.get(plan);
      if (layer === undefined) {
        layer = await writeLayer(layout, plan, mtime, o, `layer ${formatPlatform(p.platform)}`);
        layers.set(plan, layer);
      }
      const config = encodeConfig(imageConfig({ ...o, labels: c.labels }, p.platform, created, layer.diffId));
      await layout.putBytes(config.bytes);
      const manifest = encodeManifest(
        { config: config.descriptor, layers: [layer.layer] },
        { platform: p.platform },
      );
      await layout.putBytes(manifest.bytes);
      images.push({
        platform: p.platform,
        manifest: manifest.descriptor,
        config: config.descriptor,
        layers: [layer.layer],
        diffId: layer.diffId,
      });
    }
    const index = encodeIndex({ manifests: images.map((i) => i.manifest), annotations: c.annotations });
    await layout.putBytes(index.bytes);
    // Last, and atomic: until here the layout's tags are as they were.
    await layout.tag(index.descriptor, c.tag);
    return { index: index.descriptor, tag: c.tag, images };
  } finally {
    await Promise.all([...plans.values()].map((p) => p.dispose()));
  }
}
