/**
 * The job graph every Slipway build runs on: named jobs with dependencies,
 * planned first (a pure, deterministic topological order; bad graphs fail
 * before anything runs), then run in parallel up to a bound. The first
 * failure cancels the run: running jobs are aborted (their process trees
 * killed), jobs that depend on the failure are marked so, the rest not run.
 * Each job writes a log file; the report says where it is.
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromSystemError, renderError, SlipwayError } from '../core/errors.js';
import { type Reporter, silentReporter } from '../core/events.js';
import { formatCommand, runCommand } from './process.js';

export interface JobContext {
  readonly name: string;
  /** Aborted when the run is cancelled (first failure, SIGINT). */
  readonly signal: AbortSignal;
  /** `<logDir>/<job>.log` (job name sanitized for the file system). */
  readonly logFile: string;
  /** To the log file, and as a 'log' event {task: name} to the reporter. */
  log(line: string): void;
  /**
   * Runs a child process in its own process group; stdout+stderr go to the
   * log file (and lines to log()); rejects with JOB_COMMAND_FAILED naming the
   * command and exit code; on abort the whole process tree is killed (SIGTERM
   * to the group, SIGKILL after 2 s) and it rejects with INTERRUPTED.
   */
  exec(command: string, args: string[], options?: { cwd?: string; env?: NodeJS.ProcessEnv }): Promise<void>;
}

export interface JobResultData {
  cached?: boolean;
  detail?: string;
}

export interface Job {
  name: string;
  deps: string[];
  /** For --dry-run: what this job would do and why (e.g. "build nexus.tar.gz: input smf/x changed"). */
  describe?: string;
  // eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- jobs with nothing to report just return
  run(ctx: JobContext): Promise<JobResultData | void>;
}

export type JobState = 'ok' | 'cached' | 'failed' | 'dependency-failed' | 'cancelled' | 'not-run';

export interface JobReport {
  name: string;
  state: JobState;
  ms: number;
  logFile: string;
  error?: SlipwayError;
  detail?: string;
}

export interface GraphReport {
  ok: boolean;
  jobs: JobReport[];
  /** The first job that failed. */
  failed?: string;
  ms: number;
}

export interface Plan {
  order: string[];
  jobs: { name: string; deps: string[]; describe?: string }[];
}

export interface RunGraphOptions {
  /** Jobs running at once; default os.availableParallelism(). */
  concurrency?: number;
  logDir: string;
  reporter?: Reporter;
  /** Aborting cancels the run: running jobs end 'cancelled', the rest 'not-run'. */
  signal?: AbortSignal;
}

/** The first cycle among `remaining` jobs, as "a -> b -> a" (each depends on the next). */
function findCycle(remaining: ReadonlySet<string>, deps: ReadonlyMap<string, string[]>): string[] {
  const start = [...remaining].sort()[0] ?? '';
  const seen: string[] = [];
  let cur = start;
  // Every job left over after Kahn's algorithm has a dependency that is also left over.
  while (!seen.includes(cur)) {
    seen.push(cur);
    cur = (deps.get(cur) ?? []).filter((d) => remaining.has(d)).sort()[0] ?? start;
  }
  return [...seen.slice(seen.indexOf(cur)), cur];
}

/**
 * Checks the graph and orders it: dependencies before dependents, ties
 * broken by name, so the same jobs always give the same plan. Pure.
 */
export function planGraph(jobs: readonly Job[]): Plan {
  const deps = new Map<string, string[]>();
  for (const job of jobs) {
    if (deps.has(job.name)) {
      throw new SlipwayError('GRAPH_DUPLICATE_JOB', `two jobs are named '${job.name}'`, { where: job.name });
    }
    if (job.name === '') throw new SlipwayError('INVALID_ARGUMENT', 'a job has an empty name');
    deps.set(job.name, [...new Set(job.deps)]);
  }
  for (const job of jobs) {
    for (const d of job.deps) {
      if (!deps.has(d)) {
        throw new SlipwayError(
          'GRAPH_UNKNOWN_DEPENDENCY',
          `job '${job.name}' depends on '${d}', which is not a job in this graph`,
          { where: job.name },
        );
      }
    }
  }

  // Kahn's algorithm, always taking the smallest ready name next.
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const [name, ds] of deps) {
    waiting.set(name, ds.length);
    for (const d of ds) dependents.set(d, [...(dependents.get(d) ?? []), name]);
  }
  const ready = [...deps.keys()].filter((n) => waiting.get(n) === 0).sort();
  const order: string[] = [];
  while (ready.length > 0) {
    const name = ready.shift() ?? '';
    order.push(name);
    for (const dep of dependents.get(name) ?? []) {
      const left = (waiting.get(dep) ?? 0) - 1;
      waiting.set(dep, left);
      if (left === 0) {
        const at = ready.findIndex((r) => r > dep);
        ready.splice(at === -1 ? ready.length : at, 0, dep);
      }
    }
  }
  if (order.length < deps.size) {
    const done = new Set(order);
    const cycle = findCycle(new Set([...deps.keys()].filter((n) => !done.has(n))), deps);
    throw new SlipwayError('GRAPH_CYCLE', `dependency cycle: ${cycle.join(' -> ')}`, {
      where: cycle[0] ?? '',
    });
  }

  const byName = new Map(jobs.map((j) => [j.name, j]));
  return {
    order,
    jobs: order.map((name) => {
      const describe = byName.get(name)?.describe;
      const entry = { name, deps: deps.get(name) ?? [] };
      return describe === undefined ? entry : { ...entry, describe };
    }),
  };
}

/**
 * Log file names: the job name with anything but [A-Za-z0-9._-] replaced;
 * a short hash of the real name is added only where two names would clash.
 */
function logFileNames(order: readonly string[], logDir: string): Map<string, string> {
  const base = (n: string): string =>
    n
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/^\./, '_')
      .slice(0, 120);
  const counts = new Map<string, number>();
  for (const n of order) counts.set(base(n), (counts.get(base(n)) ?? 0) + 1);
  const out = new Map<string, string>();
  for (const n of order) {
    const b = base(n);
    const clash = (counts.get(b) ?? 0) > 1 && b !== n;
    const file = clash ? `${b}-${createHash('sha256').update(n).digest('hex').slice(0, 8)}` : b;
    out.set(n, path.join(logDir, `${file}.log`));
  }
  return out;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** A job's log file: writes are queued in order and coalesced; close() waits until all are on disk. */
class JobLog {
  readonly #fh: fsp.FileHandle;
  readonly #path: string;
  #pending: Buffer[] = [];
  #flushing: Promise<void> | undefined;
  #closed = false;
  #error: Error | undefined;

  private constructor(fh: fsp.FileHandle, file: string) {
    this.#fh = fh;
    this.#path = file;
  }

  static async open(file: string): Promise<JobLog> {
    try {
      return new JobLog(await fsp.open(file, 'w', 0o644), file);
    } catch (err) {
      throw fromSystemError(err, 'cannot create log file', file);
    }
  }

  write(data: Buffer | string): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.#closed) {
      // A late line (a job that forgot to await something): still keep it.
      try {
        fs.appendFileSync(this.#path, buf);
      } catch {
        /* the log is best effort after the job ended */
      }
      return;
    }
    this.#pending.push(buf);
    this.#flushing ??= this.#flush();
  }

  async #flush(): Promise<void> {
    while (this.#pending.length > 0) {
      const chunk = Buffer.concat(this.#pending);
      this.#pending = [];
      try {
        await this.#fh.write(chunk);
      } catch (err) {
        this.#error ??= asError(err);
      }
    }
    this.#flushing = undefined;
  }

  /** Resolves to the first write error, if any. */
  async close(): Promise<Error | undefined> {
    this.#closed = true;
    while (this.#flushing !== undefined) await this.#flushing;
    await this.#fh.close().catch((err: unknown) => {
      this.#error ??= asError(err);
    });
    return this.#error;
  }
}

function asJobError(name: string, err: unknown): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SlipwayError('JOB_FAILED', `job '${name}' failed: ${message}`, { cause: err });
}

/**
 * Plans and runs the graph. Never throws for job failures: the report says
 * what happened to every job (in plan order). Throws only for a bad graph or
 * options, or when the log directory cannot be created — before any job runs.
 * Returns once every started job has settled (jobs that ignore their signal
 * are waited for).
 */
export async function runGraph(jobs: readonly Job[], options: RunGraphOptions): Promise<GraphReport> {
  const plan = planGraph(jobs);
  const concurrency = options.concurrency ?? os.availableParallelism();
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new SlipwayError('INVALID_ARGUMENT', `concurrency must be a whole number ≥ 1, not ${concurrency}`);
  }
  const reporter = options.reporter ?? silentReporter;
  try {
    await fsp.mkdir(options.logDir, { recursive: true });
  } catch (err) {
    throw fromSystemError(err, 'cannot create log directory', options.logDir);
  }

  const t0 = performance.now();
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const logFiles = logFileNames(plan.order, options.logDir);
  const rank = new Map(plan.order.map((n, i) => [n, i]));
  const dependents = new Map<string, string[]>();
  const waiting = new Map<string, number>();
  for (const { name, deps } of plan.jobs) {
    waiting.set(name, deps.length);
    for (const d of deps) dependents.set(d, [...(dependents.get(d) ?? []), name]);
  }
  const ready = plan.order.filter((n) => waiting.get(n) === 0);
  const running = new Map<string, AbortController>();
  const reports = new Map<string, JobReport>();
  let stopping = false;
  let failed: string | undefined;

  let allSettled!: () => void;
  const settled = new Promise<void>((resolve) => {
    allSettled = resolve;
  });

  const stop = (reason: SlipwayError): void => {
    if (stopping) return;
    stopping = true;
    for (const controller of running.values()) controller.abort(reason);
    pump();
  };
  const onExternalAbort = (): void => {
    stop(new SlipwayError('INTERRUPTED', 'cancelled'));
  };

  async function runOne(job: Job, controller: AbortController): Promise<JobReport> {
    const name = job.name;
    const logFile = logFiles.get(name) ?? '';
    const started = performance.now();
    const report = (state: JobState, extra: Partial<JobReport> = {}): JobReport => ({
      name,
      state,
      ms: Math.round(performance.now() - started),
      logFile,
      ...extra,
    });
    reporter.emit({ kind: 'task-start', task: name });

    let log: JobLog;
    try {
      log = await JobLog.open(logFile);
    } catch (err) {
      const error = asJobError(name, err);
      reporter.emit({ kind: 'task-end', task: name, ok: false, detail: error.message });
      return report(controller.signal.aborted ? 'cancelled' : 'failed', { error });
    }
    const emitLine = (line: string): void => {
      reporter.emit({ kind: 'log', level: 'info', message: line, task: name });
    };
    const ctx: JobContext = {
      name,
      signal: controller.signal,
      logFile,
      log(line) {
        log.write(`${line}\n`);
        emitLine(line);
      },
      exec(command, args, execOptions = {}) {
        log.write(`$ ${formatCommand(command, args)}\n`);
        return runCommand(command, args, {
          ...execOptions,
          signal: controller.signal,
          onOutput: (chunk) => {
            log.write(chunk);
          },
          onLine: emitLine,
        });
      },
    };

    // A function, so the check after awaiting is not narrowed away by the one before.
    const cancelled = (): boolean => controller.signal.aborted;
    let result: JobReport;
    if (cancelled()) {
      result = report('cancelled');
    } else {
      try {
        const data = (await job.run(ctx)) ?? {};
        // A job that finishes despite being cancelled did its work: keep it.
        result = report(
          data.cached === true ? 'cached' : 'ok',
          data.detail === undefined ? {} : { detail: data.detail },
        );
      } catch (err) {
        if (cancelled()) result = report('cancelled');
        else {
          const error = asJobError(name, err);
          log.write(`${renderError(error, error.code === 'JOB_FAILED')}\n`);
          result = report('failed', { error });
        }
      }
    }
    if (result.state === 'cancelled') log.write('cancelled\n');

    const logError = await log.close();
    if (logError !== undefined) {
      reporter.emit({
        kind: 'log',
        level: 'warn',
        message: `could not write all of ${logFile}: ${logError.message}`,
        task: name,
      });
    }
    const ok = result.state === 'ok' || result.state === 'cached';
    let detail: string | undefined;
    if (result.state === 'cached')
      detail = result.detail === undefined ? 'cached' : `cached: ${result.detail}`;
    else if (ok) detail = result.detail;
    else detail = result.state === 'cancelled' ? 'cancelled' : result.error?.message;
    reporter.emit(
      detail === undefined
        ? { kind: 'task-end', task: name, ok }
        : { kind: 'task-end', task: name, ok, detail },
    );
    return result;
  }

  function finished(result: JobReport): void {
    running.delete(result.name);
    reports.set(result.name, result);
    if (result.state === 'ok' || result.state === 'cached') {
      for (const d of dependents.get(result.name) ?? []) {
        const left = (waiting.get(d) ?? 0) - 1;
        waiting.set(d, left);
        if (left === 0) {
          const r = rank.get(d) ?? 0;
          const at = ready.findIndex((x) => (rank.get(x) ?? 0) > r);
          ready.splice(at === -1 ? ready.length : at, 0, d);
        }
      }
    } else if (result.state === 'failed' && !stopping) {
      failed = result.name;
      stop(new SlipwayError('INTERRUPTED', `cancelled: job '${result.name}' failed`));
    }
    pump();
  }

  function pump(): void {
    while (!stopping && running.size < concurrency && ready.length > 0) {
      const name = ready.shift() ?? '';
      const job = byName.get(name);
      if (job === undefined) continue;
      const controller = new AbortController();
      // Each exec listens on the signal; a job may run many at once.
      setMaxListeners(0, controller.signal);
      running.set(name, controller);
      void runOne(job, controller).then(finished);
    }
    if (running.size === 0 && (stopping || ready.length === 0)) allSettled();
  }

  options.signal?.addEventListener('abort', onExternalAbort, { once: true });
  if (options.signal?.aborted === true) stopping = true;
  pump();
  await settled;
  options.signal?.removeEventListener('abort', onExternalAbort);

  // Jobs that never started: blocked by the failure, or simply not reached.
  const blocked = new Set<string>();
  if (failed !== undefined) {
    const queue = [failed];
    while (queue.length > 0) {
      for (const d of dependents.get(queue.pop() ?? '') ?? []) {
        if (!blocked.has(d)) {
          blocked.add(d);
          queue.push(d);
        }
      }
    }
  }
  const out = plan.order.map((name): JobReport => {
    const r = reports.get(name);
    if (r !== undefined) return r;
    const logFile = logFiles.get(name) ?? '';
    if (failed !== undefined && blocked.has(name)) {
      const error = new SlipwayError('JOB_DEPENDENCY_FAILED', `dependency failed: ${failed}`);
      return { name, state: 'dependency-failed', ms: 0, logFile, error, detail: error.message };
    }
    return { name, state: 'not-run', ms: 0, logFile };
  });
  const ok = out.every((r) => r.state === 'ok' || r.state === 'cached');
  const graphReport: GraphReport = { ok, jobs: out, ms: Math.round(performance.now() - t0) };
  if (failed !== undefined) graphReport.failed = failed;
  return graphReport;
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** A table for people: each job's state and time, cache hits, and where to look when one failed. */
export function summarize(report: GraphReport): string {
  const rows = report.jobs.map((j) => [
    j.name,
    j.state,
    j.state === 'ok' || j.state === 'cached' || j.state === 'failed' || j.state === 'cancelled'
      ? formatMs(j.ms)
      : '-',
  ]);
  const header = ['job', 'state', 'time'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const count = (s: JobState): number => report.jobs.filter((j) => j.state === s).length;
  const built = count('ok');
  const cached = count('cached');
  const parts = [`${built + cached} of ${report.jobs.length} jobs done`, `cache hits: ${cached}`];
  for (const s of ['failed', 'dependency-failed', 'cancelled', 'not-run'] as const) {
    if (count(s) > 0) parts.push(`${count(s)} ${s}`);
  }
  const out = [line(header), ...rows.map(line), '', `${parts.join(', ')} in ${formatMs(report.ms)}`];
  if (report.failed !== undefined) {
    const f = report.jobs.find((j) => j.name === report.failed);
    out.push(`failed: ${report.failed} (log: ${f?.logFile ?? '?'})`);
  }
  return out.join('\n');
}
