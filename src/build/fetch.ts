/**
 * Downloads pinned by checksum: streamed to a temp file while hashed,
 * retried with backoff on network errors, 408, 429 and 5xx, and kept only
 * when the sha256 matches. A content-addressed cache makes re-runs free and
 * `--offline` possible.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { Retryable, saveVerified, withRetries } from './transfer.js';

export interface FetchOptions {
  /** Attempts after the first, default 4. */
  retries?: number;
  /** First backoff delay; doubles each attempt. Default 250 ms. */
  backoffMs?: number;
  signal?: AbortSignal;
  /** Called before each retry (for logs). */
  onRetry?: (attempt: number, reason: string) => void;
}

export interface Fetched {
  path: string;
  sha256: string;
  size: number;
  /** True when nothing was downloaded. */
  cached: boolean;
}

const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);

async function attempt(
  url: string,
  dest: string,
  expected: string | undefined,
  signal?: AbortSignal,
): Promise<{ sha256: string; size: number }> {
  let res: Response;
  try {
    res = await fetch(url, signal === undefined ? {} : { signal });
  } catch (err) {
    if (signal?.aborted === true) throw new SlipwayError('INTERRUPTED', 'download cancelled', { cause: err });
    throw new Retryable((err as Error).message);
  }
  if (!res.ok || res.body === null) {
    await res.body?.cancel();
    if (RETRYABLE.has(res.status)) throw new Retryable(`HTTP ${res.status}`);
    throw new SlipwayError('DOWNLOAD_FAILED', `GET ${url}: HTTP ${res.status} ${res.statusText}`, {
      where: url,
    });
  }
  return saveVerified(res.body, dest, url, expected, signal === undefined ? {} : { signal });
}

/**
 * Downloads `url` to `dest` (atomically), verifying `sha256` when given.
 * `s3://bucket/key` URLs go through the S3 API (see s3.ts; loaded only then).
 */
export async function download(
  url: string,
  dest: string,
  sha256: string | undefined,
  options: FetchOptions = {},
): Promise<{ sha256: string; size: number }> {
  if (url.startsWith('s3://')) {
    const { s3Get } = await import('./s3.js');
    return s3Get(url, dest, sha256, options);
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  return withRetries(url, `GET ${url}`, () => attempt(url, dest, sha256, options.signal), options);
}

export interface CacheFetchOptions extends FetchOptions {
  cacheDir: string;
  offline?: boolean;
}

/**
 * A file by URL into the content-addressed cache (`<cache>/sha256/<hex>`),
 * downloaded only when missing. Without a pinned sha256 (S3 blobs in
 * Omicron's manifests carry none) the file is cached by URL instead.
 */
export async function fetchCached(
  url: string,
  sha256: string | undefined,
  options: CacheFetchOptions,
): Promise<Fetched> {
  const target =
    sha256 !== undefined
      ? path.join(options.cacheDir, 'sha256', sha256.toLowerCase())
      : path.join(options.cacheDir, 'url', createHash('sha256').update(url).digest('hex'));
  if (fs.existsSync(target)) {
    const size = fs.statSync(target).size;
    return { path: target, sha256: sha256 ?? (await hashFile(target)), size, cached: true };
  }
  if (options.offline === true) {
    throw new SlipwayError(
      'OFFLINE_MISSING',
      `--offline: ${url}${sha256 !== undefined ? ` (sha256 ${sha256})` : ''} is not in the cache ${options.cacheDir}; run once without --offline`,
      {
        where: url,
      },
    );
  }
  const r = await download(url, target, sha256, options);
  return { path: target, sha256: r.sha256, size: r.size, cached: false };
}

export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}
