import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { isSlipwayError, SlipwayError } from '../../src/core/errors.js';
import {
  checkPayloadSizes,
  decodeBootImageHeader,
  encodeBootImageHeader,
  formatLookimage,
  type BootImageHeader,
} from '../../src/formats/bootimage.js';

const MiB = 1024 * 1024;
const ZERO_4M_SHA = createHash('sha256')
  .update(Buffer.alloc(4 * MiB))
  .digest();

/**
 * A header built by hand from the spec's offset table (not by the encoder):
 * 4 MiB of zeros named `ci`, default dataset and target size.
 */
function specHeader(): Buffer {
  const b = Buffer.alloc(4096);
  b.set([0x75, 0x00, 0xeb, 0x1d], 0x000);
  b.set([2, 0, 0, 0], 0x004);
  // flags 0; data_size = image_size = 0x400000; target = 4096 MiB = 0x1_0000_0000
  b.set([0, 0, 0x40, 0, 0, 0, 0, 0], 0x010);
  b.set([0, 0, 0x40, 0, 0, 0, 0, 0], 0x018);
  b.set([0, 0, 0, 0, 1, 0, 0, 0], 0x020);
  b.set(ZERO_4M_SHA, 0x028);
  b.write('rpool/ROOT/ramdisk', 0x048, 'ascii');
  b.write('ci', 0x0c8, 'ascii');
  return b;
}

const ciHeader: BootImageHeader = {
  flags: 0n,
  dataSize: 4194304n,
  imageSize: 4194304n,
  targetSize: 4096n * 1048576n,
  sha256: ZERO_4M_SHA,
  dataset: 'rpool/ROOT/ramdisk',
  name: 'ci',
};

test('encoder writes every field at the spec offsets', () => {
  const enc = encodeBootImageHeader(ciHeader);
  assert.equal(enc.length, 4096);
  assert.deepEqual([...enc.subarray(0, 4)], [0x75, 0x00, 0xeb, 0x1d]);
  assert.deepEqual([...enc.subarray(4, 8)], [2, 0, 0, 0]);
  assert.deepEqual([...enc.subarray(8, 16)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...enc.subarray(0x10, 0x18)], [0, 0, 0x40, 0, 0, 0, 0, 0]);
  assert.deepEqual([...enc.subarray(0x18, 0x20)], [0, 0, 0x40, 0, 0, 0, 0, 0]);
  assert.deepEqual([...enc.subarray(0x20, 0x28)], [0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(
    enc.subarray(0x28, 0x48).toString('hex'),
    'bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8',
  );
  const dataset = Buffer.alloc(128);
  dataset.write('rpool/ROOT/ramdisk');
  assert.deepEqual(enc.subarray(0x48, 0xc8), dataset);
  const name = Buffer.alloc(128);
  name.write('ci');
  assert.deepEqual(enc.subarray(0xc8, 0x148), name);
  assert.ok(
    enc.subarray(0x148).every((x) => x === 0),
    'tail is zero',
  );
  assert.deepEqual(enc, specHeader());
});

test('decoder reads the hand-built header', () => {
  const h = decodeBootImageHeader(specHeader());
  assert.deepEqual({ ...h, sha256: Buffer.from(h.sha256) }, { ...ciHeader, sha256: ZERO_4M_SHA });
  // Extra bytes after the header (the payload) are ignored.
  const withPayload = Buffer.concat([specHeader(), Buffer.alloc(10, 7)]);
  assert.equal(decodeBootImageHeader(withPayload).name, 'ci');
});

test('round trip with compressed flag, UTF-8 names, and the largest name', () => {
  const h: BootImageHeader = {
    ...ciHeader,
    flags: 1n | (1n << 63n),
    dataSize: 123n,
    name: 'ramdisk-ä-'.padEnd(126, 'x'), // 'ä' is 2 bytes: 127 bytes total
    dataset: 'rpool/ROOT/ärd',
  };
  assert.equal(Buffer.byteLength(h.name), 127);
  const back = decodeBootImageHeader(encodeBootImageHeader(h));
  assert.deepEqual({ ...back, sha256: Buffer.from(back.sha256) }, { ...h, sha256: Buffer.from(h.sha256) });
});

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSlipwayError(err), `not a SlipwayError: ${String(err)}`);
    assert.equal(err.code, code);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

test('encoder refuses names of 128 bytes or with NUL', () => {
  expectCode(() => encodeBootImageHeader({ ...ciHeader, name: 'x'.repeat(128) }), 'BOOTIMAGE_NAME_TOO_LONG');
  expectCode(
    () => encodeBootImageHeader({ ...ciHeader, dataset: 'é'.repeat(64) }),
    'BOOTIMAGE_NAME_TOO_LONG',
  );
  expectCode(() => encodeBootImageHeader({ ...ciHeader, name: 'a\0b' }), 'BOOTIMAGE_NAME_INVALID');
});

test('hostile headers are rejected with BOOTIMAGE_INVALID', () => {
  const mut = (f: (b: Buffer) => void): Buffer => {
    const b = specHeader();
    f(b);
    return b;
  };
  expectCode(() => decodeBootImageHeader(specHeader().subarray(0, 4095)), 'BOOTIMAGE_INVALID', /4095 bytes/);
  expectCode(() => decodeBootImageHeader(mut((b) => (b[0] = 0x76))), 'BOOTIMAGE_INVALID', /magic/);
  expectCode(() => decodeBootImageHeader(mut((b) => (b[4] = 1))), 'BOOTIMAGE_INVALID', /version 1/);
  expectCode(
    () => decodeBootImageHeader(mut((b) => b.writeBigUInt64LE(4097n * 1048576n, 0x18))),
    'BOOTIMAGE_INVALID',
    /larger than target/,
  );
  expectCode(
    () => decodeBootImageHeader(mut((b) => (b[0xc8] = 0xff))),
    'BOOTIMAGE_INVALID',
    /image name.*UTF-8/,
  );
  expectCode(
    () => decodeBootImageHeader(mut((b) => (b[0x48] = 0xc3))),
    'BOOTIMAGE_INVALID',
    /dataset name.*UTF-8/,
  );
  expectCode(
    () => decodeBootImageHeader(mut((b) => b.fill(0x61, 0xc8, 0x148))),
    'BOOTIMAGE_INVALID',
    /NUL-terminated/,
  );
  // Size checks lookimage makes before reading the payload.
  const zeroData = decodeBootImageHeader(mut((b) => b.writeBigUInt64LE(0n, 0x10)));
  expectCode(
    () => {
      checkPayloadSizes(zeroData);
    },
    'BOOTIMAGE_INVALID',
    /data size is 0/,
  );
  const bigData = decodeBootImageHeader(mut((b) => b.writeBigUInt64LE(4194305n, 0x10)));
  expectCode(
    () => {
      checkPayloadSizes(bigData);
    },
    'BOOTIMAGE_INVALID',
    /smaller than data size/,
  );
});

test('fuzz: 3000 random header mutations only ever throw SlipwayError', () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const base = encodeBootImageHeader({ ...ciHeader, name: 'fuzz', flags: 1n, dataSize: 1000n });
  let ok = 0;
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(base);
    const edits = 1 + rnd(8);
    for (let e = 0; e < edits; e++) {
      // Mostly the meaningful first 0x148 bytes, sometimes the tail.
      const at = rnd(10) < 9 ? rnd(0x148) : rnd(4096);
      b[at] = rnd(256);
    }
    const cut = rnd(20) === 0 ? b.subarray(0, rnd(4096)) : b;
    try {
      const h = decodeBootImageHeader(cut);
      checkPayloadSizes(h);
      formatLookimage(h);
      ok++;
    } catch (err) {
      if (!(err instanceof SlipwayError)) throw err;
    }
  }
  assert.ok(ok > 0, 'some mutations stay valid');
});

test('formatLookimage: exact lines, ratio only for compressed', () => {
  assert.deepEqual(formatLookimage(ciHeader), [
    'image name = ci',
    'flags = 0x0 ((empty))',
    'data size = 4194304',
    'image size = 4194304',
    'target size = 4294967296',
    'image sum = bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8',
    'dataset name = rpool/ROOT/ramdisk',
  ]);
  const z = { ...ciHeader, flags: 1n, dataSize: 4133n, name: '' };
  assert.deepEqual(formatLookimage(z), [
    'image name = ',
    'flags = 0x1 (COMPRESSED)',
    'data size = 4133',
    'image size = 4194304',
    'target size = 4294967296',
    'image sum = bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8',
    'dataset name = rpool/ROOT/ramdisk',
    'ratio = 1014.83x',
  ]);
  // Unknown flag bits are ignored by readers.
  assert.equal(formatLookimage({ ...z, flags: 0x3n })[1], 'flags = 0x1 (COMPRESSED)');
  assert.equal(formatLookimage({ ...z, flags: 0x2n })[1], 'flags = 0x0 ((empty))');
});
