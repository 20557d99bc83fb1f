/**
 * The worker_threads side of the parallel gzip compressor (pgzip.ts). It
 * deflates one block at a time and returns the raw deflate bytes with the
 * block's CRC-32. compressBlock is also used in-thread by pgzip.ts, so both
 * paths produce the same bytes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as zlib from 'node:zlib';

/** Set in workerData so that importing this module elsewhere (main thread, other workers) does nothing. */
export const WORKER_MARK = 'slipway-pgzip-worker';

/**
 * One block: `buf` holds the preset dictionary (dictLen bytes, maybe 0)
 * followed by the block itself (len bytes); it may be longer than that.
 */
export interface BlockRequest {
  id: number;
  level: number;
  buf: ArrayBuffer;
  dictLen: number;
  len: number;
  last: boolean;
  /** Which check value to return for the block: CRC-32 (gzip, the default) or Adler-32 (zlib, pzlib.ts). */
  check?: 'crc32' | 'adler32';
}

export type BlockReply =
  // `buf` is the request's buffer handed back for reuse (saves an allocation and its page faults per block).
  | { id: number; crc: number; len: number; out: ArrayBuffer; outLen: number; buf: ArrayBuffer }
  | { id: number; error: string; stack: string | undefined };

/**
 * Raw deflate of `data` primed with `dict`. Z_SYNC_FLUSH ends a non-final
 * block on a byte boundary without a final-block bit, so blocks concatenate
 * into one deflate stream; the last block ends with Z_FINISH. The output
 * depends only on (level, dict, data, last) and the zlib built into Node,
 * which is what makes the whole stream independent of worker count and write
 * chunking (a Node release with a different zlib may produce other bytes).
 */
export function compressBlock(
  level: number,
  dict: Uint8Array | undefined,
  data: Uint8Array,
  last: boolean,
): Buffer {
  return zlib.deflateRawSync(data, {
    level,
    ...(dict !== undefined && dict.length > 0 ? { dictionary: dict } : {}),
    finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    // memLevel 9 (zlib's default is 8) measured 6-9% less CPU at level 1 for
    // ~0.1% more output. Changing it changes the output bytes.
    memLevel: 9,
    // One output buffer above deflateBound: no 16 KiB chunks to concat, and
    // zlib never runs out of room mid-flush (a resumed Z_SYNC_FLUSH can add an
    // empty stored block, making the bytes depend on buffer sizes).
    chunkSize: Math.max(1024, data.length + (data.length >> 8) + 64),
  });
}

const ADLER_BASE = 65521;
/**
 * Bytes summed before reducing: zlib's NMAX (5552) keeps b below 2^32; 3800
 * keeps it below 2^31 so V8 stays on small-integer arithmetic.
 */
const ADLER_NMAX = 3800;

/**
 * Adler-32 (RFC 1950) of `data`, continuing from `adler` (1 for a fresh
 * stream). Node's zlib binding exposes crc32 but no adler32, so it is written
 * here by hand; sums are reduced modulo 65521 every NMAX bytes as in zlib.
 */
export function adler32(data: Uint8Array, adler = 1): number {
  let a = adler & 0xffff;
  let b = (adler >>> 16) & 0xffff;
  const n = data.length;
  let i = 0;
  while (i < n) {
    const end = Math.min(n, i + ADLER_NMAX);
    for (; i < end; i++) {
      a += data[i] as number;
      b += a;
    }
    a %= ADLER_BASE;
    b %= ADLER_BASE;
  }
  return ((b << 16) | a) >>> 0;
}

function handle(req: BlockRequest): { reply: BlockReply; transfer: ArrayBuffer[] } {
  const data = new Uint8Array(req.buf, req.dictLen, req.len);
  const dict = req.dictLen > 0 ? new Uint8Array(req.buf, 0, req.dictLen) : undefined;
  const crc = req.check === 'adler32' ? adler32(data) : zlib.crc32(data);
  const out = compressBlock(req.level, dict, data, req.last);
  // Hand over zlib's own output buffer when it is not a slice of Node's
  // shared Buffer pool (which must never be transferred); copy otherwise.
  const src = out.buffer;
  let ab: ArrayBuffer;
  if (src instanceof ArrayBuffer && out.byteOffset === 0 && src.byteLength > Buffer.poolSize) {
    ab = src;
  } else {
    ab = new ArrayBuffer(out.length);
    new Uint8Array(ab).set(out);
  }
  return {
    reply: { id: req.id, crc, len: data.length, out: ab, outLen: out.length, buf: req.buf },
    transfer: [ab, req.buf],
  };
}

const port = parentPort;
if (port !== null && (workerData as unknown) === WORKER_MARK) {
  let failNext = false;
  port.on('message', (req: BlockRequest | 'fail-next') => {
    // A test hook: the next block fails as a broken worker's would.
    if (req === 'fail-next') {
      failNext = true;
      return;
    }
    let result: { reply: BlockReply; transfer: ArrayBuffer[] };
    try {
      if (failNext) {
        failNext = false;
        throw new Error('failing on request (test hook)');
      }
      result = handle(req);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      result = { reply: { id: req.id, error: e.message, stack: e.stack }, transfer: [] };
    }
    port.postMessage(result.reply, result.transfer);
  });
}
