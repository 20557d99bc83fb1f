/**
 * node:http plumbing Slipway's two servers share — the TUF repository server
 * (src/repo/serve.ts, layer 3) and the image repository server
 * (src/server/imgapi-server.ts, layer 5): listening with errors a user can
 * act on, streaming a response body while counting it, and a graceful close
 * that drains in-flight requests within a grace time.
 *
 * It lives in core (layer 0) because it is the lowest layer both may import
 * (imports only point down) and holds no domain: like atomic-file.ts, generic
 * I/O on Node's own modules. The pure HTTP rules (ranges, entity tags, the
 * request log line) are src/formats/http.ts.
 */
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SlipwayError } from './errors.js';

/**
 * Starts `server` listening on host:port (0: any free port); resolves with
 * the bound port. An address in use or not allowed is bad input
 * (INVALID_ARGUMENT); anything else an IO failure.
 */
export async function listenHttp(server: http.Server, host: string, port: number): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SlipwayError(
      e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL'
        ? 'INVALID_ARGUMENT'
        : 'IO',
      `cannot listen on ${host}:${port}: ${e.message}`,
      { cause: err },
    );
  }
  return (server.address() as AddressInfo).port;
}

/**
 * Streams `body` into `res`, calling `onBytes` with each chunk's length as it
 * goes. A client that leaves, or a body that fails mid-way, cuts the response
 * short: both streams are destroyed and nothing is thrown.
 */
export async function streamResponse(
  body: Readable,
  res: http.ServerResponse,
  onBytes: (n: number) => void,
): Promise<void> {
  // Counted on 'data' rather than through a transform: no extra promise per chunk on the hot path.
  body.on('data', (c: Buffer) => {
    onBytes(c.length);
  });
  try {
    await pipeline(body, res);
  } catch {
    body.destroy();
    res.destroy();
  }
}

export interface DrainOptions {
  /** How long in-flight requests may take before their connections are cut. */
  graceMs: number;
  /** The requests being handled (each one's promise, removed when it settles). */
  inflight: ReadonlySet<Promise<void>>;
  /** Called once the grace time is over, just before every connection is closed (e.g. to abort uploads). */
  onGraceExpired: () => void;
  /** Also close connections that go idle after their last request, checking this often (default: only once, at the start). */
  closeIdleEveryMs?: number;
}

/**
 * Stops accepting connections, closes idle ones, lets in-flight requests
 * finish within the grace time (then cuts every connection), and waits for
 * the handlers themselves to settle, within the grace time again: a handler
 * that outlives its connection (cleaning up an upload) is waited for, but not
 * forever.
 */
export async function drainHttpServer(server: http.Server, options: DrainOptions): Promise<void> {
  const { graceMs, inflight } = options;
  const done = new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  server.closeIdleConnections();
  const timer = setTimeout(() => {
    options.onGraceExpired();
    server.closeAllConnections();
  }, graceMs);
  const idle =
    options.closeIdleEveryMs !== undefined
      ? setInterval(() => {
          server.closeIdleConnections();
        }, options.closeIdleEveryMs)
      : undefined;
  try {
    await done;
    const bound = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    while (inflight.size > 0) {
      if ((await Promise.race([Promise.allSettled([...inflight]), bound])) === undefined) break;
    }
  } finally {
    clearTimeout(timer);
    if (idle !== undefined) clearInterval(idle);
  }
}
