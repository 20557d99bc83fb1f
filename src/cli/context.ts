import type { CliReporter } from './render.js';

/** What every command gets: global flags and where to write. */
export interface CliContext {
  json: boolean;
  debug: boolean;
  quiet: boolean;
  reporter: CliReporter;
  /** Aborted on the first SIGINT/SIGTERM: long work stops its children and cleans up. */
  signal: AbortSignal;
  /**
   * For long-running servers: the first SIGINT/SIGTERM calls `stop` (drain,
   * then return) instead of aborting; a second one aborts as usual. Returns
   * a function that removes the hook.
   */
  onFirstInterrupt: (stop: (signal: string) => void) => () => void;
  /** Results (human or JSON) go here. */
  print: (text: string) => void;
}

/** A command returns data; the CLI prints it as JSON with --json, else with `human`. */
export interface CommandResult {
  data: unknown;
  human: string;
  /** Non-zero exit without an exception (e.g. verify found problems). */
  exitCode?: number;
}
