/**
 * `slipway repo serve`: a repository over HTTP(S) for TUF clients, from a
 * repository zip (random access into its stored entries, never extracted)
 * or an extracted directory; or, with a store, the receiving side of
 * uploads (Omicron's `PUT /v1/system/update/repository`) that serves every
 * stored repository under `/v1/system/update/repository/<version>/`.
 *
 * The HTTP layer is thin: path decoding and routing are small pure
 * functions (exported for tests), range and conditional rules those of
 * formats/http.ts, the node:http plumbing core/http-server.ts; files come
 * from a `FileSource`; the upload logic lives in store.ts.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { ZipReader, fileRangeStream } from '../archive/zip-read.js';
import { SlipwayError, fromSystemError, isSlipwayError } from '../core/errors.js';
import { type Reporter, silentReporter } from '../core/events.js';
import { drainHttpServer, listenHttp, streamResponse } from '../core/http-server.js';
import { etagMatches, hostForUrl, parseRange, requestLogLine } from '../formats/http.js';
import { RepoStore, repoView } from './store.js';

// ---------------------------------------------------------------------------
// Pure parts

export type Area = 'metadata' | 'targets';

/** What a request asks for, decided from its path alone. */
export type Route =
  | { kind: 'file'; area: Area; name: string; version?: string }
  | { kind: 'list' }
  | { kind: 'repo'; version: string }
  | { kind: 'upload' }
  | { kind: 'none' };

const MAX_NAME = 255;

/** A single path segment naming a file: no separators, no `.`/`..`, no dot files, no control characters. */
export function isPlainName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= MAX_NAME &&
    !name.startsWith('.') &&
    // eslint-disable-next-line no-control-regex
    !/[/\\\u0000-\u001f\u007f]/.test(name)
  );
}

/**
 * The request target's path, split into percent-decoded segments, and its
 * query; undefined for anything that is not an origin-form path or whose
 * segments do not decode. Decoding happens per segment, so `%2F` cannot
 * make a separator and `%2e%2e` stays one (refused) segment.
 */
export function decodeTarget(rawUrl: string): { segments: string[]; query: URLSearchParams } | undefined {
  if (!rawUrl.startsWith('/')) return undefined;
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
  try {
    return { segments: rawPath.slice(1).split('/').map(decodeURIComponent), query };
  } catch {
    return undefined;
  }
}

const AREAS: readonly string[] = ['metadata', 'targets'];
const UPDATE_PREFIX = ['v1', 'system', 'update'];

function fileRoute(area: string | undefined, name: string | undefined, version?: string): Route {
  if (area === undefined || name === undefined || !AREAS.includes(area) || !isPlainName(name))
    return { kind: 'none' };
  return { kind: 'file', area: area as Area, name, ...(version !== undefined ? { version } : {}) };
}

/** Path segments → route. `store` mode serves the upload API; otherwise `/metadata/…` and `/targets/…`. */
export function routeOf(segments: readonly string[], mode: 'source' | 'store'): Route {
  if (mode === 'source')
    return segments.length === 2 ? fileRoute(segments[0], segments[1]) : { kind: 'none' };
  if (segments.length < 4 || UPDATE_PREFIX.some((s, i) => segments[i] !== s)) return { kind: 'none' };
  const [, , , what, version, area, name, ...more] = segments;
  if (what === 'repositories') return segments.length === 4 ? { kind: 'list' } : { kind: 'none' };
  if (what !== 'repository' || more.length > 0) return { kind: 'none' };
  if (version === undefined) return { kind: 'upload' };
  if (!isPlainName(version)) return { kind: 'none' };
  if (area === undefined) return { kind: 'repo', version };
  return fileRoute(area, name, version);
}

/** The methods a route answers. */
export function methodsFor(route: Route): readonly string[] {
  switch (route.kind) {
    case 'upload':
      return ['PUT'];
    case 'none':
      return [];
    default:
      return ['GET', 'HEAD'];
  }
}

/** The sha256 of a hash-prefixed name (`<sha256>.<target>`), else size and mtime. */
export function etagFor(name: string, size: number, mtimeMs: number): string {
  const m = /^([0-9a-f]{64})\./.exec(name);
  return m?.[1] !== undefined ? `"${m[1]}"` : `"${size.toString(16)}-${Math.trunc(mtimeMs).toString(16)}"`;
}

/** `If-Range` with another validator: ignore Range and send everything. */
export function rangeApplies(ifRange: string | undefined, etag: string): boolean {
  return ifRange === undefined || ifRange.trim() === etag;
}

export function contentTypeFor(area: Area): string {
  return area === 'metadata' ? 'application/json' : 'application/octet-stream';
}

/** HTTP status for an error: 409 conflict, 413 too large, 404 not found, 400 other bad input, 500 otherwise. */
export function statusOf(err: unknown): number {
  if (!isSlipwayError(err)) return 500;
  switch (err.code) {
    case 'REPO_CONFLICT':
      return 409;
    case 'REPO_UPLOAD_TOO_LARGE':
      return 413;
    case 'NOT_FOUND':
      return 404;
    case 'INTERRUPTED':
      return 503;
    default:
      return err.kind === 'input' ? 400 : 500;
  }
}

// ---------------------------------------------------------------------------
// Files

/** One file being served; `release()` after the response. */
interface ServedFile {
  size: number;
  etag: string;
  /** Bytes `start..end` inclusive. */
  open(start: number, end: number): Promise<Readable>;
  release(): Promise<void>;
}

interface FileSource {
  lookup(area: Area, name: string): Promise<ServedFile | undefined>;
  close(): Promise<void>;
}

/** Bytes `start..end` (inclusive) of a stream that begins at byte 0. */
async function* slice(src: Readable, start: number, end: number): AsyncGenerator<Buffer> {
  let pos = 0;
  try {
    for await (const c of src as AsyncIterable<Buffer>) {
      const from = Math.max(0, start - pos);
      const to = Math.min(c.length, end + 1 - pos);
      pos += c.length;
      if (to > from) yield c.subarray(from, to);
      if (pos > end) break;
    }
  } finally {
    src.destroy();
  }
}

/** A repository zip: `repo/metadata/…` and `repo/targets/…`, read in place. */
class ZipFileSource implements FileSource {
  readonly #reader: ZipReader;
  readonly #fh: fsp.FileHandle;
  readonly #mtimeMs: number;

  private constructor(reader: ZipReader, fh: fsp.FileHandle, mtimeMs: number) {
    this.#reader = reader;
    this.#fh = fh;
    this.#mtimeMs = mtimeMs;
  }

  static async open(file: string): Promise<ZipFileSource> {
    const reader = await ZipReader.open(file);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (err) {
      await reader.close();
      throw fromSystemError(err, 'cannot open', file);
    }
    const st = await fh.stat();
    return new ZipFileSource(reader, fh, st.mtimeMs);
  }

  lookup(area: Area, name: string): Promise<ServedFile | undefined> {
    const entry = this.#reader.get(`repo/${area}/${name}`);
    if (entry === undefined || entry.isDirectory) return Promise.resolve(undefined);
    const size = entry.size;
    return Promise.resolve({
      size,
      etag: etagFor(name, size, this.#mtimeMs),
      open: async (start, end) => {
        // The whole entry goes through the reader (length and CRC-32 checked);
        // a range of a stored entry is read in place; of a deflated one, skipped to.
        if (start === 0 && end === size - 1) return this.#reader.openEntry(entry);
        if (entry.method === 0 && entry.compressedSize === size) {
          return Readable.from(this.#reader.readStored(entry, start, end));
        }
        return Readable.from(slice(await this.#reader.openEntry(entry), start, end));
      },
      release: () => Promise.resolve(),
    });
  }

  async close(): Promise<void> {
    await this.#reader.close();
    await this.#fh.close().catch(() => undefined);
  }
}

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/**
 * An extracted repository: DIR/metadata and DIR/targets. The file is opened
 * without following a final symlink (and without blocking on a FIFO), must
 * be a regular file, and its real path must lie inside DIR and be the very
 * file opened (a symlinked `metadata/` pointing out is refused too).
 */
class DirFileSource implements FileSource {
  readonly #root: string;

  private constructor(root: string) {
    this.#root = root;
  }

  static async open(dir: string): Promise<DirFileSource> {
    let root: string;
    try {
      root = await fsp.realpath(dir);
      if (!(await fsp.stat(root)).isDirectory()) {
        throw new SlipwayError('INVALID_ARGUMENT', `${dir} is not a directory`, { where: dir });
      }
    } catch (err) {
      throw fromSystemError(err, 'cannot serve', dir);
    }
    return new DirFileSource(root);
  }

  async lookup(area: Area, name: string): Promise<ServedFile | undefined> {
    const p = path.join(this.#root, area, name);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(p, OPEN_FLAGS);
    } catch {
      return undefined; // ENOENT, ELOOP (a symlink), ENOTDIR, EACCES: all "not here"
    }
    try {
      const st = await fh.stat();
      const real = await fsp.realpath(p);
      const rst = await fsp.stat(real);
      if (
        !st.isFile() ||
        !real.startsWith(this.#root.endsWith(path.sep) ? this.#root : `${this.#root}${path.sep}`) ||
        rst.ino !== st.ino ||
        rst.dev !== st.dev
      ) {
        await fh.close();
        return undefined;
      }
      return {
        size: st.size,
        etag: etagFor(name, st.size, st.mtimeMs),
        open: (start, end) =>
          Promise.resolve(
            fileRangeStream(fh, start, end + 1, () => new SlipwayError('IO', 'the file ended early')),
          ),
        release: () => fh.close().catch(() => undefined),
      };
    } catch {
      await fh.close().catch(() => undefined);
      return undefined;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function openSource(source: string): Promise<FileSource> {
  let st: fs.Stats;
  try {
    st = await fsp.stat(source);
  } catch (err) {
    throw fromSystemError(err, 'cannot serve', source);
  }
  return st.isDirectory() ? DirFileSource.open(source) : ZipFileSource.open(source);
}

// ---------------------------------------------------------------------------
// The server

export interface RepoServerOptions {
  /** A repository zip or an extracted repository directory to serve. */
  source?: string;
  /** An upload store directory (exactly one of source and store). */
  store?: string;
  /** Bytes of the trusted root.json uploads are checked against (default: each repository's own). */
  trustedRoot?: Uint8Array;
  host: string;
  /** 0: any free port. */
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  /** Largest upload accepted, in bytes (default 16 GiB). */
  maxUpload?: number;
  reporter?: Reporter;
  now?: () => Date;
  /** How long close() waits for in-flight requests before cutting them (default 10 s). */
  closeGraceMs?: number;
}

export interface RepoServer {
  url: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish (at most 10 s), then closes everything. */
  close(): Promise<void>;
}

export const CLOSE_GRACE_MS = 10_000;
/** A connection silent this long is dropped (lifted while an upload is being verified). */
const IDLE_TIMEOUT_MS = 120_000;

interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** Response body bytes sent. */
  bytes: number;
  /** Request body bytes received (uploads). */
  received: number;
  /** The error code answered (or met after the client left), for the log. */
  error?: string;
}

function sendJson(x: Exchange, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const data = Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
  if (x.res.headersSent) {
    x.res.destroy();
    return;
  }
  x.res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': data.length,
  });
  x.res.end(x.req.method === 'HEAD' ? undefined : data);
  if (x.req.method !== 'HEAD') x.bytes += data.length;
}

/** `{ "error_code", "message" }` with the error's status (or `status`). */
function sendError(
  x: Exchange,
  err: unknown,
  headers: http.OutgoingHttpHeaders = {},
  status = statusOf(err),
): void {
  const code = err instanceof SlipwayError ? err.code : 'INTERNAL';
  const message = err instanceof Error ? err.message : String(err);
  x.error = code;
  if (x.req.socket.destroyed) return; // the client is gone: nobody to tell
  sendJson(x, status, { error_code: code, message }, headers);
}

function notFound(x: Exchange): void {
  sendError(x, new SlipwayError('NOT_FOUND', `no such resource: ${x.req.url ?? ''}`));
}

async function sendFile(x: Exchange, file: ServedFile, area: Area): Promise<void> {
  const { req, res } = x;
  const headers: http.OutgoingHttpHeaders = {
    'Accept-Ranges': 'bytes',
    ETag: file.etag,
    'Content-Type': contentTypeFor(area),
  };
  // `If-None-Match` naming our ETag (or `*`): 304.
  if (etagMatches(req.headers['if-none-match'], file.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const ifRange = req.headers['if-range'];
  const oneIfRange = Array.isArray(ifRange) ? ifRange.join(',') : ifRange;
  const range = rangeApplies(oneIfRange, file.etag)
    ? parseRange(req.headers.range, file.size)
    : { kind: 'whole' as const };
  if (range.kind === 'unsatisfiable') {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${file.size}`, 'Content-Length': 0 });
    res.end();
    return;
  }
  const [start, end] = range.kind === 'partial' ? [range.start, range.end] : [0, file.size - 1];
  const length = end - start + 1;
  res.writeHead(range.kind === 'partial' ? 206 : 200, {
    ...headers,
    'Content-Length': length,
    ...(range.kind === 'partial' ? { 'Content-Range': `bytes ${start}-${end}/${file.size}` } : {}),
  });
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  await streamResponse(await file.open(start, end), res, (n) => {
    x.bytes += n;
  });
}

/** Starts serving; resolves once listening. */
export async function startRepoServer(options: RepoServerOptions): Promise<RepoServer> {
  if ((options.source === undefined) === (options.store === undefined)) {
    throw new SlipwayError(
      'USAGE',
      'serve either a repository (source) or an upload store, not both or neither',
    );
  }
  const reporter = options.reporter ?? silentReporter;
  const mode = options.store !== undefined ? 'store' : 'source';
  const source = options.source !== undefined ? await openSource(options.source) : undefined;
  const store =
    options.store !== undefined
      ? await RepoStore.open(options.store, {
          ...(options.trustedRoot !== undefined ? { trustedRoot: options.trustedRoot } : {}),
          ...(options.maxUpload !== undefined ? { maxUpload: options.maxUpload } : {}),
          ...(options.now !== undefined ? { now: options.now } : {}),
          reporter,
        })
      : undefined;
  /** Stored repositories' zips, opened on first use (they never change: named by hash). */
  const stored = new Map<string, Promise<ZipFileSource>>();
  const shutdown = new AbortController();
  const inflight = new Set<Promise<void>>();
  let closing = false;

  const sourceFor = async (version: string | undefined): Promise<FileSource | undefined> => {
    if (version === undefined) return source;
    const rec = store?.get(version);
    if (store === undefined || rec === undefined) return undefined;
    let p = stored.get(rec.sha256);
    if (p === undefined) {
      p = ZipFileSource.open(store.zipPathOf(rec));
      stored.set(rec.sha256, p);
      p.catch(() => stored.delete(rec.sha256));
    }
    return p;
  };

  const upload = async (x: Exchange, query: URLSearchParams): Promise<void> => {
    if (store === undefined) {
      notFound(x);
      return;
    }
    const { req } = x;
    const declared = req.headers['content-length'];
    const counted = async function* (): AsyncGenerator<Buffer> {
      // destroyOnReturn: false, so that a refusal mid-body can still answer before the socket closes.
      for await (const c of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        x.received += c.length;
        yield c;
      }
    };
    try {
      const r = await store.upload(counted(), {
        fileName: query.get('file_name'),
        ...(declared !== undefined && /^\d+$/.test(declared) ? { declaredLength: Number(declared) } : {}),
        signal: shutdown.signal,
        onReceived: () => req.socket.setTimeout(0),
      });
      sendJson(x, 200, r);
    } catch (err) {
      // An unread body cannot be left on a kept-alive connection.
      sendError(x, err, req.complete ? {} : { Connection: 'close' });
    }
  };

  const handle = async (x: Exchange): Promise<void> => {
    const { req, res } = x;
    if (closing) res.setHeader('Connection', 'close');
    const target = decodeTarget(req.url ?? '');
    const route: Route = target === undefined ? { kind: 'none' } : routeOf(target.segments, mode);
    const allowed = methodsFor(route);
    if (route.kind === 'none') {
      notFound(x);
      return;
    }
    if (!allowed.includes(req.method ?? '')) {
      const err = new SlipwayError('INVALID_ARGUMENT', `method ${req.method ?? ''} is not allowed here`);
      sendError(x, err, { Allow: allowed.join(', '), ...(req.complete ? {} : { Connection: 'close' }) }, 405);
      return;
    }
    switch (route.kind) {
      case 'upload':
        await upload(x, target?.query ?? new URLSearchParams());
        return;
      case 'list':
        sendJson(x, 200, { items: (store?.list() ?? []).map(repoView) });
        return;
      case 'repo': {
        const rec = store?.get(route.version);
        if (rec === undefined)
          sendError(x, new SlipwayError('NOT_FOUND', `no repository for system version ${route.version}`));
        else sendJson(x, 200, repoView(rec));
        return;
      }
      case 'file': {
        const src = await sourceFor(route.version);
        const file = await src?.lookup(route.area, route.name);
        if (file === undefined) {
          notFound(x);
          return;
        }
        try {
          await sendFile(x, file, route.area);
        } finally {
          await file.release();
        }
      }
    }
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const started = process.hrtime.bigint();
    const x: Exchange = { req, res, bytes: 0, received: 0 };
    const p = handle(x)
      .catch((err: unknown) => {
        if (!res.headersSent) sendError(x, err);
        else res.destroy();
      })
      .finally(() => {
        inflight.delete(p);
        const message = requestLogLine({
          method: req.method,
          path: req.url,
          status: res.headersSent ? res.statusCode : 0,
          incomplete: !res.writableFinished,
          ...(x.error !== undefined ? { error: x.error } : {}),
          bytes: x.bytes,
          received: x.received,
          ms: Number((process.hrtime.bigint() - started) / 1_000_000n),
        });
        reporter.emit({ kind: 'log', level: 'info', message });
      });
    inflight.add(p);
  };

  const serverOptions: http.ServerOptions = {
    // Uploads of many GiB take longer than Node's default 5 minutes; stalls are caught by the idle timeout.
    requestTimeout: 0,
  };
  const server =
    options.tls !== undefined
      ? https.createServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key }, onRequest)
      : http.createServer(serverOptions, onRequest);
  server.setTimeout(IDLE_TIMEOUT_MS);
  // `Expect: 100-continue` (curl's large PUTs): no go-ahead for a body declared over the cap.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const declared = Number(req.headers['content-length']);
    if (!(store !== undefined && declared > store.maxUpload)) res.writeContinue();
    onRequest(req, res);
  });

  const closeSources = async (): Promise<void> => {
    await source?.close();
    for (const p of stored.values()) await p.then((s) => s.close()).catch(() => undefined);
    stored.clear();
  };

  let port: number;
  try {
    port = await listenHttp(server, options.host, options.port);
  } catch (err) {
    await closeSources();
    throw err;
  }
  const url = `${options.tls !== undefined ? 'https' : 'http'}://${hostForUrl(options.host)}:${port}`;

  const graceMs = options.closeGraceMs ?? CLOSE_GRACE_MS;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      // Uploads whose connection is gone still clean up their temp files; an upload
      // deep in verifying one large target notices the abort late: waited for, within bounds
      // (its temp file is removed when it stops, or on the next start).
      await drainHttpServer(server, {
        graceMs,
        inflight,
        onGraceExpired: () => {
          shutdown.abort();
        },
      });
      await closeSources();
    })();
    return closed;
  };
  return { url, port, close };
}
