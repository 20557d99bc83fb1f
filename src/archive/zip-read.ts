/**
 * Reads zips from outside (uploaded repositories) over yauzl, with caps, path
 * rules, duplicate detection and a CRC-32 check of every byte handed out.
 *
 * yauzl reads through our own RandomAccessReader over one FileHandle (the
 * same options as `yauzl.open`): its fd reader streams 16 KiB at a time, ours
 * 1 MiB, and we close the handle ourselves whatever streams were left open.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import yauzl from 'yauzl';
import { SlipwayError, fromSystemError } from '../core/errors.js';

export interface ZipEntry {
  name: string;
  size: number;
  compressedSize: number;
  crc32: number;
  method: number;
  isDirectory: boolean;
  raw: yauzl.Entry;
}

export interface ZipLimits {
  maxEntries: number;
  maxEntrySize: number;
  maxTotalSize: number;
}

const GiB = 1024 ** 3;
const DEFAULT_LIMITS: ZipLimits = { maxEntries: 100_000, maxEntrySize: 64 * GiB, maxTotalSize: 256 * GiB };
const CHUNK = 1 << 20;
const SMALL_READ = 64 * 1024;

/** yauzl's own name checks (validateFileName, strictFileNames) are path complaints. */
const YAUZL_PATH_ERROR = /^(invalid characters in fileName|absolute path|invalid relative path)/;

function zipError(err: unknown, where: string): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e.code === 'string' && typeof e.syscall === 'string')
    return fromSystemError(err, 'cannot read', where);
  const message = e.message || String(err);
  if (YAUZL_PATH_ERROR.test(message)) {
    return new SlipwayError('ZIP_PATH_UNSAFE', `unsafe entry name in zip: ${message}`, { where, cause: err });
  }
  return new SlipwayError('ZIP_INVALID', `invalid zip: ${message}`, { where, cause: err });
}

/**
 * The rule for entry names we accept: a relative path of plain segments.
 * Returns the name; throws ZIP_PATH_UNSAFE naming the entry otherwise.
 */
export function checkEntryPath(name: string, where: string): string {
  const bad = (why: string): SlipwayError =>
    new SlipwayError('ZIP_PATH_UNSAFE', `zip entry ${JSON.stringify(name)}: ${why}`, { where });
  if (name === '') throw bad('empty name');
  if (name.includes('\0')) throw bad('NUL in name');
  if (name.includes('\\')) throw bad('backslash in name');
  if (name.startsWith('/')) throw bad('absolute path');
  if (/^[A-Za-z]:/.test(name)) throw bad('drive letter');
  if (name.endsWith('/')) throw bad('directory entry (only files are allowed)');
  for (const seg of name.split('/')) {
    if (seg === '') throw bad('empty path segment');
    if (seg === '.' || seg === '..') throw bad(`'${seg}' path segment`);
  }
  return name;
}

/** Positional 1 MiB reads over a FileHandle that we close ourselves. */
/**
 * Bytes `[start, end)` of an open file, streamed by positional reads (no file
 * position: one handle may serve several streams at once); a file that ends
 * before `end` fails the stream with `eof()`.
 */
export function fileRangeStream(fh: fsp.FileHandle, start: number, end: number, eof: () => Error): Readable {
  let pos = start;
  return new Readable({
    highWaterMark: CHUNK,
    read(this: Readable): void {
      const n = Math.min(CHUNK, end - pos);
      if (n <= 0) {
        this.push(null);
        return;
      }
      fh.read(Buffer.allocUnsafe(n), 0, n, pos).then(
        ({ bytesRead, buffer }) => {
          if (this.destroyed) return;
          if (bytesRead === 0) {
            this.destroy(eof());
            return;
          }
          pos += bytesRead;
          this.push(buffer.subarray(0, bytesRead));
        },
        (err: unknown) => {
          this.destroy(err as Error);
        },
      );
    },
  });
}

class FileHandleReader extends yauzl.RandomAccessReader {
  readonly #fh: fsp.FileHandle;
  #cache: { start: number; data: Buffer } | undefined;

  constructor(fh: fsp.FileHandle) {
    super();
    this.#fh = fh;
  }

  override _readStreamForRange(start: number, end: number): Readable {
    return fileRangeStream(this.#fh, start, end, () => new Error('unexpected EOF'));
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null) => void,
  ): void {
    // yauzl's callback also takes bytesRead (a short read means EOF); the typings omit it.
    const done: (err: Error | null, bytesRead?: number) => void = callback;
    void (async () => {
      if (length <= SMALL_READ) {
        // The central directory is read in small sequential pieces: serve them from one cached block.
        let c = this.#cache;
        if (c === undefined || position < c.start || position + length > c.start + c.data.length) {
          const block = Buffer.allocUnsafe(CHUNK);
          c = { start: position, data: block.subarray(0, await this.#readFully(block, 0, CHUNK, position)) };
          this.#cache = c;
        }
        const avail = Math.max(0, Math.min(length, c.start + c.data.length - position));
        c.data.copy(buffer, offset, position - c.start, position - c.start + avail);
        return avail;
      }
      return this.#readFully(buffer, offset, length, position);
    })().then(
      (got) => {
        done(null, got);
      },
      (err: unknown) => {
        done(err as Error);
      },
    );
  }

  async #readFully(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.#fh.read(buffer, offset + got, length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }

  override close(callback: (err: Error | null) => void): void {
    setImmediate(() => {
      callback(null);
    });
  }
}

export class ZipReader {
  readonly path: string;
  readonly entries: readonly ZipEntry[];
  readonly #fh: fsp.FileHandle;
  readonly #zip: yauzl.ZipFile;
  readonly #byName: ReadonlyMap<string, ZipEntry>;
  readonly #open = new Set<Readable>();
  #closed = false;

  private constructor(
    file: string,
    fh: fsp.FileHandle,
    zip: yauzl.ZipFile,
    entries: ZipEntry[],
    byName: Map<string, ZipEntry>,
  ) {
    this.path = file;
    this.#fh = fh;
    this.#zip = zip;
    this.entries = entries;
    this.#byName = byName;
  }

  /** Opens `file` and reads its whole central directory, within `limits`. */
  static async open(file: string, limits: Partial<ZipLimits> = {}): Promise<ZipReader> {
    const lim: ZipLimits = { ...DEFAULT_LIMITS, ...limits };
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (err) {
      throw fromSystemError(err, 'cannot open zip', file);
    }
    let zip: yauzl.ZipFile | undefined;
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new SlipwayError('INVALID_ARGUMENT', 'not a regular file', { where: file });
      zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
        yauzl.fromRandomAccessReader(
          new FileHandleReader(fh),
          st.size,
          { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: true },
          (err, z) => {
            if (err) reject(err);
            else resolve(z);
          },
        );
      });
      const z = zip;
      if (z.entryCount > lim.maxEntries) {
        throw new SlipwayError(
          'ZIP_TOO_LARGE',
          `zip has ${z.entryCount} entries, more than the limit of ${lim.maxEntries}`,
          { where: file },
        );
      }
      const entries: ZipEntry[] = [];
      const byName = new Map<string, ZipEntry>();
      let total = 0;
      await new Promise<void>((resolve, reject) => {
        const fail = (err: unknown): void => {
          z.removeAllListeners('entry');
          reject(err instanceof Error ? err : new Error(String(err)));
        };
        z.on('error', fail);
        z.once('end', () => {
          z.removeListener('error', fail);
          resolve();
        });
        z.on('entry', (raw: yauzl.Entry) => {
          const name = raw.fileName;
          const where = `${file}:${name}`;
          if (byName.has(name)) {
            fail(
              new SlipwayError('ZIP_INVALID', `duplicate entry ${JSON.stringify(name)} in zip`, { where }),
            );
            return;
          }
          if (raw.uncompressedSize > lim.maxEntrySize) {
            fail(
              new SlipwayError(
                'ZIP_TOO_LARGE',
                `zip entry ${JSON.stringify(name)} is ${raw.uncompressedSize} bytes, more than the limit of ${lim.maxEntrySize}`,
                { where },
              ),
            );
            return;
          }
          total += raw.uncompressedSize;
          if (total > lim.maxTotalSize) {
            fail(
              new SlipwayError(
                'ZIP_TOO_LARGE',
                `zip entries add up to more than the limit of ${lim.maxTotalSize} bytes`,
                { where: file },
              ),
            );
            return;
          }
          const entry: ZipEntry = {
            name,
            size: raw.uncompressedSize,
            compressedSize: raw.compressedSize,
            crc32: raw.crc32,
            method: raw.compressionMethod,
            isDirectory: name.endsWith('/'),
            raw,
          };
          entries.push(entry);
          byName.set(name, entry);
          z.readEntry();
        });
        z.readEntry();
      });
      // Keeps a late error (yauzl emits at most one) from becoming an uncaught 'error' event.
      z.on('error', () => undefined);
      return new ZipReader(file, fh, z, entries, byName);
    } catch (err) {
      zip?.close();
      await fh.close().catch(() => undefined);
      throw zipError(err, file);
    }
  }

  get(name: string): ZipEntry | undefined {
    return this.#byName.get(name);
  }

  /**
   * The entry's bytes, decompressed. The stream fails with ZIP_INVALID when
   * its length or CRC-32 differs from what the central directory says.
   */
  async openEntry(entry: ZipEntry): Promise<Readable> {
    const where = `${this.path}:${entry.name}`;
    if (this.#closed) throw new SlipwayError('INTERNAL', 'zip reader is closed', { where });
    if (entry.method !== 0 && entry.method !== 8) {
      throw new SlipwayError(
        'ZIP_UNSUPPORTED',
        `zip entry ${JSON.stringify(entry.name)} uses compression method ${entry.method} (only stored and deflate are supported)`,
        { where },
      );
    }
    if ((entry.raw.generalPurposeBitFlag & 0x1) !== 0) {
      throw new SlipwayError('ZIP_UNSUPPORTED', `zip entry ${JSON.stringify(entry.name)} is encrypted`, {
        where,
      });
    }
    let src: Readable;
    try {
      src = await new Promise<Readable>((resolve, reject) => {
        this.#zip.openReadStream(entry.raw, (err, s) => {
          if (err) reject(err);
          else resolve(s);
        });
      });
    } catch (err) {
      throw zipError(err, where);
    }
    let crc = 0;
    const out = new Transform({
      highWaterMark: CHUNK,
      transform(chunk: Buffer, _enc, cb): void {
        crc = zlib.crc32(chunk, crc);
        cb(null, chunk);
      },
      flush(cb): void {
        if (crc >>> 0 !== entry.crc32 >>> 0) {
          cb(
            new SlipwayError(
              'ZIP_INVALID',
              `CRC-32 mismatch in zip entry ${JSON.stringify(entry.name)}: the data is corrupt`,
              { where },
            ),
          );
          return;
        }
        cb();
      },
    });
    src.on('error', (err) => {
      out.destroy(zipError(err, where));
    });
    out.once('close', () => {
      this.#open.delete(out);
      if (!src.destroyed) src.destroy();
    });
    this.#open.add(out);
    src.pipe(out);
    return out;
  }

  readonly #dataOffsets = new Map<string, Promise<number>>();

  /** Where a stored entry's bytes begin: after its local header (read once, checked). */
  dataOffset(entry: ZipEntry): Promise<number> {
    let p = this.#dataOffsets.get(entry.name);
    if (p === undefined) {
      p = (async () => {
        const at = entry.raw.relativeOffsetOfLocalHeader;
        const h = Buffer.alloc(30);
        const { bytesRead } = await this.#fh.read(h, 0, 30, at);
        if (bytesRead !== 30 || h.readUInt32LE(0) !== 0x04034b50) {
          throw new SlipwayError(
            'ZIP_INVALID',
            `no local header for zip entry ${JSON.stringify(entry.name)}`,
            {
              where: this.path,
            },
          );
        }
        return at + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
      })();
      this.#dataOffsets.set(entry.name, p);
    }
    return p;
  }

  /**
   * Bytes `start..end` (inclusive) of a STORED entry, read in place with
   * large reads and no CRC-32: for callers that check a stronger digest of
   * their own (a signed sha256) or serve a byte range. Skipping the stream
   * layers and the CRC halves the cost of reading a multi-GiB target.
   */
  async *readStored(entry: ZipEntry, start = 0, end = entry.size - 1): AsyncGenerator<Buffer> {
    const where = `${this.path}:${entry.name}`;
    if (entry.method !== 0 || entry.compressedSize !== entry.size) {
      throw new SlipwayError('ZIP_UNSUPPORTED', `zip entry ${JSON.stringify(entry.name)} is not stored`, {
        where,
      });
    }
    if (start < 0 || end >= entry.size || start > end + 1) {
      throw new SlipwayError('INTERNAL', `range ${start}-${end} outside zip entry of ${entry.size} bytes`, {
        where,
      });
    }
    const at = await this.dataOffset(entry);
    for (let pos = start; pos <= end;) {
      if (this.#closed) throw new SlipwayError('INTERNAL', 'zip reader is closed', { where });
      const n = Math.min(CHUNK, end + 1 - pos);
      const { bytesRead, buffer } = await this.#fh.read(Buffer.allocUnsafe(n), 0, n, at + pos);
      if (bytesRead === 0) throw new SlipwayError('ZIP_INVALID', 'the zip ends inside this entry', { where });
      pos += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  }

  /** The whole entry in memory; refused above `maxBytes`. */
  async readEntry(entry: ZipEntry, maxBytes: number): Promise<Buffer> {
    const where = `${this.path}:${entry.name}`;
    if (entry.size > maxBytes) {
      throw new SlipwayError(
        'ZIP_TOO_LARGE',
        `zip entry ${JSON.stringify(entry.name)} is ${entry.size} bytes, more than the ${maxBytes} allowed here`,
        { where },
      );
    }
    const stream = await this.openEntry(entry);
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      n += chunk.length;
      // yauzl already holds the stream to the declared size; this is belt and braces.
      if (n > maxBytes) {
        stream.destroy();
        throw new SlipwayError('ZIP_TOO_LARGE', `zip entry ${JSON.stringify(entry.name)} is too large`, {
          where,
        });
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, n);
  }

  /** Ends every open entry stream and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#open) s.destroy();
    this.#open.clear();
    this.#zip.close();
    await this.#fh.close().catch(() => undefined);
  }
}

/**
 * Extracts `reader`'s files (those `filter` keeps) into `destDir`, which must
 * not exist. All names are checked before anything is written; the files go
 * to a fresh temp dir beside `destDir` that is renamed into place at the end
 * and removed on any error. Every file is created with 'wx' in a directory we
 * just made, so no symlink is ever followed.
 */
export async function extractZip(
  reader: ZipReader,
  destDir: string,
  options: { filter?: (name: string) => boolean } = {},
): Promise<void> {
  const dest = path.resolve(destDir);
  for (const e of reader.entries) checkEntryPath(e.name, reader.path);
  const chosen = reader.entries.filter((e) => options.filter?.(e.name) ?? true);
  // A name that is both a file and a parent of another file cannot be extracted.
  const dirs = new Set<string>();
  for (const e of chosen) {
    const segs = e.name.split('/');
    for (let i = 1; i < segs.length; i++) dirs.add(segs.slice(0, i).join('/'));
  }
  for (const e of chosen) {
    if (dirs.has(e.name)) {
      throw new SlipwayError(
        'ZIP_INVALID',
        `zip entry ${JSON.stringify(e.name)} is both a file and a directory`,
        {
          where: `${reader.path}:${e.name}`,
        },
      );
    }
  }
  try {
    await fsp.lstat(dest);
    throw new SlipwayError('INVALID_ARGUMENT', `extraction target '${dest}' already exists`, { where: dest });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw fromSystemError(err, 'cannot extract into', dest);
  }
  let temp: string;
  try {
    temp = await fsp.mkdtemp(
      path.join(path.dirname(dest), `.${path.basename(dest)}.${randomBytes(4).toString('hex')}.tmp-`),
    );
  } catch (err) {
    throw fromSystemError(err, 'cannot create a directory in', path.dirname(dest));
  }
  try {
    await fsp.chmod(temp, 0o755); // mkdtemp makes it 0700
    const made = new Set<string>();
    for (const e of chosen) {
      const target = path.join(temp, ...e.name.split('/'));
      const parent = path.dirname(target);
      if (!made.has(parent)) {
        await fsp.mkdir(parent, { recursive: true, mode: 0o755 });
        made.add(parent);
      }
      const src = await reader.openEntry(e);
      try {
        await pipeline(src, fs.createWriteStream(target, { flags: 'wx', mode: 0o644, highWaterMark: CHUNK }));
      } catch (err) {
        throw err instanceof SlipwayError ? err : fromSystemError(err, 'cannot write', target);
      }
    }
    await fsp.rename(temp, dest);
  } catch (err) {
    await fsp.rm(temp, { recursive: true, force: true });
    throw err instanceof SlipwayError ? err : fromSystemError(err, 'cannot extract into', dest);
  }
}
