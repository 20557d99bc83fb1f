import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';

export type DigestAlgorithm = 'sha256' | 'sha1' | 'md5';
export type Digests = Partial<Record<DigestAlgorithm, string>>;

/** Several digests of one byte stream, computed in a single pass. */
export class MultiDigest {
  readonly #hashes: [DigestAlgorithm, Hash][];
  #length = 0;

  constructor(algorithms: readonly DigestAlgorithm[] = ['sha256']) {
    this.#hashes = algorithms.map((a) => [a, createHash(a)]);
  }

  update(chunk: Uint8Array): void {
    this.#length += chunk.length;
    for (const [, h] of this.#hashes) h.update(chunk);
  }

  get length(): number {
    return this.#length;
  }

  /** Hex digests; call once, at the end. */
  digest(): Digests {
    const out: Digests = {};
    for (const [a, h] of this.#hashes) out[a] = h.digest('hex');
    return out;
  }
}

/**
 * A pass-through stream that hashes what flows through it; `digests` and
 * `length` are valid once the stream has ended.
 */
export class DigestStream extends Transform {
  readonly #md: MultiDigest;
  #result: Digests | undefined;

  constructor(algorithms: readonly DigestAlgorithm[] = ['sha256']) {
    super();
    this.#md = new MultiDigest(algorithms);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#md.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#result = this.#md.digest();
    cb();
  }

  get length(): number {
    return this.#md.length;
  }

  get digests(): Digests {
    if (this.#result === undefined) throw new Error('DigestStream: digests read before the stream ended');
    return this.#result;
  }
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of a whole file, read synchronously in 1 MiB pieces (on a worker thread, or where blocking is fine). */
export function sha256FileSync(file: string): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}
