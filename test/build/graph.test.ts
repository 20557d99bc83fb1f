import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { planGraph, runGraph, summarize, type Job, type JobContext } from '../../src/build/graph.js';
import { runCommand } from '../../src/build/process.js';
import { isSlipwayError, MemoryReporter, type SlipwayError } from '../../src/core/index.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('slipway-graph-');
let dirs = 0;
const logDir = (): string => path.join(tmp, `logs-${++dirs}`);

function job(name: string, deps: string[], run: Job['run'] = () => Promise.resolve()): Job {
  return { name, deps, run };
}

/** True when the process no longer runs: gone, or a zombie left to an init that does not reap. */
function dead(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function waitForFile(file: string, lines: number): Promise<string[]> {
  for (let i = 0; i < 200; i++) {
    const got = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : [];
    if (got.length >= lines && got.every((l) => l !== '')) return got;
    await sleep(10);
  }
  throw new Error(`${file} never got ${lines} lines`);
}

test('planGraph: deterministic topological order, ties broken by name', () => {
  const jobs = [
    job('repo', ['os', 'zones']),
    job('zones', ['pkg-b', 'pkg-a']),
    job('pkg-b', []),
    job('os', []),
    job('pkg-a', []),
  ];
  const plan = planGraph(jobs);
  assert.deepEqual(plan.order, ['os', 'pkg-a', 'pkg-b', 'zones', 'repo']);
  assert.deepEqual(planGraph([...jobs].reverse()).order, plan.order);
  assert.deepEqual(plan.jobs[3], { name: 'zones', deps: ['pkg-b', 'pkg-a'] });
  const described = planGraph([{ ...job('a', []), describe: 'build a: input x changed' }]);
  assert.equal(described.jobs[0]?.describe, 'build a: input x changed');
});

test('bad graphs are rejected with their codes before anything runs', async () => {
  let ran = 0;
  const run = (): Promise<void> => {
    ran++;
    return Promise.resolve();
  };
  const cases: [Job[], string, RegExp][] = [
    [
      [job('x', [], run), job('a', ['b'], run), job('b', ['c'], run), job('c', ['a'], run)],
      'GRAPH_CYCLE',
      /a -> b -> c -> a/,
    ],
    [[job('self', ['self'], run)], 'GRAPH_CYCLE', /self -> self/],
    [[job('a', ['nope'], run)], 'GRAPH_UNKNOWN_DEPENDENCY', /'a' depends on 'nope'/],
    [[job('a', [], run), job('a', [], run)], 'GRAPH_DUPLICATE_JOB', /'a'/],
  ];
  for (const [jobs, code, message] of cases) {
    assert.throws(
      () => planGraph(jobs),
      (e: unknown) => isSlipwayError(e) && e.code === code && message.test(e.message),
    );
    const dir = logDir();
    await assert.rejects(runGraph(jobs, { logDir: dir }), (e: unknown) =>
      isSlipwayError(e, code as SlipwayError['code']),
    );
    assert.equal(fs.existsSync(dir), false, 'no log directory for a rejected graph');
  }
  assert.equal(ran, 0);
});

test('dependencies finish before dependents start; events and cached jobs', async () => {
  const events: string[] = [];
  const step =
    (name: string, cached = false) =>
    async (ctx: JobContext) => {
      events.push(`start ${name}`);
      ctx.log(`hello from ${name}`);
      await sleep(name === 'a' ? 30 : 5);
      events.push(`end ${name}`);
      return cached ? { cached: true } : { detail: `built ${name}` };
    };
  const reporter = new MemoryReporter();
  const dir = logDir();
  const report = await runGraph(
    [
      job('c', ['a', 'b'], step('c')),
      job('a', [], step('a')),
      job('b', [], step('b', true)),
      job('d', ['c'], step('d')),
    ],
    { logDir: dir, reporter, concurrency: 4 },
  );
  assert.equal(report.ok, true);
  assert.equal(report.failed, undefined);
  assert.deepEqual(
    report.jobs.map((j) => [j.name, j.state]),
    [
      ['a', 'ok'],
      ['b', 'cached'],
      ['c', 'ok'],
      ['d', 'ok'],
    ],
  );
  const at = (e: string): number => events.indexOf(e);
  assert.ok(at('end a') < at('start c') && at('end b') < at('start c') && at('end c') < at('start d'));
  assert.ok(at('start b') < at('end a'), 'a and b ran at the same time');
  assert.equal(fs.readFileSync(path.join(dir, 'a.log'), 'utf8'), 'hello from a\n');
  assert.deepEqual(
    reporter.events.filter((e) => e.kind !== 'log' && e.task === 'b'),
    [
      { kind: 'task-start', task: 'b' },
      { kind: 'task-end', task: 'b', ok: true, detail: 'cached' },
    ],
  );
  assert.ok(reporter.events.some((e) => e.kind === 'log' && e.task === 'c' && e.message === 'hello from c'));
  const text = summarize(report);
  assert.match(text, /^b\s+cached\s+\d+ms$/m);
  assert.match(text, /4 of 4 jobs done, cache hits: 1/);
});

test('concurrency bound is honoured', async () => {
  let now = 0;
  let max = 0;
  const run = async (): Promise<void> => {
    now++;
    max = Math.max(max, now);
    await sleep(20);
    now--;
  };
  const jobs = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => job(n, [], run));
  const report = await runGraph(jobs, { logDir: logDir(), concurrency: 2 });
  assert.equal(report.ok, true);
  assert.equal(max, 2);
  await assert.rejects(runGraph(jobs, { logDir: logDir(), concurrency: 0 }), (e: unknown) =>
    isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
});

test('first failure kills running process trees and blocks dependents', async () => {
  const dir = logDir();
  const pidFile = path.join(tmp, 'pids');
  const reporter = new MemoryReporter();
  const started = Date.now();
  const report = await runGraph(
    [
      job('sleeper', [], (ctx) =>
        ctx.exec('sh', [
          '-c',
          `sleep 30 & echo $! >> ${pidFile}; sleep 30 & echo $! >> ${pidFile}; echo $$ >> ${pidFile}; wait`,
        ]),
      ),
      job('broken', [], async (ctx) => {
        await waitForFile(pidFile, 3); // fail only once the sleeper's tree is up
        ctx.log('about to fail');
        throw new Error('boom');
      }),
      job('after-broken', ['broken'], () => Promise.resolve()),
      job('after-after', ['after-broken'], () => Promise.resolve()),
      job('after-sleeper', ['sleeper'], () => Promise.resolve()),
    ],
    { logDir: dir, reporter, concurrency: 4 },
  );
  assert.ok(Date.now() - started < 5000, `returned in ${Date.now() - started} ms`);
  const pids = fs.readFileSync(pidFile, 'utf8').trim().split('\n').map(Number);
  assert.equal(pids.length, 3);
  for (const pid of pids) assert.ok(dead(pid), `process ${pid} still runs`);

  assert.equal(report.ok, false);
  assert.equal(report.failed, 'broken');
  const byName = new Map(report.jobs.map((j) => [j.name, j]));
  const broken = byName.get('broken');
  assert.equal(broken?.state, 'failed');
  assert.equal(broken.error?.code, 'JOB_FAILED');
  assert.match(broken.error.message, /boom/);
  assert.equal(broken.logFile, path.join(dir, 'broken.log'));
  assert.match(
    fs.readFileSync(broken.logFile, 'utf8'),
    /about to fail\nerror\[JOB_FAILED\]: job 'broken' failed: boom/,
  );
  assert.equal(byName.get('sleeper')?.state, 'cancelled');
  for (const n of ['after-broken', 'after-after']) {
    assert.equal(byName.get(n)?.state, 'dependency-failed');
    assert.equal(byName.get(n)?.error?.message, 'dependency failed: broken');
  }
  assert.equal(byName.get('after-sleeper')?.state, 'not-run');
  assert.ok(reporter.events.some((e) => e.kind === 'task-end' && e.task === 'broken' && !e.ok));
  assert.match(
    summarize(report),
    new RegExp(`failed: broken \\(log: ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/broken\\.log\\)`),
  );
});

test('an external abort cancels running jobs; the rest are not run', async () => {
  const controller = new AbortController();
  const pidFile = path.join(tmp, 'pids-external');
  setTimeout(() => {
    controller.abort();
  }, 150);
  const started = Date.now();
  const report = await runGraph(
    [
      job('long', [], (ctx) => ctx.exec('sh', ['-c', `echo $$ > ${pidFile}; exec sleep 30`])),
      job('waits', [], async (ctx) => {
        await sleep(10_000, undefined, { signal: ctx.signal });
      }),
      job('later', ['long'], () => Promise.resolve()),
    ],
    { logDir: logDir(), signal: controller.signal },
  );
  assert.ok(Date.now() - started < 4000);
  assert.equal(report.ok, false);
  assert.equal(report.failed, undefined);
  assert.deepEqual(
    report.jobs.map((j) => [j.name, j.state]),
    [
      ['long', 'cancelled'],
      ['later', 'not-run'],
      ['waits', 'cancelled'],
    ],
  );
  assert.ok(dead(Number(fs.readFileSync(pidFile, 'utf8'))));

  const again = await runGraph([job('x', [])], { logDir: logDir(), signal: AbortSignal.abort() });
  assert.deepEqual(
    again.jobs.map((j) => j.state),
    ['not-run'],
  );
});

test('exec: output goes to the log; failures name the command and exit code', async () => {
  const dir = logDir();
  const reporter = new MemoryReporter();
  const report = await runGraph(
    [
      job('out/put', [], async (ctx) => {
        await ctx.exec('sh', ['-c', 'echo one; echo two >&2; printf tail']);
      }),
      job('exit3', ['out/put'], (ctx) => ctx.exec('sh', ['-c', 'echo before; exit 3'])),
    ],
    { logDir: dir, reporter, concurrency: 1 },
  );
  const put = report.jobs.find((j) => j.name === 'out/put');
  assert.equal(put?.state, 'ok');
  assert.equal(put.logFile, path.join(dir, 'out_put.log'));
  const text = fs.readFileSync(put.logFile, 'utf8');
  assert.ok(text.startsWith("$ sh -c 'echo one; echo two >&2; printf tail'\n"));
  for (const l of ['one\n', 'two\n', 'tail']) assert.ok(text.includes(l), text);
  const lines = reporter.events.flatMap((e) => (e.kind === 'log' && e.task === 'out/put' ? [e.message] : []));
  assert.deepEqual([...lines].sort(), ['one', 'tail', 'two']);

  const exit3 = report.jobs.find((j) => j.name === 'exit3');
  assert.equal(exit3?.state, 'failed');
  assert.equal(exit3.error?.code, 'JOB_COMMAND_FAILED');
  assert.match(exit3.error.message, /exit code 3: sh -c/);
  assert.match(
    fs.readFileSync(exit3.logFile, 'utf8'),
    /before\nerror\[JOB_COMMAND_FAILED\]: command failed with exit code 3/,
  );

  const missing = await runGraph([job('m', [], (ctx) => ctx.exec('slipway-no-such-command', []))], {
    logDir: logDir(),
  });
  assert.equal(missing.jobs[0]?.error?.code, 'JOB_COMMAND_FAILED');
  assert.equal(missing.jobs[0].error.message, 'command not found: slipway-no-such-command');
});

test('log files are truncated when a job starts again', async () => {
  const dir = logDir();
  const logging = (line: string) => (ctx: JobContext) => {
    ctx.log(line);
    return Promise.resolve();
  };
  await runGraph([job('a', [], logging('first run, long line'))], { logDir: dir });
  await runGraph([job('a', [], logging('second'))], { logDir: dir });
  assert.equal(fs.readFileSync(path.join(dir, 'a.log'), 'utf8'), 'second\n');
});

test('runCommand: a tree that ignores SIGTERM is killed after the grace time', async () => {
  const pidFile = path.join(tmp, 'pids-stubborn');
  const controller = new AbortController();
  const started = Date.now();
  const run = runCommand(
    'sh',
    ['-c', `trap '' TERM; sleep 30 & echo $! >> ${pidFile}; echo $$ >> ${pidFile}; wait`],
    {
      signal: controller.signal,
      killGraceMs: 200,
    },
  );
  await waitForFile(pidFile, 2);
  controller.abort();
  await assert.rejects(run, (e: unknown) => isSlipwayError(e, 'INTERRUPTED'));
  assert.ok(Date.now() - started < 3000);
  for (const pid of fs.readFileSync(pidFile, 'utf8').trim().split('\n').map(Number)) {
    assert.ok(dead(pid), `process ${pid} still runs`);
  }
  await assert.rejects(runCommand('true', [], { signal: controller.signal }), (e: unknown) =>
    isSlipwayError(e, 'INTERRUPTED'),
  );
});
