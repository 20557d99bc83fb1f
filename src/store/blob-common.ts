/**
 * What both blob stores share: the key rule, the errors a put can end with,
 * and the meter every body streams through (sha1 + md5 + byte count, with the
 * size cap and the expected length enforced while the bytes pass).
 */
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { MultiDigest } from '../core/digest.js';
import { SlipwayError } from '../core/errors.js';
import type { BlobPutResult } from './types.js';

/** `[a-z0-9/._-]`, '/'-separated non-empty segments that do not start with '.' (no `..`, no hidden or temp names). */
const KEY_RE = /^[a-z0-9_-][a-z0-9._-]*(?:\/[a-z0-9_-][a-z0-9._-]*)*$/;
const MAX_KEY_LENGTH = 512;

/** Throws INVALID_ARGUMENT unless `key` is a safe blob key. */
export function checkBlobKey(key: string): void {
  if (key.length > MAX_KEY_LENGTH || !KEY_RE.test(key)) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `invalid blob key '${key.slice(0, 100)}': keys are '/'-separated segments of [a-z0-9._-] that do not start with '.', at most ${MAX_KEY_LENGTH} characters`,
      { where: key.slice(0, 100) },
    );
  }
}

export type BlobPutFailure = 'too-large' | 'length-mismatch';

/**
 * A put refused because of the body's size: longer than `maxBytes`
 * ('too-large'), or not `expectedLength` bytes ('length-mismatch'). Both are
 * the client's fault (INVALID_ARGUMENT); `reason` tells them apart (IMGAPI
 * answers 400 Upload for the first and 400 Download for the second).
 */
export class BlobPutError extends SlipwayError {
  readonly reason: BlobPutFailure;

  constructor(reason: BlobPutFailure, message: string, key: string) {
    super('INVALID_ARGUMENT', message, { where: key });
    this.name = 'BlobPutError';
    this.reason = reason;
  }
}

export function isBlobPutError(err: unknown, reason?: BlobPutFailure): err is BlobPutError {
  return err instanceof BlobPutError && (reason === undefined || err.reason === reason);
}

/** Whether `signal` has been aborted (a call, so that the compiler does not narrow across awaits). */
export function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/** The error an aborted put rejects with: the signal's reason when it is an Error. */
export function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  return Object.assign(new Error('the upload was aborted'), { name: 'AbortError' });
}

export interface MeterOptions {
  key: string;
  maxBytes: number;
  expectedLength?: number;
}

/**
 * Passes bytes through unchanged while hashing and counting them; fails (as
 * a stream error) as soon as the count passes `maxBytes` or `expectedLength`,
 * and at the end when it is short of `expectedLength`.
 */
export class BlobMeter extends Transform {
  readonly #digest = new MultiDigest(['sha1', 'md5']);
  readonly #options: MeterOptions;
  #size = 0;
  #result: BlobPutResult | undefined;

  constructor(options: MeterOptions) {
    super({ highWaterMark: 1 << 20 });
    this.#options = options;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#size += chunk.length;
    const { maxBytes, expectedLength, key } = this.#options;
    if (this.#size > maxBytes) {
      cb(new BlobPutError('too-large', `the body is larger than the limit of ${maxBytes} bytes`, key));
      return;
    }
    if (expectedLength !== undefined && this.#size > expectedLength) {
      cb(
        new BlobPutError(
          'length-mismatch',
          `the body is longer than the ${expectedLength} bytes announced`,
          key,
        ),
      );
      return;
    }
    this.#digest.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const { expectedLength, key } = this.#options;
    if (expectedLength !== undefined && this.#size !== expectedLength) {
      cb(
        new BlobPutError(
          'length-mismatch',
          `the body has ${this.#size} bytes, ${expectedLength} were announced`,
          key,
        ),
      );
      return;
    }
    const { sha1 = '', md5 = '' } = this.#digest.digest();
    this.#result = { size: this.#size, sha1, md5: Buffer.from(md5, 'hex').toString('base64') };
    cb();
  }

  /** Size and digests, once the whole body has passed (after the stream ended without error). */
  result(): BlobPutResult {
    if (this.#result === undefined)
      throw new SlipwayError('INTERNAL', 'BlobMeter.result() before the end of the body');
    return this.#result;
  }
}

/**
 * `body` piped through a new meter, which is returned: its readable side
 * carries the checked bytes; an error of the source, of the meter, or an
 * abort of `signal` destroys it with that error.
 */
export function meterBody(
  body: AsyncIterable<Uint8Array>,
  options: MeterOptions & { signal?: AbortSignal | undefined },
): BlobMeter {
  const meter = new BlobMeter(options);
  const { signal } = options;
  if (signal?.aborted === true) {
    meter.destroy(abortError(signal));
    return meter;
  }
  const onAbort = (): void => {
    if (signal !== undefined) meter.destroy(abortError(signal));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  pipeline(body, meter, () => {
    // Errors reach the consumer through the meter itself; here we only drop the listener.
    signal?.removeEventListener('abort', onAbort);
  });
  return meter;
}
