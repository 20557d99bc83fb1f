/**
 * Streams a tar (gzip-compressed or plain) from a file through the pure
 * TarParser, with the archive's sha256 computed in the same pass.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { paddingFor, TarParser, type TarEntryInfo, type TarHandler, type TarLimits } from '../formats/tar.js';

export interface ReadTarOptions {
  limits?: Partial<TarLimits>;
  /** Called with the compressed bytes read so far. */
  onProgress?: (bytesRead: number) => void;
  /** Hash the archive file (sha256) while reading it. Default true. */
  hash?: boolean;
  /** Refuse input that is not gzip-compressed (image archives always are). */
  requireGzip?: boolean;
  /** Awaited after each chunk is parsed: lets a consumer apply backpressure. */
  afterChunk?: () => Promise<void> | undefined;
}

export interface ReadTarResult {
  /** Size of the archive file. */
  fileSize: number;
  /** Size of the uncompressed tar stream. */
  tarSize: number;
  gzip: boolean;
  sha256: string | undefined;
  entries: number;
}

const GZIP_MAGIC = [0x1f, 0x8b];

function readMagic(fd: number): Buffer {
  const b = Buffer.alloc(2);
  const n = fs.readSync(fd, b, 0, 2, 0);
  return b.subarray(0, n);
}

/** Maps zlib's errors to ours: a cut stream and a corrupt one are different problems. */
export function gzipError(err: unknown, file: string): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'Z_BUF_ERROR' || /unexpected end of file/i.test(e.message)) {
    return new SlipwayError('GZIP_TRUNCATED', 'truncated gzip stream (unexpected end of file)', {
      where: file,
      cause: err,
    });
  }
  if (typeof e.code === 'string' && e.code.startsWith('Z_')) {
    return new SlipwayError('GZIP_CORRUPT', `corrupt gzip stream: ${e.message}`, { where: file, cause: err });
  }
  return fromSystemError(err, 'cannot read', file);
}

/**
 * Reads `file` completely. The handler runs synchronously inside the read
 * loop; to do async work per entry, collect and act after (or use the
 * returned promise ordering). Throws SlipwayError on any defect.
 */
export async function readTarFile(
  file: string,
  handler: TarHandler,
  options: ReadTarOptions = {},
): Promise<ReadTarResult> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw fromSystemError(err, 'cannot open archive', file);
  }
  let fileSize: number;
  let gzip: boolean;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SlipwayError('INVALID_ARGUMENT', 'not a regular file', { where: file });
    fileSize = st.size;
    const magic = readMagic(fd);
    gzip = magic[0] === GZIP_MAGIC[0] && magic[1] === GZIP_MAGIC[1];
    if (!gzip && options.requireGzip === true) {
      throw new SlipwayError('GZIP_CORRUPT', 'not a gzip file (an image archive is a gzip-compressed tar)', {
        where: file,
      });
    }
  } catch (err) {
    fs.closeSync(fd);
    throw err instanceof SlipwayError ? err : fromSystemError(err, 'cannot read', file);
  }
  // From here the stream owns the descriptor and closes it, also when destroyed.
  const source = fs.createReadStream('', { fd, start: 0, autoClose: true, highWaterMark: 1 << 20 });
  const closed = once(source, 'close').catch(() => undefined);
  const hash = options.hash === false ? undefined : createHash('sha256');
  const parser = new TarParser(handler, options.limits);
  let read = 0;
  source.on('data', (chunk) => {
    const b = chunk as Buffer;
    read += b.length;
    hash?.update(b);
    options.onProgress?.(read);
  });
  let tarSize = 0;
  const gunzip = gzip ? zlib.createGunzip({ chunkSize: 256 * 1024 }) : undefined;
  const stream: AsyncIterable<Buffer> = gunzip !== undefined ? source.pipe(gunzip) : source;
  try {
    for await (const chunk of stream) {
      tarSize += chunk.length;
      parser.push(chunk);
      const wait = options.afterChunk?.();
      if (wait !== undefined) await wait;
    }
    parser.end();
  } catch (err) {
    source.destroy();
    gunzip?.destroy();
    await closed;
    const e =
      gzip && !(err instanceof SlipwayError)
        ? gzipError(err, file)
        : err instanceof SlipwayError
          ? err
          : fromSystemError(err, 'cannot read', file);
    if (e.where !== undefined && !e.where.startsWith(file)) {
      throw new SlipwayError(e.code, e.message, { where: `${file}: ${e.where}`, cause: e.cause });
    }
    throw e;
  }
  await closed;
  return { fileSize, tarSize, gzip, sha256: hash?.digest('hex'), entries: parser.entries };
}

/**
 * Re-emits a tar file's entries as a stream of tar bytes: `map` turns each
 * entry into the header blocks to write (null drops the entry and its data);
 * a regular file's data and padding follow its blocks unchanged. The pure
 * parser is synchronous, so its output is queued per input chunk and the
 * reader waits while the consumer drains it (bounded memory).
 */
export async function* transformTar(
  file: string,
  map: (entry: TarEntryInfo) => Buffer[] | null,
  options: { limits?: Partial<TarLimits>; requireGzip?: boolean } = {},
): AsyncGenerator<Buffer> {
  let queue: Buffer[] = [];
  let keepData = false;
  let size = 0;
  let wake: (() => void) | undefined;
  let resumeReader: (() => void) | undefined;
  const outcome: { done: boolean; failure?: unknown } = { done: false };
  const reading = readTarFile(
    file,
    {
      entry(e) {
        const blocks = map(e);
        keepData = blocks !== null && e.type === 'file';
        size = e.size;
        if (blocks !== null) queue.push(...blocks);
      },
      data(chunk) {
        if (keepData) queue.push(chunk);
      },
      entryEnd() {
        if (keepData) {
          const pad = paddingFor(size);
          if (pad.length > 0) queue.push(pad);
        }
        keepData = false;
      },
    },
    {
      hash: false,
      ...(options.limits !== undefined ? { limits: options.limits } : {}),
      ...(options.requireGzip !== undefined ? { requireGzip: options.requireGzip } : {}),
      afterChunk: () => {
        if (queue.length === 0) return undefined;
        wake?.();
        return new Promise<void>((resolve) => {
          resumeReader = resolve;
        });
      },
    },
  ).then(
    () => {
      outcome.done = true;
      wake?.();
    },
    (err: unknown) => {
      outcome.failure = err;
      outcome.done = true;
      wake?.();
    },
  );
  try {
    for (;;) {
      if (queue.length > 0) {
        const batch = queue;
        queue = [];
        yield* batch;
        const r = resumeReader;
        resumeReader = undefined;
        r?.();
        continue;
      }
      if (outcome.done) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    // A consumer that stops early must not leave the reader waiting forever.
    resumeReader?.();
  }
  await reading;
  if (outcome.failure !== undefined) {
    throw outcome.failure instanceof SlipwayError
      ? outcome.failure
      : fromSystemError(outcome.failure, 'cannot read', file);
  }
}

export interface ReadTarStreamResult {
  /** Bytes of the (compressed) input. */
  size: number;
  sha256: string;
  tarSize: number;
  entries: number;
}

/**
 * Parses a gzip-compressed tar arriving as a stream (a zip entry, an
 * upload), hashing the compressed bytes in the same pass. `where` names the
 * input in errors. When `enough()` turns true the rest is only hashed, not
 * inflated (a host image's headers are all near its start).
 */
export async function readTarStream(
  source: AsyncIterable<Buffer>,
  handler: TarHandler,
  options: { where: string; limits?: Partial<TarLimits>; enough?: () => boolean },
): Promise<ReadTarStreamResult> {
  const { where } = options;
  const hash = createHash('sha256');
  const parser = new TarParser(handler, options.limits);
  let size = 0;
  let tarSize = 0;
  // An object, not a `let`: both loops below read and write it.
  const flow = { stopped: false };
  const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
  // The inflater runs on libuv's thread pool, the hash on this thread: they overlap.
  // Waits for room in the inflater, or for it to be gone (stopped early or failed): never rejects.
  const room = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        gunzip.off('drain', done);
        gunzip.off('close', done);
        resolve();
      };
      gunzip.on('drain', done);
      gunzip.on('close', done);
    });
  const feeding = (async () => {
    try {
      for await (const chunk of source) {
        size += chunk.length;
        hash.update(chunk);
        // After an early stop the inflater is destroyed: the rest is only hashed.
        if (flow.stopped || gunzip.destroyed) continue;
        if (!gunzip.write(chunk)) await room();
      }
      if (!flow.stopped && !gunzip.destroyed) gunzip.end();
    } catch (err) {
      gunzip.destroy(err as Error);
      throw err;
    }
  })();
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      tarSize += chunk.length;
      parser.push(chunk);
      if (options.enough?.() === true) {
        flow.stopped = true;
        break;
      }
    }
    if (!flow.stopped) parser.end();
    gunzip.destroy();
    await feeding;
  } catch (err) {
    gunzip.destroy();
    await feeding.catch(() => undefined);
    const e = err instanceof SlipwayError ? err : gzipError(err, where);
    if (e.where !== undefined && !e.where.startsWith(where)) {
      throw new SlipwayError(e.code, e.message, { where: `${where}: ${e.where}`, cause: e.cause });
    }
    throw e;
  }
  return { size, sha256: hash.digest('hex'), tarSize, entries: parser.entries };
}
