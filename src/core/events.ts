/**
 * Progress and log events. Library code reports what it is doing through a
 * Reporter; the CLI decides how to show it (a live display on a TTY, plain
 * timestamped lines otherwise). Libraries never write to stdout themselves.
 */

export type LogLevel = 'debug' | 'info' | 'warn';

export type SlipwayEvent =
  | { kind: 'log'; level: LogLevel; message: string; task?: string }
  | { kind: 'task-start'; task: string; total?: number; unit?: 'bytes' | 'entries' }
  | { kind: 'task-progress'; task: string; done: number; total?: number }
  | { kind: 'task-end'; task: string; ok: boolean; detail?: string };

export interface Reporter {
  emit(event: SlipwayEvent): void;
}

/** Reports nothing: the default for library calls. */
export const silentReporter: Reporter = { emit: () => undefined };

/** Collects events in memory (tests). */
export class MemoryReporter implements Reporter {
  readonly events: SlipwayEvent[] = [];
  emit(event: SlipwayEvent): void {
    this.events.push(event);
  }
}

/** Small helpers so call sites stay short. */
export function warn(reporter: Reporter, message: string, task?: string): void {
  reporter.emit(
    task === undefined
      ? { kind: 'log', level: 'warn', message }
      : { kind: 'log', level: 'warn', message, task },
  );
}

export function info(reporter: Reporter, message: string, task?: string): void {
  reporter.emit(
    task === undefined
      ? { kind: 'log', level: 'info', message }
      : { kind: 'log', level: 'info', message, task },
  );
}
