/**
 * `slipway releng DIR`: the whole release of a product in one run, on the
 * job graph — packages, stamped with the release version, host and
 * trampoline OS images (ramdisk → `boot mkimage` → `os.tar.gz`), firmware,
 * the control-plane composite, the signed repository and its re-verification.
 *
 * Every job records a fingerprint of its inputs in `<out>/.slipway/releng-
 * state.json`; a job whose fingerprint and outputs are unchanged is skipped,
 * so a second run with no change does nothing.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { walkEntries, writeTarOutput } from '../archive/tar-write.js';
import { mkimage } from '../boot/index.js';
import { DigestCache } from '../build/digest-cache.js';
import {
  buildPackages,
  planGraph,
  runGraph,
  stampPackage,
  type GraphReport,
  type Job,
} from '../build/index.js';
import { fetchPrereqs, loadPrereqs } from '../build/prereq.js';
import { writeFileAtomic } from '../core/atomic-file.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { type Reporter, silentReporter, warn } from '../core/events.js';
import { formatSize } from '../core/size.js';
import { parseRelengConfig, type OsImageConfig, type RelengConfig } from '../formats/releng-config.js';
import { formatPrivateKey, generateKey, type RoleSigners } from '../formats/tuf/index.js';
import {
  assembleRepository,
  clockFrom,
  inspectRepository,
  loadSigners,
  parseDuration,
  verifyRepositoryZip,
} from '../repo/index.js';
import { fileMember, writeComposite } from '../repo/composite.js';

export const RELENG_CONFIG = 'releng.toml';

export interface RelengOptions {
  dir: string;
  out?: string;
  jobs?: number;
  dryRun?: boolean;
  /** `-k` values; else $SLIPWAY_TUF_KEY; else a throwaway key kept in `<out>/.slipway/`. */
  keys?: string[];
  /** --var for prereqs.toml. */
  vars?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  reporter?: Reporter;
  signal?: AbortSignal;
}

export interface RelengResult {
  out: string;
  version: string;
  dryRun: boolean;
  plan: { name: string; deps: string[]; describe: string }[];
  report?: GraphReport;
  repo?: { file: string; sha256: string; size: number; validUntil: string };
  artifacts: { kind: string; name: string; version: string; file: string }[];
  /** Set when this run generated the throwaway signing key. */
  generatedKey?: string;
}

/** `<major>.0.0-0.ci+git<11 hex>` in CI, `<major>.0.0-0.local` otherwise (Omicron's rule). */
export function releaseVersion(major: number, env: NodeJS.ProcessEnv, commit: () => string): string {
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0';
  return ci ? `${major}.0.0-0.ci+git${commit().slice(0, 11)}` : `${major}.0.0-0.local`;
}

function gitCommit(dir: string): string {
  try {
    return execFileSync('git', ['-C', dir, 'rev-parse', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch (err) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `CI builds take their version from git, but ${dir} is not in a git checkout`,
      {
        where: dir,
        cause: err,
      },
    );
  }
}

/** TOML basic string (JSON's escapes are a subset TOML accepts). */
function tomlString(s: string): string {
  return JSON.stringify(s);
}

class State {
  readonly #file: string;
  #entries: Record<string, string> = {};
  #writing: Promise<void> = Promise.resolve();

  constructor(file: string) {
    this.#file = file;
    try {
      this.#entries = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
    } catch {
      // No state yet (or unreadable): every job runs.
    }
  }

  fresh(job: string, fingerprint: string, outputs: readonly string[]): boolean {
    return this.#entries[job] === fingerprint && outputs.every((o) => fs.existsSync(o));
  }

  record(job: string, fingerprint: string): Promise<void> {
    this.#entries[job] = fingerprint;
    const text = JSON.stringify(this.#entries, null, 2);
    // Jobs finish concurrently: write one after another so the last state wins.
    this.#writing = this.#writing.then(() => writeFileAtomic(this.#file, text));
    return this.#writing;
  }

  forget(job: string): void {
    // Until its new fingerprint is recorded, a job that starts is stale.
    this.#entries = Object.fromEntries(Object.entries(this.#entries).filter(([k]) => k !== job));
  }
}

function fingerprint(parts: readonly string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p}\0`);
  return h.digest('hex');
}

/** A directory's shape without reading its files: path, type, size, mtime, mode of everything. */
function treeStamp(dir: string): string {
  const lines: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const full = path.join(d, name);
      const st = fs.lstatSync(full);
      lines.push(`${rel}${name} ${st.mode} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(full, `${rel}${name}/`);
    }
  };
  try {
    walk(dir, '');
  } catch (err) {
    throw fromSystemError(err, 'cannot read', dir);
  }
  return lines.join('\n');
}

interface Context {
  config: RelengConfig;
  dir: string;
  out: string;
  version: string;
  digests: DigestCache;
  state: State;
  signers: RoleSigners;
  signerIds: string;
  env: NodeJS.ProcessEnv;
  reporter: Reporter;
  jobs?: number;
  vars: Record<string, string>;
}

function fileDigest(c: Context, file: string): string {
  try {
    return c.digests.digest(file, fs.statSync(file));
  } catch (err) {
    throw fromSystemError(err, 'cannot read', file);
  }
}

/** Runs `work` unless the fingerprint and outputs say it is done already. */
async function cached(
  c: Context,
  job: string,
  parts: () => string[],
  outputs: string[],
  work: () => Promise<void>,
): Promise<{ cached: boolean }> {
  const fp = fingerprint(parts());
  if (c.state.fresh(job, fp, outputs)) return { cached: true };
  c.state.forget(job);
  await work();
  // Inputs are fingerprinted again after the work: a file edited meanwhile makes the next run redo it.
  await c.state.record(job, fingerprint(parts()) === fp ? fp : 'changed-during-run');
  return { cached: false };
}

function osPaths(
  c: Context,
  os: OsImageConfig,
): { dir: string; raw: string; image: string; archive: string } {
  const dir = path.join(c.out, 'os', os.kind);
  return {
    dir,
    raw: path.join(dir, 'ramdisk.tar'),
    image: path.join(dir, 'zfs.img'),
    archive: path.join(dir, 'os.tar.gz'),
  };
}

function osJob(c: Context, os: OsImageConfig): Job {
  const p = osPaths(c, os);
  const src = (rel: string): string => path.resolve(c.dir, rel);
  return {
    name: `os:${os.kind}`,
    deps: [],
    describe: `${os.kind} OS image: ${os.ramdisk.kind === 'dir' ? `directory ${os.ramdisk.path}` : os.ramdisk.path} → boot mkimage → ${path.relative(c.out, p.archive)}`,
    run: async (ctx) => {
      const ramdisk = os.ramdisk.kind === 'dir' ? p.raw : src(os.ramdisk.path);
      return cached(
        c,
        `os:${os.kind}`,
        () => [
          c.version,
          os.imageName,
          os.dataset,
          String(os.targetMiB ?? ''),
          os.ramdisk.kind === 'dir' ? treeStamp(src(os.ramdisk.path)) : fileDigest(c, ramdisk),
          ...os.phase1.map((r) => `${r.file}=${fileDigest(c, src(r.path))}`),
        ],
        [p.archive],
        async () => {
          await fsp.mkdir(p.dir, { recursive: true });
          if (os.ramdisk.kind === 'dir') {
            // No filesystem builder here: a deterministic tar of the tree is the ramdisk's payload.
            ctx.log(`packing ${os.ramdisk.path} into ${p.raw}`);
            await writeTarOutput(
              p.raw,
              (exclude) => walkEntries(src(os.ramdisk.path), '.', { follow: false, exclude }),
              {
                gzip: false,
              },
            );
          }
          ctx.log(`boot mkimage -i ${ramdisk} -o ${p.image} -N ${os.imageName} -D ${os.dataset}`);
          await mkimage({
            input: ramdisk,
            output: p.image,
            name: os.imageName,
            dataset: os.dataset,
            ...(os.targetMiB !== undefined ? { targetMiB: os.targetMiB } : {}),
            signal: ctx.signal,
          });
          const members = [
            ...os.phase1.map((r) => fileMember(r.file, src(r.path))),
            fileMember('image/zfs.img', p.image),
          ];
          await writeComposite(p.archive, 'os', members, { mtime: 0 });
          ctx.log(`wrote ${p.archive}`);
        },
      );
    },
  };
}

function packagesJob(c: Context): Job {
  return {
    name: 'packages',
    deps: [],
    describe: `build ${c.config.packageManifest} (target ${c.config.target.join(' ') || 'default'})`,
    run: async (ctx) => {
      const r = await buildPackages({
        manifest: path.resolve(c.dir, c.config.packageManifest),
        target: c.config.target,
        out: path.join(c.out, 'packages'),
        ...(c.jobs !== undefined ? { jobs: c.jobs } : {}),
        signal: ctx.signal,
      });
      const built = r.outputs.filter((o) => !o.cached).length;
      if (r.report !== undefined && !r.report.ok) {
        const failed = r.report.jobs.find((j) => j.name === r.report?.failed);
        throw new SlipwayError(
          'BUILD_FAILED',
          `package ${r.report.failed ?? '?'} failed: ${failed?.error?.message ?? 'see its log'} (log: ${failed?.logFile ?? path.join(c.out, 'packages', 'logs')})`,
          {
            ...(failed?.error?.where !== undefined ? { where: failed.error.where } : {}),
            cause: failed?.error,
          },
        );
      }
      return { cached: built === 0, detail: `${r.outputs.length} packages, ${built} built` };
    },
  };
}

function stampedPath(c: Context, zone: string): string {
  return path.join(c.out, 'packages', 'versioned', `${zone}.tar.gz`);
}

function stampJob(c: Context, zone: string): Job {
  const input = path.join(c.out, 'packages', `${zone}.tar.gz`);
  return {
    name: `stamp:${zone}`,
    deps: ['packages'],
    describe: `stamp ${zone} with ${c.version}`,
    run: async () =>
      cached(
        c,
        `stamp:${zone}`,
        () => [c.version, fileDigest(c, input)],
        [stampedPath(c, zone)],
        async () => {
          await stampPackage({
            manifest: path.resolve(c.dir, c.config.packageManifest),
            out: path.join(c.out, 'packages'),
            name: zone,
            version: c.version,
          });
        },
      ),
  };
}

function controlPlaneJob(c: Context): Job {
  const output = path.join(c.out, 'control-plane.tar.gz');
  return {
    name: 'control-plane',
    deps: c.config.zones.map((z) => `stamp:${z}`),
    describe: `control-plane composite of ${c.config.zones.join(', ')}`,
    run: async () =>
      cached(
        c,
        'control-plane',
        () => c.config.zones.map((z) => `${z}=${fileDigest(c, stampedPath(c, z))}`),
        [output],
        async () => {
          const members = c.config.zones.map((z) => fileMember(`zones/${z}.tar.gz`, stampedPath(c, z)));
          await writeComposite(output, 'control_plane', members, { mtime: 0 });
        },
      ),
  };
}

function prereqFile(c: Context): string {
  return path.resolve(c.dir, c.config.prereqs ?? 'prereqs.toml');
}

function prereqsJob(c: Context): Job {
  return {
    name: 'prereqs',
    deps: [],
    describe: `pinned firmware downloads from ${path.relative(c.dir, prereqFile(c))}`,
    run: async (ctx) => {
      const r = await fetchPrereqs({ file: prereqFile(c), vars: c.vars, signal: ctx.signal });
      if (!r.ok) {
        const f = r.prereqs.find((p) => p.name === r.failed);
        throw f?.error ?? new SlipwayError('DOWNLOAD_FAILED', `prereq ${r.failed ?? '?'} failed`);
      }
      const fetched = r.prereqs.filter((p) => p.state !== 'cached').length;
      return { cached: fetched === 0, detail: `${r.prereqs.length} prereqs, ${fetched} fetched` };
    },
  };
}

/** The tufaceous manifest this release assembles (written to `<out>/repo-manifest.toml`). */
function repoManifest(c: Context): { text: string; inputs: string[]; artifacts: RelengResult['artifacts'] } {
  const lines = [
    `# Written by slipway releng from ${path.relative(c.out, c.config.file)}; paths are relative to this file.`,
    `system_version = ${tomlString(c.config.repo.systemVersion ?? c.version)}`,
    '',
  ];
  const inputs: string[] = [];
  const artifacts: RelengResult['artifacts'] = [];
  const prereqDests = new Map<string, string>();
  if (c.config.firmware.some((f) => f.source.kind === 'prereq')) {
    for (const p of loadPrereqs(prereqFile(c), c.vars).prereqs) prereqDests.set(p.name, p.dest);
  }
  const add = (kind: string, name: string, version: string, source: string, file: string): void => {
    lines.push(
      `[[artifact.${kind}]]`,
      `name = ${tomlString(name)}`,
      `version = ${tomlString(version)}`,
      `source = ${source}`,
      '',
    );
    artifacts.push({ kind, name, version, file });
  };
  const fileSource = (abs: string): string => {
    inputs.push(abs);
    return `{ kind = "file", path = ${tomlString(path.relative(c.out, abs))} }`;
  };
  for (const os of c.config.os) {
    const archive = osPaths(c, os).archive;
    add(os.kind, os.name, c.version, fileSource(archive), archive);
  }
  const cp = path.join(c.out, 'control-plane.tar.gz');
  add('control_plane', 'control-plane', c.version, fileSource(cp), cp);
  for (const f of c.config.firmware) {
    if (f.source.kind === 'fake') {
      add(f.kind, f.name, f.version, `{ kind = "fake", size = ${f.source.size} }`, '(fake)');
    } else {
      const abs =
        f.source.kind === 'file'
          ? path.resolve(c.dir, f.source.path)
          : (prereqDests.get(f.source.name) ??
            (() => {
              throw new SlipwayError(
                'MANIFEST_INVALID',
                `firmware ${f.name}: no prereq named ${f.source.name} in ${prereqFile(c)}`,
                {
                  where: `${c.config.file}:${f.line}`,
                },
              );
            })());
      add(f.kind, f.name, f.version, fileSource(abs), abs);
    }
  }
  return { text: lines.join('\n'), inputs, artifacts };
}

function repoJobs(c: Context, deps: string[]): Job[] {
  const output = path.resolve(c.out, c.config.repo.output);
  const manifestFile = path.join(c.out, 'repo-manifest.toml');
  return [
    {
      name: 'repo',
      deps,
      describe: `assemble ${path.relative(c.out, output)} (signed by ${c.signerIds})`,
      run: async (ctx) => {
        const m = repoManifest(c);
        return cached(
          c,
          'repo',
          () => [m.text, c.signerIds, ...m.inputs.map((f) => fileDigest(c, f))],
          [output, `${output}.sha256.txt`],
          async () => {
            await writeFileAtomic(manifestFile, m.text);
            const r = await assembleRepository({
              manifestFile,
              output,
              signers: c.signers,
              now: clockFrom(c.env),
              ...(c.config.repo.expiry !== undefined
                ? { validFor: parseDuration(c.config.repo.expiry, 'repo.expiry') }
                : {}),
              signal: ctx.signal,
            });
            ctx.log(`${r.output}: sha256 ${r.sha256}, ${formatSize(r.size)}, valid until ${r.validUntil}`);
          },
        );
      },
    },
    {
      name: 'verify',
      deps: ['repo'],
      describe: `re-verify ${path.relative(c.out, output)} as an upload would`,
      run: async (ctx) => {
        const sha = (): string => fs.readFileSync(`${output}.sha256.txt`, 'utf8').trim();
        return cached(
          c,
          'verify',
          () => [sha()],
          [output],
          async () => {
            const r = await verifyRepositoryZip(output, { now: new Date(), signal: ctx.signal });
            if (r.sha256 !== sha()) {
              throw new SlipwayError('CHECKSUM_MISMATCH', `${output} does not match ${output}.sha256.txt`, {
                where: output,
              });
            }
            ctx.log(
              `verified ${r.artifacts.length} artifacts, system version ${r.systemVersion}, valid until ${r.validUntil}`,
            );
          },
        );
      },
    },
  ];
}

/** -k keys, else $SLIPWAY_TUF_KEY, else the throwaway key this output directory keeps (so re-runs are no-ops). */
function signersFor(
  options: RelengOptions,
  out: string,
  env: NodeJS.ProcessEnv,
  dryRun: boolean,
): { signers: RoleSigners; generated?: string } {
  const keys = options.keys ?? [];
  if (keys.length > 0 || (env.SLIPWAY_TUF_KEY ?? env.TUFACEOUS_KEY ?? '') !== '') {
    return loadSigners({ keys, env, generate: false });
  }
  const keyFile = path.join(out, '.slipway', 'throwaway-key');
  if (fs.existsSync(keyFile)) return loadSigners({ keys: [`file:${keyFile}`], env, generate: false });
  const k = generateKey();
  const text = formatPrivateKey(k.privateKey);
  if (!dryRun) {
    fs.mkdirSync(path.dirname(keyFile), { recursive: true });
    fs.writeFileSync(keyFile, `${text}\n`, { mode: 0o600, flag: 'wx' });
  }
  return { ...loadSigners({ keys: [text], env, generate: false }), generated: text };
}

export async function runReleng(options: RelengOptions): Promise<RelengResult> {
  const reporter = options.reporter ?? silentReporter;
  const env = options.env ?? process.env;
  const dir = path.resolve(options.dir);
  const configFile = path.join(dir, RELENG_CONFIG);
  let text: string;
  try {
    text = await fsp.readFile(configFile, 'utf8');
  } catch (err) {
    throw fromSystemError(err, 'cannot read', configFile);
  }
  const config = parseRelengConfig(text, configFile);
  for (const w of config.warnings) warn(reporter, `${w.where}: ${w.message}`);
  const out = path.resolve(options.out ?? 'out');
  const version = releaseVersion(config.major, env, () => gitCommit(dir));
  const dryRun = options.dryRun ?? false;
  const { signers, generated } = signersFor(options, out, env, dryRun);
  const signerIds = [
    ...new Set(
      Object.values(signers)
        .flat()
        .map((s: { keyId: string }) => s.keyId.slice(0, 12)),
    ),
  ].join(',');
  const c: Context = {
    config,
    dir,
    out,
    version,
    digests: new DigestCache(path.join(out, '.slipway', 'releng-digests.json')),
    state: new State(path.join(out, '.slipway', 'releng-state.json')),
    signers,
    signerIds,
    env,
    reporter,
    ...(options.jobs !== undefined ? { jobs: options.jobs } : {}),
    vars: { ...config.prereqVars, ...(options.vars ?? {}) },
  };
  const jobs: Job[] = [
    packagesJob(c),
    ...config.zones.map((z) => stampJob(c, z)),
    controlPlaneJob(c),
    ...config.os.map((o) => osJob(c, o)),
  ];
  const repoDeps = ['control-plane', ...config.os.map((o) => `os:${o.kind}`)];
  if (config.firmware.some((f) => f.source.kind === 'prereq')) {
    jobs.push(prereqsJob(c));
    repoDeps.push('prereqs');
  }
  jobs.push(...repoJobs(c, repoDeps));
  const plan = planGraph(jobs);
  const planOut = plan.order.map((name) => {
    const j = jobs.find((x) => x.name === name);
    return { name, deps: j?.deps ?? [], describe: j?.describe ?? name };
  });
  const base: RelengResult = {
    out,
    version,
    dryRun,
    plan: planOut,
    artifacts: [],
    ...(generated !== undefined ? { generatedKey: generated } : {}),
  };
  if (dryRun) return base;

  await fsp.mkdir(path.join(out, '.slipway'), { recursive: true });
  const report = await runGraph(jobs, {
    logDir: path.join(out, 'logs'),
    reporter,
    ...(options.jobs !== undefined ? { concurrency: options.jobs } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  await c.digests.save();
  const result: RelengResult = { ...base, report, artifacts: repoManifest(c).artifacts };
  if (!report.ok) return result;
  const output = path.resolve(out, config.repo.output);
  const sha256 = fs.readFileSync(`${output}.sha256.txt`, 'utf8').trim();
  // The verify job checked it; the summary only needs the roles' expiry.
  const roles = (await inspectRepository(output)).roles.map((r) => r.expires).sort();
  return {
    ...result,
    repo: { file: output, sha256, size: fs.statSync(output).size, validUntil: roles[0] ?? '' },
  };
}
