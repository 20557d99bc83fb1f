/**
 * Child processes for build jobs. Each command leads its own process group
 * (`detached: true`), so cancelling kills everything it started — compilers,
 * shells and their background children — not just the direct child.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { SlipwayError } from '../core/errors.js';

export interface RunCommandOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Aborting kills the process group: SIGTERM, then SIGKILL after `killGraceMs`. */
  signal?: AbortSignal;
  /** Raw output chunks of stdout and stderr, in arrival order (for a log file). */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  /** Complete output lines, without the newline (for the live display). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Time between SIGTERM and SIGKILL on abort; default 2000 ms. */
  killGraceMs?: number;
}

/** Longer lines are passed on in pieces, so a child without newlines cannot grow our memory. */
const MAX_LINE = 64 * 1024;

/** Process groups still running: killed if we exit (or a signal handler asks) before they end. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

/** For signal handlers and exit paths: sends `signal` to every process group we started that is still running. */
export function killProcessGroupsSync(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const pgid of liveGroups) signalGroup(pgid, signal);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Detached children do not get the terminal's signals or die with us; don't leave them running.
  process.on('exit', () => {
    killProcessGroupsSync('SIGKILL');
  });
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

/** The process states of a group's members, from /proc (Linux); undefined where /proc is not available. */
function groupStates(pgid: number): string[] | undefined {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return undefined;
  }
  const states: string[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${e}/stat`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid) states.push(fields[0] ?? '?');
  }
  return states;
}

/**
 * Whether any member of the group is still alive. Zombies count as dead:
 * orphans are reparented to init, and an init that never reaps (as in some
 * containers) would otherwise keep the group "alive" forever.
 */
export function processGroupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  const states = groupStates(pgid);
  if (states === undefined) return true;
  return states.some((s) => s !== 'Z' && s !== 'X');
}

/** `make -C 'a dir' all`: a command line for messages, quoted where needed. */
export function formatCommand(command: string, args: readonly string[]): string {
  return [command, ...args]
    .map((a) => (a !== '' && /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

function interrupted(commandLine: string): SlipwayError {
  return new SlipwayError('INTERRUPTED', `cancelled: ${commandLine}`);
}

/** Splits a byte stream into lines, bounded in length. */
class LineSplitter {
  readonly #decoder = new StringDecoder('utf8');
  #partial = '';
  constructor(readonly emit: (line: string) => void) {}

  push(chunk: Buffer): void {
    const text = this.#partial + this.#decoder.write(chunk);
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const l of lines) this.emit(l.endsWith('\r') ? l.slice(0, -1) : l);
    while (this.#partial.length > MAX_LINE) {
      this.emit(this.#partial.slice(0, MAX_LINE));
      this.#partial = this.#partial.slice(MAX_LINE);
    }
  }

  end(): void {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = '';
    if (rest !== '') this.emit(rest);
  }
}

/**
 * Runs `command` with `args` (no shell) in a new process group, stdin closed.
 * Resolves when it exits 0 and its output is drained. Rejects with
 * JOB_COMMAND_FAILED (not found, non-zero exit, killed by a signal) or, once
 * `signal` aborts, with INTERRUPTED after the whole group is gone.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<void> {
  const commandLine = formatCommand(command, args);
  const { signal } = options;
  if (signal?.aborted === true) return Promise.reject(interrupted(commandLine));
  const grace = options.killGraceMs ?? 2000;

  return new Promise<void>((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pgid = child.pid;
    if (pgid !== undefined) {
      installExitHook();
      liveGroups.add(pgid);
    }

    let settled = false;
    let closed = false;
    let aborting: Promise<void> | undefined;
    const splitters: LineSplitter[] = [];

    const finish = (err?: SlipwayError): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (pgid !== undefined) liveGroups.delete(pgid);
      if (err === undefined) resolve();
      else reject(err);
    };

    // SIGTERM the group, SIGKILL what is left after the grace time, and wait until no member is alive.
    const terminateGroup = async (group: number): Promise<void> => {
      signalGroup(group, 'SIGTERM');
      const killAt = Date.now() + grace;
      let giveUpAt = Infinity;
      while (processGroupAlive(group)) {
        const now = Date.now();
        if (giveUpAt === Infinity && now >= killAt) {
          signalGroup(group, 'SIGKILL');
          giveUpAt = now + 1000;
        }
        if (now >= giveUpAt) break; // unkillable (D state): don't hang the build on it
        await sleep(20);
      }
    };

    function onAbort(): void {
      if (settled || aborting !== undefined) return;
      if (pgid === undefined) {
        finish(interrupted(commandLine));
        return;
      }
      aborting = terminateGroup(pgid).then(async () => {
        // A process outside the group (it called setsid) may still hold our pipes open.
        if (!closed) await sleep(200);
        if (!closed) {
          child.stdout.destroy();
          child.stderr.destroy();
        }
        finish(interrupted(commandLine));
      });
    }
    signal?.addEventListener('abort', onAbort, { once: true });

    for (const name of ['stdout', 'stderr'] as const) {
      const splitter = new LineSplitter((line) => options.onLine?.(line, name));
      splitters.push(splitter);
      child[name].on('data', (chunk: Buffer) => {
        options.onOutput?.(chunk, name);
        if (options.onLine !== undefined) splitter.push(chunk);
      });
    }

    child.on('error', (err: NodeJS.ErrnoException) => {
      // Spawn failures; a failed kill also lands here but is harmless.
      if (pgid !== undefined) return;
      let message: string;
      if (err.code === 'ENOENT' && options.cwd !== undefined && !fs.existsSync(options.cwd)) {
        message = `cannot run ${command}: working directory ${options.cwd} does not exist`;
      } else if (err.code === 'ENOENT') message = `command not found: ${command}`;
      else if (err.code === 'EACCES') message = `cannot run ${command}: permission denied`;
      else message = `cannot run ${command}: ${err.message}`;
      finish(new SlipwayError('JOB_COMMAND_FAILED', message, { cause: err }));
    });

    child.on('close', (code, sig) => {
      closed = true;
      for (const s of splitters) s.end();
      if (pgid === undefined) return; // reported by 'error'
      if (aborting !== undefined || signal?.aborted === true) {
        onAbort(); // no-op if already terminating; settles once the group is gone
        return;
      }
      if (code === 0) finish();
      else if (sig !== null) {
        finish(new SlipwayError('JOB_COMMAND_FAILED', `command killed by signal ${sig}: ${commandLine}`));
      } else {
        finish(
          new SlipwayError(
            'JOB_COMMAND_FAILED',
            `command failed with exit code ${code ?? '?'}: ${commandLine}`,
          ),
        );
      }
    });
  });
}
