/**
 * Parallel ZLIB (RFC 1950), the way `pigz -z` does it: the same blocks as
 * pgzip.ts (each raw-deflated on a worker with the previous 32 KiB as
 * dictionary, sync-flushed, concatenated), wrapped in a 2-byte zlib header
 * and a big-endian Adler-32 trailer. Workers return each block's Adler-32;
 * the whole stream's is combined here with adler32Combine.
 *
 * Node's zlib binding exposes neither adler32 nor adler32_combine, so both
 * are written by hand (adler32 in pgzip-worker.ts, after zlib's adler32.c).
 * Output depends only on (level, input), not on worker count or chunking.
 */
import type { Transform } from 'node:stream';
import { SlipwayError } from '../core/errors.js';
import { collectTransform, createParallelDeflate, type DeflateContainer, type GzipOptions } from './pgzip.js';
import { adler32 } from './pgzip-worker.js';

export { adler32 };

const BASE = 65521;

/**
 * Adler-32 of A‖B from adler(A), adler(B) and len(B), after zlib's
 * adler32_combine_: A's sum a carries into b once per byte of B, so
 * b(A‖B) = b(A) + b(B) + len(B)·(a(A) − 1) (mod 65521), a(A‖B) = a(A) + a(B) − 1.
 * lenB may be any non-negative safe integer (only lenB mod 65521 matters).
 */
export function adler32Combine(adlerA: number, adlerB: number, lenB: number): number {
  if (!Number.isSafeInteger(lenB) || lenB < 0) {
    throw new SlipwayError('INTERNAL', `adler32Combine: bad length ${lenB}`);
  }
  const rem = lenB % BASE;
  let sum1 = adlerA & 0xffff;
  // rem·sum1 < 2^32: exact in a double.
  let sum2 = (rem * sum1) % BASE;
  sum1 += (adlerB & 0xffff) + BASE - 1;
  sum2 += ((adlerA >>> 16) & 0xffff) + ((adlerB >>> 16) & 0xffff) + BASE - rem;
  if (sum1 >= BASE) sum1 -= BASE;
  if (sum1 >= BASE) sum1 -= BASE;
  if (sum2 >= BASE * 2) sum2 -= BASE * 2;
  if (sum2 >= BASE) sum2 -= BASE;
  return ((sum2 << 16) | sum1) >>> 0;
}

/**
 * The 2-byte zlib header: CMF 0x78 (deflate, 32 KiB window), then FLG with
 * FLEVEL as zlib's deflate sets it (0 for levels 0–1, 1 for 2–5, 2 for 6,
 * 3 for 7–9), no dictionary, and FCHECK making CMF·256+FLG a multiple of 31.
 * Level 9 gives `78 DA`, as zlib and pigz -z write.
 */
export function zlibHeader(level: number): Buffer {
  const flevel = level < 2 ? 0 : level < 6 ? 1 : level === 6 ? 2 : 3;
  const cmf = 0x78;
  let flg = flevel << 6;
  flg += 31 - ((cmf * 256 + flg) % 31);
  return Buffer.from([cmf, flg & 0xff]);
}

function zlibTrailer(adler: number): Buffer {
  const t = Buffer.alloc(4);
  t.writeUInt32BE(adler >>> 0, 0);
  return t;
}

const ZLIB_CONTAINER: DeflateContainer = {
  header: zlibHeader,
  trailer: (check) => zlibTrailer(check),
  check: 'adler32',
  initial: 1,
  checkOf: (data) => adler32(data),
  combine: adler32Combine,
};

export interface ZlibOptions extends GzipOptions {
  /** 0..9, default 9 (the boot-image reference tool's level). */
  level?: number;
}

/** A Transform: raw bytes in, one zlib stream out; bounded memory as createParallelGzip. */
export function createParallelZlib(options: ZlibOptions = {}): Transform {
  return createParallelDeflate({ ...options, level: options.level ?? 9 }, ZLIB_CONTAINER);
}

/** For small buffers and tests: the same bytes the stream produces. */
export async function zlibBuffer(data: Uint8Array, options: ZlibOptions = {}): Promise<Buffer> {
  return collectTransform(createParallelZlib(options), data);
}
