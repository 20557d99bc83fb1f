/**
 * A thin wrapper over the git CLI for the release steps: execFile (never a
 * shell), the C locale, no prompts. A failing command becomes
 * RELEASE_GIT_FAILED with the command line and git's stderr.
 */
import { execFile, spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SlipwayError } from '../core/errors.js';
import { formatCommand } from '../build/process.js';

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface GitOptions {
  /** Environment of the git processes (identity, HOME…); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The git program; default `git` from PATH. */
  git?: string;
}

const MAX_OUTPUT = 64 * 1024 * 1024;

export class Git {
  readonly #env: NodeJS.ProcessEnv;
  readonly #git: string;

  constructor(
    readonly dir: string,
    options: GitOptions = {},
  ) {
    // A release must not stop on a credential or editor prompt nobody sees.
    this.#env = {
      ...(options.env ?? process.env),
      LC_ALL: 'C',
      GIT_TERMINAL_PROMPT: '0',
      GIT_EDITOR: 'true',
    };
    this.#git = options.git ?? 'git';
  }

  /** Runs `git -C dir …`; resolves whatever the exit code. */
  tryRun(args: readonly string[]): Promise<GitResult> {
    return new Promise((resolve, reject) => {
      execFile(
        this.#git,
        ['-C', this.dir, ...args],
        { env: this.#env, maxBuffer: MAX_OUTPUT, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err === null) {
            resolve({ code: 0, stdout, stderr });
            return;
          }
          // A number: git ran and exited with it; a string (ENOENT…): git did not run at all.
          const code: unknown = (err as { code?: unknown }).code;
          if (typeof code === 'number') resolve({ code, stdout, stderr });
          else if (err.killed || err.signal !== undefined)
            resolve({ code: 128, stdout, stderr: `${stderr}killed by ${String(err.signal)}` });
          else
            reject(
              new SlipwayError('RELEASE_GIT_FAILED', `cannot run ${this.#git}: ${err.message}`, {
                cause: err,
              }),
            );
        },
      );
    });
  }

  /** Runs `git -C dir …`; stdout on success, RELEASE_GIT_FAILED otherwise. */
  async run(args: readonly string[]): Promise<string> {
    const r = await this.tryRun(args);
    if (r.code !== 0) throw this.failure(args, r);
    return r.stdout;
  }

  failure(args: readonly string[], r: GitResult): SlipwayError {
    const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-6).join('\n');
    return new SlipwayError(
      'RELEASE_GIT_FAILED',
      `${formatCommand('git', [...args])} failed (exit ${r.code})${detail !== '' ? `: ${detail}` : ''}`,
      { where: this.dir },
    );
  }

  async head(): Promise<string> {
    return (await this.run(['rev-parse', '--verify', 'HEAD^{commit}'])).trim();
  }

  /** The branch HEAD is on, or undefined when detached. */
  async branch(): Promise<string | undefined> {
    const r = await this.tryRun(['symbolic-ref', '--quiet', '--short', 'HEAD']);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /** `git status --porcelain` lines (untracked included, ignored files not): empty when clean. */
  async status(): Promise<string[]> {
    return (await this.run(['status', '--porcelain=v1', '--untracked-files=all']))
      .split('\n')
      .filter((l) => l !== '');
  }

  async tagExists(tag: string): Promise<boolean> {
    return (await this.tryRun(['rev-parse', '--verify', '--quiet', `refs/tags/${tag}`])).code === 0;
  }

  /** The commit a tag points at (peeled), or undefined. */
  async tagCommit(tag: string): Promise<string | undefined> {
    const r = await this.tryRun(['rev-parse', '--verify', '--quiet', `refs/tags/${tag}^{commit}`]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /** `git describe --tags` of HEAD, or undefined when no tag is reachable. */
  async describe(): Promise<string | undefined> {
    const r = await this.tryRun(['describe', '--tags']);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /**
   * What `remote` holds for these exact ref names (ls-remote matches by suffix and adds peeled
   * `^{}` lines; only exact names are kept): ref name → object id, absent refs left out.
   */
  async remoteRefs(remote: string, refs: readonly string[]): Promise<Map<string, string>> {
    const out = await this.run(['ls-remote', remote, ...refs]);
    const found = new Map<string, string>();
    for (const line of out.split('\n')) {
      const [id, name] = line.split('\t');
      if (id !== undefined && name !== undefined && refs.includes(name)) found.set(name, id);
    }
    return found;
  }

  async tags(): Promise<string[]> {
    return (await this.run(['tag', '--list'])).split('\n').filter((t) => t !== '');
  }

  /** The committer time of a commit, in seconds (for SOURCE_DATE_EPOCH). */
  async commitTime(rev: string): Promise<number> {
    return Number((await this.run(['show', '-s', '--format=%ct', rev])).trim());
  }

  /** Writes `git archive --format=tar --prefix=… rev` to `out` (streamed, not buffered). */
  async archive(rev: string, prefix: string, out: Writable): Promise<void> {
    const args = ['archive', '--format=tar', `--prefix=${prefix}`, rev];
    const child = spawn(this.#git, ['-C', this.dir, ...args], {
      env: this.#env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (stderr.length < 65536) stderr += s;
    });
    const exited = new Promise<number>((resolve, reject) => {
      child.on('error', (err) => {
        reject(
          new SlipwayError('RELEASE_GIT_FAILED', `cannot run ${this.#git}: ${err.message}`, { cause: err }),
        );
      });
      child.on('close', (code) => {
        resolve(code ?? 1);
      });
    });
    const [, code] = await Promise.all([pipeline(child.stdout, out), exited]);
    if (code !== 0) throw this.failure(args, { code, stdout: '', stderr });
  }
}
