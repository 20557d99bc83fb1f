/**
 * The image repository (specs/imgapi.md) over a MetadataStore and a
 * BlobStore: every decision comes from the pure rules in
 * src/formats/imgapi.ts; this file does the store calls around them.
 *
 * Stateless: nothing is cached in the process, so any number of servers over
 * the same stores serve the same repository. Every change of an image is a
 * conditional update on the revision it read, retried a few times when
 * another writer got there first. Image files go to a fresh blob key per
 * upload (`images/<uuid>/file-<ms>-<random>`), the manifest is switched to it
 * with one conditional update, and only then is the previous blob deleted: a
 * manifest never points at a blob that is not there (a reader that loses the
 * race with a newer upload re-reads the manifest).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupAddress } from 'node:dns';
import * as dns from 'node:dns';
import * as net from 'node:net';
import type { Readable } from 'node:stream';
import { isSlipwayError } from '../core/errors.js';
import { silentReporter, warn, type Reporter } from '../core/events.js';
import {
  ImgapiError,
  type ChannelConfig,
  type Compression,
  type ImageFile,
  type ImageManifest,
  type StoredImage,
} from '../formats/imgapi-types.js';
import {
  COMPRESSIONS,
  MAX_ORIGIN_DEPTH,
  checkOriginChain,
  deriveState,
  isUuid,
  matchesFilter,
  originDoesNotExist,
  parseAclAction,
  parseAction,
  parseListQuery,
  resolveChannel,
  validateManifest,
} from '../formats/imgapi.js';
import { isBlobPutError, type BlobStore, type MetadataStore } from '../store/index.js';

/** How many times a conditional update is tried before giving up with 409. */
export const MAX_UPDATE_ATTEMPTS = 8;
/** Icons the reference accepts. */
export const ICON_CONTENT_TYPES = ['image/jpeg', 'image/gif', 'image/png'] as const;

export interface ImagesServiceOptions {
  meta: MetadataStore;
  blobs: BlobStore;
  /** The configured channels; undefined or empty: no channel support. */
  channels?: ChannelConfig[] | undefined;
  /** Slipway's origin-chain rule (on by default); false: only that an origin exists. */
  strictOrigins?: boolean;
  /** Largest image file accepted (bytes). */
  maxFileSize: number;
  /** Largest icon accepted (bytes). */
  maxIconSize?: number;
  /** The package version Ping reports. */
  version: string;
  now?: () => Date;
  reporter?: Reporter;
  /**
   * AddImageFileFromUrl may fetch from loopback, private and link-local
   * addresses (off by default: the server would otherwise be a proxy into
   * its own network). Tests turn it on.
   */
  allowPrivateFileUrls?: boolean;
  /** AddImageFileFromUrl: how long to wait for the remote's response headers, and for each chunk after. */
  fileUrlTimeoutMs?: number;
}

/** Who is asking: the authenticated user, if any (anonymous reads see only active images in lists). */
export interface Caller {
  user?: string | undefined;
  /** True when the server checks signatures and this request had none. */
  anonymous?: boolean;
}

/** What GetImageFile serves: the headers' facts, and the body when asked for. */
export interface FileDownload {
  image: StoredImage;
  file: ImageFile;
  /** base64 md5 (Content-MD5). */
  md5: string | undefined;
  lastModified: Date;
  body?: Readable;
}

/** What GetImageIcon serves. */
export interface IconDownload {
  image: StoredImage;
  contentType: string;
  etag: string;
  size: number;
  lastModified: Date;
  body?: Readable;
}

/** The request body of an upload. */
export interface UploadInput {
  body: AsyncIterable<Uint8Array>;
  /** The declared Content-Length, when there was one. */
  contentLength?: number | undefined;
  contentType?: string | undefined;
  signal?: AbortSignal | undefined;
}

export type WantBody = { kind: 'none' } | { kind: 'whole' } | { kind: 'range'; start: number; end: number };

function notFound(message: string): ImgapiError {
  return new ImgapiError(404, 'ResourceNotFound', message);
}

function invalidParameter(field: string, message: string, code = 'Invalid'): ImgapiError {
  return new ImgapiError(422, 'InvalidParameter', message, [{ field, code, message }]);
}

function downloadError(message: string): ImgapiError {
  return new ImgapiError(400, 'Download', message);
}

function uploadError(message: string): ImgapiError {
  return new ImgapiError(400, 'Upload', message);
}

export function isActivated(m: Pick<ImageManifest, 'state'>): boolean {
  return m.state === 'active' || m.state === 'disabled';
}

/** `images/<uuid>/<what>-<ms>-<16 hex>`: unique per upload, and it records when it was made. */
function newBlobKey(uuid: string, what: 'file' | 'icon', now: Date): string {
  return `images/${uuid}/${what}-${now.getTime()}-${randomBytes(8).toString('hex')}`;
}

/** When the blob behind `key` was uploaded (from the key), or undefined for a key of another form. */
export function blobKeyTime(key: string): Date | undefined {
  const m = /-(\d{10,16})-[0-9a-f]+$/.exec(key);
  if (m === null) return undefined;
  const d = new Date(Number(m[1]));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** Drops keys whose value is undefined (an update's `null` removals). */
function compact(m: ImageManifest): ImageManifest {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) if (v !== undefined) out[k] = v;
  return out as unknown as ImageManifest;
}

function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null || v === '') return false;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw invalidParameter(name, `invalid value for "${name}" param: ${JSON.stringify(v)} is not a boolean`);
}

/** Whether an address is one AddImageFileFromUrl refuses by default (loopback, private, link-local, …). */
export function isPrivateAddress(address: string): boolean {
  if (net.isIPv4(address)) {
    const [a = 0, b = 0] = address.split('.').map(Number);
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      a >= 224
    );
  }
  const v6 = address.toLowerCase();
  if (v6 === '::' || v6 === '::1') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v6);
  if (mapped?.[1] !== undefined) return isPrivateAddress(mapped[1]);
  return /^(fc|fd|fe[89ab]|ff)/.test(v6);
}

export class ImagesService {
  readonly meta: MetadataStore;
  readonly blobs: BlobStore;
  readonly channels: ChannelConfig[] | undefined;
  readonly strictOrigins: boolean;
  readonly maxFileSize: number;
  readonly maxIconSize: number;
  readonly version: string;
  readonly now: () => Date;
  readonly reporter: Reporter;
  readonly allowPrivateFileUrls: boolean;
  readonly fileUrlTimeoutMs: number;

  constructor(options: ImagesServiceOptions) {
    this.meta = options.meta;
    this.blobs = options.blobs;
    this.channels =
      options.channels !== undefined && options.channels.length > 0 ? options.channels : undefined;
    this.strictOrigins = options.strictOrigins ?? true;
    this.maxFileSize = options.maxFileSize;
    this.maxIconSize = options.maxIconSize ?? 128 * 1024;
    this.version = options.version;
    this.now = options.now ?? (() => new Date());
    this.reporter = options.reporter ?? silentReporter;
    this.allowPrivateFileUrls = options.allowPrivateFileUrls ?? false;
    this.fileUrlTimeoutMs = options.fileUrlTimeoutMs ?? 60_000;
  }

  // ---- helpers

  private readChannel(q: URLSearchParams): string | undefined {
    return resolveChannel(q.get('channel'), this.channels, 'read');
  }

  private writeChannel(q: URLSearchParams): string | undefined {
    return resolveChannel(q.get('channel'), this.channels, 'write');
  }

  private static inChannel(image: StoredImage, channel: string | undefined): boolean {
    return channel === undefined || channel === '*' || (image.manifest.channels ?? []).includes(channel);
  }

  /** The image, if it exists and is in `channel`; else 404 as the reference answers. */
  private async load(uuid: string, channel: string | undefined): Promise<StoredImage> {
    if (!isUuid(uuid)) throw notFound(`/images/${uuid} does not exist`);
    const image = await this.meta.get(uuid);
    if (image === undefined) throw notFound(`image ${uuid} not found`);
    if (!ImagesService.inChannel(image, channel)) throw notFound('image not found');
    return image;
  }

  /**
   * Reads the image (in `channel`), applies `change`, and stores the result
   * conditionally on the revision read; on a lost race, reads again and
   * re-applies. `change` returns undefined for "nothing to do".
   */
  private async mutate(
    uuid: string,
    channel: string | undefined,
    change: (image: StoredImage) => Promise<StoredImage | undefined> | StoredImage | undefined,
  ): Promise<StoredImage> {
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const current = await this.load(uuid, channel);
      const next = await change(current);
      if (next === undefined) return current;
      const stored: StoredImage = {
        ...next,
        manifest: compact(next.manifest),
        revision: current.revision + 1,
      };
      if (await this.meta.update(stored, current.revision)) return stored;
    }
    throw new ImgapiError(409, 'Conflict', `image ${uuid} is being changed by other requests; try again`);
  }

  /** Deletes a blob that nothing points at any more; a failure only leaves an orphan, so it is logged. */
  private async dropBlob(key: string | undefined): Promise<void> {
    if (key === undefined) return;
    try {
      await this.blobs.delete(key);
    } catch (err) {
      warn(this.reporter, `images: could not delete the unused blob ${key}: ${(err as Error).message}`);
    }
  }

  /** The origin chain of `m` as far as it exists, for checkOriginChain's synchronous lookup. */
  private async originsOf(m: ImageManifest): Promise<Map<string, ImageManifest>> {
    const found = new Map<string, ImageManifest>();
    let next = m.origin;
    for (let depth = 0; next !== undefined && depth <= MAX_ORIGIN_DEPTH && !found.has(next); depth++) {
      const s = await this.meta.get(next);
      if (s === undefined) break;
      found.set(next, s.manifest);
      next = s.manifest.origin;
    }
    return found;
  }

  /** CreateImage/AdminImport: the origin must exist; with strict origins, its whole chain must be active in `channel`. */
  private async checkOrigin(m: ImageManifest, channel: string | undefined): Promise<void> {
    if (m.origin === undefined) return;
    const origins = await this.originsOf(m);
    if (!origins.has(m.origin)) throw originDoesNotExist(m.origin);
    if (this.strictOrigins) checkOriginChain(m, channel, (u) => origins.get(u));
  }

  private compression(q: URLSearchParams): Compression {
    const c = q.get('compression');
    if (c === null || c === '')
      throw new ImgapiError(422, 'InvalidParameter', 'missing "compression"', [
        { field: 'compression', code: 'Missing' },
      ]);
    const found = COMPRESSIONS.find((x) => x === c);
    if (found === undefined)
      throw new ImgapiError(
        422,
        'InvalidParameter',
        `invalid compression "${c}" (must be one of ${COMPRESSIONS.join(', ')})`,
        [{ field: 'compression', code: 'Invalid' }],
      );
    return found;
  }

  // ---- reads

  ping(caller: Caller = {}): Record<string, unknown> {
    return {
      ping: 'pong',
      version: this.version,
      imgapi: true,
      // As the reference: the pid only for a caller the server knows (or a server without auth).
      ...(caller.anonymous === true ? {} : { pid: process.pid }),
      ...(caller.user !== undefined ? { user: caller.user } : {}),
    };
  }

  /** ListChannels; 404 when the server has no channels (the endpoint does not exist then). */
  listChannels(): ChannelConfig[] {
    if (this.channels === undefined) throw notFound('/channels does not exist');
    return this.channels.map((c) => ({
      name: c.name,
      description: c.description,
      ...(c.default === true ? { default: true } : {}),
    }));
  }

  async listImages(q: URLSearchParams, caller: Caller = {}): Promise<ImageManifest[]> {
    const filter = parseListQuery(q, this.channels);
    // As the reference in public mode: anonymous callers see only active images.
    if (caller.anonymous === true) {
      if (filter.state === 'all') filter.state = 'active';
      else if (filter.state !== 'active') return [];
    }
    if (filter.markerUuid !== undefined) {
      const marker = await this.meta.get(filter.markerUuid);
      if (marker === undefined) throw notFound(`image ${filter.markerUuid} not found`);
      if (marker.manifest.published_at !== undefined) filter.markerPublishedAt = marker.manifest.published_at;
    }
    const images = await this.meta.list(filter);
    // The store filters already; the pure rule has the last word.
    return images.map((i) => i.manifest).filter((m) => matchesFilter(m, filter));
  }

  async getImage(uuid: string, q: URLSearchParams): Promise<StoredImage> {
    return this.load(uuid, this.readChannel(q));
  }

  /**
   * GetImageFile: `want` sees the file's facts (for conditional requests and
   * ranges) and says which bytes to open. A manifest whose blob vanished
   * under it (a newer upload won) is read again.
   */
  async getImageFile(
    uuid: string,
    q: URLSearchParams,
    want: (d: FileDownload) => WantBody,
  ): Promise<FileDownload> {
    const channel = this.readChannel(q);
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const image = await this.load(uuid, channel);
      const file = image.manifest.files[0];
      if (file === undefined || image.fileKey === undefined) throw notFound(`image "${uuid}" has no file`);
      const d: FileDownload = {
        image,
        file,
        md5: image.fileMd5,
        lastModified: blobKeyTime(image.fileKey) ?? new Date(image.manifest.published_at ?? 0),
      };
      const w = want(d);
      if (w.kind === 'none') return d;
      const got = await this.blobs.get(
        image.fileKey,
        w.kind === 'range' ? { start: w.start, end: w.end } : undefined,
      );
      if (got !== undefined) return { ...d, body: got.body };
      const again = await this.meta.get(uuid);
      if (again?.fileKey === image.fileKey) break;
    }
    throw new ImgapiError(500, 'InternalError', `the file of image ${uuid} is missing from the blob store`);
  }

  async getImageIcon(
    uuid: string,
    q: URLSearchParams,
    want: (d: IconDownload) => WantBody,
  ): Promise<IconDownload> {
    const channel = this.readChannel(q);
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const image = await this.load(uuid, channel);
      const key = image.iconKey;
      if (key === undefined || image.manifest.icon !== true) throw notFound(`image "${uuid}" has no icon`);
      const head = await this.blobs.head(key);
      if (head !== undefined) {
        const d: IconDownload = {
          image,
          contentType: image.iconContentType ?? 'application/octet-stream',
          etag: key.slice(key.lastIndexOf('/') + 1),
          size: head.size,
          lastModified: blobKeyTime(key) ?? new Date(0),
        };
        const w = want(d);
        if (w.kind === 'none') return d;
        const got = await this.blobs.get(
          key,
          w.kind === 'range' ? { start: w.start, end: w.end } : undefined,
        );
        if (got !== undefined) return { ...d, size: got.size, body: got.body };
      }
      const again = await this.meta.get(uuid);
      if (again?.iconKey === key) break;
    }
    throw new ImgapiError(500, 'InternalError', `the icon of image ${uuid} is missing from the blob store`);
  }

  // ---- creation

  async createImage(q: URLSearchParams, body: unknown): Promise<StoredImage> {
    const channel = this.writeChannel(q);
    const manifest = validateManifest(body, 'create', {
      channelsEnabled: this.channels !== undefined,
      now: this.now(),
      uuid: randomUUID(),
      ...(channel !== undefined ? { channel } : {}),
    });
    await this.checkOrigin(manifest, channel);
    const image: StoredImage = { manifest: compact(manifest), revision: 1 };
    if (!(await this.meta.create(image)))
      throw new ImgapiError(409, 'ImageUuidAlreadyExists', `image uuid "${manifest.uuid}" already exists`);
    return image;
  }

  /** AdminImport: the published manifest, unactivated and without its file until the client uploads it. */
  async importImage(uuid: string, q: URLSearchParams, body: unknown): Promise<StoredImage> {
    if (!isUuid(uuid)) throw notFound(`/images/${uuid} does not exist`);
    const channel = this.writeChannel(q);
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      const given = (body as Record<string, unknown>).uuid;
      if (given !== undefined && given !== uuid)
        throw new ImgapiError(
          422,
          'InvalidParameter',
          `URL UUID, "${uuid}" and body UUID, "${typeof given === 'string' ? given : JSON.stringify(given)}" do not match`,
          [{ field: 'uuid', code: 'Invalid' }],
        );
    }
    if ((await this.meta.get(uuid)) !== undefined)
      throw new ImgapiError(409, 'ImageUuidAlreadyExists', `image uuid "${uuid}" already exists`);
    const manifest = validateManifest(body, 'import', {
      channelsEnabled: this.channels !== undefined,
      now: this.now(),
      ...(channel !== undefined ? { channel } : {}),
    });
    await this.checkOrigin(manifest, channel);
    const image: StoredImage = { manifest: compact(manifest), revision: 1 };
    if (!(await this.meta.create(image)))
      throw new ImgapiError(409, 'ImageUuidAlreadyExists', `image uuid "${uuid}" already exists`);
    return image;
  }

  // ---- files

  /**
   * AddImageFile: streams `input.body` into a new blob (hashing it on the
   * way), checks it, then points the manifest at it with a conditional
   * update and deletes the blob it replaced. Any failure deletes the new
   * blob: nothing partial is ever visible.
   */
  async addImageFile(uuid: string, q: URLSearchParams, input: UploadInput): Promise<StoredImage> {
    const channel = this.writeChannel(q);
    const image = await this.load(uuid, channel);
    if (isActivated(image.manifest))
      throw new ImgapiError(422, 'ImageFilesImmutable', `cannot modify files on activated image ${uuid}`);
    const compression = this.compression(q);
    const sha1Param = q.get('sha1');
    const expectedSha1 = sha1Param === null || sha1Param === '' ? undefined : sha1Param.toLowerCase();
    return this.storeFile(uuid, channel, compression, expectedSha1, input, 'Content-Length');
  }

  private async storeFile(
    uuid: string,
    channel: string | undefined,
    compression: Compression,
    expectedSha1: string | undefined,
    input: UploadInput,
    lengthSource: string,
  ): Promise<StoredImage> {
    const { contentLength } = input;
    if (contentLength !== undefined && contentLength > this.maxFileSize)
      throw uploadError(
        `image file size ${contentLength} (from ${lengthSource}) exceeds the maximum allowed size, ${this.maxFileSize}`,
      );
    if (contentLength === 0) throw downloadError('image file size is 0 bytes, empty files are not allowed');
    const key = newBlobKey(uuid, 'file', this.now());
    let put;
    try {
      put = await this.blobs.put(key, input.body, {
        maxBytes: this.maxFileSize,
        ...(contentLength !== undefined ? { expectedLength: contentLength } : {}),
        contentType: 'application/octet-stream',
        ...(input.signal !== undefined ? { signal: input.signal } : {}),
      });
    } catch (err) {
      if (isBlobPutError(err, 'too-large'))
        throw uploadError(`image file size exceeds the maximum allowed size, ${this.maxFileSize}`);
      if (isBlobPutError(err, 'length-mismatch'))
        throw downloadError(
          `"${lengthSource}" header, ${contentLength ?? '?'}, does not match uploaded size (${err.message})`,
        );
      throw err;
    }
    let previous: string | undefined;
    let committed: StoredImage;
    try {
      if (put.size === 0) throw downloadError('image file size is 0 bytes, empty files are not allowed');
      if (expectedSha1 !== undefined && expectedSha1 !== put.sha1)
        throw downloadError(
          `"sha1" hash, ${expectedSha1}, does not match the uploaded file sha1 hash, ${put.sha1}`,
        );
      committed = await this.mutate(uuid, channel, (current) => {
        if (isActivated(current.manifest))
          throw new ImgapiError(422, 'ImageFilesImmutable', `cannot modify files on activated image ${uuid}`);
        previous = current.fileKey;
        return {
          ...current,
          manifest: { ...current.manifest, files: [{ sha1: put.sha1, size: put.size, compression }] },
          fileKey: key,
          fileMd5: put.md5,
        };
      });
    } catch (err) {
      await this.dropBlob(key);
      throw err;
    }
    if (previous !== key) await this.dropBlob(previous);
    return committed;
  }

  /** AddImageFileFromUrl: the same as AddImageFile with the body fetched from `file_url` (http or https). */
  async addImageFileFromUrl(
    uuid: string,
    q: URLSearchParams,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<StoredImage> {
    const channel = this.writeChannel(q);
    const image = await this.load(uuid, channel);
    if (isActivated(image.manifest))
      throw new ImgapiError(422, 'ImageFilesImmutable', `cannot modify files on activated image ${uuid}`);
    const compression = this.compression(q);
    const fileUrl =
      typeof body === 'object' && body !== null && !Array.isArray(body)
        ? (body as Record<string, unknown>).file_url
        : undefined;
    if (fileUrl === undefined)
      throw new ImgapiError(422, 'InvalidParameter', 'missing "file_url" field from request body', [
        { field: 'file_url', code: 'Missing' },
      ]);
    let url: URL | undefined;
    try {
      url = typeof fileUrl === 'string' ? new URL(fileUrl) : undefined;
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:'))
      throw new ImgapiError(
        422,
        'InvalidParameter',
        'Only URLs using the http: or https: scheme are supported',
        [{ field: 'file_url', code: 'Invalid' }],
      );
    const sha1Param = q.get('sha1');
    const expectedSha1 = sha1Param === null || sha1Param === '' ? undefined : sha1Param.toLowerCase();
    const controller = new AbortController();
    const onAbort = (): void => {
      controller.abort(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await this.download(url, controller.signal);
      const declared = res.headers['content-length'];
      const length = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
      return await this.storeFile(
        uuid,
        channel,
        compression,
        expectedSha1,
        { body: this.timed(res, controller), contentLength: length, signal: controller.signal },
        'Content-Length of the download',
      );
    } finally {
      signal?.removeEventListener('abort', onAbort);
      controller.abort();
    }
  }

  /** GET `url` (no redirects), refusing private addresses unless allowed; 400 Download on any failure. */
  private download(url: URL, signal: AbortSignal): Promise<http.IncomingMessage> {
    const allowPrivate = this.allowPrivateFileUrls;
    const lookup = (
      hostname: string,
      options: dns.LookupOptions,
      callback: (
        err: NodeJS.ErrnoException | null,
        address: string | LookupAddress[],
        family?: number,
      ) => void,
    ): void => {
      dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
        if (err !== null) {
          callback(err, []);
          return;
        }
        const ok = addresses.filter((a) => allowPrivate || !isPrivateAddress(a.address));
        if (ok.length === 0) {
          callback(
            Object.assign(new Error(`${hostname} resolves to a private address`), { code: 'EPRIVATE' }),
            [],
          );
          return;
        }
        if (options.all === true) callback(null, ok);
        else callback(null, ok[0]?.address ?? '', ok[0]?.family);
      });
    };
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (net.isIP(host) !== 0 && !allowPrivate && isPrivateAddress(host))
      return Promise.reject(downloadError(`Error getting image: ${url.hostname} is a private address`));
    const get = url.protocol === 'https:' ? https.get : http.get;
    return new Promise((resolve, reject) => {
      const req = get(
        url,
        { lookup, signal, headers: { 'User-Agent': `slipway-imgapi/${this.version}` } },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(downloadError(`HTTP ${res.statusCode ?? 0} error attempting to download image`));
            return;
          }
          resolve(res);
        },
      );
      req.setTimeout(this.fileUrlTimeoutMs, () => {
        req.destroy(new Error(`no response within ${this.fileUrlTimeoutMs / 1000} s`));
      });
      req.on('error', (err) => {
        reject(downloadError(`Error getting image: ${err.message}`));
      });
    });
  }

  /** The response body, failing (400 Download) when it stalls or breaks. */
  private async *timed(res: http.IncomingMessage, controller: AbortController): AsyncGenerator<Uint8Array> {
    res.setTimeout(this.fileUrlTimeoutMs, () => {
      res.destroy(new Error(`the download stalled for ${this.fileUrlTimeoutMs / 1000} s`));
    });
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) yield chunk;
    } catch (err) {
      if (controller.signal.aborted) throw err;
      throw downloadError(`Error getting image: ${(err as Error).message}`);
    }
  }

  // ---- icons

  async addImageIcon(uuid: string, q: URLSearchParams, input: UploadInput): Promise<StoredImage> {
    const channel = this.writeChannel(q);
    await this.load(uuid, channel);
    const type = (input.contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (!(ICON_CONTENT_TYPES as readonly string[]).includes(type))
      throw uploadError(
        `invalid content-type, ${input.contentType ?? '(none)'}, must be one of ${ICON_CONTENT_TYPES.join(', ')}`,
      );
    const { contentLength } = input;
    if (contentLength !== undefined && contentLength > this.maxIconSize)
      throw uploadError(
        `icon size ${contentLength} (from Content-Length) exceeds the maximum allowed size, ${this.maxIconSize}`,
      );
    const key = newBlobKey(uuid, 'icon', this.now());
    let put;
    try {
      put = await this.blobs.put(key, input.body, {
        maxBytes: this.maxIconSize,
        ...(contentLength !== undefined ? { expectedLength: contentLength } : {}),
        contentType: type,
        ...(input.signal !== undefined ? { signal: input.signal } : {}),
      });
    } catch (err) {
      if (isBlobPutError(err, 'too-large'))
        throw uploadError(`icon size exceeds the maximum allowed size, ${this.maxIconSize}`);
      if (isBlobPutError(err, 'length-mismatch'))
        throw uploadError(`"Content-Length" header, ${contentLength ?? '?'}, does not match uploaded size`);
      throw err;
    }
    let previous: string | undefined;
    let committed: StoredImage;
    try {
      const sha1 = q.get('sha1');
      if (sha1 !== null && sha1 !== '' && sha1.toLowerCase() !== put.sha1)
        throw uploadError(
          `"sha1" hash, ${sha1}, does not match the uploaded icon file sha1 hash, ${put.sha1}`,
        );
      if (put.size === 0) throw uploadError('icon size is 0 bytes, empty files are not allowed');
      committed = await this.mutate(uuid, channel, (current) => {
        previous = current.iconKey;
        return {
          ...current,
          manifest: { ...current.manifest, icon: true },
          iconKey: key,
          iconContentType: type,
        };
      });
    } catch (err) {
      await this.dropBlob(key);
      throw err;
    }
    if (previous !== key) await this.dropBlob(previous);
    return committed;
  }

  async deleteImageIcon(uuid: string, q: URLSearchParams): Promise<StoredImage> {
    const channel = this.writeChannel(q);
    let previous: string | undefined;
    const image = await this.mutate(uuid, channel, (current) => {
      previous = current.iconKey;
      if (current.iconKey === undefined && current.manifest.icon !== true) return undefined;
      const manifest: ImageManifest = { ...current.manifest };
      delete manifest.icon;
      const next: StoredImage = { ...current, manifest };
      delete next.iconKey;
      delete next.iconContentType;
      return next;
    });
    await this.dropBlob(previous);
    return image;
  }

  // ---- actions (POST /images/:uuid?action=…)

  /** Dispatches POST /images/:uuid by `?action=`. */
  async imageAction(uuid: string, q: URLSearchParams, body: unknown): Promise<StoredImage> {
    if (!isUuid(uuid)) throw notFound(`/images/${uuid} does not exist`);
    const action = q.get('action');
    // Without channels, channel-add does not exist (as the reference): an invalid action.
    if (action === 'channel-add' && this.channels === undefined)
      throw new ImgapiError(422, 'InvalidParameter', `"${action}" is not a valid action`, [
        { field: 'action', code: 'Invalid' },
      ]);
    switch (parseAction(q)) {
      case 'import':
        return this.importImage(uuid, q, body);
      case 'activate':
        return this.activate(uuid, q);
      case 'disable':
        return this.setDisabled(uuid, q, true);
      case 'enable':
        return this.setDisabled(uuid, q, false);
      case 'update':
        return this.update(uuid, q, body);
      case 'channel-add':
        return this.channelAdd(uuid, q, body);
    }
  }

  async activate(uuid: string, q: URLSearchParams): Promise<StoredImage> {
    const channel = this.writeChannel(q);
    return this.mutate(uuid, channel, (current) => {
      const m = current.manifest;
      if (isActivated(m))
        throw new ImgapiError(422, 'ImageAlreadyActivated', `image "${uuid}" is already activated`);
      if (m.files.length === 0 || current.fileKey === undefined)
        throw new ImgapiError(
          422,
          'NoActivationNoFile',
          `image "${uuid}" cannot be activated: it has no file`,
        );
      return {
        ...current,
        manifest: {
          ...m,
          published_at: m.published_at ?? this.now().toISOString(),
          state: deriveState({ activated: true, disabled: m.disabled, state: m.state }),
        },
      };
    });
  }

  async setDisabled(uuid: string, q: URLSearchParams, disabled: boolean): Promise<StoredImage> {
    const channel = this.writeChannel(q);
    return this.mutate(uuid, channel, (current) => {
      const m = current.manifest;
      if (m.disabled === disabled) return undefined;
      return { ...current, manifest: { ...m, disabled, state: deriveState({ disabled, state: m.state }) } };
    });
  }

  async update(uuid: string, q: URLSearchParams, body: unknown): Promise<StoredImage> {
    const channel = this.writeChannel(q);
    return this.mutate(uuid, channel, (current) => {
      const patch = validateManifest(body, 'update', {
        channelsEnabled: this.channels !== undefined,
        now: this.now(),
        current: current.manifest,
      });
      return { ...current, manifest: { ...current.manifest, ...patch } };
    });
  }

  /** ChannelAdd: the image is looked up in the request's channel; the target comes from the body. */
  async channelAdd(uuid: string, q: URLSearchParams, body: unknown): Promise<StoredImage> {
    const channels = this.channels;
    if (channels === undefined)
      throw new ImgapiError(422, 'InvalidParameter', '"channel-add" is not a valid action');
    const channel = this.writeChannel(q);
    const target =
      typeof body === 'object' && body !== null && !Array.isArray(body)
        ? (body as Record<string, unknown>).channel
        : undefined;
    if (typeof target !== 'string' || !channels.some((c) => c.name === target))
      throw new ImgapiError(
        422,
        'ValidationFailed',
        `unknown channel: ${typeof target === 'string' ? target : String(target)}`,
        [{ field: 'channel', code: 'Invalid' }],
      );
    return this.mutate(uuid, channel, async (current) => {
      const m = current.manifest;
      if ((m.channels ?? []).includes(target)) return undefined;
      if (this.strictOrigins && m.origin !== undefined) {
        const origins = await this.originsOf(m);
        checkOriginChain(m, target, (u) => origins.get(u));
      }
      return { ...current, manifest: { ...m, channels: [...(m.channels ?? []), target] } };
    });
  }

  // ---- deletion and ACLs

  /**
   * DeleteImage: refused while images have this one as their origin (in the
   * request's channel when only removing from it; anywhere when deleting
   * the image for good, which would break their chains). An image in
   * several channels only leaves the request's channel, unless
   * `force_all_channels=true`. Blobs go once the metadata is gone.
   */
  async deleteImage(uuid: string, q: URLSearchParams): Promise<void> {
    const channel = this.writeChannel(q);
    const forceAll = boolParam(q, 'force_all_channels');
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const current = await this.load(uuid, channel);
      const channels = current.manifest.channels ?? [];
      const onlyLeave = channel !== undefined && channels.length > 1 && !forceAll;
      const dependents = await this.meta.dependents(uuid, onlyLeave ? channel : undefined);
      if (dependents.length > 0) {
        const summary =
          dependents.length < 10
            ? dependents.join(', ')
            : `${dependents.slice(0, 5).join(', ')}, and ${dependents.length - 5} more...`;
        throw new ImgapiError(
          422,
          'ImageHasDependentImages',
          `image "${uuid}" has ${dependents.length} dependent incremental image(s): ${summary}`,
        );
      }
      if (onlyLeave) {
        const next: StoredImage = {
          ...current,
          manifest: { ...current.manifest, channels: channels.filter((c) => c !== channel) },
          revision: current.revision + 1,
        };
        if (await this.meta.update(next, current.revision)) return;
        continue;
      }
      if (await this.meta.delete(uuid, current.revision)) {
        await this.dropBlob(current.fileKey);
        await this.dropBlob(current.iconKey);
        return;
      }
    }
    throw new ImgapiError(409, 'Conflict', `image ${uuid} is being changed by other requests; try again`);
  }

  /** AddImageAcl / RemoveImageAcl: `?action=add` (the default) or `remove`, body an array of uuids. */
  async imageAcl(uuid: string, q: URLSearchParams, body: unknown): Promise<StoredImage> {
    if (!isUuid(uuid)) throw notFound(`/images/${uuid} does not exist`);
    const action = q.get('action') === null || q.get('action') === '' ? 'add' : parseAclAction(q);
    const channel = this.writeChannel(q);
    if (!Array.isArray(body))
      throw new ImgapiError(422, 'InvalidParameter', 'invalid image "acl" (not an array)', [
        { field: 'acl', code: 'Invalid' },
      ]);
    const list = body as unknown[];
    list.forEach((u, i) => {
      if (typeof u !== 'string' || !isUuid(u))
        throw new ImgapiError(
          422,
          'InvalidParameter',
          `invalid image "acl" (item ${i} is not a UUID): ${typeof u === 'string' ? u : JSON.stringify(u)}`,
          [{ field: 'acl', code: 'Invalid' }],
        );
    });
    const uuids = list as string[];
    return this.mutate(uuid, channel, (current) => {
      const acl = current.manifest.acl ?? [];
      const next =
        action === 'add'
          ? [...acl, ...uuids.filter((u, i) => !acl.includes(u) && uuids.indexOf(u) === i)]
          : acl.filter((u) => !uuids.includes(u));
      if (next.length === acl.length && next.every((u, i) => u === acl[i])) return undefined;
      const manifest: ImageManifest = { ...current.manifest, acl: next };
      if (next.length === 0) delete manifest.acl;
      return { ...current, manifest };
    });
  }
}

/** Whether `err` is a client going away mid-request (nothing to answer). */
export function isClientGone(err: unknown): boolean {
  if (isSlipwayError(err)) return false;
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code === 'ECONNRESET' || e?.code === 'ERR_STREAM_PREMATURE_CLOSE' || e?.name === 'AbortError';
}
