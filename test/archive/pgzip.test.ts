import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import { crc32Combine } from '../../src/archive/crc32-combine.js';
import {
  createParallelGzip,
  gzipBuffer,
  gzipHeader,
  failNextParallelGzipBlockForTest,
  parallelGzipIdle,
  type GzipOptions,
} from '../../src/archive/pgzip.js';
import { isSlipwayError } from '../../src/core/errors.js';

const KiB = 1024;

/** Deterministic xorshift32 bytes, so failures reproduce. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Random, text-like and zero runs mixed, so blocks differ in how well they compress. */
function mixedData(size: number, seed = 1): Buffer {
  const rnd = prng(seed);
  const out = Buffer.alloc(size);
  const words = ['usr', 'lib', 'x86_64', 'linux', 'gnu', 'so', 'omicron', 'zone', '\n', ' ', '/'];
  let off = 0;
  while (off < size) {
    const kind = rnd() % 3;
    const run = Math.min(size - off, 1 + (rnd() % (40 * KiB)));
    if (kind === 0) for (let i = 0; i < run; i++) out[off + i] = rnd() & 0xff;
    else if (kind === 1) {
      let i = 0;
      while (i < run) {
        const w = words[rnd() % words.length] ?? ' ';
        i += out.write(w, off + i, Math.min(w.length, run - i), 'latin1');
      }
    } // kind 2: zeros (Buffer.alloc)
    off += run;
  }
  return out;
}

/** Writes `data` into a fresh stream in pieces of 1..maxChunk bytes and collects the output. */
async function gzipChunked(data: Buffer, options: GzipOptions, maxChunk: number, seed = 7): Promise<Buffer> {
  const rnd = prng(seed);
  const pieces: Buffer[] = [];
  for (let off = 0; off < data.length;) {
    const n = 1 + (rnd() % maxChunk);
    pieces.push(data.subarray(off, off + n));
    off += n;
  }
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(pieces),
    createParallelGzip(options),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

function hasTool(name: string): boolean {
  return spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0;
}

test('gzip header matches flate2 GzEncoder: mtime 0, XFL by level, OS 255', () => {
  assert.deepEqual([...gzipHeader(1)], [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xff]);
  assert.deepEqual([...gzipHeader(6)], [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]);
  assert.deepEqual([...gzipHeader(9)], [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xff]);
  assert.deepEqual([...gzipHeader(0)], [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xff]);
});

test('crc32Combine agrees with zlib.crc32 over the concatenation', () => {
  const data = mixedData(300 * KiB, 3);
  for (const cut of [0, 1, 17, 4096, 65536, 100_000, data.length - 1, data.length]) {
    const a = data.subarray(0, cut);
    const b = data.subarray(cut);
    assert.equal(crc32Combine(zlib.crc32(a), zlib.crc32(b), b.length), zlib.crc32(data), `cut at ${cut}`);
  }
});

test('empty input: header, one final empty block, zero trailer', async () => {
  const gz = await gzipBuffer(new Uint8Array(0));
  assert.deepEqual(
    [...gz],
    [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x04, 0xff, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0],
  );
  assert.equal(zlib.gunzipSync(gz).length, 0);
  const viaStream = await gzipChunked(Buffer.alloc(0), { workers: 2 }, 1);
  assert.deepEqual(viaStream, gz);
});

test('round trips through zlib.gunzipSync at block edges and on mixed data', async () => {
  const block = 128 * KiB;
  const cases: [string, Buffer][] = [
    ['1 byte', Buffer.from([0x42])],
    ['one block', mixedData(block, 11)],
    ['block+1', mixedData(block + 1, 12)],
    ['two blocks', mixedData(2 * block, 13)],
    ['3 MiB mixed', mixedData(3 * 1024 * KiB, 14)],
  ];
  for (const [name, data] of cases) {
    for (const workers of [1, 2]) {
      const gz = await gzipBuffer(data, { workers });
      assert.deepEqual(gz.subarray(0, 10), gzipHeader(1), name);
      assert.equal(gz.readUInt32LE(gz.length - 8), zlib.crc32(data), `${name}: CRC`);
      assert.equal(gz.readUInt32LE(gz.length - 4), data.length, `${name}: ISIZE`);
      assert.ok(zlib.gunzipSync(gz).equals(data), `${name}, ${workers} workers`);
    }
  }
  // Blocks smaller than the 32 KiB window take their dictionary from several blocks back.
  const small = mixedData(200 * KiB, 15);
  for (const level of [0, 6, 9]) {
    const gz = await gzipBuffer(small, { level, blockSize: 5000, workers: 2 });
    assert.ok(zlib.gunzipSync(gz).equals(small), `level ${level}, 5000-byte blocks`);
  }
});

test('gzip -t and pigz -dc accept the output', { skip: !hasTool('gzip') || !hasTool('pigz') }, async () => {
  const data = mixedData(2 * 1024 * KiB + 333, 21);
  const gz = await gzipBuffer(data, { workers: 2 });
  const t = spawnSync('gzip', ['-t'], { input: gz });
  assert.equal(t.status, 0, t.stderr.toString());
  const g = spawnSync('gzip', ['-dc'], { input: gz, maxBuffer: 64 << 20 });
  assert.equal(g.status, 0, g.stderr.toString());
  assert.ok(g.stdout.equals(data), 'gzip -dc gives back the input');
  const p = spawnSync('pigz', ['-dc'], { input: gz, maxBuffer: 64 << 20 });
  assert.equal(p.status, 0, p.stderr.toString());
  assert.ok(p.stdout.equals(data), 'pigz -dc gives back the input');
});

test('output is identical across worker counts and write chunkings', async () => {
  const data = mixedData(640 * KiB + 12_345, 31);
  for (const opts of [{ level: 1 }, { level: 6, blockSize: 64 * KiB }, { level: 1, blockSize: 10_000 }]) {
    const reference = await gzipBuffer(data, { ...opts, workers: 1 });
    assert.ok(zlib.gunzipSync(reference).equals(data));
    for (const workers of [1, 2, 4]) {
      const whole = await gzipBuffer(data, { ...opts, workers });
      assert.deepEqual(whole, reference, `one chunk, ${workers} workers, ${JSON.stringify(opts)}`);
    }
    for (const [workers, maxChunk] of [
      [2, 7],
      [4, 257],
      [1, 100_000],
    ] as const) {
      const chunked = await gzipChunked(data, { ...opts, workers }, maxChunk, workers * 1000 + maxChunk);
      assert.deepEqual(
        chunked,
        reference,
        `chunks of 1..${maxChunk}, ${workers} workers, ${JSON.stringify(opts)}`,
      );
    }
  }
});

test('backpressure: an unread stream stops pulling input after a bounded amount', async () => {
  const blockSize = 32 * KiB;
  const workers = 2;
  const pieceSize = 16 * KiB;
  let produced = 0;
  const total = 256; // 4 MiB of input if it were all pulled
  // Incompressible input, so the readable side fills as fast as blocks complete
  // (compressible input may rightly pull more before the output buffer is full).
  const source = Readable.from(
    (function* () {
      for (let i = 0; i < total; i++) {
        produced += pieceSize;
        yield randomBytes(pieceSize);
      }
    })(),
  );
  const gz = createParallelGzip({ blockSize, workers });
  source.pipe(gz);
  await new Promise((r) => setTimeout(r, 200));
  // Handed out but unsent (3 per worker), one block pending, one pushed past the readable
  // high-water mark, the stream's own buffers, and Readable.from's 16-item buffer.
  const bound =
    (3 * workers + 2) * blockSize + gz.readableHighWaterMark + gz.writableHighWaterMark + 17 * pieceSize;
  assert.ok(produced < bound, `pulled ${produced} bytes while nobody read, bound ${bound}`);
  let out = 0;
  gz.on('data', (c: Buffer) => (out += c.length));
  await once(gz, 'end');
  assert.equal(produced, total * pieceSize);
  assert.ok(out > 0);
});

test('destroying the stream mid-way ends cleanly and the pool stays usable', async () => {
  const data = mixedData(4 * 1024 * KiB, 51);
  const gz = createParallelGzip({ workers: 2, blockSize: 64 * KiB });
  gz.write(data);
  let seen = 0;
  for await (const chunk of gz as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > 100 * KiB) break; // breaking out of for-await destroys the stream
  }
  assert.ok(gz.destroyed);
  // A failing source rejects the pipeline instead of hanging.
  const failing = new Readable({
    read() {
      this.push(data.subarray(0, 300 * KiB));
      this.destroy(new Error('source broke'));
    },
  });
  await assert.rejects(
    pipeline(
      failing,
      createParallelGzip({ workers: 2 }),
      new Writable({
        write: (_c, _e, cb) => {
          cb();
        },
      }),
    ),
    /source broke/,
  );
  const small = mixedData(500 * KiB, 52);
  assert.ok(zlib.gunzipSync(await gzipBuffer(small, { workers: 2 })).equals(small));
});

test('a failing worker surfaces as a stream error, and the pool goes on', async () => {
  const data = mixedData(2 * 1024 * KiB, 61);
  // Make sure the pool's workers exist, then arm the first one to fail its next block.
  assert.ok(zlib.gunzipSync(await gzipBuffer(data, { workers: 2 })).equals(data));
  failNextParallelGzipBlockForTest();
  const gz = createParallelGzip({ workers: 2, blockSize: 64 * KiB });
  gz.resume();
  const failed = once(gz, 'error');
  gz.write(data);
  const [err] = (await failed) as [unknown];
  assert.ok(isSlipwayError(err, 'INTERNAL'), String(err));
  assert.ok(zlib.gunzipSync(await gzipBuffer(data, { workers: 2 })).equals(data));
});

test('bad options are rejected with INVALID_ARGUMENT', async () => {
  assert.throws(
    () => createParallelGzip({ level: 10 }),
    (e) => isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => createParallelGzip({ workers: 0 }),
    (e) => isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => createParallelGzip({ blockSize: 1.5 }),
    (e) => isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
  await assert.rejects(gzipBuffer(Buffer.alloc(1), { level: -1 }), (e) =>
    isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
});

test('the worker pool never keeps the process alive', () => {
  const mod = fileURLToPath(new URL('../../src/archive/pgzip.js', import.meta.url));
  const script = `
    const { gzipBuffer } = await import(${JSON.stringify(mod)});
    const data = Buffer.alloc(3 << 20, 'abc');
    const gz = await gzipBuffer(data, { workers: 2, blockSize: 65536 });
    process.stdout.write(String(gz.length));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
  assert.equal(r.signal, null, 'child had to be killed: something kept it alive');
  assert.equal(r.status, 0, r.stderr.toString());
  assert.ok(Number(r.stdout.toString()) > 0);
});

// Leave no worker busy when this file's process exits (see shutdownParallelGzip).
after(async () => {
  await parallelGzipIdle();
});

test('memory stays flat: consumed input is released while the stream runs', async () => {
  const chunk = mixedData(1024 * KiB, 71);
  const gz = createParallelGzip({ workers: 2 });
  gz.resume();
  const before = process.memoryUsage().arrayBuffers;
  let peak = 0;
  // 192 MiB through in 1 MiB writes; without release the input would pile up.
  for (let i = 0; i < 192; i++) {
    if (!gz.write(Buffer.from(chunk))) await once(gz, 'drain');
    if (i % 16 === 0) {
      (globalThis as { gc?: () => void }).gc?.();
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
    }
  }
  gz.end();
  await once(gz, 'end');
  assert.ok(peak < 96 * 1024 * KiB, `array buffers grew by ${Math.round(peak / 1048576)} MiB`);
});
