/**
 * Blobs as files under one directory (the default store): key `a/b/c` is the
 * file `DIR/a/b/c`. A put streams into an atomic file (core/atomic-file.ts:
 * a temp file created with O_EXCL next to its target, fsynced and renamed),
 * hashing and counting the bytes on the way: readers see the old object or
 * the whole new one, never part of one, and a failed put leaves no temp file
 * behind. Temp files start with '.', which keys never do, so a temp name
 * never shadows a key.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { openAtomic } from '../core/atomic-file.js';
import { fromSystemError, SlipwayError } from '../core/errors.js';
import { abortError, aborted, checkBlobKey, meterBody } from './blob-common.js';
import type { BlobPutResult, BlobStore } from './types.js';

/** 1 MiB reads: with Node's default 64 KiB, serving a large file costs ~1.5× the CPU per byte. */
const READ_CHUNK = 1 << 20;

export interface FsBlobStoreOptions {
  dir: string;
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class FsBlobStore implements BlobStore {
  readonly kind = 'fs' as const;
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates the directory when missing. */
  static async open(options: FsBlobStoreOptions): Promise<FsBlobStore> {
    const dir = path.resolve(options.dir);
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (err) {
      throw fromSystemError(err, 'cannot create the blob directory', dir);
    }
    return new FsBlobStore(dir);
  }

  /** The file behind `key` (checked: no other characters, no `..`, no hidden segments). */
  pathOf(key: string): string {
    checkBlobKey(key);
    return path.join(this.dir, ...key.split('/'));
  }

  async put(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: { maxBytes: number; expectedLength?: number; contentType?: string; signal?: AbortSignal },
  ): Promise<BlobPutResult> {
    const target = this.pathOf(key);
    const { signal } = options;
    if (aborted(signal)) throw abortError(signal);
    try {
      await fsp.mkdir(path.dirname(target), { recursive: true });
    } catch (err) {
      throw fromSystemError(err, 'cannot create the directory of', target);
    }
    const out = await openAtomic(target);
    const meter = meterBody(body, {
      key,
      maxBytes: options.maxBytes,
      expectedLength: options.expectedLength,
      signal,
    });
    try {
      for await (const chunk of meter as AsyncIterable<Buffer>) await out.write(chunk);
      // An abort that lands after the last chunk still cancels the put.
      if (aborted(signal)) throw abortError(signal);
      const result = meter.result();
      await out.commit();
      return result;
    } catch (err) {
      await out.abort().catch(() => undefined);
      meter.destroy();
      // The body's own failure (a check, the source's error, the abort) as it is; else the disk's.
      if (meter.errored !== null) throw meter.errored;
      if (aborted(signal)) throw abortError(signal);
      throw fromSystemError(err, 'cannot write', target);
    }
  }

  async get(
    key: string,
    range?: { start: number; end: number },
  ): Promise<{ body: Readable; size: number } | undefined> {
    const file = this.pathOf(key);
    let fd: fsp.FileHandle;
    try {
      fd = await fsp.open(file, 'r');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw fromSystemError(err, 'cannot read', file);
    }
    // The open descriptor pins this version of the object: a concurrent put renames a new file
    // over the name, never changes these bytes.
    try {
      const st = await fd.stat();
      if (!st.isFile()) throw new SlipwayError('IO', `'${file}' is not a file`, { where: file });
      const size = st.size;
      if (range === undefined)
        return { body: fd.createReadStream({ start: 0, autoClose: true, highWaterMark: READ_CHUNK }), size };
      const { start } = range;
      const end = Math.min(range.end, size - 1);
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(range.end) || start < 0 || start > end) {
        throw new SlipwayError(
          'INVALID_ARGUMENT',
          `range ${range.start}-${range.end} is not satisfiable for '${key}' (${size} bytes)`,
          { where: key },
        );
      }
      return { body: fd.createReadStream({ start, end, autoClose: true, highWaterMark: READ_CHUNK }), size };
    } catch (err) {
      await fd.close().catch(() => undefined);
      throw err;
    }
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    const file = this.pathOf(key);
    try {
      const st = await fsp.stat(file);
      return st.isFile() ? { size: st.size } : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw fromSystemError(err, 'cannot stat', file);
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    try {
      await fsp.unlink(file);
    } catch (err) {
      if (isNotFound(err)) return;
      throw fromSystemError(err, 'cannot delete', file);
    }
  }

  async close(): Promise<void> {
    /* nothing held open */
  }
}
