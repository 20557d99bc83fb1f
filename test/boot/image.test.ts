import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import { parallelGzipIdle } from '../../src/archive/pgzip.js';
import { adler32, adler32Combine, zlibBuffer, zlibHeader } from '../../src/archive/pzlib.js';
import { lookimage, mkimage } from '../../src/boot/index.js';
import { isSlipwayError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/tmp.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/slipway.js');
const tmp = tempDir('slipway-boot-');
const MiB = 1024 * 1024;

after(async () => {
  await parallelGzipIdle();
});

function slipway(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Compressible but not trivial: text lines, random runs, zero runs. */
function mixed(size: number): Buffer {
  const parts: Buffer[] = [];
  let n = 0;
  let i = 0;
  while (n < size) {
    const p =
      i % 3 === 0
        ? Buffer.from(`line ${i} /usr/lib/amd64/libc.so.1 ${i * 7919}\n`.repeat(50))
        : i % 3 === 1
          ? randomBytes(3000)
          : Buffer.alloc(5000);
    parts.push(p);
    n += p.length;
    i++;
  }
  return Buffer.concat(parts).subarray(0, size);
}

const raw = path.join(tmp, 'mixed.raw');
const rawData = mixed(3 * MiB + 12345);
fs.writeFileSync(raw, rawData);
const rawSha = createHash('sha256').update(rawData).digest('hex');

/** The file names in tmp, to assert nothing (not even a temp file) was left behind. */
function listing(): string[] {
  return fs.readdirSync(tmp).sort();
}

async function expectReject(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isSlipwayError(err), `not a SlipwayError: ${String(err)}`);
    assert.equal(err.code, code);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

test('adler32 and hand-written adler32Combine agree with zlib', () => {
  const data = mixed(200_000);
  // zlib's own Adler-32 is the trailer of a zlib stream.
  const ref = zlib.deflateSync(data).readUInt32BE(zlib.deflateSync(data).length - 4);
  assert.equal(adler32(data), ref);
  assert.equal(adler32(Buffer.alloc(0)), 1);
  assert.equal(adler32(Buffer.from('Wikipedia')), 0x11e60398);
  for (const cut of [0, 1, 3799, 3800, 65521, 65522, 131072, 199_999, 200_000]) {
    const a = data.subarray(0, cut);
    const b = data.subarray(cut);
    assert.equal(adler32Combine(adler32(a), adler32(b), b.length), ref, `cut ${cut}`);
  }
  // Lengths beyond 2^32 (multi-GiB images): only len mod 65521 matters.
  assert.equal(adler32Combine(0x12345678, 1, 65521 * 70000), adler32Combine(0x12345678, 1, 0));
});

test('zlib header bytes per level, as zlib writes them', () => {
  for (const level of [0, 1, 2, 5, 6, 7, 9]) {
    const ours = zlibHeader(level);
    const theirs = zlib.deflateSync(Buffer.from('x'), { level }).subarray(0, 2);
    assert.deepEqual(ours, theirs, `level ${level}`);
  }
  assert.deepEqual([...zlibHeader(9)], [0x78, 0xda]);
});

test('parallel zlib: valid stream, same bytes for 1 and 2 workers and any block size split', async () => {
  const data = mixed(1 * MiB + 777);
  const one = await zlibBuffer(data, { workers: 1 });
  const two = await zlibBuffer(data, { workers: 2 });
  const four = await zlibBuffer(data, { workers: 4 });
  assert.deepEqual(one, two);
  assert.deepEqual(one, four);
  assert.deepEqual(zlib.inflateSync(one), data);
  assert.deepEqual(zlib.inflateSync(await zlibBuffer(Buffer.alloc(0))), Buffer.alloc(0));
  assert.deepEqual(zlib.inflateSync(await zlibBuffer(Buffer.from('small'))), Buffer.from('small'));
});

test('mkimage plain: header fields, payload, -O checksum, lookimage passes', async () => {
  const out = path.join(tmp, 'plain.img');
  const csum = path.join(tmp, 'plain.sum');
  const r = await mkimage({ input: raw, output: out, checksumOutput: csum, name: 'ci', targetMiB: 8 });
  const img = fs.readFileSync(out);
  assert.equal(img.length, 4096 + rawData.length);
  assert.deepEqual([...img.subarray(0, 8)], [0x75, 0x00, 0xeb, 0x1d, 2, 0, 0, 0]);
  assert.equal(img.readBigUInt64LE(0x08), 0n);
  assert.equal(img.readBigUInt64LE(0x10), BigInt(rawData.length));
  assert.equal(img.readBigUInt64LE(0x18), BigInt(rawData.length));
  assert.equal(img.readBigUInt64LE(0x20), 8n * 1048576n);
  assert.equal(img.subarray(0x28, 0x48).toString('hex'), rawSha);
  assert.deepEqual(img.subarray(4096), rawData);
  assert.equal(fs.readFileSync(csum).toString('hex'), rawSha);
  assert.equal(r.header.name, 'ci');
  const look = await lookimage(out);
  assert.equal(look.verified, true);
});

test('mkimage -z: peers inflate it, deterministic across workers, lookimage passes', async () => {
  const a = path.join(tmp, 'z1.img');
  const b = path.join(tmp, 'z2.img');
  await mkimage({ input: raw, output: a, compress: true, workers: 1, name: 'z' });
  await mkimage({ input: raw, output: b, compress: true, workers: 2, name: 'z' });
  const img = fs.readFileSync(a);
  assert.deepEqual(img, fs.readFileSync(b));
  assert.equal(img.readBigUInt64LE(0x08), 1n);
  assert.equal(img.readBigUInt64LE(0x10), BigInt(img.length - 4096));
  assert.equal(img.readBigUInt64LE(0x18), BigInt(rawData.length));
  assert.deepEqual([...img.subarray(4096, 4098)], [0x78, 0xda]);
  const payload = path.join(tmp, 'z1.payload');
  fs.writeFileSync(payload, img.subarray(4096));
  const py = spawnSync(
    'python3',
    [
      '-c',
      'import zlib,sys,hashlib; print(hashlib.sha256(zlib.decompress(sys.stdin.buffer.read())).hexdigest())',
    ],
    { input: img.subarray(4096), encoding: 'utf8' },
  );
  assert.equal(py.status, 0, py.stderr);
  assert.equal(py.stdout.trim(), rawSha);
  const pigz = spawnSync('pigz', ['-d', '-z', '-c', payload], { maxBuffer: 64 * MiB });
  assert.equal(pigz.status, 0, pigz.stderr.toString());
  assert.equal(createHash('sha256').update(pigz.stdout).digest('hex'), rawSha);
  fs.rmSync(payload);
  assert.equal((await lookimage(a)).verified, true);
});

test('mkimage refusals write nothing', async () => {
  const before = listing();
  const big = path.join(tmp, 'big.raw');
  fs.writeFileSync(big, Buffer.alloc(MiB + 1));
  const out = path.join(tmp, 'refused.img');
  const sum = path.join(tmp, 'refused.sum');
  await expectReject(
    mkimage({ input: big, output: out, checksumOutput: sum, targetMiB: 1 }),
    'BOOTIMAGE_TOO_LARGE',
    /larger than the target size 1048576/,
  );
  await expectReject(
    mkimage({ input: raw, output: out, checksumOutput: sum, name: 'n'.repeat(128) }),
    'BOOTIMAGE_NAME_TOO_LONG',
  );
  await expectReject(
    mkimage({ input: raw, output: out, dataset: 'é'.repeat(64) }),
    'BOOTIMAGE_NAME_TOO_LONG',
  );
  await expectReject(mkimage({ input: path.join(tmp, 'nope.raw'), output: out }), 'NOT_FOUND');
  // Not a plain file: the limit is enforced while streaming, for both payload kinds.
  for (const compress of [false, true]) {
    await expectReject(
      mkimage({ input: '/dev/zero', output: out, checksumOutput: sum, targetMiB: 1, compress }),
      'BOOTIMAGE_TOO_LARGE',
      /at least/,
    );
  }
  fs.rmSync(big);
  assert.deepEqual(listing(), before);
});

test('lookimage rejects damaged images with the reference texts', async () => {
  const good = path.join(tmp, 'plain.img');
  const goodZ = path.join(tmp, 'z1.img');
  const img = fs.readFileSync(good);
  const imgZ = fs.readFileSync(goodZ);
  const write = (name: string, data: Buffer): string => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, data);
    return p;
  };
  const before = listing();
  const n = rawData.length;

  const trunc = write('trunc.img', img.subarray(0, img.length - 100));
  await expectReject(
    lookimage(trunc),
    'BOOTIMAGE_TRUNCATED',
    new RegExp(`^read ${n - 100} bytes of image, but header says there should be ${n}$`),
  );
  // -s skips the payload, so a truncated image passes.
  assert.equal((await lookimage(trunc, { skipChecksum: true })).verified, false);

  const corrupt = Buffer.from(img);
  corrupt[5000] = (corrupt[5000] ?? 0) ^ 1;
  await expectReject(
    lookimage(write('corrupt.img', corrupt)),
    'BOOTIMAGE_CHECKSUM_MISMATCH',
    /checksum mismatch/,
  );

  const truncZ = write('truncz.img', imgZ.subarray(0, 4096 + 1000));
  await expectReject(
    lookimage(truncZ),
    'BOOTIMAGE_TRUNCATED',
    new RegExp(`^read \\d+ bytes of image, but header says there should be ${n}$`),
  );
  const corruptZ = Buffer.from(imgZ);
  corruptZ[4096 + 20000] = (corruptZ[4096 + 20000] ?? 0) ^ 0xff;
  await assert.rejects(lookimage(write('corruptz.img', corruptZ)), (err: unknown) => {
    assert.ok(isSlipwayError(err));
    assert.ok(['BOOTIMAGE_CORRUPT', 'BOOTIMAGE_CHECKSUM_MISMATCH', 'BOOTIMAGE_TRUNCATED'].includes(err.code));
    return true;
  });

  const zeroData = Buffer.from(img);
  zeroData.writeBigUInt64LE(0n, 0x10);
  await expectReject(lookimage(write('zerodata.img', zeroData)), 'BOOTIMAGE_INVALID', /data size is 0/);
  const badMagic = Buffer.from(img);
  badMagic[3] = 0;
  await expectReject(lookimage(write('magic.img', badMagic)), 'BOOTIMAGE_INVALID', /magic/);
  const tooBig = Buffer.from(img);
  tooBig.writeBigUInt64LE(1n << 40n, 0x18);
  await expectReject(lookimage(write('toobig.img', tooBig)), 'BOOTIMAGE_INVALID', /larger than target/);
  const badName = Buffer.from(img);
  badName[0xc8] = 0xfe;
  await expectReject(lookimage(write('badname.img', badName)), 'BOOTIMAGE_INVALID', /UTF-8/);
  await expectReject(lookimage(write('short.img', img.subarray(0, 100))), 'BOOTIMAGE_INVALID', /100 bytes/);

  // Checking writes nothing.
  const after = listing().filter((f) => !before.includes(f));
  assert.deepEqual(after.sort(), [
    'badname.img',
    'corrupt.img',
    'corruptz.img',
    'magic.img',
    'short.img',
    'toobig.img',
    'trunc.img',
    'truncz.img',
    'zerodata.img',
  ]);
});

test('CLI: mkimage/lookimage output lines, exit codes, --json', () => {
  const zero = path.join(tmp, 'zero.raw');
  fs.writeFileSync(zero, Buffer.alloc(4 * MiB));
  let r = slipway('boot', 'mkimage', '-i', 'zero.raw', '-o', 'ci.img', '-N', 'ci', '-z');
  assert.equal(r.code, 0, r.stderr);
  r = slipway('boot', 'lookimage', 'ci.img');
  assert.equal(r.code, 0, r.stderr);
  const dataSize = fs.statSync(path.join(tmp, 'ci.img')).size - 4096;
  assert.deepEqual(r.stdout.split('\n'), [
    'image name = ci',
    'flags = 0x1 (COMPRESSED)',
    `data size = ${dataSize}`,
    'image size = 4194304',
    'target size = 4294967296',
    'image sum = bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8',
    'dataset name = rpool/ROOT/ramdisk',
    `ratio = ${(4194304 / dataSize).toFixed(2)}x`,
    '',
  ]);
  r = slipway('--json', 'boot', 'lookimage', '--skip-checksum', 'ci.img');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { verified: boolean; header: { imageSize: number; compressed: boolean } };
  assert.equal(j.verified, false);
  assert.equal(j.header.imageSize, 4194304);

  r = slipway('boot', 'mkimage', '-i', 'zero.raw', '-o', 'small.img', '-s', '3');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error\[BOOTIMAGE_TOO_LARGE\]/);
  assert.equal(fs.existsSync(path.join(tmp, 'small.img')), false);

  fs.writeFileSync(path.join(tmp, 'bad.img'), Buffer.alloc(5000));
  r = slipway('boot', 'lookimage', 'bad.img');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error\[BOOTIMAGE_INVALID\]/);
  r = slipway('boot', 'mkimage', '-o', 'x.img');
  assert.equal(r.code, 2);
});
