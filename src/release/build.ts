/**
 * `slipway release build`: on the release tag only, clean the output, then
 * on the job graph (in parallel, logs per job) the source tarball and every
 * configured job; then a `.sha256` beside each file, files/manifest.json and
 * the root latest.json (layout: plan.ts). Byte-reproducible where the inputs
 * are: the source tarball comes from git (fixed mtimes) through a
 * deterministic gzip, and the jobs get SOURCE_DATE_EPOCH = the commit time.
 *
 * Cleaning empties the output directory, so it must hold nothing but what a build writes
 * (a mistyped `-o ~` or `build.out = "src"` is refused, not emptied). A failed or cancelled
 * build leaves only its logs (.build/logs): no half a release beside them to be mistaken for one.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashFileInBackground } from '../archive/hash-file.js';
import { createParallelGzip } from '../archive/pgzip.js';
import { openAtomic, writeFileAtomic } from '../core/atomic-file.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { type Reporter, silentReporter } from '../core/events.js';
import { sha256Hex } from '../core/digest.js';
import { runGraph, type Job } from '../build/index.js';
import { expandTemplate } from './config.js';
import {
  CHECKSUM_SUFFIX,
  LATEST_FILE,
  MANIFEST_FILE,
  SCRATCH_DIR,
  checksumLine,
  planBuild,
  renderLatest,
  renderManifest,
  type BuildPlan,
  type ManifestFile,
} from './plan.js';
import {
  openWorkspace,
  requireCleanTree,
  requireOnTag,
  type Workspace,
  type WorkspaceOptions,
} from './workspace.js';

export interface BuildOptions extends WorkspaceOptions {
  /** The output directory (default: build.out of release.toml, under the repository). */
  out?: string;
  dryRun?: boolean;
  /** Jobs at once (default: the number of CPUs). */
  jobs?: number;
  reporter?: Reporter;
  signal?: AbortSignal;
  /** How `slipway` in a job's command runs (default: this Node and bin/slipway.js). */
  slipway?: string[];
}

export interface BuildResult {
  plan: BuildPlan;
  dryRun: boolean;
  /** files/manifest.json's content (not on a dry run). */
  files?: ManifestFile[];
  manifestSha256?: string;
}

export function defaultSlipway(): string[] {
  return [process.execPath, fileURLToPath(new URL('../../../bin/slipway.js', import.meta.url))];
}

/** The output directory: -o, or build.out (templated) under the repository. Never the repository or above it. */
export function outputDir(ws: Workspace, out: string | undefined): string {
  const dir =
    out !== undefined
      ? path.resolve(out)
      : path.join(
          ws.dir,
          expandTemplate(ws.config.build.out, {
            version: ws.version.version,
            major: ws.version.major,
            product: ws.config.product.name,
          }),
        );
  const rel = path.relative(dir, ws.dir);
  // `build` empties this directory: it must not be the repository or hold it.
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `the output directory ${dir} holds the repository ${ws.dir}: pick another`,
      {
        where: dir,
      },
    );
  }
  return dir;
}

/** The source tarball: git archive's tar (mtimes are the commit's) through parallel gzip. */
async function sourceTarball(ws: Workspace, plan: BuildPlan, file: string): Promise<void> {
  const out = await openAtomic(file);
  try {
    // MTIME 0, no name, fixed level and block size: the bytes depend only on the tar (like gzip -n).
    const gzip = createParallelGzip({ level: 9 });
    const tar = new PassThrough({ highWaterMark: 1 << 20 });
    await Promise.all([
      ws.git.archive(plan.commit, `${plan.product}-${plan.version}/`, tar),
      pipeline(tar, gzip, out.writable()),
    ]);
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fsp.lstat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Moves a job's declared outputs from its work directory into the build. */
async function collectOutputs(plan: BuildPlan, job: BuildPlan['jobs'][number]): Promise<void> {
  for (const a of job.artifacts) {
    const src = path.join(job.work, a);
    let st: fs.Stats | undefined;
    try {
      st = await fsp.lstat(src);
    } catch {
      st = undefined;
    }
    if (st?.isFile() !== true) {
      throw new SlipwayError(
        'RELEASE_BUILD_FAILED',
        `job ${job.name} did not produce ${a}${st !== undefined ? ' as a regular file' : ''} in ${job.work}`,
        { where: src },
      );
    }
    await fsp.rename(src, path.join(plan.out, 'files', a));
  }
  const dirs: [string, string, string][] = [];
  if (job.docs !== undefined) dirs.push([job.docs, path.join(plan.out, 'docs'), 'docs']);
  for (const [l, d] of Object.entries(job.oci))
    dirs.push([d, path.join(plan.out, 'oci', l), `OCI layout ${l}`]);
  for (const [rel, dest, what] of dirs) {
    const src = path.join(job.work, rel);
    if (!(await isDir(src))) {
      throw new SlipwayError(
        'RELEASE_BUILD_FAILED',
        `job ${job.name} did not produce its ${what} directory ${src}`,
        {
          where: src,
        },
      );
    }
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.rename(src, dest);
  }
}

/** What a build writes in its output directory; anything else there means it is not one. */
const BUILD_ENTRIES = new Set(['files', 'docs', 'oci', LATEST_FILE, SCRATCH_DIR]);

/** Refuses to clean an output directory that holds anything a build did not write. */
async function checkOutputDir(out: string): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw fromSystemError(err, 'cannot read the output directory', out);
  }
  const foreign = names.filter((n) => !BUILD_ENTRIES.has(n)).sort();
  if (foreign.length > 0) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `the output directory ${out} holds ${foreign
        .slice(0, 5)
        .map((n) => JSON.stringify(n))
        .join(
          ', ',
        )}${foreign.length > 5 ? ', …' : ''}, which no release build wrote; a build empties its output directory first: pick a new or empty one`,
      { where: out },
    );
  }
}

/** After a failure: everything but the logs, so no partial release stays in the output directory. */
async function removePartialOutput(out: string): Promise<void> {
  for (const name of BUILD_ENTRIES) {
    await fsp.rm(path.join(out, name === SCRATCH_DIR ? path.join(SCRATCH_DIR, 'work') : name), {
      recursive: true,
      force: true,
    });
  }
}

/** The plan of a build, after the on-tag, clean-tree and output-directory checks. */
export async function prepareBuild(ws: Workspace, options: BuildOptions): Promise<BuildPlan> {
  const commit = await requireOnTag(ws, 'build');
  await requireCleanTree(ws, 'build');
  const plan = planBuild({
    config: ws.config,
    version: ws.version,
    commit,
    repo: ws.dir,
    out: outputDir(ws, options.out),
    slipway: options.slipway ?? defaultSlipway(),
  });
  if (plan.staticDocs !== undefined && !(await isDir(path.join(ws.dir, plan.staticDocs)))) {
    throw new SlipwayError(
      'RELEASE_CONFIG_INVALID',
      `build.docs: ${plan.staticDocs} is not a directory of the repository`,
      {
        where: ws.config.file,
      },
    );
  }
  await checkOutputDir(plan.out);
  return plan;
}

export async function buildRelease(options: BuildOptions = {}): Promise<BuildResult> {
  const ws = await openWorkspace(options);
  const plan = await prepareBuild(ws, options);
  if (options.dryRun === true) return { plan, dryRun: true };

  const reporter = options.reporter ?? silentReporter;
  const env = options.env ?? process.env;
  const epoch =
    env.SOURCE_DATE_EPOCH !== undefined && env.SOURCE_DATE_EPOCH !== ''
      ? env.SOURCE_DATE_EPOCH
      : String(await ws.git.commitTime(plan.commit));
  const jobEnv: NodeJS.ProcessEnv = {
    ...env,
    SOURCE_DATE_EPOCH: epoch,
    SLIPWAY_RELEASE_PRODUCT: plan.product,
    SLIPWAY_RELEASE_VERSION: plan.version,
    SLIPWAY_RELEASE_MAJOR: plan.major,
    SLIPWAY_RELEASE_COMMIT: plan.commit,
  };
  const filesDir = path.join(plan.out, 'files');
  const scratch = path.join(plan.out, SCRATCH_DIR);
  try {
    await fsp.rm(plan.out, { recursive: true, force: true });
    await fsp.mkdir(filesDir, { recursive: true });
    for (const j of plan.jobs) await fsp.mkdir(j.work, { recursive: true });
  } catch (err) {
    throw fromSystemError(err, 'cannot prepare the output directory', plan.out);
  }

  let result: { files: ManifestFile[]; manifestSha256: string };
  try {
    result = await runBuild(ws, plan, options, jobEnv, reporter);
  } catch (err) {
    await removePartialOutput(plan.out).catch(() => undefined);
    throw err;
  }
  await fsp.rm(scratch, { recursive: true, force: true });
  return { plan, dryRun: false, ...result };
}

/** The jobs, the docs, the checksums, manifest.json and latest.json (last: it marks a complete build). */
async function runBuild(
  ws: Workspace,
  plan: BuildPlan,
  options: BuildOptions,
  jobEnv: NodeJS.ProcessEnv,
  reporter: Reporter,
): Promise<{ files: ManifestFile[]; manifestSha256: string }> {
  const filesDir = path.join(plan.out, 'files');
  const scratch = path.join(plan.out, SCRATCH_DIR);
  const jobs: Job[] = [
    {
      name: 'source',
      deps: [],
      describe: `git archive → ${plan.sourceTarball}`,
      run: async (ctx) => {
        ctx.log(`git archive --prefix=${plan.product}-${plan.version}/ ${plan.commit} | gzip -9n`);
        await sourceTarball(ws, plan, path.join(filesDir, plan.sourceTarball));
      },
    },
    ...plan.jobs.map((j): Job => ({
      name: `job:${j.name}`,
      deps: j.deps.map((d) => `job:${d}`),
      describe: j.command.join(' '),
      run: async (ctx) => {
        const [cmd = '', ...args] = j.command;
        await ctx.exec(cmd, args, { cwd: ws.dir, env: jobEnv });
        await collectOutputs(plan, j);
      },
    })),
  ];
  const report = await runGraph(jobs, {
    logDir: path.join(scratch, 'logs'),
    reporter,
    ...(options.jobs !== undefined ? { concurrency: options.jobs } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  if (!report.ok) {
    const failed = report.jobs.find((j) => j.name === report.failed);
    if (failed?.error?.code === 'INTERRUPTED' || options.signal?.aborted === true) {
      throw new SlipwayError('INTERRUPTED', 'release build cancelled', { cause: failed?.error });
    }
    throw new SlipwayError(
      'RELEASE_BUILD_FAILED',
      `${report.failed ?? 'a job'} failed: ${failed?.error?.message ?? 'see its log'} (log: ${failed?.logFile ?? '?'})`,
      { where: failed?.logFile ?? plan.out, cause: failed?.error },
    );
  }

  if (plan.staticDocs !== undefined) {
    await fsp.cp(path.join(ws.dir, plan.staticDocs), path.join(plan.out, 'docs'), {
      recursive: true,
      verbatimSymlinks: true,
    });
  }

  // Checksums (hashed in parallel on worker threads), then the manifest, then latest.json.
  const files: ManifestFile[] = await Promise.all(
    plan.files.map(async (name) => {
      const p = path.join(filesDir, name);
      const [sha256, st] = await Promise.all([hashFileInBackground(p).result, fsp.stat(p)]);
      await writeFileAtomic(`${p}${CHECKSUM_SUFFIX}`, checksumLine(sha256, name));
      return { name, size: st.size, sha256 };
    }),
  );
  const manifest = renderManifest(plan, files);
  await writeFileAtomic(path.join(filesDir, MANIFEST_FILE), manifest);
  const manifestSha256 = sha256Hex(manifest);
  await writeFileAtomic(path.join(plan.out, LATEST_FILE), renderLatest(plan, manifestSha256));
  return { files, manifestSha256 };
}
