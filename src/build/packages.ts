/**
 * `slipway package`: Omicron package manifests built on the job graph —
 * zone layers (`<name>.tar.gz`), tarballs (`<name>.tar`, VERSION first),
 * composites, prebuilt downloads and manual packages — with entry order and
 * headers as omicron-package writes them (specs/layers.md), and a cache
 * that rebuilds a package only when its ordered inputs changed.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import { SlipwayError, isSlipwayError } from '../core/errors.js';
import { silentReporter, warn, type Reporter } from '../core/events.js';
import { transformTar } from '../archive/tar-read.js';
import {
  entriesFromPlan,
  fileChunks,
  planTree,
  writeTarOutput,
  type PlannedEntry,
} from '../archive/tar-write.js';
import { encodeOmicronOxideJson } from '../formats/oxide-json.js';
import { deterministicHeader, encodeHeader, paddingFor } from '../formats/tar.js';
import {
  interpolatePaths,
  outputFileName,
  packagesForTarget,
  parsePackageManifest,
  resolveTarget,
  type PackageManifest,
  type PackageSpec,
  type Target,
} from '../formats/package-manifest.js';
import { DigestCache } from './digest-cache.js';
import { fetchCached, type CacheFetchOptions } from './fetch.js';
import { planGraph, runGraph, type GraphReport, type Job, type JobContext, type Plan } from './graph.js';

export interface PackageBuildOptions {
  manifest: string;
  /** `--target` words: a preset name and/or key=value pairs. */
  target?: string[];
  out?: string;
  jobs?: number;
  dryRun?: boolean;
  force?: boolean;
  /** Only these packages (and the components their composites need). */
  packages?: string[];
  /** Cargo's target directory, for `rust.binary_names` (default `target` beside the manifest). */
  rustDir?: string;
  /** Base URL of Omicron's S3 blob bucket. */
  blobUrl?: string;
  /** Base URL of buildomat's public files (`…/public/file`). */
  buildomatUrl?: string;
  /** Base URL of prebuilt package images (`<base>/<repo>/image/<commit>/<file>`). */
  prebuiltUrl?: string;
  cacheDir?: string;
  offline?: boolean;
  reporter?: Reporter;
  signal?: AbortSignal;
}

export const DEFAULT_BLOB_URL = 'https://oxide-omicron-build.s3.amazonaws.com';
export const DEFAULT_BUILDOMAT_URL = 'https://buildomat.eng.oxide.computer/public/file';

export interface PackageOutputInfo {
  name: string;
  file: string;
  cached: boolean;
}

export interface PackageBuildResult {
  target: Target;
  out: string;
  plan: Plan;
  report?: GraphReport;
  outputs: PackageOutputInfo[];
}

/** What goes into one archive, in order. */
type Step =
  | PlannedEntry
  | { kind: 'component'; file: string }
  | { kind: 'blob'; path: string; url: string; sha256?: string };

/** `/a/b` → `root/a/b`; `/` → `root/` (omicron-package's zone_archive_path). */
function zonePath(p: string): string {
  return p === '/' ? 'root/' : `root${p}`;
}

/** Every ancestor of an absolute path, itself included: `/`, `/a`, `/a/b`. */
function ancestors(p: string): string[] {
  const parts = p.split('/').filter((x) => x !== '');
  const out = ['/'];
  for (let i = 1; i <= parts.length; i++) out.push(`/${parts.slice(0, i).join('/')}`);
  return out;
}

interface BuildContext {
  manifest: PackageManifest;
  manifestDir: string;
  target: Target;
  out: string;
  rustDir: string;
  blobUrl: string;
  buildomatUrl: string;
}

/** The ordered inputs of a local or composite package (omicron-package's get_all_inputs). */
export function planPackage(pkg: PackageSpec, ctx: BuildContext, version = '0.0.0'): Step[] {
  const zone = pkg.output.type === 'zone';
  const steps: Step[] = [];
  steps.push(
    zone
      ? { kind: 'memory', path: 'oxide.json', data: encodeOmicronOxideJson('layer', pkg.name, version) }
      : { kind: 'memory', path: 'VERSION', data: Buffer.from(version) },
  );
  const src = pkg.source;
  if (src.type === 'composite') {
    for (const c of src.packages) steps.push({ kind: 'component', file: path.join(ctx.out, c.file) });
    return steps;
  }
  if (src.type !== 'local') return steps;
  const where = (line: number): string => `${ctx.manifest.file}:${line}`;
  for (const [i, p] of interpolatePaths(ctx.manifest, pkg, ctx.target).entries()) {
    if (zone && !p.to.startsWith('/')) {
      throw new SlipwayError(
        'MANIFEST_INVALID',
        `package.${pkg.name}.source.paths[${i}].to: a zone needs an absolute path, found '${p.to}'`,
        {
          where: where(p.line),
        },
      );
    }
    if (zone)
      for (const a of ancestors(path.posix.dirname(p.to))) steps.push({ kind: 'dir', path: zonePath(a) });
    const from = path.resolve(ctx.manifestDir, p.from);
    if (!fs.existsSync(from)) {
      throw new SlipwayError(
        'PACKAGE_INPUT_MISSING',
        `package.${pkg.name}.source.paths[${i}].from: no such file '${p.from}'${pkg.setupHint !== undefined ? ` (hint: ${pkg.setupHint})` : ''}`,
        { where: where(p.line) },
      );
    }
    const to = zone ? zonePath(p.to) : p.to.replace(/^\/+/, '');
    // omicron-package walks with follow_links(true): symlinked files are archived as files.
    for (const e of planTree(from, to, { follow: true })) steps.push(e);
  }
  if (src.rust !== undefined) {
    let dst = '';
    if (zone) {
      const bin = `/opt/oxide/${pkg.serviceName}/bin`;
      for (const a of ancestors(bin)) steps.push({ kind: 'dir', path: zonePath(a) });
      dst = `${zonePath(bin)}/`;
    }
    for (const name of src.rust.binaryNames) {
      const from = path.join(ctx.rustDir, src.rust.release ? 'release' : 'debug', name);
      if (!fs.existsSync(from)) {
        throw new SlipwayError(
          'PACKAGE_INPUT_MISSING',
          `package.${pkg.name}.source.rust.binary_names: no binary '${from}' (build it first${pkg.setupHint !== undefined ? `; hint: ${pkg.setupHint}` : ''})`,
          { where: where(src.rust.line) },
        );
      }
      for (const e of planTree(from, `${dst}${name}`, { follow: true })) steps.push(e);
    }
  }
  if (src.blobs.length > 0 || src.buildomatBlobs.length > 0) {
    let dst = 'blob/';
    if (zone) {
      const blobDir = `/opt/oxide/${pkg.serviceName}/blob`;
      for (const a of ancestors(blobDir)) steps.push({ kind: 'dir', path: zonePath(a) });
      dst = `${zonePath(blobDir)}/`;
    }
    for (const b of src.blobs)
      steps.push({ kind: 'blob', path: `${dst}${b.path}`, url: `${ctx.blobUrl}/${b.path}` });
    for (const b of src.buildomatBlobs) {
      steps.push({
        kind: 'blob',
        path: `${dst}${b.artifact}`,
        url: `${ctx.buildomatUrl}/${b.repo}/${b.series}/${b.commit}/${b.artifact}`,
        sha256: b.sha256,
      });
    }
  }
  return steps;
}

interface CacheRecord {
  fingerprint: string;
  size: number;
  mtimeMs: number;
}

function recordPath(out: string, name: string): string {
  return path.join(out, '.slipway', 'packages', `${name}.json`);
}

function readRecord(out: string, name: string): CacheRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordPath(out, name), 'utf8')) as CacheRecord;
  } catch {
    return undefined;
  }
}

/** Why an output must be (re)built, or undefined when the cache holds. */
function staleReason(out: string, name: string, output: string, fingerprint: string): string | undefined {
  const rec = readRecord(out, name);
  let st: fs.Stats;
  try {
    st = fs.statSync(output);
  } catch {
    return 'output missing';
  }
  if (rec === undefined) return 'not built by slipway before';
  if (rec.fingerprint !== fingerprint) return 'inputs changed';
  if (rec.size !== st.size || rec.mtimeMs !== st.mtimeMs) return 'output changed';
  return undefined;
}

type Entry = PlannedEntry | { kind: 'component'; file: string };

/** Blobs become files from the download cache (fetched in parallel); every other step is already an entry. */
async function resolveBlobs(
  steps: Step[],
  fetchOptions: CacheFetchOptions,
  log: (line: string) => void,
): Promise<Entry[]> {
  return Promise.all(
    steps.map(async (s): Promise<Entry> => {
      if (s.kind !== 'blob') return s;
      const got = await fetchCached(s.url, s.sha256, {
        ...fetchOptions,
        onRetry: (n, why) => {
          log(`retry ${n} of ${s.url}: ${why}`);
        },
      });
      if (!got.cached) log(`downloaded ${s.url} (${got.size} bytes, sha256 ${got.sha256})`);
      const st = fs.statSync(got.path);
      return {
        kind: 'file',
        path: s.path,
        from: got.path,
        size: st.size,
        mode: 0o644,
        mtimeMs: st.mtimeMs,
        ino: st.ino,
        dev: st.dev,
      };
    }),
  );
}

/** The cache key: output path and every entry in order (paths, modes, sizes, content digests, link targets). */
function fingerprintOf(entries: Entry[], output: string, digests: DigestCache): string {
  const h = createHash('sha256');
  h.update(`output ${output}\n`);
  for (const s of entries) {
    switch (s.kind) {
      case 'dir':
        h.update(`d ${s.path}\n`);
        break;
      case 'symlink':
        h.update(`l ${s.path} ${s.link}\n`);
        break;
      case 'memory':
        h.update(`m ${s.path} ${createHash('sha256').update(s.data).digest('hex')}\n`);
        break;
      case 'file':
        h.update(`f ${s.path} ${s.mode.toString(8)} ${s.size} ${digests.digest(s.from, s)}\n`);
        break;
      case 'component': {
        let st: fs.Stats;
        try {
          st = fs.statSync(s.file);
        } catch (err) {
          throw new SlipwayError(
            'PACKAGE_INPUT_MISSING',
            `component package '${path.basename(s.file)}' was not built`,
            {
              where: s.file,
              cause: err,
            },
          );
        }
        h.update(`c ${path.basename(s.file)} ${digests.digest(s.file, st)}\n`);
        break;
      }
    }
  }
  return h.digest('hex');
}

async function resolveSteps(
  steps: Step[],
  output: string,
  digests: DigestCache,
  fetchOptions: CacheFetchOptions,
  log: (line: string) => void,
): Promise<{ entries: Entry[]; fingerprint: string }> {
  const entries = await resolveBlobs(steps, fetchOptions, log);
  return { entries, fingerprint: fingerprintOf(entries, output, digests) };
}

async function dryRunReason(
  pkg: PackageSpec,
  ctx: BuildContext,
  digests: DigestCache,
  fetchOptions: CacheFetchOptions,
  force: boolean,
  rebuilt: ReadonlySet<string>,
): Promise<string | undefined> {
  if (force) return 'forced';
  const file = path.join(ctx.out, outputFileName(pkg));
  const src = pkg.source;
  if (src.type === 'manual') return fs.existsSync(file) ? undefined : 'missing: must be supplied by hand';
  if (src.type === 'prebuilt') return staleReason(ctx.out, pkg.name, file, `prebuilt ${src.sha256}`);
  if (src.type === 'composite') {
    const byOutput = new Map(ctx.manifest.packages.map((p) => [outputFileName(p), p.name]));
    const changed = src.packages.map((c) => byOutput.get(c.file) ?? c.file).filter((n) => rebuilt.has(n));
    if (changed.length > 0)
      return `component${changed.length > 1 ? 's' : ''} ${changed.join(', ')} will change`;
  }
  try {
    const steps = planPackage(pkg, ctx);
    const resolved = await resolveSteps(steps, file, digests, fetchOptions, () => undefined);
    return staleReason(ctx.out, pkg.name, file, resolved.fingerprint);
  } catch (err) {
    if (isSlipwayError(err, 'OFFLINE_MISSING')) return 'a blob must be downloaded';
    if (isSlipwayError(err)) return `would fail: ${err.message}`;
    throw err;
  }
}

/**
 * The archive's bytes. Files are hashed as they stream into the archive, so
 * a cold build reads each input once (the digests then make the cache key).
 */
async function* archiveBody(entries: Entry[], digests: DigestCache): AsyncGenerator<Buffer> {
  for (const e of entries) {
    if (e.kind === 'component') {
      // A composite holds each component's entries in list order, minus its oxide.json.
      yield* transformTar(
        e.file,
        (entry) => (entry.index === 0 && entry.path === 'oxide.json' ? null : [encodeHeader(entry)]),
        {
          requireGzip: true,
        },
      );
    } else if (e.kind === 'file') {
      const h = createHash('sha256');
      yield encodeHeader(deterministicHeader(e.path, 'file', { mode: e.mode, size: e.size }));
      for (const chunk of fileChunks(e.from, e.size)) {
        h.update(chunk);
        yield chunk;
      }
      const pad = paddingFor(e.size);
      if (pad.length > 0) yield pad;
      digests.remember(e.from, e, h.digest('hex'));
    } else {
      yield* entriesFromPlan([e]);
    }
  }
}

/** Packages to build: those for the target (or asked for), plus every component their composites need. */
function selectPackages(
  manifest: PackageManifest,
  target: Target,
  names: string[] | undefined,
): PackageSpec[] {
  const forTarget = packagesForTarget(manifest, target);
  const byOutput = new Map(forTarget.map((p) => [outputFileName(p), p]));
  const byName = new Map(forTarget.map((p) => [p.name, p]));
  const roots: PackageSpec[] = [];
  if (names !== undefined && names.length > 0) {
    for (const n of names) {
      const p = byName.get(n);
      if (p === undefined) {
        const known = manifest.packages.find((q) => q.name === n);
        throw new SlipwayError(
          'INVALID_ARGUMENT',
          known === undefined
            ? `no package '${n}' in ${manifest.file}`
            : `package '${n}' is not built for this target (only_for_targets)`,
        );
      }
      roots.push(p);
    }
  } else {
    for (const p of forTarget) if (!(p.output.type === 'zone' && p.output.intermediateOnly)) roots.push(p);
  }
  const selected = new Map<string, PackageSpec>();
  const visit = (p: PackageSpec): void => {
    if (selected.has(p.name)) return;
    selected.set(p.name, p);
    if (p.source.type === 'composite') {
      for (const c of p.source.packages) {
        const dep = byOutput.get(c.file);
        if (dep === undefined) {
          throw new SlipwayError(
            'MANIFEST_INVALID',
            `package.${p.name}.source.packages: '${c.file}' is not built for this target`,
            {
              where: `${manifest.file}:${c.line}`,
            },
          );
        }
        visit(dep);
      }
    }
  };
  roots.forEach(visit);
  return [...selected.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function componentDeps(manifest: PackageManifest, pkg: PackageSpec): string[] {
  if (pkg.source.type !== 'composite') return [];
  const byOutput = new Map(manifest.packages.map((p) => [outputFileName(p), p.name]));
  return pkg.source.packages.map((c) => byOutput.get(c.file) ?? c.file);
}

export async function buildPackages(options: PackageBuildOptions): Promise<PackageBuildResult> {
  const reporter = options.reporter ?? silentReporter;
  let text: string;
  try {
    text = fs.readFileSync(options.manifest, 'utf8');
  } catch (err) {
    throw new SlipwayError('NOT_FOUND', `cannot read manifest '${options.manifest}'`, {
      where: options.manifest,
      cause: err,
    });
  }
  const manifest = parsePackageManifest(
    text,
    path.basename(options.manifest) === options.manifest ? options.manifest : options.manifest,
  );
  for (const w of manifest.warnings) warn(reporter, `${w.where}: ${w.message}`);
  const target = resolveTarget(manifest, options.target ?? []);
  const out = path.resolve(options.out ?? 'out');
  const manifestDir = path.dirname(path.resolve(options.manifest));
  const ctx: BuildContext = {
    manifest,
    manifestDir,
    target,
    out,
    rustDir: path.resolve(manifestDir, options.rustDir ?? 'target'),
    blobUrl: (options.blobUrl ?? DEFAULT_BLOB_URL).replace(/\/+$/, ''),
    buildomatUrl: (options.buildomatUrl ?? DEFAULT_BUILDOMAT_URL).replace(/\/+$/, ''),
  };
  const cacheDir = path.resolve(options.cacheDir ?? path.join(out, '.slipway', 'downloads'));
  const fetchOptions: CacheFetchOptions = {
    cacheDir,
    ...(options.offline !== undefined ? { offline: options.offline } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  };
  const digests = new DigestCache(path.join(out, '.slipway', 'digests.json'));
  const selected = selectPackages(manifest, target, options.packages);
  const outputs: PackageOutputInfo[] = [];

  const jobs: Job[] = selected.map((pkg) => {
    const file = path.join(out, outputFileName(pkg));
    const info: PackageOutputInfo = { name: pkg.name, file, cached: false };
    outputs.push(info);
    const hint = (err: unknown): never => {
      if (pkg.setupHint !== undefined && isSlipwayError(err) && !err.message.includes(pkg.setupHint)) {
        throw new SlipwayError(err.code, `${err.message}\nhint: ${pkg.setupHint}`, {
          ...(err.where !== undefined ? { where: err.where } : {}),
          cause: err.cause,
        });
      }
      throw err;
    };
    const run = async (jc: JobContext): Promise<{ cached?: boolean; detail?: string }> => {
      const src = pkg.source;
      if (src.type === 'manual') {
        if (!fs.existsSync(file)) {
          throw new SlipwayError(
            'PACKAGE_INPUT_MISSING',
            `manual package '${pkg.name}': put ${path.basename(file)} into ${out} by hand`,
            {
              where: `${manifest.file}:${pkg.line}`,
            },
          );
        }
        info.cached = true;
        return { cached: true, detail: 'manual' };
      }
      if (src.type === 'prebuilt') {
        const url = `${(options.prebuiltUrl ?? DEFAULT_BUILDOMAT_URL).replace(/\/+$/, '')}/${src.repo}/image/${src.commit}/${outputFileName(pkg)}`;
        const got = await fetchCached(url, src.sha256, {
          ...fetchOptions,
          onRetry: (n, why) => {
            jc.log(`retry ${n}: ${why}`);
          },
        });
        const fingerprint = `prebuilt ${src.sha256}`;
        if (options.force !== true && staleReason(out, pkg.name, file, fingerprint) === undefined) {
          info.cached = true;
          return { cached: true };
        }
        await writeFileAtomic(file, fs.readFileSync(got.path));
        await saveRecord(out, pkg.name, file, fingerprint);
        return { detail: got.cached ? 'from cache' : 'downloaded' };
      }
      const steps = planPackage(pkg, ctx);
      const entries = await resolveBlobs(steps, fetchOptions, (l) => {
        jc.log(l);
      });
      // With no output or no record the answer is known: build, and hash while writing.
      let why =
        options.force === true
          ? 'forced'
          : !fs.existsSync(file)
            ? 'output missing'
            : readRecord(out, pkg.name) === undefined
              ? 'not built by slipway before'
              : undefined;
      why ??= staleReason(out, pkg.name, file, fingerprintOf(entries, file, digests));
      if (why === undefined) {
        info.cached = true;
        return { cached: true };
      }
      jc.log(`building ${path.basename(file)}: ${why}`);
      const r = await writeTarOutput(file, () => archiveBody(entries, digests), {
        gzip: pkg.output.type === 'zone' ? { level: 1 } : false,
        reporter,
        task: `write ${path.basename(file)}`,
      });
      await saveRecord(out, pkg.name, file, fingerprintOf(entries, file, digests));
      return { detail: `${r.size} bytes, sha256 ${r.sha256}` };
    };
    return {
      name: pkg.name,
      deps: componentDeps(manifest, pkg),
      describe: describePackage(pkg, file, out),
      run: (jc: JobContext) => run(jc).catch(hint),
    };
  });

  const plan = planGraph(jobs);
  if (options.dryRun === true) {
    // What would be built and why: the same fingerprints a run computes, with no download and no write.
    const rebuilt = new Set<string>();
    for (const name of plan.order) {
      const pkg = selected.find((p) => p.name === name);
      const entry = plan.jobs.find((j) => j.name === name);
      if (pkg === undefined || entry === undefined) continue;
      const why = await dryRunReason(
        pkg,
        ctx,
        digests,
        { ...fetchOptions, offline: true },
        options.force === true,
        rebuilt,
      );
      if (why !== undefined) rebuilt.add(name);
      entry.describe = `${entry.describe ?? ''}: ${why ?? 'up to date (cached)'}`;
    }
    return { target, out, plan, outputs };
  }
  fs.mkdirSync(out, { recursive: true });
  const report = await runGraph(jobs, {
    logDir: path.join(out, 'logs'),
    reporter,
    ...(options.jobs !== undefined ? { concurrency: options.jobs } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  await digests.save();
  return { target, out, plan, report, outputs };
}

function describePackage(pkg: PackageSpec, file: string, out: string): string {
  const rel = path.relative(out, file);
  switch (pkg.source.type) {
    case 'manual':
      return `expect ${rel} (manual)`;
    case 'prebuilt':
      return `download ${rel} (prebuilt ${pkg.source.repo}@${pkg.source.commit.slice(0, 12)}, sha256 ${pkg.source.sha256.slice(0, 12)}…)`;
    case 'composite':
      return `compose ${rel} from ${pkg.source.packages.map((p) => p.file).join(', ')}`;
    case 'local':
      return `build ${rel} (${pkg.output.type}${pkg.output.type === 'zone' && pkg.output.intermediateOnly ? ', intermediate' : ''})`;
  }
}

async function saveRecord(out: string, name: string, file: string, fingerprint: string): Promise<void> {
  const st = fs.statSync(file);
  const p = recordPath(out, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const rec: CacheRecord = { fingerprint, size: st.size, mtimeMs: st.mtimeMs };
  await writeFileAtomic(p, JSON.stringify(rec));
}

export interface StampResult {
  name: string;
  version: string;
  output: string;
  sha256: string;
}

/**
 * `package stamp PKG VERSION`: a copy of the built output in
 * `<out>/versioned/` whose oxide.json (zones) or VERSION (tarballs) carries
 * the release version; every other entry is kept as it is.
 */
export async function stampPackage(options: {
  manifest: string;
  out?: string;
  name: string;
  version: string;
  reporter?: Reporter;
}): Promise<StampResult> {
  const manifest = parsePackageManifest(fs.readFileSync(options.manifest, 'utf8'), options.manifest);
  const pkg = manifest.packages.find((p) => p.name === options.name);
  if (pkg === undefined)
    throw new SlipwayError('INVALID_ARGUMENT', `no package '${options.name}' in ${options.manifest}`);
  if (!/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.test(options.version)) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `version '${options.version}' is not a semantic version (e.g. 1.2.3 or 1.0.0-0.ci+git1234)`,
    );
  }
  const out = path.resolve(options.out ?? 'out');
  const input = path.join(out, outputFileName(pkg));
  if (!fs.existsSync(input)) {
    throw new SlipwayError(
      'PACKAGE_INPUT_MISSING',
      `${outputFileName(pkg)} is not built yet: run 'slipway package ${pkg.name}' first`,
      { where: input },
    );
  }
  const zone = pkg.output.type === 'zone';
  const first = zone ? 'oxide.json' : 'VERSION';
  const data = zone
    ? encodeOmicronOxideJson('layer', pkg.name, options.version)
    : Buffer.from(options.version);
  const output = path.join(out, 'versioned', outputFileName(pkg));
  fs.mkdirSync(path.dirname(output), { recursive: true });
  const r = await writeTarOutput(
    output,
    async function* () {
      yield* entriesFromPlan([{ kind: 'memory', path: first, data }]);
      yield* transformTar(input, (e) => {
        if (e.index === 0) {
          if (e.path !== first) {
            throw new SlipwayError(
              'OXIDE_JSON_MISSING',
              `the first entry of ${path.basename(input)} is '${e.path}', not ${first}`,
              { where: input },
            );
          }
          return null;
        }
        return [encodeHeader(e)];
      });
    },
    {
      gzip: zone ? { level: 1 } : false,
      ...(options.reporter !== undefined ? { reporter: options.reporter } : {}),
    },
  );
  return { name: pkg.name, version: options.version, output, sha256: r.sha256 };
}

export interface PackageListing {
  target: Target;
  packages: { name: string; service: string; source: string; output: string; intermediate: boolean }[];
}

export function listPackages(options: { manifest: string; target?: string[] }): PackageListing {
  const manifest = parsePackageManifest(fs.readFileSync(options.manifest, 'utf8'), options.manifest);
  const target = resolveTarget(manifest, options.target ?? []);
  return {
    target,
    packages: packagesForTarget(manifest, target).map((p) => ({
      name: p.name,
      service: p.serviceName,
      source: p.source.type,
      output: outputFileName(p),
      intermediate: p.output.type === 'zone' && p.output.intermediateOnly,
    })),
  };
}
