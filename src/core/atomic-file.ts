/**
 * Atomic output files: data goes to a temp file in the target's directory,
 * is fsynced, then renamed over the target. A crash or an error leaves the
 * old file or the new one, never half of one, and no temp file on error.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { fromSystemError } from './errors.js';

function tempNameFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

/** Makes renames into `dir` durable (best effort: some filesystems refuse to open a directory for this). */
export async function fsyncDir(dir: string): Promise<void> {
  try {
    const fd = await fsp.open(dir, 'r');
    try {
      await fd.sync();
    } finally {
      await fd.close();
    }
  } catch {
    /* best effort */
  }
}

/** Temp files not yet committed or aborted: removed on an interrupt (see removeTempFilesSync). */
const liveTempFiles = new Set<string>();

/** For signal handlers: deletes every temp file still open, synchronously. */
export function removeTempFilesSync(): void {
  for (const p of liveTempFiles) {
    try {
      fs.unlinkSync(p);
    } catch {
      /* already gone */
    }
  }
  liveTempFiles.clear();
}

export interface AtomicFileOptions {
  mode?: number;
}

/** Writes `data` to `target` atomically. */
export async function writeFileAtomic(
  target: string,
  data: Uint8Array | string,
  options: AtomicFileOptions = {},
): Promise<void> {
  const out = await openAtomic(target, options);
  try {
    await out.write(typeof data === 'string' ? Buffer.from(data) : data);
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
}

/** An output file under construction; nothing is visible at `target` until `commit()`. */
export class AtomicFile {
  readonly target: string;
  readonly tempPath: string;
  readonly #fd: fsp.FileHandle;
  /** Where write() appends: every write is positional, so write() and writeAt() can be mixed. */
  #pos = 0;
  #done = false;

  private constructor(target: string, tempPath: string, fd: fsp.FileHandle) {
    this.target = target;
    this.tempPath = tempPath;
    this.#fd = fd;
  }

  static async open(target: string, options: AtomicFileOptions = {}): Promise<AtomicFile> {
    const temp = tempNameFor(target);
    try {
      const fd = await fsp.open(temp, 'wx', options.mode ?? 0o644);
      liveTempFiles.add(temp);
      return new AtomicFile(target, temp, fd);
    } catch (err) {
      throw fromSystemError(err, 'cannot create output file in', path.dirname(target));
    }
  }

  /** Appends after the furthest byte written so far (by write() or writeAt()). */
  async write(chunk: Uint8Array): Promise<void> {
    const position = this.#pos;
    this.#pos += chunk.length;
    await this.#writeFully(chunk, position);
  }

  /** Writes `chunk` at byte `position` (e.g. to patch a header written earlier). */
  async writeAt(chunk: Uint8Array, position: number): Promise<void> {
    this.#pos = Math.max(this.#pos, position + chunk.length);
    await this.#writeFully(chunk, position);
  }

  async #writeFully(chunk: Uint8Array, position: number): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.#fd.write(chunk, off, chunk.length - off, position + off);
      off += bytesWritten;
    }
  }

  /** A Writable over this file, for stream pipelines; commit() after it finishes. */
  writable(): Writable {
    return new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        this.write(chunk).then(() => {
          cb();
        }, cb);
      },
      writev: (chunks, cb) => {
        this.write(Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(() => {
          cb();
        }, cb);
      },
    });
  }

  async commit(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#fd.sync();
      await this.#fd.close();
      await fsp.rename(this.tempPath, this.target);
      liveTempFiles.delete(this.tempPath);
    } catch (err) {
      liveTempFiles.delete(this.tempPath);
      await fsp.rm(this.tempPath, { force: true });
      throw fromSystemError(err, 'cannot write', this.target);
    }
    await fsyncDir(path.dirname(this.target));
  }

  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    liveTempFiles.delete(this.tempPath);
    await this.#fd.close().catch(() => undefined);
    await fsp.rm(this.tempPath, { force: true });
  }
}

export function openAtomic(target: string, options: AtomicFileOptions = {}): Promise<AtomicFile> {
  return AtomicFile.open(target, options);
}

/** Runs `fn` with an open atomic file; commits when it resolves, removes the temp file when it throws. */
export async function withAtomicFile<T>(
  target: string,
  fn: (file: AtomicFile) => Promise<T>,
  options: AtomicFileOptions = {},
): Promise<T> {
  const file = await openAtomic(target, options);
  try {
    const result = await fn(file);
    await file.commit();
    return result;
  } catch (err) {
    await file.abort();
    throw err;
  }
}
