/**
 * mkimage and lookimage: build and check phase-2 ramdisk boot images
 * (specs/boot-image.md). Both stream, so multi-GiB images take constant
 * memory; mkimage hashes (and compresses) in one pass over the input.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { createParallelZlib } from '../archive/pzlib.js';
import { openAtomic, type AtomicFile } from '../core/atomic-file.js';
import { SlipwayError, fromSystemError, isSlipwayError } from '../core/errors.js';
import {
  BOOTIMAGE_DEFAULT_DATASET,
  BOOTIMAGE_FLAG_COMPRESSED,
  BOOTIMAGE_HEADER_SIZE,
  checkNameField,
  checkPayloadSizes,
  decodeBootImageHeader,
  encodeBootImageHeader,
  isCompressed,
  type BootImageHeader,
} from '../formats/bootimage.js';

const MiB = 1024 * 1024;
export const DEFAULT_TARGET_MIB = 4096;
const READ_CHUNK = 1 << 20;

export interface MkimageOptions {
  input: string;
  output: string;
  /** Where to write the raw 32-byte sha256 (mkimage -O). */
  checksumOutput?: string;
  /** Ramdisk size in MiB (default 4096). */
  targetMiB?: number;
  name?: string;
  dataset?: string;
  compress?: boolean;
  /** zlib level with compress, 0..9, default 9. */
  level?: number;
  workers?: number;
  signal?: AbortSignal;
}

export interface MkimageResult {
  output: string;
  checksumOutput?: string;
  header: BootImageHeader;
}

/** Hashes and counts bytes going by; fails as soon as the image outgrows the target. */
class ImageTap extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  readonly #limit: number;

  constructor(limit: number) {
    super({ highWaterMark: READ_CHUNK });
    this.#limit = limit;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.#limit) {
      cb(tooLarge(this.size, this.#limit, true));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

class Counter extends Transform {
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    cb(null, chunk);
  }
}

function tooLarge(size: number, target: number, atLeast: boolean): SlipwayError {
  return new SlipwayError(
    'BOOTIMAGE_TOO_LARGE',
    `image size ${atLeast ? 'is at least ' : ''}${size} bytes, larger than the target size ${target} bytes (${target / MiB} MiB); raise -s`,
  );
}

function checkOptions(o: MkimageOptions): { target: number; level: number } {
  const targetMiB = o.targetMiB ?? DEFAULT_TARGET_MIB;
  if (!Number.isSafeInteger(targetMiB) || targetMiB < 1 || targetMiB * MiB > Number.MAX_SAFE_INTEGER) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `target size must be a whole number of MiB ≥ 1, got ${targetMiB}`,
    );
  }
  const level = o.level ?? 9;
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new SlipwayError('INVALID_ARGUMENT', `compression level must be 0..9, got ${level}`);
  }
  checkNameField(o.name ?? '', 'image name');
  checkNameField(o.dataset ?? BOOTIMAGE_DEFAULT_DATASET, 'dataset name');
  return { target: targetMiB * MiB, level };
}

/**
 * Writes IMAGE atomically: a zero header placeholder, the payload streamed
 * behind it, then the real header (which needs the size and hash of the
 * whole payload) written over the placeholder before the rename. On any
 * error neither IMAGE nor the checksum file appears.
 */
export async function mkimage(o: MkimageOptions): Promise<MkimageResult> {
  const { target, level } = checkOptions(o);
  let st: fs.Stats;
  try {
    st = await fsp.stat(o.input);
  } catch (err) {
    throw fromSystemError(err, 'cannot read raw image', o.input);
  }
  // Cheap early refusal for plain files; devices and pipes are caught while streaming.
  if (st.isFile() && st.size > target) throw tooLarge(st.size, target, false);

  const out = await openAtomic(o.output);
  let csum: AtomicFile | undefined;
  try {
    if (o.checksumOutput !== undefined) csum = await openAtomic(o.checksumOutput);
    await out.write(Buffer.alloc(BOOTIMAGE_HEADER_SIZE));
    const tap = new ImageTap(target);
    const counter = new Counter();
    const source = fs.createReadStream(o.input, { highWaterMark: READ_CHUNK });
    const sink = out.writable();
    const opts = o.signal === undefined ? {} : { signal: o.signal };
    try {
      if (o.compress === true) {
        const z = createParallelZlib({ level, ...(o.workers !== undefined ? { workers: o.workers } : {}) });
        await pipeline(source, tap, z, counter, sink, opts);
      } else {
        await pipeline(source, tap, counter, sink, opts);
      }
    } catch (err) {
      if (isSlipwayError(err)) throw err;
      throw fromSystemError(err, 'cannot make boot image from', o.input);
    }
    if (tap.size === 0) {
      throw new SlipwayError('INVALID_ARGUMENT', `raw image '${o.input}' is empty`, { where: o.input });
    }
    const sha256 = tap.hash.digest();
    const header: BootImageHeader = {
      flags: o.compress === true ? BOOTIMAGE_FLAG_COMPRESSED : 0n,
      dataSize: BigInt(counter.size),
      imageSize: BigInt(tap.size),
      targetSize: BigInt(target),
      sha256,
      dataset: o.dataset ?? BOOTIMAGE_DEFAULT_DATASET,
      name: o.name ?? '',
    };
    // AtomicFile only appends; a second handle on the temp file patches offset 0
    // (the commit's fsync covers the whole file, whichever handle wrote it).
    const fh = await fsp.open(out.tempPath, 'r+');
    try {
      await fh.write(encodeBootImageHeader(header), 0, BOOTIMAGE_HEADER_SIZE, 0);
    } finally {
      await fh.close();
    }
    if (csum !== undefined) await csum.write(sha256);
    await out.commit();
    if (csum !== undefined) await csum.commit();
    return {
      output: o.output,
      ...(o.checksumOutput !== undefined ? { checksumOutput: o.checksumOutput } : {}),
      header,
    };
  } catch (err) {
    await out.abort();
    await csum?.abort();
    throw err;
  }
}

export interface LookimageResult {
  file: string;
  header: BootImageHeader;
  /** False with skipChecksum: the payload was not read. */
  verified: boolean;
}

async function readHeader(file: string): Promise<{ header: BootImageHeader; fileSize: number }> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    throw fromSystemError(err, 'cannot open boot image', file);
  }
  try {
    const st = await fh.stat();
    const buf = Buffer.alloc(BOOTIMAGE_HEADER_SIZE);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return { header: decodeBootImageHeader(buf.subarray(0, got), file), fileSize: st.size };
  } catch (err) {
    throw fromSystemError(err, 'cannot read boot image', file);
  } finally {
    await fh.close();
  }
}

function shortRead(n: number, m: bigint, file: string): SlipwayError {
  return new SlipwayError(
    'BOOTIMAGE_TRUNCATED',
    `read ${n} bytes of image, but header says there should be ${m}`,
    {
      where: file,
    },
  );
}

/**
 * Reads and checks a boot image: header, the size rules, and unless
 * skipChecksum the payload (inflated when compressed) against image_size
 * and the sha256.
 */
export async function lookimage(
  file: string,
  opts: { skipChecksum?: boolean; signal?: AbortSignal } = {},
): Promise<LookimageResult> {
  const { header, fileSize } = await readHeader(file);
  checkPayloadSizes(header, file);
  if (opts.skipChecksum === true) return { file, header, verified: false };

  const available = Math.max(0, fileSize - BOOTIMAGE_HEADER_SIZE);
  // dataSize may be any u64; only what the file holds can be read.
  const toRead = header.dataSize < BigInt(available) ? Number(header.dataSize) : available;
  const hash = createHash('sha256');
  let n = 0;
  const limit = header.imageSize;
  const sink = new Writable({
    highWaterMark: READ_CHUNK,
    write(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      // Stop an inflate bomb (or a lying header) at image_size, not at end of input.
      if (BigInt(n) > limit) {
        cb(
          new SlipwayError(
            'BOOTIMAGE_CORRUPT',
            `payload holds more than the ${limit} bytes the header says`,
            { where: file },
          ),
        );
        return;
      }
      hash.update(chunk);
      cb();
    },
  });
  const pOpts = opts.signal === undefined ? {} : { signal: opts.signal };
  try {
    if (toRead > 0) {
      const source = fs.createReadStream(file, {
        start: BOOTIMAGE_HEADER_SIZE,
        end: BOOTIMAGE_HEADER_SIZE + toRead - 1,
        highWaterMark: READ_CHUNK,
      });
      if (isCompressed(header)) await pipeline(source, zlib.createInflate(), sink, pOpts);
      else await pipeline(source, sink, pOpts);
    }
  } catch (err) {
    if (isSlipwayError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'Z_BUF_ERROR') throw shortRead(n, header.imageSize, file);
    if (code.startsWith('Z_') || code === 'ERR_ZLIB_INITIALIZATION_FAILED') {
      throw new SlipwayError(
        'BOOTIMAGE_CORRUPT',
        `compressed payload is not valid zlib: ${(err as Error).message}`,
        {
          cause: err,
          where: file,
        },
      );
    }
    throw fromSystemError(err, 'cannot read boot image', file);
  }
  if (BigInt(n) !== header.imageSize) throw shortRead(n, header.imageSize, file);
  const actual = hash.digest('hex');
  const expected = Buffer.from(header.sha256).toString('hex');
  if (actual !== expected) {
    throw new SlipwayError(
      'BOOTIMAGE_CHECKSUM_MISMATCH',
      `checksum mismatch: header says ${expected}, image is ${actual}`,
      { where: file },
    );
  }
  return { file, header, verified: true };
}
