/**
 * Parallel gzip vs pigz on one file, level 1, interleaved runs.
 * Usage: node dist/bench/gzip-speed.js [file=/tmp/lib.tar] [runs=3] [workers=2] [--verify]
 * (make a test file with `tar -cf /tmp/lib.tar -C /usr/lib x86_64-linux-gnu`)
 * --verify pipes our output through `pigz -dc` and compares SHA-256 with the input.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createParallelGzip } from '../src/archive/pgzip.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const verify = process.argv.includes('--verify');
const file = args[0] ?? '/tmp/lib.tar';
const runs = Number(args[1] ?? 3);
const workers = Number(args[2] ?? 2);

function counter(): { sink: Writable; bytes: () => number } {
  let n = 0;
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      cb();
    },
  });
  return { sink, bytes: () => n };
}

async function ours(): Promise<{ ms: number; bytes: number }> {
  const t = performance.now();
  const { sink, bytes } = counter();
  await pipeline(
    fs.createReadStream(file, { highWaterMark: 1 << 20 }),
    createParallelGzip({ level: 1, workers }),
    sink,
  );
  return { ms: performance.now() - t, bytes: bytes() };
}

/** pigz straight to /dev/null, so nothing of ours sits in its pipeline. */
async function pigz(): Promise<{ ms: number }> {
  const devNull = fs.openSync('/dev/null', 'w');
  try {
    const t = performance.now();
    const child = spawn('pigz', [`-p${workers}`, '-1', '-c', file], {
      stdio: ['ignore', devNull, 'inherit'],
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`pigz exited with ${String(code)}`);
    return { ms: performance.now() - t };
  } finally {
    fs.closeSync(devNull);
  }
}

async function pigzSize(): Promise<number> {
  const child = spawn('pigz', [`-p${workers}`, '-1', '-c', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const { sink, bytes } = counter();
  await pipeline(child.stdout, sink);
  return bytes();
}

async function verifyRoundTrip(): Promise<void> {
  const want = createHash('sha256');
  await pipeline(fs.createReadStream(file), want);
  const child = spawn('pigz', ['-dc'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const got = createHash('sha256');
  await Promise.all([
    pipeline(fs.createReadStream(file), createParallelGzip({ level: 1, workers }), child.stdin),
    pipeline(child.stdout, got),
  ]);
  const [a, b] = [want.digest('hex'), got.digest('hex')];
  console.log(a === b ? `verify: ok (${a})` : `verify: MISMATCH ${a} != ${b}`);
  if (a !== b) process.exitCode = 1;
}

const size = fs.statSync(file).size;
console.log(`${file}: ${(size / 2 ** 20).toFixed(1)} MiB, level 1, ${workers} workers, ${runs} runs`);
console.log(`pigz -p${workers} -1 output: ${await pigzSize()} B`);
for (let i = 0; i < runs; i++) {
  const p = await pigz();
  const o = await ours();
  console.log(
    `run ${i + 1}: pigz -p${workers} -1 ${(p.ms / 1000).toFixed(2)} s   ours ${(o.ms / 1000).toFixed(2)} s (${o.bytes} B)`,
  );
}
if (verify) await verifyRoundTrip();
