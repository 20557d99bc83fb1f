/**
 * Renders library events for people: a live task display on a TTY, plain
 * timestamped lines otherwise (CI, pipes). Colour only on a TTY and never
 * with NO_COLOR set. Everything goes to stderr; stdout is for results.
 */
import type { Reporter, SlipwayEvent } from '../core/events.js';
import { formatSize } from '../core/size.js';

export interface RenderOptions {
  stream?: NodeJS.WriteStream;
  quiet?: boolean;
  /** Force plain lines even on a TTY. */
  plain?: boolean;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
}

interface TaskState {
  started: number;
  done: number;
  total: number | undefined;
  unit: 'bytes' | 'entries' | undefined;
  lastPlain: number;
}

export function colorEnabled(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): boolean {
  return stream.isTTY && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

function amount(n: number, unit: TaskState['unit']): string {
  return unit === 'bytes' ? formatSize(n) : String(n);
}

function elapsed(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

export class CliReporter implements Reporter {
  readonly #out: NodeJS.WriteStream;
  readonly #live: boolean;
  readonly #color: boolean;
  readonly #quiet: boolean;
  readonly #now: () => Date;
  readonly #tasks = new Map<string, TaskState>();
  #drawn = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RenderOptions = {}) {
    this.#out = options.stream ?? process.stderr;
    const env = options.env ?? process.env;
    this.#live = this.#out.isTTY && options.plain !== true && env.TERM !== 'dumb';
    this.#color = colorEnabled(this.#out, env);
    this.#quiet = options.quiet ?? false;
    this.#now = options.now ?? (() => new Date());
  }

  #paint(code: string, text: string): string {
    return this.#color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  #line(text: string): void {
    if (this.#live) {
      this.#clear();
      this.#out.write(`${text}\n`);
      this.#draw();
    } else {
      this.#out.write(`${this.#now().toISOString()} ${text}\n`);
    }
  }

  #clear(): void {
    if (this.#drawn > 0) this.#out.write(`\x1b[${this.#drawn}A\x1b[J`);
    this.#drawn = 0;
  }

  #draw(): void {
    if (!this.#live) return;
    const now = Date.now();
    const lines: string[] = [];
    for (const [name, t] of this.#tasks) {
      const pct = t.total !== undefined && t.total > 0 ? ` ${Math.floor((100 * t.done) / t.total)}%` : '';
      const amt =
        t.done > 0
          ? ` ${amount(t.done, t.unit)}${t.total !== undefined ? `/${amount(t.total, t.unit)}` : ''}`
          : '';
      lines.push(
        `${this.#paint('36', '•')} ${name}${pct}${amt} ${this.#paint('2', elapsed(now - t.started))}`,
      );
    }
    if (lines.length > 0) this.#out.write(`${lines.join('\n')}\n`);
    this.#drawn = lines.length;
  }

  #schedule(): void {
    if (!this.#live || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#clear();
      this.#draw();
    }, 100);
    this.#timer.unref();
  }

  emit(event: SlipwayEvent): void {
    switch (event.kind) {
      case 'log': {
        if (event.level === 'debug' || (this.#quiet && event.level === 'info')) return;
        const tag = event.level === 'warn' ? this.#paint('33', 'warning: ') : '';
        this.#line(`${event.task !== undefined ? `[${event.task}] ` : ''}${tag}${event.message}`);
        return;
      }
      case 'task-start':
        this.#tasks.set(event.task, {
          started: Date.now(),
          done: 0,
          total: event.total,
          unit: event.unit,
          lastPlain: Date.now(),
        });
        if (!this.#live && !this.#quiet) this.#line(`[${event.task}] started`);
        this.#schedule();
        return;
      case 'task-progress': {
        const t = this.#tasks.get(event.task);
        if (t === undefined) return;
        t.done = event.done;
        if (event.total !== undefined) t.total = event.total;
        if (this.#live) this.#schedule();
        else if (!this.#quiet && Date.now() - t.lastPlain >= 5000) {
          t.lastPlain = Date.now();
          this.#line(
            `[${event.task}] ${amount(t.done, t.unit)}${t.total !== undefined ? ` of ${amount(t.total, t.unit)}` : ''}`,
          );
        }
        return;
      }
      case 'task-end': {
        const t = this.#tasks.get(event.task);
        this.#tasks.delete(event.task);
        const took = t === undefined ? '' : ` in ${elapsed(Date.now() - t.started)}`;
        if (!event.ok) this.#line(`${this.#paint('31', '✗')} [${event.task}] failed${took}`);
        else if (!this.#quiet) {
          this.#line(
            `${this.#paint('32', '✓')} [${event.task}] done${took}${event.detail !== undefined ? `: ${event.detail}` : ''}`,
          );
        }
        return;
      }
    }
  }

  /** Removes the live display (before printing results or errors). */
  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#live) this.#clear();
  }
}
