/**
 * A client of the image repository API (specs/imgapi.md): what sdc-clients'
 * IMGAPI client and updates-imgadm do, against Slipway's server or any
 * IMGAPI. Every request sends `Accept-Version`, a `Date`, `Content-MD5` on
 * JSON bodies and, with a key, an HTTP Signature over the date.
 *
 * Network policy: idempotent reads are retried on connection errors, 408,
 * 429 and 5xx with backoff; writes are never retried. Redirects are not
 * followed (a signed request never goes to another host). Bodies read into
 * memory are capped. Downloads go to a temp file beside the target and are
 * renamed into place only when Content-MD5, sha1 and size all match.
 *
 * Errors: the server's answers become IMAGES_API_ERROR with the HTTP status
 * and the server's `code: message` (the ImgapiError is the `cause`), a
 * server that cannot be reached IMAGES_UNREACHABLE, a file whose digests do
 * not match CHECKSUM_MISMATCH.
 */
import { createHash, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { openAtomic } from '../core/atomic-file.js';
import { MultiDigest } from '../core/digest.js';
import { SlipwayError, fromSystemError, type ErrorCode } from '../core/errors.js';
import type { ChannelConfig, ImageManifest, ImgapiErrorBody } from '../formats/imgapi-types.js';
import { ImgapiError } from '../formats/imgapi-types.js';
import { COMPRESSIONS, MAX_LIST_LIMIT, isUuid } from '../formats/imgapi.js';
import { signRequest } from './http-signature.js';

export interface ImagesClientOptions {
  /** The repository's base URL (`http://host:port`, maybe with a base path). */
  url: string;
  /** The user whose key signs requests; also the default keyId (what IMGAPI expects). */
  user?: string;
  /** The keyId to send: `<user>` (default) or `/<user>/keys/<fingerprint>`. */
  keyId?: string;
  /** Signs every request when given (see http-signature.ts parseSshPrivateKey). */
  privateKey?: KeyObject;
  /** `?channel=` of every image request; the server's default channel when unset. `*` reads all channels. */
  channel?: string;
  /** Sent as `Accept-Version`, default `~2` (image objects with `channels`). */
  acceptVersion?: string;
  fetch?: typeof fetch;
  /** Attempts after the first for idempotent requests, default 2. */
  retries?: number;
  /** First backoff delay (doubles each retry), default 200 ms. */
  backoffMs?: number;
  /** Aborts requests in flight (Ctrl-C). */
  signal?: AbortSignal;
}

/** Progress of a transfer: bytes so far and the total when known. */
export type OnProgress = (done: number, total: number | undefined) => void;

export interface PingResult {
  ping: string;
  version?: string;
  imgapi?: boolean;
  [key: string]: unknown;
}

export interface FileTransfer {
  path: string;
  size: number;
  /** hex */
  sha1: string;
  /** base64 */
  md5: string;
}

interface RequestOptions {
  query?: Record<string, string | undefined>;
  /** Add the client's `?channel=` (default true). */
  channel?: boolean;
  json?: unknown;
  body?: AsyncIterable<Uint8Array>;
  contentLength?: number;
  contentType?: string;
  /** Reads are retried on transient failures; writes never. */
  idempotent?: boolean;
}

/** Largest JSON body read into memory (a page of 1000 manifests is far below). */
const MAX_JSON_BYTES = 64 * 1024 * 1024;
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);

class Transient extends Error {
  constructor(
    message: string,
    readonly final: SlipwayError,
  ) {
    super(message);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort(): void {
      clearTimeout(t);
      reject(new SlipwayError('INTERRUPTED', 'request cancelled'));
    }
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function causeText(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  const c = (cause ?? err) as { code?: string; message?: string };
  const msg = c.message ?? 'unknown error';
  return c.code !== undefined && !msg.includes(c.code) ? `${c.code}: ${msg}` : msg;
}

function checkUuid(uuid: string): string {
  if (!isUuid(uuid))
    throw new SlipwayError('INVALID_ARGUMENT', `'${uuid}' is not an image uuid (lowercase 8-4-4-4-12 hex)`);
  return uuid;
}

/** A response body as chunks (Node's ReadableStream is async-iterable). */
function bodyChunks(res: Response): AsyncIterable<Uint8Array> {
  return (res.body ?? []) as unknown as AsyncIterable<Uint8Array>;
}

async function readCapped(res: Response, cap: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  if (res.body === null) return Buffer.alloc(0);
  for await (const chunk of bodyChunks(res)) {
    n += chunk.length;
    if (n > cap) {
      await res.body.cancel().catch(() => undefined);
      throw new SlipwayError('IMAGES_API_ERROR', `${what}: the response is larger than ${cap} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

export class ImagesClient {
  readonly url: string;
  readonly channel: string | undefined;
  readonly #base: URL;
  /** The base path without a trailing slash ('' at the root). */
  readonly #basePath: string;
  readonly #keyId: string | undefined;
  readonly #privateKey: KeyObject | undefined;
  readonly #acceptVersion: string;
  readonly #fetch: typeof fetch;
  readonly #retries: number;
  readonly #backoffMs: number;
  readonly #signal: AbortSignal | undefined;

  constructor(options: ImagesClientOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch (err) {
      throw new SlipwayError('INVALID_ARGUMENT', `'${options.url}' is not a URL`, { cause: err });
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new SlipwayError(
        'INVALID_ARGUMENT',
        `the image repository URL must be http(s), got '${options.url}'`,
      );
    }
    if (base.username !== '' || base.password !== '') {
      throw new SlipwayError(
        'INVALID_ARGUMENT',
        'the image repository URL must not carry credentials; use --user and --key',
      );
    }
    base.search = '';
    base.hash = '';
    this.#basePath = base.pathname.replace(/\/+$/, '');
    this.#base = base;
    this.url = base.toString().replace(/\/$/, '');
    this.channel = options.channel;
    this.#keyId = options.keyId ?? options.user;
    this.#privateKey = options.privateKey;
    if (this.#privateKey !== undefined && (this.#keyId === undefined || this.#keyId === '')) {
      throw new SlipwayError('INVALID_ARGUMENT', 'a signing key needs a user (the keyId of the signature)');
    }
    this.#acceptVersion = options.acceptVersion ?? '~2';
    this.#fetch = options.fetch ?? fetch;
    this.#retries = options.retries ?? 2;
    this.#backoffMs = options.backoffMs ?? 200;
    this.#signal = options.signal;
  }

  /** The same client on another channel (`*` for reads across all). */
  withChannel(channel: string | undefined): ImagesClient {
    return new ImagesClient({
      url: this.url,
      keyId: this.#keyId,
      privateKey: this.#privateKey,
      channel,
      acceptVersion: this.#acceptVersion,
      fetch: this.#fetch,
      retries: this.#retries,
      backoffMs: this.#backoffMs,
      signal: this.#signal,
    });
  }

  // ---- the endpoints

  ping(): Promise<PingResult> {
    return this.#json<PingResult>('GET', '/ping', { channel: false, idempotent: true });
  }

  listChannels(): Promise<ChannelConfig[]> {
    return this.#json<ChannelConfig[]>('GET', '/channels', { channel: false, idempotent: true });
  }

  /**
   * ListImages. With `all` (the default unless `filters.limit` is given) it
   * pages like sdc-clients: the first request as given, then while a page
   * is full, `marker=<last uuid>&limit=<page size>` dropping a first
   * element equal to the marker (the marker is inclusive), until an empty
   * or short page.
   */
  async listImages(
    filters: Record<string, string> = {},
    options: { all?: boolean } = {},
  ): Promise<ImageManifest[]> {
    const all = options.all ?? filters.limit === undefined;
    const first = await this.#listPage(filters);
    if (!all) return first;
    const pageSize = filters.limit !== undefined ? Number(filters.limit) || MAX_LIST_LIMIT : MAX_LIST_LIMIT;
    const out = [...first];
    const seen = new Set(first.map((m) => m.uuid));
    let page = first;
    let marker: string | undefined;
    while (page.length >= pageSize) {
      const last = page[page.length - 1]?.uuid;
      if (last === undefined || last === marker) break; // a server without paging would repeat itself
      marker = last;
      page = await this.#listPage({ ...filters, marker, limit: String(pageSize) });
      const fresh = (page[0]?.uuid === marker ? page.slice(1) : page).filter((m) => !seen.has(m.uuid));
      if (fresh.length === 0) break;
      for (const m of fresh) seen.add(m.uuid);
      out.push(...fresh);
    }
    return out;
  }

  #listPage(query: Record<string, string>): Promise<ImageManifest[]> {
    return this.#json<ImageManifest[]>('GET', '/images', { query, idempotent: true });
  }

  getImage(uuid: string): Promise<ImageManifest> {
    return this.#json<ImageManifest>('GET', `/images/${checkUuid(uuid)}`, { idempotent: true });
  }

  /** CreateImage: returns the new image (state unactivated, a fresh uuid). */
  createImage(manifest: Partial<ImageManifest> | Record<string, unknown>): Promise<ImageManifest> {
    return this.#json<ImageManifest>('POST', '/images', { json: manifest });
  }

  /** AdminImport: the manifest as published, keeping its uuid and published_at. */
  adminImportImage(manifest: ImageManifest | Record<string, unknown>): Promise<ImageManifest> {
    const uuid = typeof manifest.uuid === 'string' ? manifest.uuid : '';
    return this.#json<ImageManifest>('POST', `/images/${checkUuid(uuid)}`, {
      query: { action: 'import' },
      json: manifest,
    });
  }

  activate(uuid: string): Promise<ImageManifest> {
    return this.#action(uuid, 'activate', {});
  }

  disable(uuid: string): Promise<ImageManifest> {
    return this.#action(uuid, 'disable', {});
  }

  enable(uuid: string): Promise<ImageManifest> {
    return this.#action(uuid, 'enable', {});
  }

  update(uuid: string, fields: Record<string, unknown>): Promise<ImageManifest> {
    return this.#action(uuid, 'update', fields);
  }

  /** ChannelAdd: looks the image up in the client's channel and adds it to `channel`. */
  channelAdd(uuid: string, channel: string): Promise<ImageManifest> {
    return this.#action(uuid, 'channel-add', { channel });
  }

  #action(uuid: string, action: string, body: Record<string, unknown>): Promise<ImageManifest> {
    return this.#json<ImageManifest>('POST', `/images/${checkUuid(uuid)}`, { query: { action }, json: body });
  }

  /** DeleteImage: from the client's channel only, unless `forceAllChannels`. */
  async deleteImage(uuid: string, options: { forceAllChannels?: boolean } = {}): Promise<void> {
    const res = await this.#request('DELETE', `/images/${checkUuid(uuid)}`, {
      query: { force_all_channels: options.forceAllChannels === true ? 'true' : undefined },
    });
    await res.body?.cancel().catch(() => undefined);
  }

  /**
   * GetImageFile into `outFile`: streamed to a temp file beside it, checked
   * against Content-MD5, the manifest's sha1 and size (and Content-Length),
   * then renamed into place. On a mismatch nothing is left behind.
   */
  async getImageFile(
    uuid: string,
    outFile: string,
    options: { onProgress?: OnProgress } = {},
  ): Promise<FileTransfer> {
    const manifest = await this.getImage(uuid);
    const expected = manifest.files[0];
    const res = await this.#request('GET', `/images/${uuid}/file`, { idempotent: true });
    const where = `${this.url}/images/${uuid}/file`;
    if (expected === undefined) {
      await res.body?.cancel().catch(() => undefined);
      throw new SlipwayError('IMAGES_API_ERROR', `image ${uuid} has no file in its manifest`, { where });
    }
    const lengthHeader = res.headers.get('content-length');
    const contentLength =
      lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const md5Header = res.headers.get('content-md5') ?? undefined;
    const out = await openAtomic(outFile);
    const digest = new MultiDigest(['sha1', 'md5']);
    let size = 0;
    try {
      const fail = (message: string): never => {
        throw new SlipwayError(
          'CHECKSUM_MISMATCH',
          `${where}: ${message}; nothing was written to ${outFile}`,
          { where },
        );
      };
      if (contentLength !== undefined && contentLength !== expected.size) {
        fail(`the server sends ${contentLength} bytes but the manifest says the file has ${expected.size}`);
      }
      options.onProgress?.(0, expected.size);
      if (res.body !== null) {
        try {
          for await (const chunk of bodyChunks(res)) {
            size += chunk.length;
            if (size > expected.size) fail(`the server sent more than the manifest's ${expected.size} bytes`);
            digest.update(chunk);
            await out.write(chunk);
            options.onProgress?.(size, expected.size);
          }
        } catch (err) {
          if (err instanceof SlipwayError) throw err;
          if (this.#signal?.aborted === true)
            throw new SlipwayError('INTERRUPTED', 'download cancelled', { cause: err });
          throw new SlipwayError(
            'IMAGES_UNREACHABLE',
            `${where}: the download broke off after ${size} bytes: ${causeText(err)}`,
            {
              where,
              cause: err,
            },
          );
        }
      }
      const { sha1 = '', md5 = '' } = digest.digest();
      const got = { sha1, md5: Buffer.from(md5, 'hex').toString('base64') };
      if (size !== expected.size) fail(`got ${size} bytes, the manifest says ${expected.size}`);
      if (md5Header !== undefined && md5Header !== got.md5) {
        fail(`Content-MD5 expected to be ${md5Header}, but was ${got.md5}`);
      }
      if (got.sha1 !== expected.sha1)
        fail(`sha1 expected to be ${expected.sha1} (manifest), but was ${got.sha1}`);
      await out.commit();
      return { path: outFile, size, ...got };
    } catch (err) {
      await res.body?.cancel().catch(() => undefined);
      await out.abort();
      throw err;
    }
  }

  /**
   * AddImageFile: streams `file` with its Content-Length; the server checks
   * `sha1` when given. The stored files[0] must then have the sha1 and size
   * that were sent.
   */
  async addImageFile(
    uuid: string,
    file: string,
    options: { compression: string; sha1?: string; onProgress?: OnProgress },
  ): Promise<ImageManifest> {
    checkUuid(uuid);
    if (!(COMPRESSIONS as readonly string[]).includes(options.compression)) {
      throw new SlipwayError(
        'INVALID_ARGUMENT',
        `compression must be one of ${COMPRESSIONS.join(', ')}, got '${options.compression}'`,
      );
    }
    let size: number;
    try {
      const st = await fsp.stat(file);
      if (!st.isFile()) throw new SlipwayError('INVALID_ARGUMENT', `${file} is not a file`, { where: file });
      size = st.size;
    } catch (err) {
      throw fromSystemError(err, 'cannot read image file', file);
    }
    const hash = createHash('sha1');
    let sent = 0;
    const onProgress = options.onProgress;
    async function* body(): AsyncGenerator<Uint8Array> {
      const stream = fs.createReadStream(file, { highWaterMark: 1 << 20 });
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          sent += chunk.length;
          if (sent > size)
            throw new SlipwayError('IO', `${file} grew while it was being uploaded`, { where: file });
          hash.update(chunk);
          onProgress?.(sent, size);
          yield chunk;
        }
      } catch (err) {
        throw fromSystemError(err, 'cannot read image file', file);
      } finally {
        stream.destroy();
      }
      if (sent !== size)
        throw new SlipwayError('IO', `${file} shrank while it was being uploaded`, { where: file });
    }
    onProgress?.(0, size);
    const image = await this.#json<ImageManifest>('PUT', `/images/${uuid}/file`, {
      query: { compression: options.compression, sha1: options.sha1 },
      body: body(),
      contentLength: size,
      contentType: 'application/octet-stream',
    });
    const stored = image.files[0];
    const sha1 = hash.digest('hex');
    if (stored?.sha1 !== sha1 || stored.size !== size) {
      throw new SlipwayError(
        'CHECKSUM_MISMATCH',
        `image ${uuid}: uploaded ${size} bytes with sha1 ${sha1}, but the server stored ${stored === undefined ? 'no file' : `${stored.size} bytes with sha1 ${stored.sha1}`}`,
        { where: file },
      );
    }
    return image;
  }

  /**
   * The import flow of updates-imgadm: AdminImport of the manifest as
   * published → AddImageFile (compression and sha1 from the manifest's
   * files[0]) → Activate. When a step after the import fails, the partial
   * image is deleted and the error rethrown (saying so).
   */
  async importImage(
    manifest: ImageManifest | Record<string, unknown>,
    file: string,
    options: { onProgress?: OnProgress } = {},
  ): Promise<ImageManifest> {
    const files = (manifest as { files?: unknown }).files;
    const f = Array.isArray(files)
      ? (files[0] as Partial<ImageManifest['files'][number]> | undefined)
      : undefined;
    if (f === undefined || typeof f.compression !== 'string') {
      throw new SlipwayError(
        'INVALID_ARGUMENT',
        'the manifest has no files[0].compression: import needs the manifest as published',
      );
    }
    const imported = await this.adminImportImage(manifest);
    const uuid = imported.uuid;
    try {
      await this.addImageFile(uuid, file, {
        compression: f.compression,
        ...(typeof f.sha1 === 'string' ? { sha1: f.sha1 } : {}),
        ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
      });
      return await this.activate(uuid);
    } catch (err) {
      let note: string;
      try {
        await this.deleteImage(uuid);
        note = `the partially imported image ${uuid} was deleted`;
      } catch (delErr) {
        note = `could not delete the partially imported image ${uuid}: ${(delErr as Error).message}`;
      }
      const code: ErrorCode = err instanceof SlipwayError ? err.code : 'INTERNAL';
      const message = err instanceof Error ? err.message : String(err);
      throw new SlipwayError(code, `import of ${uuid} failed: ${message} (${note})`, {
        cause: err,
        ...(err instanceof SlipwayError && err.where !== undefined ? { where: err.where } : {}),
      });
    }
  }

  // ---- the transport

  async #json<T>(method: string, route: string, options: RequestOptions): Promise<T> {
    const res = await this.#request(method, route, options);
    const where = `${method} ${route}`;
    const bytes = await readCapped(res, MAX_JSON_BYTES, where);
    const md5 = res.headers.get('content-md5');
    if (md5 !== null && md5 !== createHash('md5').update(bytes).digest('base64')) {
      throw new SlipwayError(
        'IMAGES_API_ERROR',
        `${where}: the response's Content-MD5 does not match its body`,
      );
    }
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch (err) {
      throw new SlipwayError(
        'IMAGES_API_ERROR',
        `${where}: HTTP ${res.status} with a body that is not JSON`,
        { cause: err },
      );
    }
  }

  #headers(options: RequestOptions): Headers {
    const headers = new Headers({
      accept: 'application/json',
      'accept-version': this.#acceptVersion,
      'user-agent': 'slipway-images-client',
    });
    if (this.#privateKey !== undefined && this.#keyId !== undefined) {
      const signed = signRequest({ keyId: this.#keyId, privateKey: this.#privateKey });
      headers.set('date', signed.date);
      headers.set('authorization', signed.authorization);
    } else {
      headers.set('date', new Date().toUTCString());
    }
    if (options.contentType !== undefined) headers.set('content-type', options.contentType);
    if (options.contentLength !== undefined) headers.set('content-length', String(options.contentLength));
    return headers;
  }

  #urlOf(route: string, options: RequestOptions): URL {
    const url = new URL(this.#base.toString());
    url.pathname = `${this.#basePath}${route}`;
    const q = new URLSearchParams();
    if (options.channel !== false && this.channel !== undefined && options.query?.channel === undefined) {
      q.set('channel', this.channel);
    }
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) q.set(k, v);
    url.search = q.toString();
    return url;
  }

  /** One request with the retry policy; returns a 2xx response or throws. */
  async #request(method: string, route: string, options: RequestOptions): Promise<Response> {
    const url = this.#urlOf(route, options);
    const label = `${method} ${url.pathname}${url.search}`;
    let delay = this.#backoffMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(method, url, label, options);
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        if (options.idempotent !== true || attempt >= this.#retries) throw err.final;
        await sleep(delay, this.#signal);
        delay *= 2;
      }
    }
  }

  async #once(method: string, url: URL, label: string, options: RequestOptions): Promise<Response> {
    const headers = this.#headers(options);
    let body: RequestInit['body'];
    if (options.json !== undefined) {
      const bytes = Buffer.from(JSON.stringify(options.json), 'utf8');
      headers.set('content-type', 'application/json');
      headers.set('content-md5', createHash('md5').update(bytes).digest('base64'));
      headers.set('content-length', String(bytes.length));
      body = bytes;
    } else if (options.body !== undefined) {
      body = options.body;
    }
    const init: RequestInit & { duplex?: 'half' } = { method, headers, redirect: 'manual' };
    if (body !== undefined) init.body = body;
    if (options.body !== undefined) init.duplex = 'half';
    if (this.#signal !== undefined) init.signal = this.#signal;
    let res: Response;
    try {
      res = await this.#fetch(url, init);
    } catch (err) {
      if (this.#signal?.aborted === true)
        throw new SlipwayError('INTERRUPTED', `${label}: cancelled`, { cause: err });
      // An error of our own (the upload's file could not be read) surfaces as the fetch failure's cause.
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof SlipwayError) throw cause;
      if (err instanceof SlipwayError) throw err;
      const final = new SlipwayError(
        'IMAGES_UNREACHABLE',
        `cannot reach the image repository at ${this.url} (${label}): ${causeText(err)}`,
        { cause: err, where: this.url },
      );
      throw new Transient(final.message, final);
    }
    if (res.status >= 200 && res.status < 300) return res;
    const error = await this.#errorOf(res, label);
    if (RETRYABLE.has(res.status)) throw new Transient(error.message, error);
    throw error;
  }

  async #errorOf(res: Response, label: string): Promise<SlipwayError> {
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel().catch(() => undefined);
      const to = res.headers.get('location') ?? '(no Location)';
      return new SlipwayError(
        'IMAGES_API_ERROR',
        `${label}: HTTP ${res.status} redirect to ${to} (not followed)`,
        {
          where: this.url,
        },
      );
    }
    let body: Partial<ImgapiErrorBody> | undefined;
    let text = '';
    try {
      text = (await readCapped(res, 1024 * 1024, label)).toString('utf8');
      body = JSON.parse(text) as Partial<ImgapiErrorBody>;
    } catch {
      body = undefined;
    }
    const code = typeof body?.code === 'string' ? body.code : res.statusText || 'Error';
    const message = typeof body?.message === 'string' ? body.message : text.slice(0, 200).trim();
    const fields = Array.isArray(body?.errors)
      ? body.errors
          .map((e) => `${e.field}: ${e.code}${e.message !== undefined ? ` ${e.message}` : ''}`)
          .join('; ')
      : '';
    const api = new ImgapiError(
      res.status,
      code,
      message,
      Array.isArray(body?.errors) ? body.errors : undefined,
    );
    return new SlipwayError(
      'IMAGES_API_ERROR',
      `${label}: HTTP ${res.status} ${code}: ${message}${fields !== '' ? ` (${fields})` : ''}`,
      { cause: api, where: this.url },
    );
  }
}

/** The ImgapiError (status and REST code) behind an IMAGES_API_ERROR, if any. */
export function apiErrorOf(err: unknown): ImgapiError | undefined {
  const cause = err instanceof SlipwayError ? err.cause : undefined;
  if (cause instanceof ImgapiError) return cause;
  if (err instanceof SlipwayError && err.cause instanceof SlipwayError) return apiErrorOf(err.cause);
  return undefined;
}
