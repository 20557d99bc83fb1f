/**
 * A streaming writer of STORED zips, by hand rather than with a library: a
 * repository's targets are named `targets/<sha256>.<name>`, and that sha256
 * is only known after the data has streamed. No streaming zip library can
 * name an entry after its data, so we reserve the name's bytes in the local
 * header and patch the header in place afterwards (name, CRC-32 and sizes;
 * no data descriptor). One read of each artifact computes sha256 and CRC-32
 * and copies it. Memory stays flat: 1 MiB reads, and small writes coalesced
 * into one 1 MiB buffer.
 *
 * Layout (APPNOTE 6.3.x): local header + name (+ zip64 extra with both sizes
 * when an entry's size overflows 32 bits) + data, per entry; then the central
 * directory; then zip64 end record + locator when needed; then the end record.
 */
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as zlib from 'node:zlib';
import type { AtomicFile } from '../core/atomic-file.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { checkEntryPath } from './zip-read.js';

export interface ZipEntryInfo {
  name: string;
  size: number;
  crc32: number;
  sha256: string;
  /** Offset of the entry's local header in the zip. */
  offset: number;
}

/** What an entry holds. A stream's chunks are used up before the next is pulled, so a producer may reuse them. */
export type ZipSource =
  { path: string } | { data: Uint8Array } | { stream: AsyncIterable<Uint8Array>; size: number };

export interface ZipWriterOptions {
  /** DOS time of every entry (UTC fields); default 1980-01-01 00:00 so output is reproducible. */
  mtime?: Date;
  /** Tests only: pretend 32-bit fields overflow above this. */
  zip64Threshold?: number;
}

const CHUNK = 1 << 20;
const MAX32 = 0xfffffffe; // 0xFFFFFFFF itself means "see the zip64 field"
const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const FLAG_UTF8 = 0x0800;
const UNIX = 3;
const MODE_FILE = 0o100644;
const PLACEHOLDER = '0'.repeat(64);
/** Marks an entry in progress; made once, as an Error's stack trace is costly for 65 536 entries. */
const INTERRUPTED = new Error('a zip entry was interrupted');

/** DOS date and time from a Date's UTC fields, clamped to DOS's 1980..2107. */
function dosDateTime(d: Date | undefined): { date: number; time: number } {
  if (d === undefined || d.getUTCFullYear() < 1980) return { date: (1 << 5) | 1, time: 0 };
  if (d.getUTCFullYear() > 2107)
    return { date: (127 << 9) | (12 << 5) | 31, time: (23 << 11) | (59 << 5) | 29 };
  return {
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
  };
}

interface Written {
  info: ZipEntryInfo;
  nameBytes: Buffer;
}

export class ZipWriter {
  readonly #file: AtomicFile;
  readonly #date: number;
  readonly #time: number;
  readonly #limit: number;
  /** Pending bytes; #buf[0] belongs at file offset #bufStart. */
  readonly #buf = Buffer.allocUnsafe(CHUNK);
  #bufLen = 0;
  #bufStart = 0;
  readonly #written: Written[] = [];
  readonly #names = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();
  /** Set once bytes of a failed entry are in the file: the zip can't be finished. */
  #broken: unknown = undefined;
  #finished = false;

  private constructor(file: AtomicFile, options: ZipWriterOptions) {
    this.#file = file;
    const { date, time } = dosDateTime(options.mtime);
    this.#date = date;
    this.#time = time;
    this.#limit = options.zip64Threshold ?? MAX32;
  }

  /** A writer into `file`, which must be empty; the caller commits or aborts it after finish(). */
  static create(file: AtomicFile, options: ZipWriterOptions = {}): Promise<ZipWriter> {
    if (options.mtime !== undefined && Number.isNaN(options.mtime.getTime())) {
      return Promise.reject(new SlipwayError('INVALID_ARGUMENT', 'invalid mtime for zip entries'));
    }
    return Promise.resolve(new ZipWriter(file, options));
  }

  /**
   * Adds one stored entry. `name` may be a function of the data's sha256; its
   * result for 64 zeros must have the same byte length as for the real hash.
   * Calls are serialized: entries go into the zip in call order.
   */
  addEntry(name: string | ((sha256: string) => string), source: ZipSource): Promise<ZipEntryInfo> {
    const run = this.#queue.then(() => this.#add(name, source));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Writes the central directory and end records; returns the zip's size and its entries. */
  finish(): Promise<{ size: number; entries: ZipEntryInfo[] }> {
    const run = this.#queue.then(() => this.#finish());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  get #offset(): number {
    return this.#bufStart + this.#bufLen;
  }

  #checkUsable(): void {
    if (this.#finished) throw new SlipwayError('INTERNAL', 'zip writer already finished');
    if (this.#broken !== undefined) {
      throw new SlipwayError('INTERNAL', 'zip writer failed on an earlier entry', { cause: this.#broken });
    }
  }

  #checkName(name: string): Buffer {
    checkEntryPath(name, this.#file.target);
    if (this.#names.has(name)) {
      throw new SlipwayError('INVALID_ARGUMENT', `duplicate zip entry ${JSON.stringify(name)}`, {
        where: this.#file.target,
      });
    }
    const bytes = Buffer.from(name, 'utf8');
    if (bytes.length > 0xffff) {
      throw new SlipwayError('INVALID_ARGUMENT', `zip entry name is longer than 65535 bytes`, {
        where: this.#file.target,
      });
    }
    return bytes;
  }

  async #flush(): Promise<void> {
    if (this.#bufLen === 0) return;
    const len = this.#bufLen;
    await this.#file.writeAt(this.#buf.subarray(0, len), this.#bufStart);
    this.#bufStart += len;
    this.#bufLen = 0;
  }

  /** Appends at the end: small pieces are coalesced, big ones written straight through. */
  async #append(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    if (this.#bufLen === 0 && bytes.length >= CHUNK / 2) {
      await this.#file.writeAt(bytes, this.#bufStart);
      this.#bufStart += bytes.length;
      return;
    }
    if (bytes.length <= CHUNK - this.#bufLen) {
      this.#buf.set(bytes, this.#bufLen);
      this.#bufLen += bytes.length;
      if (this.#bufLen === CHUNK) await this.#flush();
      return;
    }
    await this.#flush();
    await this.#append(bytes);
  }

  /** Overwrites bytes already appended: in the buffer if still there, else in the file. */
  async #patch(position: number, bytes: Buffer): Promise<void> {
    const inFile = Math.max(0, Math.min(bytes.length, this.#bufStart - position));
    if (inFile > 0) await this.#file.writeAt(bytes.subarray(0, inFile), position);
    if (inFile < bytes.length) bytes.copy(this.#buf, position + inFile - this.#bufStart, inFile);
  }

  #localHeader(nameBytes: Buffer, size: number, crc: number, offset: number): Buffer {
    const zip64 = size > this.#limit;
    const extraLen = zip64 ? 20 : 0;
    const h = Buffer.alloc(30 + nameBytes.length + extraLen);
    h.writeUInt32LE(SIG_LOCAL, 0);
    h.writeUInt16LE(zip64 || offset > this.#limit ? 45 : 20, 4);
    h.writeUInt16LE(FLAG_UTF8, 6);
    h.writeUInt16LE(0, 8); // stored
    h.writeUInt16LE(this.#time, 10);
    h.writeUInt16LE(this.#date, 12);
    h.writeUInt32LE(crc >>> 0, 14);
    h.writeUInt32LE(zip64 ? 0xffffffff : size, 18);
    h.writeUInt32LE(zip64 ? 0xffffffff : size, 22);
    h.writeUInt16LE(nameBytes.length, 26);
    h.writeUInt16LE(extraLen, 28);
    nameBytes.copy(h, 30);
    if (zip64) {
      // The local zip64 field holds both sizes (APPNOTE 4.5.3).
      const x = 30 + nameBytes.length;
      h.writeUInt16LE(0x0001, x);
      h.writeUInt16LE(16, x + 2);
      h.writeBigUInt64LE(BigInt(size), x + 4);
      h.writeBigUInt64LE(BigInt(size), x + 12);
    }
    return h;
  }

  async #add(nameArg: string | ((sha256: string) => string), source: ZipSource): Promise<ZipEntryInfo> {
    this.#checkUsable();
    const fixed = typeof nameArg === 'string';
    const nameOf = typeof nameArg === 'string' ? () => nameArg : nameArg;
    const reserved = fixed ? this.#checkName(nameOf('')) : Buffer.from(nameOf(PLACEHOLDER), 'utf8');
    if (reserved.length > 0xffff || reserved.length === 0) {
      throw new SlipwayError('INVALID_ARGUMENT', 'zip entry name must be 1..65535 bytes', {
        where: this.#file.target,
      });
    }

    let fh: fsp.FileHandle | undefined;
    let size: number;
    let what: string;
    if ('path' in source) {
      what = source.path;
      try {
        fh = await fsp.open(source.path, 'r');
        const st = await fh.stat();
        if (!st.isFile())
          throw new SlipwayError('INVALID_ARGUMENT', 'not a regular file', { where: source.path });
        size = st.size;
      } catch (err) {
        await fh?.close();
        throw fromSystemError(err, 'cannot read', source.path);
      }
    } else if ('data' in source) {
      what = fixed ? nameOf('') : 'data';
      size = source.data.length;
    } else {
      what = fixed ? nameOf('') : 'stream';
      size = source.size;
      if (!Number.isSafeInteger(size) || size < 0) {
        throw new SlipwayError('INVALID_ARGUMENT', `bad declared size ${size} for zip entry`, {
          where: what,
        });
      }
    }

    const offset = this.#offset;
    const hash = createHash('sha256');
    let crc = 0;
    let total = 0;
    const take = (chunk: Uint8Array): void => {
      total += chunk.length;
      if (total > size) {
        throw new SlipwayError(
          'IO',
          `'${what}' is longer than its size of ${size} bytes (changed while read?)`,
          {
            where: what,
          },
        );
      }
      hash.update(chunk);
      crc = zlib.crc32(chunk, crc);
    };
    try {
      // From here on, bytes of this entry may be in the file.
      this.#broken = INTERRUPTED;
      await this.#append(this.#localHeader(reserved, size, 0, offset));
      if (fh !== undefined) await this.#copyFile(fh, take, what);
      else if ('data' in source) {
        take(source.data);
        await this.#append(source.data);
      } else if ('stream' in source) {
        for await (const chunk of source.stream) {
          take(chunk);
          await this.#append(chunk);
        }
      }
      if (total !== size) {
        throw new SlipwayError(
          'IO',
          `'${what}' gave ${total} bytes, not its size of ${size} (changed while read?)`,
          { where: what },
        );
      }
      const sha256 = hash.digest('hex');
      const name = nameOf(sha256);
      let nameBytes = reserved;
      if (!fixed) {
        nameBytes = this.#checkName(name);
        if (nameBytes.length !== reserved.length) {
          throw new SlipwayError(
            'INTERNAL',
            `zip entry name ${JSON.stringify(name)} is ${nameBytes.length} bytes, but ${reserved.length} were reserved`,
            { where: this.#file.target },
          );
        }
      }
      await this.#patch(offset, this.#localHeader(nameBytes, size, crc, offset));
      const info: ZipEntryInfo = { name, size, crc32: crc >>> 0, sha256, offset };
      this.#names.add(name);
      this.#written.push({ info, nameBytes });
      this.#broken = undefined;
      return info;
    } catch (err) {
      this.#broken = err;
      throw err;
    } finally {
      await fh?.close();
    }
  }

  /** 1 MiB reads, the next read overlapping the write of the current chunk. */
  async #copyFile(fh: fsp.FileHandle, take: (chunk: Uint8Array) => void, what: string): Promise<void> {
    let cur = Buffer.allocUnsafe(CHUNK);
    let next = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    const readInto = (b: Buffer, at: number): Promise<number> =>
      fh.read(b, 0, CHUNK, at).then(
        (r) => r.bytesRead,
        (err: unknown) => {
          throw fromSystemError(err, 'cannot read', what);
        },
      );
    let pending = readInto(cur, 0);
    try {
      for (;;) {
        const n = await pending;
        if (n === 0) break;
        const chunk = cur.subarray(0, n);
        pos += n;
        [cur, next] = [next, cur];
        pending = readInto(cur, pos);
        take(chunk);
        await this.#append(chunk);
      }
    } finally {
      await pending.catch(() => undefined);
    }
  }

  async #finish(): Promise<{ size: number; entries: ZipEntryInfo[] }> {
    this.#checkUsable();
    this.#finished = true;
    const limit = this.#limit;
    const cdStart = this.#offset;
    for (const { info, nameBytes } of this.#written) {
      const bigSize = info.size > limit;
      const bigOffset = info.offset > limit;
      const extraLen = (bigSize ? 16 : 0) + (bigOffset ? 8 : 0);
      const version = bigSize || bigOffset ? 45 : 20;
      const h = Buffer.alloc(46 + nameBytes.length + (extraLen > 0 ? 4 + extraLen : 0));
      h.writeUInt32LE(SIG_CENTRAL, 0);
      h.writeUInt16LE((UNIX << 8) | version, 4);
      h.writeUInt16LE(version, 6);
      h.writeUInt16LE(FLAG_UTF8, 8);
      h.writeUInt16LE(0, 10);
      h.writeUInt16LE(this.#time, 12);
      h.writeUInt16LE(this.#date, 14);
      h.writeUInt32LE(info.crc32, 16);
      h.writeUInt32LE(bigSize ? 0xffffffff : info.size, 20);
      h.writeUInt32LE(bigSize ? 0xffffffff : info.size, 24);
      h.writeUInt16LE(nameBytes.length, 28);
      h.writeUInt16LE(extraLen > 0 ? 4 + extraLen : 0, 30);
      // 32: comment length, 34: disk, 36: internal attributes — all 0
      h.writeUInt32LE((MODE_FILE << 16) >>> 0, 38);
      h.writeUInt32LE(bigOffset ? 0xffffffff : info.offset, 42);
      nameBytes.copy(h, 46);
      if (extraLen > 0) {
        // Only the overflowing fields, in APPNOTE order: sizes, then offset.
        let x = 46 + nameBytes.length;
        h.writeUInt16LE(0x0001, x);
        h.writeUInt16LE(extraLen, x + 2);
        x += 4;
        if (bigSize) {
          h.writeBigUInt64LE(BigInt(info.size), x);
          h.writeBigUInt64LE(BigInt(info.size), x + 8);
          x += 16;
        }
        if (bigOffset) h.writeBigUInt64LE(BigInt(info.offset), x);
      }
      await this.#append(h);
    }
    const cdSize = this.#offset - cdStart;
    const count = this.#written.length;
    const manyEntries = count >= 0xffff;
    const bigCdOffset = cdStart > limit;
    const bigCdSize = cdSize > limit;
    if (manyEntries || bigCdOffset || bigCdSize) {
      const end64Offset = this.#offset;
      const r = Buffer.alloc(56 + 20);
      r.writeUInt32LE(SIG_END64, 0);
      r.writeBigUInt64LE(44n, 4); // size of the rest of the record
      r.writeUInt16LE((UNIX << 8) | 45, 12);
      r.writeUInt16LE(45, 14);
      // 16: this disk, 20: disk with the central directory — 0
      r.writeBigUInt64LE(BigInt(count), 24);
      r.writeBigUInt64LE(BigInt(count), 32);
      r.writeBigUInt64LE(BigInt(cdSize), 40);
      r.writeBigUInt64LE(BigInt(cdStart), 48);
      r.writeUInt32LE(SIG_LOCATOR64, 56);
      // 60: disk with the zip64 end record — 0
      r.writeBigUInt64LE(BigInt(end64Offset), 64);
      r.writeUInt32LE(1, 72); // total number of disks
      await this.#append(r);
    }
    const e = Buffer.alloc(22);
    e.writeUInt32LE(SIG_END, 0);
    // 4: this disk, 6: disk with the central directory — 0
    e.writeUInt16LE(manyEntries ? 0xffff : count, 8);
    e.writeUInt16LE(manyEntries ? 0xffff : count, 10);
    e.writeUInt32LE(bigCdSize ? 0xffffffff : cdSize, 12);
    e.writeUInt32LE(bigCdOffset ? 0xffffffff : cdStart, 16);
    // 20: comment length — 0
    await this.#append(e);
    await this.#flush();
    return { size: this.#offset, entries: this.#written.map((w) => w.info) };
  }
}

/** sha256 (hex) of a file, streamed with 1 MiB reads: for the `.sha256.txt` beside a zip. */
export async function sha256OfFile(file: string): Promise<string> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(file, 'r');
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return hash.digest('hex');
  } catch (err) {
    throw fromSystemError(err, 'cannot read', file);
  } finally {
    await fh?.close();
  }
}
