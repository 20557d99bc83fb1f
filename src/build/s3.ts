/**
 * `s3://bucket/key` downloads with the same guarantees as `download()` in
 * fetch.ts: the object is streamed to a temp file while hashed, retried with
 * backoff on 5xx, throttling and broken connections, and kept only when the
 * sha256 matches. Works against AWS and any S3-compatible store (Ceph RGW,
 * MinIO, …) named by `S3_ENDPOINT` or `AWS_ENDPOINT_URL`.
 *
 * The AWS SDK is imported lazily, on the first S3 request, so commands that
 * never touch S3 do not pay for loading it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { SlipwayError } from '../core/errors.js';
import type { FetchOptions } from './fetch.js';
import { Retryable, saveVerified, withRetries } from './transfer.js';
import { s3SdkError } from '../store/s3-error.js';

export interface S3Location {
  bucket: string;
  key: string;
}

export type Env = Record<string, string | undefined>;

export interface S3GetOptions extends FetchOptions {
  /** Where the endpoint, region and credentials come from; default `process.env`. */
  env?: Env;
}

/** `s3://bucket/key/with/slashes` → { bucket, key }. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (m === null) {
    throw new SlipwayError('INVALID_ARGUMENT', `'${url}' is not an S3 URL of the form s3://bucket/key`, {
      where: url,
    });
  }
  return { bucket: m[1] ?? '', key: m[2] ?? '' };
}

/** The client settings `env` asks for (exported for tests and `--dry-run` output). */
export function s3ConfigFromEnv(env: Env = process.env): {
  endpoint: string | undefined;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | 'sdk-default';
} {
  const endpoint = nonEmpty(env.S3_ENDPOINT) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  const region = nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1';
  const accessKeyId = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secretAccessKey = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  const sessionToken = nonEmpty(env.AWS_SESSION_TOKEN);
  if (accessKeyId !== undefined && secretAccessKey !== undefined) {
    return {
      endpoint,
      region,
      credentials: { accessKeyId, secretAccessKey, ...(sessionToken !== undefined ? { sessionToken } : {}) },
    };
  }
  // Profiles, SSO, web identity and container credentials go through the SDK's own chain. Without
  // any sign of them we fail here rather than let that chain probe the EC2 metadata address.
  const home = nonEmpty(env.HOME) ?? os.homedir();
  const hints = [
    env.AWS_PROFILE,
    env.AWS_WEB_IDENTITY_TOKEN_FILE,
    env.AWS_CONTAINER_CREDENTIALS_FULL_URI,
    env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
  ].some((v) => nonEmpty(v) !== undefined);
  const files = [
    nonEmpty(env.AWS_SHARED_CREDENTIALS_FILE) ?? path.join(home, '.aws', 'credentials'),
    nonEmpty(env.AWS_CONFIG_FILE) ?? path.join(home, '.aws', 'config'),
  ].some((f) => fs.existsSync(f));
  if (hints || files) return { endpoint, region, credentials: 'sdk-default' };
  throw new SlipwayError(
    'DOWNLOAD_FAILED',
    'no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and S3_ENDPOINT for a store other than AWS',
  );
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

type Sdk = typeof import('@aws-sdk/client-s3');
let sdkPromise: Promise<Sdk> | undefined;
const clients = new Map<string, S3Client>();

async function loadSdk(): Promise<Sdk> {
  // The SDK warns on every Node < 22 process; Slipway supports Node 20, so keep the CLI quiet.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  sdkPromise ??= import('@aws-sdk/client-s3');
  return sdkPromise;
}

/** One client per configuration, reused across downloads (keep-alive connections). */
export async function s3Client(env: Env = process.env): Promise<S3Client> {
  const cfg = s3ConfigFromEnv(env);
  const id = JSON.stringify(cfg);
  const known = clients.get(id);
  if (known !== undefined) return known;
  const { S3Client: Client } = await loadSdk();
  const config: S3ClientConfig = {
    region: cfg.region,
    // Retries are ours (backoff, onRetry, attempt counts like plain HTTP downloads).
    maxAttempts: 1,
    // A stalled connection (no bytes for a minute) becomes a retry instead of a hang.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
    // Stream bodies through S3-compatible stores: no trailing checksums the store may not speak.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  if (cfg.endpoint !== undefined) {
    config.endpoint = cfg.endpoint;
    config.forcePathStyle = true;
  }
  if (cfg.credentials !== 'sdk-default') config.credentials = cfg.credentials;
  const client = new Client(config);
  clients.set(id, client);
  return client;
}

/** Closes every cached client's connections (tests; long-running servers on shutdown). */
export function closeS3Clients(): void {
  for (const c of clients.values()) c.destroy();
  clients.clear();
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const THROTTLING = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
]);

/** Turns an SDK or network error into a final SlipwayError or a Retryable. */
function classify(err: unknown, url: string, loc: S3Location, signal: AbortSignal | undefined): Error {
  if (err instanceof SlipwayError || err instanceof Retryable) return err;
  if (signal?.aborted === true) return new SlipwayError('INTERRUPTED', 'download cancelled', { cause: err });
  const e = s3SdkError(err);
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const where = `bucket '${loc.bucket}', key '${loc.key}'`;
  const fail = (reason: string): SlipwayError =>
    new SlipwayError('DOWNLOAD_FAILED', `GET ${url}: ${reason} (${where})`, { where: url, cause: err });
  if (name === 'CredentialsProviderError') return fail(`no S3 credentials: ${e.message ?? ''}`);
  if (status === undefined) {
    // No HTTP answer: refused, reset, timed out, DNS. All worth another try.
    return new Retryable(`${e.code ?? name}: ${e.message ?? String(err)}`);
  }
  if (RETRYABLE_STATUS.has(status) || THROTTLING.has(name) || e.$retryable !== undefined) {
    return new Retryable(`HTTP ${status} ${name}`);
  }
  if (name === 'NoSuchKey' || (status === 404 && name !== 'NoSuchBucket'))
    return fail(`no such object (HTTP ${status})`);
  if (name === 'NoSuchBucket') return fail(`no such bucket (HTTP ${status})`);
  if (status === 403 || name === 'AccessDenied' || name === 'InvalidAccessKeyId') {
    return fail(`access denied (HTTP ${status} ${name}): check the S3 credentials and the bucket's policy`);
  }
  return fail(
    `HTTP ${status} ${name}${e.message !== undefined && e.message !== name ? `: ${e.message}` : ''}`,
  );
}

async function attempt(
  client: S3Client,
  sdk: Sdk,
  url: string,
  loc: S3Location,
  dest: string,
  expected: string | undefined,
  signal: AbortSignal | undefined,
): Promise<{ sha256: string; size: number }> {
  let body: AsyncIterable<Uint8Array>;
  let contentLength: number | undefined;
  try {
    const res = await client.send(
      new sdk.GetObjectCommand({ Bucket: loc.bucket, Key: loc.key }),
      signal === undefined ? {} : { abortSignal: signal },
    );
    if (res.Body === undefined) throw new Retryable('response without a body');
    body = res.Body as unknown as AsyncIterable<Uint8Array>;
    contentLength = res.ContentLength;
  } catch (err) {
    throw classify(err, url, loc, signal);
  }
  return saveVerified(body, dest, url, expected, {
    ...(signal !== undefined ? { signal } : {}),
    ...(contentLength !== undefined ? { expectedLength: contentLength } : {}),
    onBroken: () => (body as { destroy?: () => void }).destroy?.(),
  });
}

/** Downloads `s3://bucket/key` to `dest` (atomically), verifying `expectedSha256` when given. */
export async function s3Get(
  url: string,
  dest: string,
  expectedSha256: string | undefined,
  options: S3GetOptions = {},
): Promise<{ sha256: string; size: number }> {
  const loc = parseS3Url(url);
  let client: S3Client;
  try {
    client = await s3Client(options.env ?? process.env);
  } catch (err) {
    if (!(err instanceof SlipwayError)) throw err;
    throw new SlipwayError(
      'DOWNLOAD_FAILED',
      `GET ${url}: ${err.message} (bucket '${loc.bucket}', key '${loc.key}')`,
      {
        where: url,
        cause: err,
      },
    );
  }
  const sdk = await loadSdk();
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  return withRetries(
    url,
    `GET ${url} (bucket '${loc.bucket}', key '${loc.key}')`,
    () => attempt(client, sdk, url, loc, dest, expectedSha256, options.signal),
    options,
  );
}
