/**
 * Blobs as objects in an S3 bucket (the at-scale store; AWS, Ceph RGW, MinIO…).
 * A put streams the body through the meter (sha1 + md5 + size checks) into
 * lib-storage's Upload: one PutObject for bodies under a part (sent only once
 * the whole body has passed the checks), else a multipart upload of 16 MiB
 * parts, 4 in flight, which becomes visible only on completion. When the
 * body fails a check, errors, or the put is aborted, the multipart upload is
 * aborted before put() rejects, so neither an object nor pending parts are
 * left; a put aborted after its object was created deletes it again.
 *
 * The AWS SDK is loaded when a store is opened, not when this module is.
 */
import type { Readable } from 'node:stream';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { SlipwayError } from '../core/errors.js';
import { abortError, aborted, checkBlobKey, meterBody } from './blob-common.js';
import type { BlobPutResult, BlobStore } from './types.js';
import { s3SdkError } from './s3-error.js';

export interface S3BlobStoreOptions {
  bucket: string;
  /** Prepended to every key with a '/' between (e.g. `imgapi` → `imgapi/<key>`). */
  prefix?: string;
  /** An S3-compatible endpoint; default $S3_ENDPOINT or $AWS_ENDPOINT_URL, else AWS. */
  endpoint?: string;
  /** Default $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1. */
  region?: string;
  /** Default $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY[/$AWS_SESSION_TOKEN], else the SDK's own chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Where the defaults above come from; default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Multipart part size (default 16 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Parts in flight (default 4). */
  queueSize?: number;
  /** Create the bucket when it does not exist (default true). */
  createBucket?: boolean;
}

export const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 4;

type Sdk = typeof import('@aws-sdk/client-s3');
type Storage = typeof import('@aws-sdk/lib-storage');

function isNotFound(err: unknown): boolean {
  const e = s3SdkError(err);
  return (
    e.name === 'NoSuchKey' ||
    e.name === 'NotFound' ||
    e.name === 'NoSuchBucket' ||
    e.$metadata?.httpStatusCode === 404
  );
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

export class S3BlobStore implements BlobStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  readonly #sdk: Sdk;
  readonly #storage: Storage;
  readonly #partSize: number;
  readonly #queueSize: number;

  private constructor(sdk: Sdk, storage: Storage, client: S3Client, options: S3BlobStoreOptions) {
    this.#sdk = sdk;
    this.#storage = storage;
    this.client = client;
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.#partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.#queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
  }

  static async open(options: S3BlobStoreOptions): Promise<S3BlobStore> {
    if (options.bucket === '')
      throw new SlipwayError('INVALID_ARGUMENT', 'the S3 blob store needs a bucket name');
    // The SDK warns on every Node < 22 process; Slipway supports Node 20.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const [sdk, storage] = await Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]);
    const env = options.env ?? process.env;
    const endpoint = options.endpoint ?? nonEmpty(env.S3_ENDPOINT) ?? nonEmpty(env.AWS_ENDPOINT_URL);
    const config: S3ClientConfig = {
      region: options.region ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1',
      forcePathStyle: true,
      // Streamed bodies through S3-compatible stores: no trailing checksums the store may not speak.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
    };
    if (endpoint !== undefined) config.endpoint = endpoint;
    const accessKeyId = nonEmpty(env.AWS_ACCESS_KEY_ID);
    const secretAccessKey = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
    const sessionToken = nonEmpty(env.AWS_SESSION_TOKEN);
    if (options.credentials !== undefined) config.credentials = options.credentials;
    else if (accessKeyId !== undefined && secretAccessKey !== undefined) {
      config.credentials = {
        accessKeyId,
        secretAccessKey,
        ...(sessionToken !== undefined ? { sessionToken } : {}),
      };
    }
    const client = new sdk.S3Client(config);
    const store = new S3BlobStore(sdk, storage, client, options);
    try {
      if (options.createBucket !== false) await store.#ensureBucket();
    } catch (err) {
      client.destroy();
      throw err;
    }
    return store;
  }

  async #ensureBucket(): Promise<void> {
    const { HeadBucketCommand, CreateBucketCommand } = this.#sdk;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err)) throw this.#wrap(err, 'cannot check the bucket', '');
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const name = s3SdkError(err).name;
      // Another replica created it first.
      if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') {
        try {
          await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
          return;
        } catch {
          /* not ours after all: report the create error */
        }
      }
      throw this.#wrap(err, 'cannot create the bucket', '');
    }
  }

  /** The object key behind a blob key. */
  objectKey(key: string): string {
    checkBlobKey(key);
    return this.prefix === '' ? key : `${this.prefix}/${key}`;
  }

  #wrap(err: unknown, action: string, key: string): SlipwayError {
    if (err instanceof SlipwayError) return err;
    const e = s3SdkError(err);
    const status = e.$metadata?.httpStatusCode;
    const where = `s3://${this.bucket}/${key}`;
    return new SlipwayError(
      'IO',
      `${action} ${where}: ${e.name ?? 'error'}${status !== undefined ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`,
      { cause: err, where },
    );
  }

  async put(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: { maxBytes: number; expectedLength?: number; contentType?: string; signal?: AbortSignal },
  ): Promise<BlobPutResult> {
    const Key = this.objectKey(key);
    const { signal } = options;
    if (aborted(signal)) throw abortError(signal);
    const meter = meterBody(body, {
      key,
      maxBytes: options.maxBytes,
      expectedLength: options.expectedLength,
      signal,
    });
    const upload = new this.#storage.Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key,
        Body: meter,
        ...(options.contentType !== undefined ? { ContentType: options.contentType } : {}),
      },
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      leavePartsOnError: false,
    });
    try {
      // An error of the meter (a failed check, the source's error, an abort) fails the part feeder;
      // Upload then waits for the parts in flight and aborts the multipart upload before rejecting.
      await upload.done();
    } catch (err) {
      meter.destroy();
      await upload.abort();
      // Belt and braces: Upload's own abort may have failed (network); aborting twice is harmless.
      await this.#abortMultipart(Key, upload.uploadId);
      // The body's own failure (a check, the source's error, the abort) as it is; else the store's.
      const bodyError = meter.errored;
      if (bodyError !== null) throw bodyError;
      if (aborted(signal)) throw abortError(signal);
      throw this.#wrap(err, 'cannot upload', Key);
    }
    if (aborted(signal)) {
      // Aborted while the last request was in flight: the object exists now; take it back.
      await this.client
        .send(new this.#sdk.DeleteObjectCommand({ Bucket: this.bucket, Key }))
        .catch(() => undefined);
      throw abortError(signal);
    }
    return meter.result();
  }

  async #abortMultipart(Key: string, uploadId: string | undefined): Promise<void> {
    if (uploadId === undefined) return;
    try {
      await this.client.send(
        new this.#sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: uploadId }),
      );
    } catch {
      /* NoSuchUpload: already aborted by Upload */
    }
  }

  async get(
    key: string,
    range?: { start: number; end: number },
  ): Promise<{ body: Readable; size: number } | undefined> {
    const Key = this.objectKey(key);
    if (
      range !== undefined &&
      (!Number.isSafeInteger(range.start) ||
        !Number.isSafeInteger(range.end) ||
        range.start < 0 ||
        range.end < range.start)
    ) {
      throw new SlipwayError(
        'INVALID_ARGUMENT',
        `range ${range.start}-${range.end} is not valid for '${key}'`,
        {
          where: key,
        },
      );
    }
    let out;
    try {
      out = await this.client.send(
        new this.#sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key,
          ...(range !== undefined ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
    } catch (err) {
      if (isNotFound(err)) return undefined;
      const e = s3SdkError(err);
      if (range !== undefined && (e.name === 'InvalidRange' || e.$metadata?.httpStatusCode === 416)) {
        throw new SlipwayError(
          'INVALID_ARGUMENT',
          `range ${range.start}-${range.end} is not satisfiable for '${key}'`,
          { where: key, cause: err },
        );
      }
      throw this.#wrap(err, 'cannot read', Key);
    }
    const body = out.Body as Readable | undefined;
    if (body === undefined) throw new SlipwayError('IO', `no body for s3://${this.bucket}/${Key}`);
    let size = out.ContentLength;
    if (range !== undefined) {
      // `bytes 0-9/1234`: the object's size is after the slash.
      const m = /\/(\d+)$/.exec(out.ContentRange ?? '');
      size = m?.[1] !== undefined ? Number(m[1]) : undefined;
    }
    if (size === undefined) {
      body.destroy();
      throw new SlipwayError('IO', `no size for s3://${this.bucket}/${Key}`);
    }
    return { body, size };
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    const Key = this.objectKey(key);
    try {
      const out = await this.client.send(new this.#sdk.HeadObjectCommand({ Bucket: this.bucket, Key }));
      return { size: out.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.#wrap(err, 'cannot stat', Key);
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new this.#sdk.DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw this.#wrap(err, 'cannot delete', Key);
    }
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }
}
