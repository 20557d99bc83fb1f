import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { readTarStream } from '../../src/archive/tar-read.js';
import { isSlipwayError } from '../../src/core/errors.js';
import { deterministicHeader, encodeHeader, endOfArchive, paddingFor } from '../../src/formats/tar.js';

function tarOf(files: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of files) {
    parts.push(
      encodeHeader(deterministicHeader(name, 'file', { size: data.length })),
      data,
      paddingFor(data.length),
    );
  }
  parts.push(endOfArchive());
  return Buffer.concat(parts);
}

async function* chunks(data: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) {
    await Promise.resolve();
    yield data.subarray(i, i + size);
  }
}

test('readTarStream: an early stop still hashes every byte, without errors or listener leaks', async () => {
  const big = randomBytes(24 * 1024 * 1024);
  const gz = gzipSync(
    tarOf([
      ['oxide.json', Buffer.from('{"v":"1","t":"os"}\n')],
      ['image/zfs.img', big],
    ]),
    { level: 1 },
  );
  const seen: string[] = [];
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w);
  };
  process.on('warning', onWarning);
  try {
    const r = await readTarStream(
      chunks(gz, 1024 * 1024),
      { entry: (e) => seen.push(e.path), data: () => undefined, entryEnd: () => undefined },
      { where: 'host.tar.gz', enough: () => seen.includes('image/zfs.img') },
    );
    assert.deepEqual(seen, ['oxide.json', 'image/zfs.img']);
    assert.equal(r.size, gz.length);
    assert.equal(r.sha256, createHash('sha256').update(gz).digest('hex'));
    assert.ok(r.tarSize < big.length, 'stopped inflating early');
  } finally {
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', onWarning);
  }
  assert.deepEqual(
    warnings.map((w) => w.message),
    [],
  );
});

test('readTarStream: corrupt and truncated gzip are coded errors', async () => {
  const gz = gzipSync(tarOf([['a', Buffer.alloc(100_000, 1)]]));
  await assert.rejects(
    readTarStream(
      chunks(gz.subarray(0, gz.length - 100)),
      { entry: () => undefined, data: () => undefined, entryEnd: () => undefined },
      { where: 'x' },
    ),
    (err: unknown) => isSlipwayError(err, 'GZIP_TRUNCATED') && err.where === 'x',
  );
  const bad = Buffer.from(gz);
  bad[20] = (bad[20] ?? 0) ^ 0xff;
  await assert.rejects(
    readTarStream(
      chunks(bad),
      { entry: () => undefined, data: () => undefined, entryEnd: () => undefined },
      { where: 'y' },
    ),
    (err: unknown) =>
      (isSlipwayError(err) && err.code.startsWith('GZIP_')) || isSlipwayError(err, 'TAR_HEADER_INVALID'),
  );
});
