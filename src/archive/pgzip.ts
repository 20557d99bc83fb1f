/**
 * Parallel gzip, the way pigz does it: the input is cut into fixed-size
 * blocks, each block is raw-deflated on a worker thread with the 32 KiB of
 * input before it as preset dictionary, and the pieces are concatenated in
 * order into one gzip member. Non-final blocks end with Z_SYNC_FLUSH, so the
 * concatenation is a single valid deflate stream; the CRC-32 of the whole
 * input is combined from per-block CRCs (crc32-combine.ts).
 *
 * Each block's bytes depend only on (level, dictionary, block, last?), so
 * the output is identical for any number of workers and any write chunking.
 */
import * as os from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import * as zlib from 'node:zlib';
import { SlipwayError } from '../core/errors.js';
import { crc32Combine, crc32CombineGen, crc32CombineOp } from './crc32-combine.js';
import { compressBlock, WORKER_MARK, type BlockReply, type BlockRequest } from './pgzip-worker.js';

export interface GzipOptions {
  level?: number; // 0..9, default 1 (omicron-package writes gzip level 1)
  workers?: number; // default os.availableParallelism()
  blockSize?: number; // default 128 KiB like pigz
}

/** deflate's window: the most history a block can refer back to. */
const DICT_SIZE = 32 * 1024;
const DEFAULT_BLOCK_SIZE = 128 * 1024;
const MAX_BLOCK_SIZE = 512 * 1024 * 1024;
const MAX_WORKERS = 256;

/**
 * The 10-byte gzip header Rust flate2's GzEncoder writes (omicron-package
 * uses it): magic, CM=8 (deflate), FLG=0, MTIME=0, XFL (4 = fastest for
 * level <= 1, 2 = best for level >= 9, else 0), OS=255 (unknown).
 */
export function gzipHeader(level: number): Buffer {
  const xfl = level <= 1 ? 4 : level >= 9 ? 2 : 0;
  return Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0xff]);
}

function gzipTrailer(crc: number, size: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc >>> 0, 0);
  t.writeUInt32LE(size % 2 ** 32, 4);
  return t;
}

/**
 * What wraps the deflate stream: gzip (here) or zlib (pzlib.ts). The block
 * scheme is the same; only the header, the check value, how per-block check
 * values are combined, and the trailer differ.
 */
export interface DeflateContainer {
  header(level: number): Buffer;
  trailer(check: number, size: number): Buffer;
  check: 'crc32' | 'adler32';
  /** The check value of no bytes. */
  initial: number;
  checkOf(data: Uint8Array): number;
  /** The check value of A‖B from check(A), check(B) and len(B). */
  combine(a: number, b: number, lenB: number): number;
}

const GZIP_CONTAINER: DeflateContainer = {
  header: gzipHeader,
  trailer: gzipTrailer,
  check: 'crc32',
  initial: 0,
  checkOf: (data) => crc32Of(data),
  combine: crc32Combine,
};

interface ResolvedOptions {
  level: number;
  workers: number;
  blockSize: number;
}

function resolveOptions(options: GzipOptions): ResolvedOptions {
  const level = options.level ?? 1;
  const workers = options.workers ?? os.availableParallelism();
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new SlipwayError('INVALID_ARGUMENT', `gzip level must be an integer 0..9, got ${level}`);
  }
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `gzip workers must be an integer 1..${MAX_WORKERS}, got ${workers}`,
    );
  }
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK_SIZE) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `gzip blockSize must be an integer 1..${MAX_BLOCK_SIZE}, got ${blockSize}`,
    );
  }
  return { level, workers, blockSize };
}

interface BlockResult {
  crc: number;
  len: number;
  data: Buffer;
  /** The job's input buffer, back from the worker for reuse. */
  spare?: ArrayBuffer;
}

type JobCallback = (result: BlockResult | Error) => void;

/** One worker thread and the jobs it owes answers for. */
class Slot {
  readonly worker: Worker;
  readonly jobs = new Map<number, JobCallback>();
  #dead = false;

  constructor(onGone: (slot: Slot) => void) {
    // execArgv: [] because the worker needs none of the parent's flags, and some
    // (--input-type with -e) make a worker started from a file fail.
    this.worker = new Worker(new URL('./pgzip-worker.js', import.meta.url), {
      workerData: WORKER_MARK,
      execArgv: [],
    });
    // Idle workers must never keep the process alive; ref() only while owing answers.
    this.worker.unref();
    this.worker.on('message', (reply: BlockReply) => {
      const cb = this.jobs.get(reply.id);
      if (cb === undefined) return;
      this.#settle(reply.id);
      if ('error' in reply) {
        const cause = Object.assign(new Error(reply.error), { stack: reply.stack });
        cb(new SlipwayError('INTERNAL', `gzip worker failed: ${reply.error}`, { cause }));
      } else {
        cb({
          crc: reply.crc,
          len: reply.len,
          data: Buffer.from(reply.out, 0, reply.outLen),
          spare: reply.buf,
        });
      }
    });
    const fail = (err: Error): void => {
      if (this.#dead) return;
      this.#dead = true;
      onGone(this);
      const jobs = [...this.jobs.values()];
      this.jobs.clear();
      this.worker.unref();
      for (const cb of jobs) cb(err);
    };
    this.worker.on('error', (err) => {
      fail(new SlipwayError('INTERNAL', `gzip worker failed: ${err.message}`, { cause: err }));
      void this.worker.terminate();
    });
    this.worker.on('messageerror', (err) => {
      fail(
        new SlipwayError('INTERNAL', `gzip worker sent an unreadable message: ${err.message}`, {
          cause: err,
        }),
      );
      void this.worker.terminate();
    });
    this.worker.on('exit', (code) => {
      fail(new SlipwayError('INTERNAL', `gzip worker exited unexpectedly (exit code ${code})`));
    });
  }

  submit(req: BlockRequest, cb: JobCallback): void {
    if (this.jobs.size === 0) this.worker.ref();
    this.jobs.set(req.id, cb);
    this.worker.postMessage(req, [req.buf]);
  }

  #settle(id: number): void {
    this.jobs.delete(id);
    if (this.jobs.size === 0) this.worker.unref();
  }
}

/** The process-wide pool, created on first use and grown to the largest `workers` asked for. */
class Pool {
  #slots: Slot[] = [];
  #nextId = 0;

  submit(workers: number, req: Omit<BlockRequest, 'id'>, cb: JobCallback): void {
    while (this.#slots.length < workers) {
      this.#slots.push(
        new Slot((gone) => {
          this.#slots = this.#slots.filter((s) => s !== gone);
        }),
      );
    }
    // Least busy of the first `workers` slots; streams asking for fewer
    // workers stay on fewer threads.
    let best: Slot | undefined;
    for (let i = 0; i < workers; i++) {
      const s = this.#slots[i];
      if (s !== undefined && (best === undefined || s.jobs.size < best.jobs.size)) best = s;
    }
    if (best === undefined) throw new SlipwayError('INTERNAL', 'gzip worker pool is empty');
    best.submit({ ...req, id: this.#nextId++ }, cb);
  }

  busy(): boolean {
    return this.#slots.some((s) => s.jobs.size > 0);
  }

  failNext(): void {
    this.#slots[0]?.worker.postMessage('fail-next');
  }

  async shutdown(): Promise<void> {
    const slots = this.#slots;
    this.#slots = [];
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

let pool: Pool | undefined;

/**
 * Stops the shared worker threads once they have finished the blocks they
 * hold (they are recreated on next use). Never needed for the process to
 * exit: idle workers are unref()ed.
 *
 * Workers are never terminated mid-block: Node aborts the whole process when
 * a thread is torn down while a zlib handle is half made ("close before init").
 */
export async function shutdownParallelGzip(): Promise<void> {
  const p = pool;
  pool = undefined;
  await parallelGzipIdle(p);
  await p?.shutdown();
}

/** Resolves when no worker holds a block (so the process may exit without tearing down a busy thread). */
export async function parallelGzipIdle(p: Pool | undefined = pool): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (p?.busy() === true && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** For tests: the next block the first worker takes fails, as a broken worker's would. */
export function failNextParallelGzipBlockForTest(): void {
  pool?.failNext();
}

const EMPTY = Buffer.alloc(0);

class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #workers: number;
  readonly #blockSize: number;
  /** Blocks handed out but not yet compressed: 3 per worker keeps each busy while the main thread reads files (measured on layer pack). */
  readonly #maxCompressing: number;
  /** Blocks handed out but not yet pushed: the compressing ones plus finished ones waiting for an earlier block. */
  readonly #maxUnsent: number;
  readonly #blockOp: number;

  /** Input not yet cut into blocks: chunks from #pendingIdx on, the read offset into that one, and the total. */
  #pending: Buffer[] = [];
  #pendingIdx = 0;
  #pendingHead = 0;
  #pendingLen = 0;
  /** The last ≤ 32 KiB of input before the pending bytes: the next block's dictionary. */
  #history: Buffer = EMPTY;

  #nextSeq = 0;
  #nextOut = 0;
  #completed = 0;
  #lastSeq = -1;
  readonly #done = new Map<number, BlockResult>();
  /** Input buffers back from finished jobs, for the next blocks. */
  #spares: ArrayBuffer[] = [];
  readonly #container: DeflateContainer;
  #crc: number;
  #size = 0;

  #heldWrite: TransformCallback | null = null;
  #heldFlush: TransformCallback | null = null;
  #readWanted = true;
  #pumping = false;
  #gone = false;

  constructor(opts: ResolvedOptions, container: DeflateContainer) {
    super({ readableHighWaterMark: opts.blockSize, writableHighWaterMark: opts.blockSize });
    this.#level = opts.level;
    this.#workers = opts.workers;
    this.#blockSize = opts.blockSize;
    this.#maxCompressing = 3 * opts.workers;
    // One extra block per worker lets a fast worker move on while an earlier,
    // slower block holds up the output; measured ~5% faster than none.
    this.#maxUnsent = 4 * opts.workers;
    this.#blockOp = crc32CombineGen(opts.blockSize);
    this.#container = container;
    this.#crc = container.initial;
    this.push(container.header(opts.level));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (chunk.length > 0) {
      this.#pending.push(chunk);
      this.#pendingLen += chunk.length;
    }
    this.#heldWrite = cb;
    this.#pump();
  }

  override _flush(cb: TransformCallback): void {
    if (this.#nextSeq === 0) {
      // Everything fits in one block: no point in a round trip to a worker.
      const data = this.#take(this.#pendingLen);
      this.push(compressBlock(this.#level, undefined, data, true));
      this.push(
        this.#container.trailer(
          data.length === 0 ? this.#container.initial : this.#container.checkOf(data),
          data.length,
        ),
      );
      cb();
      return;
    }
    this.#heldFlush = cb;
    this.#lastSeq = this.#nextSeq;
    this.#dispatch(this.#pendingLen, true);
    this.#drain();
  }

  override _read(size: number): void {
    this.#readWanted = true;
    this.#drain();
    super._read(size);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    // Answers still owed by workers are dropped when they arrive (#gone).
    this.#gone = true;
    this.#pending = [];
    this.#pendingIdx = 0;
    this.#pendingLen = 0;
    this.#history = EMPTY;
    this.#done.clear();
    this.#spares = [];
    this.#heldWrite = null;
    this.#heldFlush = null;
    cb(err);
  }

  /** Cuts full blocks while the window allows, then lets the writer go on once the rest fits in one block. */
  #pump(): void {
    if (this.#pumping || this.#gone) return;
    this.#pumping = true;
    try {
      // Strictly more than a block: a block is only known to be non-final once a byte follows it.
      while (
        this.#pendingLen > this.#blockSize &&
        this.#nextSeq - this.#completed < this.#maxCompressing &&
        this.#nextSeq - this.#nextOut < this.#maxUnsent
      ) {
        if (!this.#dispatch(this.#blockSize, false)) return;
      }
    } finally {
      this.#pumping = false;
    }
    if (this.#heldWrite !== null && this.#pendingLen <= this.#blockSize) {
      const cb = this.#heldWrite;
      this.#heldWrite = null;
      cb();
    }
  }

  /** Cuts the next `len` pending bytes into a block and compresses it; false if that destroyed the stream. */
  #dispatch(len: number, last: boolean): boolean {
    const seq = this.#nextSeq++;
    const dictLen = this.#history.length;
    // A buffer of its own (transferable, unlike pooled Buffers): dictionary then block.
    // Full blocks reuse buffers the workers handed back.
    const need = dictLen + len;
    const spare = this.#spares.pop();
    const ab =
      spare !== undefined && spare.byteLength >= need
        ? spare
        : Buffer.allocUnsafeSlow(last ? need : DICT_SIZE + this.#blockSize).buffer;
    const buf = Buffer.from(ab, 0, need);
    this.#history.copy(buf, 0);
    this.#takeInto(buf, dictLen, len);
    if (!last) this.#history = nextHistory(this.#history, buf.subarray(dictLen));
    const onResult: JobCallback = (r) => {
      if (this.#gone) return;
      if (r instanceof Error) {
        this.destroy(r);
        return;
      }
      this.#completed++;
      this.#done.set(seq, r);
      this.#drain();
    };
    if (this.#workers === 1) {
      let result: BlockResult | Error;
      try {
        const data = buf.subarray(dictLen);
        const dict = dictLen > 0 ? buf.subarray(0, dictLen) : undefined;
        result = {
          crc: this.#container.checkOf(data),
          len,
          data: compressBlock(this.#level, dict, data, last),
          spare: ab,
        };
      } catch (err) {
        result = new SlipwayError('INTERNAL', `gzip failed: ${String(err)}`, { cause: err });
      }
      onResult(result);
      return !this.#gone;
    }
    pool ??= new Pool();
    try {
      pool.submit(
        this.#workers,
        { level: this.#level, buf: ab, dictLen, len, last, check: this.#container.check },
        onResult,
      );
    } catch (err) {
      this.destroy(err instanceof Error ? err : new SlipwayError('INTERNAL', String(err)));
    }
    return !this.#gone;
  }

  /** Pushes finished blocks in order while the reader wants more; ends the member after the last. */
  #drain(): void {
    if (this.#gone) return;
    while (this.#readWanted) {
      const r = this.#done.get(this.#nextOut);
      if (r === undefined) break;
      this.#done.delete(this.#nextOut);
      this.#nextOut++;
      if (r.spare !== undefined && this.#spares.length < this.#maxUnsent) this.#spares.push(r.spare);
      this.#crc =
        r.len === this.#blockSize && this.#container.check === 'crc32'
          ? crc32CombineOp(this.#crc, r.crc, this.#blockOp)
          : this.#container.combine(this.#crc, r.crc, r.len);
      this.#size += r.len;
      if (!this.push(r.data)) this.#readWanted = false;
    }
    if (this.#heldFlush !== null && this.#nextOut > this.#lastSeq) {
      const cb = this.#heldFlush;
      this.#heldFlush = null;
      this.push(this.#container.trailer(this.#crc, this.#size));
      cb();
      return;
    }
    this.#pump();
  }

  /** Copies the next `len` pending bytes into `dst` at `at`. */
  #takeInto(dst: Buffer, at: number, len: number): void {
    let off = at;
    let need = len;
    let i = this.#pendingIdx;
    while (need > 0) {
      const head = this.#pending[i];
      if (head === undefined) throw new SlipwayError('INTERNAL', 'gzip: pending input ran short');
      const n = Math.min(need, head.length - this.#pendingHead);
      head.copy(dst, off, this.#pendingHead, this.#pendingHead + n);
      off += n;
      need -= n;
      this.#pendingHead += n;
      if (this.#pendingHead === head.length) {
        // Drop the consumed chunk now: the array itself is only compacted now and then.
        this.#pending[i] = EMPTY;
        i++;
        this.#pendingHead = 0;
      }
    }
    this.#pendingLen -= len;
    // An index instead of shift(): tiny writes leave tens of thousands of
    // chunks here, and shifting each one out is quadratic.
    if (i === this.#pending.length) {
      this.#pending = [];
      i = 0;
    } else if (i > 1024 && i * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(i);
      i = 0;
    }
    this.#pendingIdx = i;
  }

  #take(len: number): Buffer {
    const buf = Buffer.allocUnsafe(len);
    this.#takeInto(buf, 0, len);
    return buf;
  }
}

function crc32Of(data: Uint8Array): number {
  return zlib.crc32(data);
}

/** The last ≤ 32 KiB of history‖block, copied: the block's own buffer is about to be transferred. */
function nextHistory(history: Buffer, block: Buffer): Buffer {
  if (block.length >= DICT_SIZE) return Buffer.from(block.subarray(block.length - DICT_SIZE));
  const joined = Buffer.concat([history, block]);
  return joined.length > DICT_SIZE ? Buffer.from(joined.subarray(joined.length - DICT_SIZE)) : joined;
}

/**
 * A Transform stream: raw bytes in, one gzip member out. Backpressure
 * respected, bounded memory: at most 3*workers blocks being compressed and
 * 4*workers handed out but not yet pushed, plus one block of pending input.
 */
export function createParallelGzip(options: GzipOptions = {}): Transform {
  return new ParallelGzip(resolveOptions(options), GZIP_CONTAINER);
}

/** The same block machinery in another container (zlib: pzlib.ts). */
export function createParallelDeflate(options: GzipOptions, container: DeflateContainer): Transform {
  return new ParallelGzip(resolveOptions(options), container);
}

/** Ends `stream` with `data` and collects everything it produces. */
export function collectTransform(stream: Transform, data: Uint8Array): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise<Buffer>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      resolve(Buffer.concat(chunks));
    });
    if (data.length > 0) stream.end(data);
    else stream.end();
  });
}

/** Convenience for small buffers (tests, in-memory): same bytes as the stream would produce. */
export async function gzipBuffer(data: Uint8Array, options: GzipOptions = {}): Promise<Buffer> {
  return collectTransform(createParallelGzip(options), data);
}
