/**
 * The Oxide phase-2 ramdisk boot image header (specs/boot-image.md): 4096
 * bytes, little-endian, the payload right after it. Pure: bytes in, values
 * out, every rejection a SlipwayError.
 */
import { SlipwayError } from '../core/errors.js';

export const BOOTIMAGE_HEADER_SIZE = 4096;
export const BOOTIMAGE_MAGIC = 0x1deb0075;
export const BOOTIMAGE_VERSION = 2;
export const BOOTIMAGE_FLAG_COMPRESSED = 1n;
export const BOOTIMAGE_DEFAULT_DATASET = 'rpool/ROOT/ramdisk';
/** Name fields are 128 bytes and always end in a NUL, so names hold at most 127. */
export const BOOTIMAGE_NAME_FIELD = 128;

const OFF = {
  magic: 0x000,
  version: 0x004,
  flags: 0x008,
  dataSize: 0x010,
  imageSize: 0x018,
  targetSize: 0x020,
  sha256: 0x028,
  dataset: 0x048,
  name: 0x0c8,
  tail: 0x148,
} as const;

const U64_MAX = (1n << 64n) - 1n;

/** Sizes are bigint: a header may claim anything up to 2^64 − 1, and we must report it faithfully. */
export interface BootImageHeader {
  /** All 64 bits as stored; only bit 0 means anything. */
  flags: bigint;
  dataSize: bigint;
  imageSize: bigint;
  targetSize: bigint;
  /** 32 bytes. */
  sha256: Uint8Array;
  dataset: string;
  name: string;
}

export function isCompressed(h: BootImageHeader): boolean {
  return (h.flags & BOOTIMAGE_FLAG_COMPRESSED) !== 0n;
}

function invalid(message: string, where?: string): SlipwayError {
  return new SlipwayError('BOOTIMAGE_INVALID', message, where === undefined ? {} : { where });
}

/** Checks a name fits its field; the encoder and mkimage refuse before writing anything. */
export function checkNameField(value: string, what: 'dataset name' | 'image name'): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.includes(0)) {
    throw new SlipwayError('BOOTIMAGE_NAME_INVALID', `${what} must not contain a NUL byte`);
  }
  if (bytes.length >= BOOTIMAGE_NAME_FIELD) {
    throw new SlipwayError(
      'BOOTIMAGE_NAME_TOO_LONG',
      `${what} is ${bytes.length} bytes of UTF-8; it must be shorter than ${BOOTIMAGE_NAME_FIELD} bytes`,
    );
  }
  return bytes;
}

function checkU64(v: bigint, what: string): void {
  if (v < 0n || v > U64_MAX) throw new SlipwayError('INTERNAL', `${what} does not fit in a u64: ${v}`);
}

/** The 4096 header bytes for `h`; throws on names that do not fit or values out of range. */
export function encodeBootImageHeader(h: BootImageHeader): Buffer {
  const dataset = checkNameField(h.dataset, 'dataset name');
  const name = checkNameField(h.name, 'image name');
  if (h.sha256.length !== 32) {
    throw new SlipwayError('INTERNAL', `sha256 must be 32 bytes, got ${h.sha256.length}`);
  }
  checkU64(h.flags, 'flags');
  checkU64(h.dataSize, 'data_size');
  checkU64(h.imageSize, 'image_size');
  checkU64(h.targetSize, 'target_size');
  // alloc, not allocUnsafe: every byte not written below must be zero (padding and tail).
  const b = Buffer.alloc(BOOTIMAGE_HEADER_SIZE);
  b.writeUInt32LE(BOOTIMAGE_MAGIC, OFF.magic);
  b.writeUInt32LE(BOOTIMAGE_VERSION, OFF.version);
  b.writeBigUInt64LE(h.flags, OFF.flags);
  b.writeBigUInt64LE(h.dataSize, OFF.dataSize);
  b.writeBigUInt64LE(h.imageSize, OFF.imageSize);
  b.writeBigUInt64LE(h.targetSize, OFF.targetSize);
  b.set(h.sha256, OFF.sha256);
  b.set(dataset, OFF.dataset);
  b.set(name, OFF.name);
  return b;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function decodeName(b: Buffer, off: number, what: string, where: string | undefined): string {
  const field = b.subarray(off, off + BOOTIMAGE_NAME_FIELD);
  const nul = field.indexOf(0);
  if (nul < 0) throw invalid(`${what} is not NUL-terminated within ${BOOTIMAGE_NAME_FIELD} bytes`, where);
  try {
    return UTF8.decode(field.subarray(0, nul));
  } catch (err) {
    throw new SlipwayError('BOOTIMAGE_INVALID', `${what} is not valid UTF-8`, {
      cause: err,
      ...(where === undefined ? {} : { where }),
    });
  }
}

/**
 * Reads and checks a header: length, magic, version, image_size ≤
 * target_size, names NUL-terminated UTF-8. `bytes` may run on into the
 * payload; only the first 4096 are read. The zero tail is not checked
 * (the spec does not make readers reject it).
 */
export function decodeBootImageHeader(bytes: Uint8Array, where?: string): BootImageHeader {
  if (bytes.length < BOOTIMAGE_HEADER_SIZE) {
    throw invalid(
      `header is ${bytes.length} bytes, but a boot image header is ${BOOTIMAGE_HEADER_SIZE}`,
      where,
    );
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, BOOTIMAGE_HEADER_SIZE);
  const magic = b.readUInt32LE(OFF.magic);
  if (magic !== BOOTIMAGE_MAGIC) {
    throw invalid(
      `bad magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${BOOTIMAGE_MAGIC.toString(16)}`,
      where,
    );
  }
  const version = b.readUInt32LE(OFF.version);
  if (version !== BOOTIMAGE_VERSION) {
    throw invalid(`unsupported version ${version}, expected ${BOOTIMAGE_VERSION}`, where);
  }
  const h: BootImageHeader = {
    flags: b.readBigUInt64LE(OFF.flags),
    dataSize: b.readBigUInt64LE(OFF.dataSize),
    imageSize: b.readBigUInt64LE(OFF.imageSize),
    targetSize: b.readBigUInt64LE(OFF.targetSize),
    sha256: Uint8Array.prototype.slice.call(b, OFF.sha256, OFF.sha256 + 32),
    dataset: decodeName(b, OFF.dataset, 'dataset name', where),
    name: decodeName(b, OFF.name, 'image name', where),
  };
  if (h.imageSize > h.targetSize) {
    throw invalid(`image size ${h.imageSize} is larger than target size ${h.targetSize}`, where);
  }
  return h;
}

/** lookimage's size checks, before it reads any payload. */
export function checkPayloadSizes(h: BootImageHeader, where?: string): void {
  if (h.dataSize === 0n) throw invalid('data size is 0', where);
  if (h.imageSize < h.dataSize) {
    throw invalid(`image size ${h.imageSize} is smaller than data size ${h.dataSize}`, where);
  }
}

/** image/data to 2 decimals, computed exactly enough for any u64 sizes. */
export function compressionRatio(h: BootImageHeader): string {
  return (Number(h.imageSize) / Number(h.dataSize)).toFixed(2);
}

/**
 * The lines `lookimage` prints, in the spec's order. Unknown flag bits are
 * ignored, as readers must: only bit 0 is shown. `ratio` adds the ratio
 * line (the reference prints it for compressed images only).
 */
export function formatLookimage(h: BootImageHeader, opts: { ratio?: boolean } = {}): string[] {
  const compressed = isCompressed(h);
  const lines = [
    `image name = ${h.name}`,
    compressed ? 'flags = 0x1 (COMPRESSED)' : 'flags = 0x0 ((empty))',
    `data size = ${h.dataSize}`,
    `image size = ${h.imageSize}`,
    `target size = ${h.targetSize}`,
    `image sum = ${Buffer.from(h.sha256).toString('hex')}`,
    `dataset name = ${h.dataset}`,
  ];
  if ((opts.ratio ?? compressed) && compressed && h.dataSize > 0n) {
    lines.push(`ratio = ${compressionRatio(h)}x`);
  }
  return lines;
}

/** For --json: sizes as numbers when exact, else as decimal strings. */
export function headerJson(h: BootImageHeader): Record<string, unknown> {
  const n = (v: bigint): number | string => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString());
  return {
    name: h.name,
    flags: n(h.flags),
    compressed: isCompressed(h),
    dataSize: n(h.dataSize),
    imageSize: n(h.imageSize),
    targetSize: n(h.targetSize),
    sha256: Buffer.from(h.sha256).toString('hex'),
    dataset: h.dataset,
  };
}
