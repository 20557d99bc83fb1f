/**
 * The image repository's HTTP server (specs/imgapi.md) on node:http: routing,
 * Accept-Version, auth, JSON bodies and responses, file streaming with
 * conditional and range requests, request logs and a graceful shutdown.
 * Everything the API decides is in ImagesService (src/images/service.ts)
 * and the pure rules it uses; this file only speaks HTTP.
 */
import { setMaxListeners } from 'node:events';
import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { silentReporter, warn, type Reporter } from '../core/events.js';
import { drainHttpServer, listenHttp, streamResponse } from '../core/http-server.js';
import { etagMatches, hostForUrl, parseRange, requestLogLine } from '../formats/http.js';
import { ImgapiError, type StoredImage } from '../formats/imgapi-types.js';
import { errorBody, isUuid, negotiateApiVersion, prettyJson, serializeManifest } from '../formats/imgapi.js';
import type { ImagesConfig } from '../images/config.js';
import { loadKeysDir, verifyRequestSignature } from '../images/http-signature.js';
import { ImagesService, isClientGone, type WantBody } from '../images/service.js';
import { openStores, type BlobStore, type MetadataStore } from '../store/index.js';
import { serveUi } from './ui.js';

/** JSON request bodies larger than this are refused (413). */
export const MAX_JSON_BODY = 1024 * 1024;
/** A refused upload's unread rest is read and dropped (keeping the connection) up to this size; beyond, the connection closes. */
const DRAIN_LIMIT = 8 * 1024 * 1024;
/** A connection silent this long is dropped. */
const IDLE_TIMEOUT_MS = 120_000;
/** Signed requests' Date may be this far from the server's clock. */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export interface ImagesServerOptions {
  reporter?: Reporter;
  now?: () => Date;
  /** AddImageFileFromUrl may fetch from loopback and private addresses (default: the config's). */
  allowPrivateFileUrls?: boolean;
  /** Use these stores instead of opening the configured ones (they are not closed by close()). */
  stores?: { meta: MetadataStore; blobs: BlobStore };
}

export interface ImagesServer {
  url: string;
  port: number;
  service: ImagesService;
  /** Stops accepting, lets in-flight requests (uploads) finish within the grace time, then closes the stores. */
  close(): Promise<void>;
}

function packageVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'slipway' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      /* try the next place */
    }
  }
  return '0.0.0';
}

type RouteName =
  | 'Ping'
  | 'ListChannels'
  | 'ListImages'
  | 'CreateImage'
  | 'GetImage'
  | 'UpdateImage'
  | 'DeleteImage'
  | 'GetImageFile'
  | 'AddImageFile'
  | 'AddImageFileFromUrl'
  | 'GetImageIcon'
  | 'AddImageIcon'
  | 'DeleteImageIcon'
  | 'ImageAcl';

interface Route {
  /** Method → endpoint. HEAD is served wherever GET is. */
  methods: Partial<Record<string, RouteName>>;
  uuid?: string;
  template: string;
}

/** The route of a path (already split on '/', decoded), or undefined. */
function routeOf(segments: string[]): Route | undefined {
  const [a, uuid, c, d, ...rest] = segments;
  if (rest.length > 0) return undefined;
  if (a === 'ping' && uuid === undefined) return { methods: { GET: 'Ping' }, template: '/ping' };
  if (a === 'channels' && uuid === undefined)
    return { methods: { GET: 'ListChannels' }, template: '/channels' };
  if (a !== 'images') return undefined;
  if (uuid === undefined) return { methods: { GET: 'ListImages', POST: 'CreateImage' }, template: '/images' };
  if (c === undefined)
    return {
      methods: { GET: 'GetImage', POST: 'UpdateImage', DELETE: 'DeleteImage' },
      uuid,
      template: '/images/:uuid',
    };
  if (c === 'file' && d === undefined)
    return { methods: { GET: 'GetImageFile', PUT: 'AddImageFile' }, uuid, template: '/images/:uuid/file' };
  if (c === 'file' && d === 'from-url')
    return { methods: { POST: 'AddImageFileFromUrl' }, uuid, template: '/images/:uuid/file/from-url' };
  if (c === 'icon' && d === undefined)
    return {
      methods: { GET: 'GetImageIcon', PUT: 'AddImageIcon', DELETE: 'DeleteImageIcon' },
      uuid,
      template: '/images/:uuid/icon',
    };
  if (c === 'acl' && d === undefined)
    return { methods: { POST: 'ImageAcl' }, uuid, template: '/images/:uuid/acl' };
  return undefined;
}

/** If-None-Match (or, without it, If-Modified-Since) says the client's copy is current. */
function notModified(req: http.IncomingMessage, etag: string, lastModified: Date): boolean {
  const inm = header(req, 'if-none-match');
  if (inm !== undefined) return etagMatches(inm, etag);
  const ims = header(req, 'if-modified-since');
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  return Number.isFinite(since) && Math.floor(lastModified.getTime() / 1000) * 1000 <= since;
}

/** If-Range: a range applies when there is none, or it names the current etag or date. */
function rangeApplies(req: http.IncomingMessage, etag: string, lastModified: Date): boolean {
  const ifRange = header(req, 'if-range');
  if (ifRange === undefined) return true;
  if (etagMatches(ifRange, etag)) return true;
  const when = Date.parse(ifRange);
  return Number.isFinite(when) && Math.floor(lastModified.getTime() / 1000) * 1000 === when;
}

interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  id: string;
  route?: RouteName;
  user?: string;
  /** Response body bytes sent. */
  bytes: number;
  /** Request body bytes received. */
  received: number;
  /** The REST code of the error answered, for the log. */
  error?: string;
  /** A response was already written for this exchange outside the handler (the clientError path). */
  answeredOutside?: { status: number };
  /** Set while the request body streams into the blob store. */
  uploading: boolean;
  /** `?action=` of POST /images/:uuid and /acl, for the log. */
  action?: string;
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function contentLengthOf(req: http.IncomingMessage): number | undefined {
  const v = header(req, 'content-length');
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Starts the image repository server; resolves once it listens. */
export async function startImagesServer(
  config: ImagesConfig,
  opts: ImagesServerOptions = {},
): Promise<ImagesServer> {
  const reporter = opts.reporter ?? silentReporter;
  const now = opts.now ?? (() => new Date());
  const version = packageVersion();
  const ownStores = opts.stores === undefined;
  const stores = opts.stores ?? (await openStores({ metadata: config.metadata, blobs: config.blobs }));
  const service = new ImagesService({
    meta: stores.meta,
    blobs: stores.blobs,
    channels: config.channels,
    strictOrigins: config.strictOrigins,
    maxFileSize: config.maxFileSize,
    maxIconSize: config.maxIconSize,
    version,
    now,
    reporter,
    allowPrivateFileUrls: opts.allowPrivateFileUrls ?? config.allowPrivateFileUrls,
  });
  const auth = config.auth;
  const keys = auth.type === 'signature' ? loadKeysDir(auth.keysDir) : undefined;
  const shutdown = new AbortController();
  // Every upload in flight listens on it; hundreds at once are normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  const inflight = new Set<Promise<void>>();
  /** The exchange in progress on each socket (for the clientError path). */
  const current = new WeakMap<Socket, Exchange>();
  let closing = false;

  const closeStores = async (): Promise<void> => {
    if (!ownStores) return;
    await stores.meta.close().catch(() => undefined);
    await stores.blobs.close().catch(() => undefined);
  };

  const baseHeaders = (x: Exchange): http.OutgoingHttpHeaders => ({
    Server: `slipway-imgapi/${version}`,
    'X-Request-Id': x.id,
    ...(closing ? { Connection: 'close' } : {}),
  });

  /**
   * Before answering a request whose body was not (all) read: drop a small
   * rest so the connection stays usable; close after a large one.
   */
  const settleBody = (x: Exchange): http.OutgoingHttpHeaders => {
    const { req } = x;
    if (req.complete) return {};
    const declared = contentLengthOf(req);
    req.resume();
    if (declared !== undefined && declared - x.received <= DRAIN_LIMIT) return {};
    return { Connection: 'close' };
  };

  const send = (x: Exchange, status: number, headers: http.OutgoingHttpHeaders, body?: Buffer): void => {
    const { req, res } = x;
    if (res.headersSent || req.socket.destroyed || x.answeredOutside !== undefined) {
      if (!res.headersSent && !req.socket.destroyed) res.destroy();
      return;
    }
    res.writeHead(status, { ...baseHeaders(x), ...settleBody(x), ...headers });
    if (body !== undefined && req.method !== 'HEAD') {
      x.bytes += body.length;
      res.end(body);
    } else res.end();
  };

  const sendJson = (
    x: Exchange,
    status: number,
    value: unknown,
    headers: http.OutgoingHttpHeaders = {},
  ): void => {
    const body = Buffer.from(prettyJson(value), 'utf8');
    send(
      x,
      status,
      {
        'Content-Type': 'application/json',
        'Content-Length': body.length,
        'Content-MD5': createHash('md5').update(body).digest('base64'),
        ...headers,
      },
      body,
    );
  };

  const sendError = (x: Exchange, err: unknown): void => {
    const { status, body } = errorBody(err);
    x.error = body.code;
    if (status >= 500) {
      const detail = err instanceof Error ? err.message : String(err);
      warn(reporter, `images: ${x.req.method ?? ''} ${x.req.url ?? ''}: ${detail}`);
    }
    sendJson(x, status, body);
  };

  const sendImage = (x: Exchange, image: StoredImage, apiVersion: 1 | 2, status = 200): void => {
    const serialized = serializeManifest(image.manifest, apiVersion);
    const etag = createHash('sha1').update(JSON.stringify(serialized)).digest('hex');
    if (x.route === 'GetImage' && etagMatches(header(x.req, 'if-none-match'), etag)) {
      send(x, 304, { Etag: etag });
      return;
    }
    sendJson(x, status, serialized, { Etag: etag });
  };

  /** A JSON request body (≤ 1 MiB), checked against Content-MD5 when sent; undefined when empty. */
  const readJson = async (x: Exchange): Promise<unknown> => {
    const { req } = x;
    const declared = contentLengthOf(req);
    if (declared !== undefined && declared > MAX_JSON_BODY)
      throw new ImgapiError(
        413,
        'RequestEntityTooLarge',
        `request body too large (at most ${MAX_JSON_BODY} bytes)`,
      );
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      size += chunk.length;
      x.received += chunk.length;
      if (size > MAX_JSON_BODY)
        throw new ImgapiError(
          413,
          'RequestEntityTooLarge',
          `request body too large (at most ${MAX_JSON_BODY} bytes)`,
        );
      chunks.push(chunk);
    }
    const raw = Buffer.concat(chunks);
    const md5 = header(req, 'content-md5');
    if (md5 !== undefined && md5 !== createHash('md5').update(raw).digest('base64'))
      throw new ImgapiError(400, 'BadDigest', 'Content-MD5 does not match the request body');
    if (raw.length === 0) return undefined;
    try {
      return JSON.parse(raw.toString('utf8')) as unknown;
    } catch (err) {
      throw new ImgapiError(400, 'InvalidContent', `Invalid JSON: ${(err as Error).message}`);
    }
  };

  /** The upload body as it arrives (the request is not destroyed when the consumer stops early). */
  const uploadBody = (x: Exchange): AsyncIterable<Uint8Array> => {
    const { req } = x;
    return (async function* counted(): AsyncGenerator<Buffer> {
      for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        x.received += chunk.length;
        yield chunk;
      }
      // All received: storing the last of it (fsync, completing a multipart upload) may take a while.
      req.socket.setTimeout(0);
    })();
  };

  /** Verifies the request's signature (required for writes, or reads with auth.reads; else only when sent). */
  const authenticate = async (x: Exchange, write: boolean): Promise<void> => {
    if (auth.type !== 'signature' || keys === undefined) return;
    const authorization = header(x.req, 'authorization');
    const required = write || auth.reads;
    if (!required && authorization === undefined) return;
    const date = header(x.req, 'date');
    const { user } = await verifyRequestSignature(
      {
        ...(authorization !== undefined ? { authorization } : {}),
        ...(date !== undefined ? { date } : {}),
        method: x.req.method ?? 'GET',
        path: x.req.url ?? '/',
        headers: Object.fromEntries(
          Object.entries(x.req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v]),
        ),
      },
      keys,
      { now: now(), maxSkewMs: MAX_CLOCK_SKEW_MS },
    );
    x.user = user;
  };

  /** Decides 304 / 416 / 206 / 200 for a file of `size` bytes; returns what to open. */
  const fileDecision = (
    x: Exchange,
    facts: { etag: string; lastModified: Date; size: number },
    decided: { status: number; range?: { start: number; end: number } },
  ): WantBody => {
    if (notModified(x.req, facts.etag, facts.lastModified)) {
      decided.status = 304;
      return { kind: 'none' };
    }
    const range = rangeApplies(x.req, facts.etag, facts.lastModified)
      ? parseRange(header(x.req, 'range'), facts.size)
      : ({ kind: 'whole' } as const);
    if (range.kind === 'unsatisfiable') {
      decided.status = 416;
      return { kind: 'none' };
    }
    if (range.kind === 'partial') {
      decided.status = 206;
      decided.range = { start: range.start, end: range.end };
      return x.req.method === 'HEAD'
        ? { kind: 'none' }
        : { kind: 'range', start: range.start, end: range.end };
    }
    decided.status = 200;
    return x.req.method === 'HEAD' ? { kind: 'none' } : { kind: 'whole' };
  };

  const sendFile = async (
    x: Exchange,
    facts: { etag: string; lastModified: Date; size: number; contentType: string; md5?: string | undefined },
    decided: { status: number; range?: { start: number; end: number } },
    body: Readable | undefined,
  ): Promise<void> => {
    const common: http.OutgoingHttpHeaders = {
      Etag: facts.etag,
      'Last-Modified': facts.lastModified.toUTCString(),
      'Accept-Ranges': 'bytes',
    };
    if (decided.status === 304) {
      send(x, 304, common);
      return;
    }
    if (decided.status === 416) {
      send(x, 416, { ...common, 'Content-Range': `bytes */${facts.size}`, 'Content-Length': 0 });
      return;
    }
    const partial = decided.status === 206 && decided.range !== undefined;
    const start = partial ? (decided.range?.start ?? 0) : 0;
    const end = partial ? (decided.range?.end ?? 0) : facts.size - 1;
    const headers: http.OutgoingHttpHeaders = {
      ...common,
      'Content-Type': facts.contentType,
      'Content-Length': end - start + 1,
      ...(partial ? { 'Content-Range': `bytes ${start}-${end}/${facts.size}` } : {}),
      ...(!partial && facts.md5 !== undefined ? { 'Content-MD5': facts.md5 } : {}),
    };
    if (body === undefined) {
      send(x, decided.status, headers);
      return;
    }
    x.res.writeHead(decided.status, { ...baseHeaders(x), ...headers });
    await streamResponse(body, x.res, (n) => {
      x.bytes += n;
    });
  };

  const handle = async (x: Exchange): Promise<void> => {
    const { req } = x;
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new ImgapiError(400, 'BadRequest', 'malformed request target');
    }
    const pathname = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    if (await serveUi(req, x.res, pathname)) return;
    let segments: string[];
    try {
      segments = pathname.split('/').slice(1).map(decodeURIComponent);
    } catch {
      throw new ImgapiError(404, 'ResourceNotFound', `${pathname} does not exist`);
    }
    const route = routeOf(segments);
    if (route === undefined) throw new ImgapiError(404, 'ResourceNotFound', `${pathname} does not exist`);
    const name = route.methods[method === 'HEAD' ? 'GET' : method];
    if (name === undefined) {
      const allowed = Object.keys(route.methods).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
      x.error = 'BadMethod';
      sendJson(
        x,
        405,
        { code: 'BadMethod', message: `${method} is not allowed` },
        { Allow: allowed.join(', ') },
      );
      return;
    }
    x.route = name;
    const apiVersion = negotiateApiVersion(header(req, 'accept-version'), `${method} ${route.template}`);
    const write = method !== 'GET' && method !== 'HEAD';
    await authenticate(x, write && name !== 'Ping');
    const caller = { user: x.user, anonymous: auth.type === 'signature' && x.user === undefined };
    const q = url.searchParams;
    const action = q.get('action');
    if (action !== null && (name === 'UpdateImage' || name === 'ImageAcl')) x.action = action.slice(0, 40);
    const uuid = route.uuid ?? '';
    if (route.uuid !== undefined && !isUuid(uuid))
      throw new ImgapiError(404, 'ResourceNotFound', `${req.url ?? pathname} does not exist`);

    switch (name) {
      case 'Ping':
        sendJson(x, 200, service.ping(caller));
        return;
      case 'ListChannels':
        sendJson(x, 200, service.listChannels());
        return;
      case 'ListImages': {
        const images = await service.listImages(q, caller);
        sendJson(
          x,
          200,
          images.map((m) => serializeManifest(m, apiVersion)),
        );
        return;
      }
      case 'GetImage':
        sendImage(x, await service.getImage(uuid, q), apiVersion);
        return;
      case 'CreateImage':
        sendImage(x, await service.createImage(q, await readJson(x)), apiVersion);
        return;
      case 'UpdateImage':
        sendImage(x, await service.imageAction(uuid, q, await readJson(x)), apiVersion);
        return;
      case 'DeleteImage':
        await service.deleteImage(uuid, q);
        send(x, 204, {});
        return;
      case 'ImageAcl':
        sendImage(x, await service.imageAcl(uuid, q, await readJson(x)), apiVersion);
        return;
      case 'AddImageFile': {
        x.uploading = true;
        try {
          const image = await service.addImageFile(uuid, q, {
            body: uploadBody(x),
            contentLength: contentLengthOf(req),
            signal: shutdown.signal,
          });
          sendImage(x, image, apiVersion);
        } finally {
          x.uploading = false;
        }
        return;
      }
      case 'AddImageFileFromUrl': {
        const body = await readJson(x);
        // The client waits, silent, while the server downloads (the remote's own stalls are timed).
        req.socket.setTimeout(0);
        sendImage(x, await service.addImageFileFromUrl(uuid, q, body, shutdown.signal), apiVersion);
        return;
      }
      case 'AddImageIcon': {
        x.uploading = true;
        try {
          const image = await service.addImageIcon(uuid, q, {
            body: uploadBody(x),
            contentLength: contentLengthOf(req),
            contentType: header(req, 'content-type'),
            signal: shutdown.signal,
          });
          sendImage(x, image, apiVersion);
        } finally {
          x.uploading = false;
        }
        return;
      }
      case 'DeleteImageIcon':
        sendImage(x, await service.deleteImageIcon(uuid, q), apiVersion);
        return;
      case 'GetImageFile': {
        const decided: { status: number; range?: { start: number; end: number } } = { status: 200 };
        const d = await service.getImageFile(uuid, q, (f) =>
          fileDecision(x, { etag: f.file.sha1, lastModified: f.lastModified, size: f.file.size }, decided),
        );
        await sendFile(
          x,
          {
            etag: d.file.sha1,
            lastModified: d.lastModified,
            size: d.file.size,
            contentType: 'application/octet-stream',
            md5: d.md5,
          },
          decided,
          d.body,
        );
        return;
      }
      case 'GetImageIcon': {
        const decided: { status: number; range?: { start: number; end: number } } = { status: 200 };
        const d = await service.getImageIcon(uuid, q, (f) => fileDecision(x, f, decided));
        await sendFile(x, d, decided, d.body);
        return;
      }
    }
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const started = process.hrtime.bigint();
    const x: Exchange = { req, res, id: randomUUID(), bytes: 0, received: 0, uploading: false };
    current.set(req.socket, x);
    const p = handle(x)
      .catch((err: unknown) => {
        if (x.answeredOutside !== undefined) return;
        if (isClientGone(err) || req.socket.destroyed) {
          x.error = 'ClientGone';
          res.destroy();
          return;
        }
        if (!res.headersSent) sendError(x, err);
        else res.destroy();
      })
      .finally(() => {
        inflight.delete(p);
        if (current.get(req.socket) === x) current.delete(req.socket);
        const message = requestLogLine({
          method: req.method,
          path: req.url,
          status: x.answeredOutside?.status ?? (res.headersSent ? res.statusCode : 0),
          ...(x.route !== undefined ? { route: x.route } : {}),
          ...(x.action !== undefined ? { action: x.action } : {}),
          ...(x.error !== undefined ? { error: x.error } : {}),
          bytes: x.bytes,
          received: x.received,
          ms: Number((process.hrtime.bigint() - started) / 1_000_000n),
          user: x.user ?? '-',
          id: x.id,
        });
        reporter.emit({ kind: 'log', level: 'info', message });
      });
    inflight.add(p);
  };

  const server = http.createServer({ requestTimeout: 0 }, onRequest);
  server.setTimeout(IDLE_TIMEOUT_MS);
  // `Expect: 100-continue`: no go-ahead for a file declared over the cap (the handler answers 400 Upload).
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const declared = contentLengthOf(req);
    if (!(declared !== undefined && declared > Math.max(config.maxFileSize, MAX_JSON_BODY)))
      res.writeContinue();
    onRequest(req, res);
  });
  // A body cut short before its Content-Length (the client half-closed): IMGAPI's 400 Download, not a bare 400.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const x = current.get(socket);
    const answer = (status: number, code: string, message: string): void => {
      const body = Buffer.from(prettyJson({ code, message }), 'utf8');
      if (socket.writable && (x === undefined || !x.res.headersSent)) {
        socket.end(
          `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${body.length}\r\nContent-MD5: ${createHash('md5').update(body).digest('base64')}\r\n` +
            `Connection: close\r\n\r\n${body.toString('utf8')}`,
        );
        if (x !== undefined) {
          x.answeredOutside = { status };
          x.error = code;
        }
      }
      socket.destroySoon();
    };
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    if (err.code === 'HPE_INVALID_EOF_STATE' && x?.uploading === true) {
      const declared = contentLengthOf(x.req);
      answer(
        400,
        'Download',
        `"Content-Length" header, ${declared ?? '?'}, does not match uploaded size, ${x.received}`,
      );
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') answer(408, 'RequestTimeout', 'request timeout');
    else if (err.code === 'HPE_HEADER_OVERFLOW')
      answer(431, 'RequestHeaderFieldsTooLarge', 'request headers too large');
    else answer(400, 'BadRequest', `malformed HTTP request: ${err.message}`);
  });

  let port: number;
  try {
    port = await listenHttp(server, config.host, config.port);
  } catch (err) {
    await closeStores();
    throw err;
  }
  const url = `http://${hostForUrl(config.host)}:${port}`;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      await drainHttpServer(server, {
        graceMs: config.closeGraceMs,
        inflight,
        onGraceExpired: () => {
          shutdown.abort(new ImgapiError(503, 'ServiceUnavailable', 'the server is shutting down'));
        },
        // Connections that go idle after their last in-flight request close as they do.
        closeIdleEveryMs: 100,
      });
      await closeStores();
    })();
    return closed;
  };
  return { url, port, service, close };
}
