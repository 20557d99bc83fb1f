/**
 * HTTP(S) for the registry client, on node:http/https with keep-alive agents.
 *
 * Network policy in one place (STYLE 9): a request marked retryable is retried
 * on 408/429/5xx and on connection errors (reset, refused, broken pipe, hang
 * up, timeout) with exponential backoff and jitter, honouring Retry-After, up
 * to a fixed number of attempts; nothing else is retried here (401 handling is
 * auth.ts's, upload sessions restart in client.ts). Redirects are not followed
 * here. A streamed body is given as a factory so every attempt gets a fresh
 * stream. `insecure` skips TLS verification only for URLs on the registry's
 * own hostname (`insecureHostname`): a token realm or blob store on another
 * host is always verified, so credentials never go to an unverified third
 * party. `caFile` adds trusted roots.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { SlipwayError, fromSystemError } from '../../core/errors.js';

/** A request body: bytes, or a factory giving a fresh stream for each attempt. */
export type Body = Uint8Array | (() => Readable);

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Body;
  /** Required with a stream body (registries want Content-Length, not chunked encoding). */
  contentLength?: number;
  /** Retry on 408/429/5xx and connection errors (default true). */
  retry?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  url: URL;
  /** The body, not yet read: read it (readBody) or discard it (drain). */
  stream: http.IncomingMessage;
}

export interface TransportOptions {
  /** PEM bundle of extra trusted CAs. */
  caFile?: string;
  /** Skip TLS verification for https URLs on this hostname only (the registry's, under --insecure). */
  insecureHostname?: string;
  /** Attempts for a retryable request, default 4 (the first plus 3 retries). */
  attempts?: number;
  /** First backoff delay, default 250 ms (doubling, capped at 10 s, with ±50% jitter). */
  backoffMs?: number;
  /** Idle socket timeout, default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Sees every request sent (method, URL), e.g. for counting. */
  onRequest?: (method: string, url: URL) => void;
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const RETRYABLE_ERRORS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
const MAX_BACKOFF_MS = 10_000;
const MAX_RETRY_AFTER_MS = 30_000;

// ---------------------------------------------------------------------------
// Pure policy

export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUS.has(status);
}

/** Connection-level failures worth another attempt (a fresh connection may succeed). */
export function isRetryableError(err: unknown): boolean {
  if (err instanceof SlipwayError) return false;
  const e = err as NodeJS.ErrnoException;
  return (e.code !== undefined && RETRYABLE_ERRORS.has(e.code)) || /socket hang up/i.test(e.message);
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), capped; undefined when absent or bad. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/** Delay before retry number `retry` (1-based): Retry-After when given, else exponential with jitter. */
export function backoffDelay(
  retry: number,
  baseMs: number,
  retryAfterMs?: number,
  random = Math.random,
): number {
  if (retryAfterMs !== undefined) return retryAfterMs;
  const exp = Math.min(baseMs * 2 ** (retry - 1), MAX_BACKOFF_MS);
  return Math.round(exp * (0.5 + random()));
}

// ---------------------------------------------------------------------------
// I/O

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new SlipwayError('INTERRUPTED', 'request cancelled'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const msg = e.message || String(err);
  return e.code !== undefined && !msg.includes(e.code) ? `${e.code}: ${msg}` : msg;
}

/** Reads a whole response body, refusing more than `cap` bytes. */
export async function readBody(res: HttpResponse, cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res.stream) {
    const b = chunk as Buffer;
    n += b.byteLength;
    if (n > cap) {
      res.stream.destroy();
      throw new SlipwayError(
        'OCI_REGISTRY_ERROR',
        `${res.url.host}: the response to ${res.url.pathname} is larger than ${cap} bytes`,
      );
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Discards a response body so its keep-alive socket can be reused. */
export async function drain(res: HttpResponse): Promise<void> {
  // A broken body on a response we do not need changes nothing: errors are ignored.
  await new Promise<void>((resolve) => {
    res.stream.on('end', resolve);
    res.stream.on('error', () => {
      resolve();
    });
    res.stream.on('close', resolve);
    res.stream.resume();
  });
}

export class Transport {
  readonly #http: http.Agent;
  readonly #https: https.Agent;
  readonly #httpsInsecure: https.Agent | undefined;
  readonly #insecureHostname: string | undefined;
  readonly #attempts: number;
  readonly #backoffMs: number;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onRequest: ((method: string, url: URL) => void) | undefined;
  #requests = 0;

  constructor(options: TransportOptions = {}) {
    let ca: Buffer | undefined;
    if (options.caFile !== undefined) {
      try {
        ca = fs.readFileSync(options.caFile);
      } catch (err) {
        throw fromSystemError(err, 'cannot read the CA file', options.caFile);
      }
    }
    this.#http = new http.Agent({ keepAlive: true, maxSockets: 16 });
    // Node's default roots plus the extra bundle (`ca` alone would replace them).
    const roots = ca !== undefined ? { ca: [...rootCertificates, ca.toString('utf8')] } : {};
    this.#https = new https.Agent({ keepAlive: true, maxSockets: 16, ...roots });
    this.#insecureHostname = options.insecureHostname;
    this.#httpsInsecure =
      options.insecureHostname !== undefined
        ? new https.Agent({ keepAlive: true, maxSockets: 16, ...roots, rejectUnauthorized: false })
        : undefined;
    this.#attempts = Math.max(1, options.attempts ?? 4);
    this.#backoffMs = options.backoffMs ?? 250;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#signal = options.signal;
    this.#onRequest = options.onRequest;
  }

  /** HTTP requests sent so far (every attempt counts). */
  get requests(): number {
    return this.#requests;
  }

  close(): void {
    this.#http.destroy();
    this.#https.destroy();
    this.#httpsInsecure?.destroy();
  }

  /**
   * Sends a request, retrying transient failures when `retry` is not false.
   * Returns the final response whatever its status (callers judge it); throws
   * OCI_UNREACHABLE when the host cannot be reached after the attempts.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const attempts = req.retry === false ? 1 : this.#attempts;
    for (let attempt = 1; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.#once(req);
      } catch (err) {
        if (err instanceof SlipwayError) throw err;
        if (attempt < attempts && isRetryableError(err)) {
          await sleep(backoffDelay(attempt, this.#backoffMs), this.#signal);
          continue;
        }
        throw new SlipwayError(
          'OCI_UNREACHABLE',
          `${req.method} ${req.url.origin}${req.url.pathname}: ${describeError(err)}${attempt > 1 ? ` (after ${attempt} attempts)` : ''}`,
          { cause: err, where: req.url.host },
        );
      }
      if (attempt < attempts && isRetryableStatus(res.status)) {
        await drain(res);
        const after = parseRetryAfter(header(res.headers, 'retry-after'), Date.now());
        await sleep(backoffDelay(attempt, this.#backoffMs, after), this.#signal);
        continue;
      }
      return res;
    }
  }

  #once(req: HttpRequest): Promise<HttpResponse> {
    const { url } = req;
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') {
      return Promise.reject(new SlipwayError('OCI_INVALID', `not an http(s) URL: ${url.href}`));
    }
    const signal = this.#signal;
    if (signal?.aborted === true) return Promise.reject(new SlipwayError('INTERRUPTED', 'request cancelled'));
    this.#requests++;
    this.#onRequest?.(req.method, url);
    const headers: Record<string, string> = { 'User-Agent': 'slipway', ...req.headers };
    if (req.body instanceof Uint8Array) headers['Content-Length'] = String(req.body.byteLength);
    else if (req.body !== undefined) headers['Content-Length'] = String(req.contentLength ?? 0);
    else if (req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH') {
      headers['Content-Length'] = '0';
    }
    return new Promise<HttpResponse>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      const onAbort = (): void => {
        r.destroy(new SlipwayError('INTERRUPTED', 'request cancelled'));
      };
      const agent = !secure
        ? this.#http
        : url.hostname === this.#insecureHostname && this.#httpsInsecure !== undefined
          ? this.#httpsInsecure
          : this.#https;
      const r = (secure ? https : http).request(url, { method: req.method, headers, agent }, (res) => {
        if (settled) {
          res.resume();
          return;
        }
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, url, stream: res });
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      r.setTimeout(this.#timeoutMs, () => {
        const e = new Error(`no answer within ${this.#timeoutMs} ms`) as NodeJS.ErrnoException;
        e.code = 'ETIMEDOUT';
        r.destroy(e);
      });
      r.on('error', fail);
      const body = req.body;
      if (body === undefined) r.end();
      else if (body instanceof Uint8Array) r.end(body);
      else {
        const source = body();
        // A failing source (e.g. a digest check) aborts the request so the
        // registry never sees a complete body.
        source.on('error', (err) => {
          r.destroy(err);
          fail(err);
        });
        // A request that dies first (reset, abort) would leave the source, an open file, paused forever.
        r.on('close', () => {
          source.destroy();
        });
        source.pipe(r);
      }
    });
  }
}

/** A header's value as one string (the first when repeated). */
export function header(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
