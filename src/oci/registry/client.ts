/**
 * A client of one registry (distribution spec v1.1; specs/oci.md "Pushing to
 * a registry"): ping, blob HEAD/GET/upload (monolithic or chunked, with
 * cross-repository mount), manifest GET/PUT. Auth is auth.ts's, retries
 * transport.ts's; an upload session that fails midway is restarted from a new
 * POST (a half-sent PATCH leaves the session's offset unknown).
 *
 * Uploads hash the bytes as they go out: a blob whose bytes do not match its
 * descriptor aborts its last request, so the registry never commits it.
 * Errors name the registry, method, path and the registry's `errors[]`.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { SlipwayError, type ErrorCode } from '../../core/errors.js';
import {
  MAX_MANIFEST_BYTES,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_MANIFEST,
  digestOf,
  parseDigest,
  tokenScope,
  verifyDigest,
  type Descriptor,
} from '../../formats/oci.js';
import { Authenticator, wwwAuthenticate, type AuthRound } from './auth.js';
import { resolveCredentials, type Credentials } from './credentials.js';
import {
  drain,
  header,
  isRetryableStatus,
  readBody,
  Transport,
  type HttpRequest,
  type HttpResponse,
} from './transport.js';

export const MEDIA_TYPE_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MEDIA_TYPE_DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MANIFEST_ACCEPT = [
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_MANIFEST,
  MEDIA_TYPE_DOCKER_LIST,
  MEDIA_TYPE_DOCKER_MANIFEST,
];

/** Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size. */
export const DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024;
/** Upload sessions tried per blob before giving up. */
const UPLOAD_SESSIONS = 3;
const MAX_ERROR_BODY = 64 * 1024;

export type Access = 'pull' | 'push';

export interface RegistryClientOptions {
  credentials?: Credentials;
  caFile?: string;
  /** Plain http to the registry; no TLS verification for https URLs on the registry's hostname. */
  insecure?: boolean;
  signal?: AbortSignal;
  attempts?: number;
  backoffMs?: number;
  timeoutMs?: number;
  onRequest?: (method: string, url: URL) => void;
}

/** A registry error with the HTTP status kept for retry decisions. */
export class RegistryHttpError extends SlipwayError {
  readonly status: number;
  constructor(code: ErrorCode, message: string, status: number, where: string) {
    super(code, message, { where });
    this.status = status;
  }
}

/** `CODE: message` pairs from a registry's `{"errors":[{code,message}]}` body. */
export function registryErrorText(body: Uint8Array): string {
  try {
    const v = JSON.parse(new TextDecoder().decode(body)) as {
      errors?: { code?: unknown; message?: unknown }[];
    };
    const parts = (v.errors ?? []).map((e) =>
      [e.code, e.message].filter((x): x is string => typeof x === 'string' && x !== '').join(': '),
    );
    if (parts.length > 0) return parts.join('; ');
  } catch {
    // Not JSON: fall through to the raw text.
  }
  return new TextDecoder().decode(body.subarray(0, 200)).trim();
}

/** Plan for one blob's bytes: one PUT, or PATCH chunks [start, end) then an empty PUT. */
export type UploadPlan = { kind: 'monolithic' } | { kind: 'chunked'; chunks: [number, number][] };

export function planUpload(size: number, chunkSize: number): UploadPlan {
  if (chunkSize <= 0 || size <= chunkSize) return { kind: 'monolithic' };
  const chunks: [number, number][] = [];
  for (let start = 0; start < size; start += chunkSize)
    chunks.push([start, Math.min(size, start + chunkSize)]);
  return { kind: 'chunked', chunks };
}

/** `Location` resolved against the request URL, with `digest` appended to its own query. */
export function withDigest(location: URL, digest: string): URL {
  const u = new URL(location.href);
  u.search = `${u.search === '' ? '?' : `${u.search}&`}digest=${encodeURIComponent(digest)}`;
  return u;
}

/**
 * Counts and hashes bytes on their way out; with `check`, fails at the end of
 * the stream (before the request completes) when the digest or size is wrong.
 */
class HashingStream extends Transform {
  constructor(
    private readonly hash: Hash,
    private readonly onBytes: (n: number) => void,
    private readonly check: (() => SlipwayError | undefined) | undefined,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.onBytes(chunk.byteLength);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    const err = this.check?.();
    cb(err ?? null);
  }
}

/** Opens the blob's bytes [start, end) as a fresh stream. */
export type OpenRange = (start: number, end: number) => Readable;

export interface UploadOptions {
  /** Another repository on this registry that may hold the blob (cross-repository mount). */
  from?: string;
  chunkSize?: number;
  /** Bytes sent so far for this blob (restarts from 0 when a session restarts). */
  onProgress?: (sent: number) => void;
}

export type UploadOutcome = 'uploaded' | 'mounted';

export interface ManifestResponse {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

export class RegistryClient {
  readonly registry: string;
  readonly base: URL;
  readonly #transport: Transport;
  readonly #auth: Authenticator;
  readonly #signal: AbortSignal | undefined;
  #blobBytesSent = 0;

  constructor(registry: string, options: RegistryClientOptions = {}) {
    this.registry = registry;
    this.base = new URL(
      `${options.insecure === true ? 'http' : 'https'}://${registry === 'docker.io' ? 'registry-1.docker.io' : registry}/`,
    );
    this.#transport = new Transport({
      ...(options.caFile !== undefined ? { caFile: options.caFile } : {}),
      ...(options.insecure === true ? { insecureHostname: this.base.hostname } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      ...(options.attempts !== undefined ? { attempts: options.attempts } : {}),
      ...(options.backoffMs !== undefined ? { backoffMs: options.backoffMs } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.onRequest !== undefined ? { onRequest: options.onRequest } : {}),
    });
    this.#auth = new Authenticator(registry, this.#transport, options.credentials, this.base);
    this.#signal = options.signal;
  }

  /** HTTP requests sent (token requests and retries included). */
  get requests(): number {
    return this.#transport.requests;
  }

  get tokenRequests(): number {
    return this.#auth.tokenRequests;
  }

  /** Blob bytes sent over the wire (retries and restarted sessions count again). */
  get bytesSent(): number {
    return this.#blobBytesSent;
  }

  close(): void {
    this.#transport.close();
  }

  // ---- plumbing

  #url(path: string): URL {
    return new URL(path, this.base);
  }

  /** Sends with auth: at most MAX_AUTH_ROUNDS 401s, then a coded error (auth.ts). */
  async #send(req: HttpRequest, scopes: string[]): Promise<HttpResponse> {
    const round: AuthRound = { rounds: 0, refetched: false };
    for (;;) {
      // Credentials only go to the registry itself, never to another origin a Location names.
      const sameOrigin = req.url.origin === this.base.origin;
      const sent = sameOrigin ? await this.#auth.authorize(scopes) : { kind: 'none' as const };
      const res = await this.#transport.request({
        ...req,
        headers: { ...req.headers, ...(sent.header !== undefined ? { Authorization: sent.header } : {}) },
      });
      if (res.status !== 401 || !sameOrigin) return res;
      const www = wwwAuthenticate(res.headers);
      await drain(res);
      await this.#auth.challenge(www, scopes, sent, round);
    }
  }

  async #fail(res: HttpResponse, method: string, what: string, notFound?: ErrorCode): Promise<never> {
    const body = await readBody(res, MAX_ERROR_BODY).catch(() => Buffer.alloc(0));
    const text = registryErrorText(body);
    const code: ErrorCode = res.status === 404 && notFound !== undefined ? notFound : 'OCI_REGISTRY_ERROR';
    throw new RegistryHttpError(
      code,
      `registry ${this.registry}: ${method} ${res.url.pathname} (${what}) → HTTP ${res.status}${text !== '' ? ` ${text}` : ''}`,
      res.status,
      this.registry,
    );
  }

  static scopes(repository: string, access: Access, from?: string): string[] {
    const own = tokenScope(repository, access === 'push' ? ['pull', 'push'] : ['pull']);
    return from === undefined || from === repository ? [own] : [own, tokenScope(from, ['pull'])];
  }

  // ---- endpoints

  /**
   * `GET /v2/` without credentials: the registry is reachable and speaks the
   * v2 API; a 401 tells us its auth scheme before the real requests start.
   */
  async probe(): Promise<void> {
    const res = await this.#transport.request({ method: 'GET', url: this.#url('/v2/') });
    await drain(res);
    if (res.status === 401) this.#auth.learn(wwwAuthenticate(res.headers));
    else if (res.status !== 200) await this.#fail(res, 'GET', 'API version check');
  }

  /** `GET /v2/`: reachable and, with credentials, authenticated. */
  async ping(): Promise<void> {
    const res = await this.#send({ method: 'GET', url: this.#url('/v2/') }, []);
    await drain(res);
    if (res.status !== 200) await this.#fail(res, 'GET', 'ping');
  }

  async blobExists(
    repository: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    access: Access = 'pull',
  ): Promise<boolean> {
    const url = this.#url(`/v2/${repository}/blobs/${desc.digest}`);
    const res = await this.#send({ method: 'HEAD', url }, RegistryClient.scopes(repository, access));
    await drain(res);
    if (res.status === 404) return false;
    if (res.status !== 200) return this.#fail(res, 'HEAD', `blob ${desc.digest}`);
    const length = header(res.headers, 'content-length');
    // A blob of another size under the same digest cannot be ours: upload ours.
    return length === undefined || Number(length) === desc.size;
  }

  /**
   * Uploads a blob (mounting it from `from` when the registry allows, else
   * uploading it), verifying its bytes against `desc` while sending. Restarts
   * the session on transient failures, up to UPLOAD_SESSIONS times.
   */
  async uploadBlob(
    repository: string,
    desc: Descriptor,
    open: OpenRange,
    options: UploadOptions = {},
  ): Promise<UploadOutcome> {
    parseDigest(desc.digest);
    let from = options.from;
    for (let session = 1; ; session++) {
      try {
        return await this.#uploadSession(repository, desc, open, options, from);
      } catch (err) {
        // No pull on the mount source: upload the bytes instead (as docker does).
        if (from !== undefined && err instanceof SlipwayError && err.code === 'OCI_INSUFFICIENT_SCOPE') {
          from = undefined;
          session--;
          continue;
        }
        from = undefined;
        const retryable =
          (err instanceof RegistryHttpError && isRetryableStatus(err.status)) ||
          (err instanceof SlipwayError && err.code === 'OCI_UNREACHABLE');
        if (!retryable || session >= UPLOAD_SESSIONS || this.#signal?.aborted === true) throw err;
        options.onProgress?.(0);
      }
    }
  }

  async #uploadSession(
    repository: string,
    desc: Descriptor,
    open: OpenRange,
    options: UploadOptions,
    from: string | undefined,
  ): Promise<UploadOutcome> {
    const scopes = RegistryClient.scopes(repository, 'push', from);
    const post = this.#url(`/v2/${repository}/blobs/uploads/`);
    if (from !== undefined) {
      post.searchParams.set('mount', desc.digest);
      post.searchParams.set('from', from);
    }
    const started = await this.#send({ method: 'POST', url: post }, scopes);
    await drain(started);
    if (started.status === 201 && from !== undefined) return 'mounted';
    if (started.status !== 202) return this.#fail(started, 'POST', `start upload of ${desc.digest}`);
    let location = this.#location(started, desc.digest);

    // The hash and count of the bytes the registry has accepted so far; each
    // attempt at a request (an auth retry re-sends its body) works on a copy,
    // kept only once the registry accepts that request.
    const { algorithm, hex } = parseDigest(desc.digest);
    let committed = { hash: createHash(algorithm), sent: 0 };
    let attempt = committed;
    const body = (start: number, end: number, last: boolean) => (): Readable => {
      const a = { hash: committed.hash.copy(), sent: committed.sent };
      attempt = a;
      const onBytes = (n: number): void => {
        a.sent += n;
        this.#blobBytesSent += n;
        options.onProgress?.(a.sent);
      };
      const check = (): SlipwayError | undefined => {
        if (a.sent !== desc.size) {
          return new SlipwayError(
            'OCI_DIGEST_MISMATCH',
            `blob ${desc.digest}: ${a.sent} bytes read, its descriptor says ${desc.size}; nothing was committed`,
          );
        }
        const got = a.hash.copy().digest('hex');
        return got === hex
          ? undefined
          : new SlipwayError(
              'OCI_DIGEST_MISMATCH',
              `blob ${desc.digest}: its bytes hash to ${algorithm}:${got}; nothing was committed`,
            );
      };
      const hashing = new HashingStream(a.hash, onBytes, last ? check : undefined);
      // pipeline forwards a read error of the source to `hashing` (pipe would not).
      return pipeline(open(start, end), hashing, () => undefined);
    };

    const plan = planUpload(desc.size, options.chunkSize ?? DEFAULT_CHUNK_SIZE);
    if (plan.kind === 'monolithic') {
      const res = await this.#send(
        {
          method: 'PUT',
          url: withDigest(location, desc.digest),
          headers: { 'Content-Type': 'application/octet-stream' },
          body: body(0, desc.size, true),
          contentLength: desc.size,
          retry: false,
        },
        scopes,
      );
      return this.#finishUpload(res, desc);
    }
    for (let i = 0; i < plan.chunks.length; i++) {
      const [start, end] = plan.chunks[i] as [number, number];
      const res = await this.#send(
        {
          method: 'PATCH',
          url: location,
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${end - 1}` },
          body: body(start, end, i === plan.chunks.length - 1),
          contentLength: end - start,
          retry: false,
        },
        scopes,
      );
      await drain(res);
      if (res.status !== 202) return this.#fail(res, 'PATCH', `chunk ${start}-${end - 1} of ${desc.digest}`);
      committed = attempt;
      location = this.#location(res, desc.digest);
    }
    const res = await this.#send(
      { method: 'PUT', url: withDigest(location, desc.digest), retry: false },
      scopes,
    );
    return this.#finishUpload(res, desc);
  }

  async #finishUpload(res: HttpResponse, desc: Descriptor): Promise<UploadOutcome> {
    await drain(res);
    if (res.status !== 201) return this.#fail(res, 'PUT', `finish upload of ${desc.digest}`);
    const echoed = header(res.headers, 'docker-content-digest');
    if (echoed !== undefined && echoed !== desc.digest) {
      throw new SlipwayError(
        'OCI_DIGEST_MISMATCH',
        `registry ${this.registry} stored blob ${desc.digest} as ${echoed}`,
        {
          where: this.registry,
        },
      );
    }
    return 'uploaded';
  }

  #location(res: HttpResponse, digest: string): URL {
    const loc = header(res.headers, 'location');
    if (loc === undefined || loc === '') {
      throw new SlipwayError(
        'OCI_REGISTRY_ERROR',
        `registry ${this.registry}: upload of ${digest} answered without a Location`,
        {
          where: this.registry,
        },
      );
    }
    return new URL(loc, res.url);
  }

  /** Fetches a manifest or index; verifies its digest against a digest reference and Docker-Content-Digest. */
  async getManifest(
    repository: string,
    reference: string,
    accept: string[] = MANIFEST_ACCEPT,
  ): Promise<ManifestResponse> {
    const url = this.#url(`/v2/${repository}/manifests/${reference}`);
    const res = await this.#send(
      { method: 'GET', url, headers: { Accept: accept.join(', ') } },
      RegistryClient.scopes(repository, 'pull'),
    );
    if (res.status !== 200) {
      return this.#fail(res, 'GET', `manifest ${repository}:${reference}`, 'OCI_NOT_FOUND');
    }
    const bytes = await readBody(res, MAX_MANIFEST_BYTES);
    const digest = digestOf(bytes);
    const mismatch = (want: string): SlipwayError =>
      new SlipwayError(
        'OCI_DIGEST_MISMATCH',
        `registry ${this.registry}: manifest ${repository}@${want} arrived with digest ${digest}`,
        {
          where: this.registry,
        },
      );
    if (reference.includes(':') && !verifyAs(bytes, reference)) throw mismatch(reference);
    const echoed = header(res.headers, 'docker-content-digest');
    if (echoed !== undefined && echoed !== '' && !verifyAs(bytes, echoed)) throw mismatch(echoed);
    const contentType = (header(res.headers, 'content-type') ?? '').split(';')[0]?.trim() ?? '';
    let mediaType = contentType;
    try {
      const inner = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
      if (typeof inner === 'string' && inner !== '') mediaType = inner;
    } catch {
      // Not JSON: the caller's parser will say so; keep the Content-Type.
    }
    return { bytes, mediaType, digest: reference.includes(':') ? reference : digest };
  }

  async putManifest(
    repository: string,
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
  ): Promise<string> {
    const url = this.#url(`/v2/${repository}/manifests/${reference}`);
    const res = await this.#send(
      { method: 'PUT', url, headers: { 'Content-Type': mediaType }, body: bytes },
      RegistryClient.scopes(repository, 'push'),
    );
    await drain(res);
    if (res.status !== 201 && res.status !== 200) {
      return this.#fail(res, 'PUT', `manifest ${repository}:${reference}`);
    }
    const digest = digestOf(bytes);
    const echoed = header(res.headers, 'docker-content-digest');
    if (echoed !== undefined && echoed !== '' && echoed !== digest) {
      throw new SlipwayError(
        'OCI_DIGEST_MISMATCH',
        `registry ${this.registry} stored manifest ${digest} as ${echoed}`,
        {
          where: this.registry,
        },
      );
    }
    return digest;
  }

  /**
   * A blob's bytes as a stream (not verified here: the reader hashes them, e.g.
   * OciLayout.putStream with the descriptor). Follows up to 5 redirects (blob
   * storage often lives elsewhere), without credentials to another origin.
   */
  async getBlob(repository: string, desc: Pick<Descriptor, 'digest'>): Promise<Readable> {
    let url = this.#url(`/v2/${repository}/blobs/${desc.digest}`);
    for (let hop = 0; hop <= 5; hop++) {
      const res = await this.#send({ method: 'GET', url }, RegistryClient.scopes(repository, 'pull'));
      const loc = header(res.headers, 'location');
      if ([301, 302, 303, 307, 308].includes(res.status) && loc !== undefined) {
        await drain(res);
        url = new URL(loc, url);
        continue;
      }
      if (res.status !== 200) return this.#fail(res, 'GET', `blob ${desc.digest}`, 'OCI_NOT_FOUND');
      return res.stream;
    }
    throw new SlipwayError(
      'OCI_REGISTRY_ERROR',
      `registry ${this.registry}: blob ${desc.digest}: too many redirects`,
      {
        where: this.registry,
      },
    );
  }
}

/** verifyDigest, with a malformed digest (from the registry) counting as a mismatch. */
function verifyAs(bytes: Uint8Array, digest: string): boolean {
  try {
    return verifyDigest(bytes, digest);
  } catch {
    return false;
  }
}

/** How to reach a registry: credentials and TLS, shared by push, pull and inspect. */
export interface RegistryAccessOptions {
  creds?: Credentials;
  authFile?: string;
  caFile?: string;
  insecure?: boolean;
  signal?: AbortSignal;
  attempts?: number;
  backoffMs?: number;
}

/** A client for `registry`, with credentials resolved for `repository` (credentials.ts order). */
export function connect(registry: string, repository: string, o: RegistryAccessOptions): RegistryClient {
  const { credentials } = resolveCredentials({
    ...(o.creds !== undefined ? { creds: o.creds } : {}),
    ...(o.authFile !== undefined ? { authFile: o.authFile } : {}),
    registry,
    repository,
  });
  return new RegistryClient(registry, {
    ...(credentials !== undefined ? { credentials } : {}),
    ...(o.caFile !== undefined ? { caFile: o.caFile } : {}),
    ...(o.insecure !== undefined ? { insecure: o.insecure } : {}),
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
    ...(o.attempts !== undefined ? { attempts: o.attempts } : {}),
    ...(o.backoffMs !== undefined ? { backoffMs: o.backoffMs } : {}),
  });
}
