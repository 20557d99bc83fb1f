/** What the `serve` commands (`repo serve`, `images serve`) share: serving until stopped. */
import type { CliContext, CommandResult } from './context.js';

/** A started server, as a `serve` command sees it. */
export interface RunningServer {
  url: string;
  port: number;
  /** Stops accepting, drains in-flight requests, closes everything. */
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Starts the server; resolves once it listens. */
  start: () => Promise<RunningServer>;
  /** What is served, for the human line: `serving WHAT at URL`. */
  what: string;
  /** The port asked for: with 0 the line also names the bound one. */
  port: number;
  /** How long the server's close() lets in-flight requests run, for the message on the first signal. */
  graceMs: number;
}

/**
 * Resolves on the first SIGINT/SIGTERM (or when `ctx.signal` aborts): the
 * server then drains in-flight requests; a second signal stops the process
 * the usual way (src/cli/main.ts).
 */
function untilStopped(ctx: CliContext, graceMs: number): { stopped: Promise<string>; restore: () => void } {
  let resolveStop: (why: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    resolveStop = resolve;
  });
  const restore = ctx.onFirstInterrupt((sig) => {
    process.stderr.write(
      `\n${sig}: finishing in-flight requests (up to ${Math.round(graceMs / 1000)} s; again to stop at once)\n`,
    );
    resolveStop(sig);
  });
  if (ctx.signal.aborted) resolveStop('aborted');
  else
    ctx.signal.addEventListener(
      'abort',
      () => {
        resolveStop('aborted');
      },
      { once: true },
    );
  return { stopped, restore };
}

/**
 * Starts the server, prints where it listens (`{"listening","port"}` with
 * --json), serves until stopped, then closes it (draining) and returns.
 */
export async function serveUntilStopped(ctx: CliContext, options: ServeOptions): Promise<CommandResult> {
  const stop = untilStopped(ctx, options.graceMs);
  try {
    const server = await options.start();
    ctx.print(
      ctx.json
        ? JSON.stringify({ listening: server.url, port: server.port })
        : `serving ${options.what} at ${server.url}${options.port === 0 ? ` (bound port ${server.port})` : ''}`,
    );
    const why = await stop.stopped;
    await server.close();
    return {
      data: { url: server.url, port: server.port, stopped: why },
      human: `stopped serving ${server.url} (${why})`,
    };
  } finally {
    stop.restore();
  }
}
