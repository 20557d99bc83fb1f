/**
 * What every download shares, whatever the protocol: retries with backoff
 * for transient failures, and a body streamed into an atomic file while it
 * is hashed, kept only when the sha256 matches the pin.
 */
import { createHash } from 'node:crypto';
import { openAtomic } from '../core/atomic-file.js';
import { SlipwayError } from '../core/errors.js';

/** A failure worth another attempt (network error, 408/429/5xx, throttling, short body). */
export class Retryable extends Error {}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new SlipwayError('INTERRUPTED', 'download cancelled'));
      return;
    }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new SlipwayError('INTERRUPTED', 'download cancelled'));
      },
      { once: true },
    );
  });
}

export interface RetryOptions {
  /** Attempts after the first, default 4. */
  retries?: number;
  /** First backoff delay; doubles each attempt. Default 250 ms. */
  backoffMs?: number;
  signal?: AbortSignal;
  onRetry?: (attempt: number, reason: string) => void;
}

/** Runs `attempt` until it succeeds or fails for good; `label` names the transfer in the final error. */
export async function withRetries<T>(
  url: string,
  label: string,
  attempt: () => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const retries = options.retries ?? 4;
  let delay = options.backoffMs ?? 250;
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof Retryable)) throw err;
      if (i >= retries) {
        throw new SlipwayError(
          'DOWNLOAD_FAILED',
          `${label}: ${err.message} (gave up after ${i + 1} attempts)`,
          {
            where: url,
          },
        );
      }
      options.onRetry?.(i + 1, err.message);
      await sleep(delay, options.signal);
      delay *= 2;
    }
  }
}

/**
 * Streams `body` into `dest` atomically while hashing it. A broken stream or
 * a short body is Retryable; a sha256 other than `expected` is
 * CHECKSUM_MISMATCH. Either way nothing is left at `dest`.
 */
export async function saveVerified(
  body: AsyncIterable<Uint8Array>,
  dest: string,
  url: string,
  expected: string | undefined,
  options: { signal?: AbortSignal; expectedLength?: number; onBroken?: () => void } = {},
): Promise<{ sha256: string; size: number }> {
  const out = await openAtomic(dest);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of body) {
      hash.update(chunk);
      size += chunk.length;
      await out.write(chunk);
    }
    if (options.expectedLength !== undefined && size !== options.expectedLength) {
      throw new Error(`got ${size} of ${options.expectedLength} bytes`);
    }
  } catch (err) {
    await out.abort();
    options.onBroken?.();
    if (options.signal?.aborted === true)
      throw new SlipwayError('INTERRUPTED', 'download cancelled', { cause: err });
    throw new Retryable(`connection broke after ${size} bytes: ${(err as Error).message}`);
  }
  const sha256 = hash.digest('hex');
  if (expected !== undefined && sha256 !== expected.toLowerCase()) {
    await out.abort();
    throw new SlipwayError('CHECKSUM_MISMATCH', `${url}: sha256 is ${sha256}, expected ${expected}`, {
      where: url,
    });
  }
  await out.commit();
  return { sha256, size };
}
