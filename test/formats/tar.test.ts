import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import {
  deterministicHeader,
  encodeHeader,
  endOfArchive,
  paddingFor,
  TarParser,
  type TarEntryInfo,
  type TarLimits,
} from '../../src/formats/tar.js';
import { longName, rawHeader, rawTar } from '../helpers/tar-builder.js';

function field(block: Buffer, offset: number, width: number): string {
  return block.toString('latin1', offset, offset + width);
}

function sumWithSpaces(block: Buffer): number {
  let s = 0;
  for (let i = 0; i < 512; i++) s += i >= 148 && i < 156 ? 32 : (block[i] ?? 0);
  return s;
}

// The Rust tar crate (HeaderMode::Deterministic) as omicron-package uses it:
// GNU magic "ustar " + " \0", octal fields right-aligned, zero-filled and
// NUL-terminated, mtime 1153704088, uid/gid 0, empty user/group names,
// device fields "0000000\0", checksum as 7 octal digits + NUL.
test('header vector: oxide.json of 49 bytes, field by field at the spec offsets', () => {
  const h = encodeHeader(deterministicHeader('oxide.json', 'file', { size: 49 }));
  assert.equal(h.length, 512);
  assert.equal(field(h, 0, 100), 'oxide.json'.padEnd(100, '\0'));
  assert.equal(field(h, 100, 8), '0000644\0');
  assert.equal(field(h, 108, 8), '0000000\0');
  assert.equal(field(h, 116, 8), '0000000\0');
  assert.equal(field(h, 124, 12), '00000000061\0'); // 49 = 0o61
  assert.equal(field(h, 136, 12), '10461020230\0'); // 1153704088 = 0o10461020230
  assert.equal(field(h, 156, 1), '0');
  assert.equal(field(h, 157, 100), '\0'.repeat(100));
  assert.equal(field(h, 257, 6), 'ustar ');
  assert.equal(field(h, 263, 2), ' \0');
  assert.equal(field(h, 265, 32), '\0'.repeat(32));
  assert.equal(field(h, 297, 32), '\0'.repeat(32));
  assert.equal(field(h, 329, 8), '0000000\0');
  assert.equal(field(h, 337, 8), '0000000\0');
  assert.equal(field(h, 345, 167), '\0'.repeat(167));
  const expected = sumWithSpaces(h);
  assert.equal(field(h, 148, 8), `${expected.toString(8).padStart(7, '0')}\0`);
});

test('header vector: directory root/ and an executable file', () => {
  const d = encodeHeader(deterministicHeader('root/', 'directory'));
  assert.equal(field(d, 0, 6), 'root/\0');
  assert.equal(field(d, 100, 8), '0000755\0');
  assert.equal(field(d, 124, 12), '00000000000\0');
  assert.equal(field(d, 156, 1), '5');
  const x = encodeHeader(
    deterministicHeader('root/opt/oxide/svc/bin/svc', 'file', { mode: 0o755, size: 8 * 1024 ** 3 - 1 }),
  );
  assert.equal(field(x, 100, 8), '0000755\0');
  assert.equal(field(x, 124, 12), '77777777777\0'); // largest octal size
  const s = encodeHeader(deterministicHeader('root/l', 'symlink', { mode: 0o755, linkname: 'target' }));
  assert.equal(field(s, 156, 1), '2');
  assert.equal(field(s, 157, 7), 'target\0');
});

test('sizes of 8 GiB and more use the GNU base-256 form', () => {
  const h = encodeHeader(deterministicHeader('big', 'file', { size: 8 * 1024 ** 3 }));
  assert.deepEqual([...h.subarray(124, 136)], [0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
});

test('names over 100 bytes get a ././@LongLink record first; exactly 100 fits the header', () => {
  const n100 = `root/${'a'.repeat(95)}`;
  assert.equal(encodeHeader(deterministicHeader(n100, 'file')).length, 512);
  const long = `root/${'b'.repeat(200)}`;
  const out = encodeHeader(deterministicHeader(long, 'file'));
  assert.equal(out.length, 512 * 3); // L header, one data block (201 bytes), real header
  assert.equal(field(out, 0, 14), '././@LongLink\0');
  assert.equal(field(out, 156, 1), 'L');
  assert.equal(field(out, 124, 12), `${(long.length + 1).toString(8).padStart(11, '0')}\0`);
  assert.equal(field(out, 136, 12), '00000000000\0'); // the crate writes mtime 0 here
  assert.equal(field(out, 512, long.length + 1), `${long}\0`);
  assert.equal(field(out, 1024, 100), long.slice(0, 100)); // truncated name in the real header
});

function parseAll(
  buf: Buffer,
  limits: Partial<TarLimits> = {},
  chunk = 777,
): { entries: TarEntryInfo[]; data: Map<string, Buffer> } {
  const entries: TarEntryInfo[] = [];
  const data = new Map<string, Buffer>();
  let cur: Buffer[] = [];
  const p = new TarParser(
    {
      entry: (e) => {
        entries.push(e);
        cur = [];
      },
      data: (c) => cur.push(Buffer.from(c)),
      entryEnd: () => {
        const last = entries.at(-1);
        if (last) data.set(last.path, Buffer.concat(cur));
      },
    },
    limits,
  );
  for (let i = 0; i < buf.length; i += chunk) p.push(buf.subarray(i, i + chunk));
  p.end();
  return { entries, data };
}

test('parser round-trips encoded entries in any chunking, long names included', () => {
  const long = `dir/${'x'.repeat(300)}`;
  const parts = [
    encodeHeader(deterministicHeader('a.txt', 'file', { size: 5 })),
    Buffer.from('hello'),
    paddingFor(5),
    encodeHeader(deterministicHeader(long, 'file', { size: 0 })),
    encodeHeader(deterministicHeader('ln', 'symlink', { linkname: `t/${'y'.repeat(150)}` })),
    endOfArchive(),
  ];
  const buf = Buffer.concat(parts);
  for (const chunk of [1, 13, 512, 4096]) {
    const { entries, data } = parseAll(buf, {}, chunk);
    assert.deepEqual(
      entries.map((e) => [e.path, e.type, e.size]),
      [
        ['a.txt', 'file', 5],
        [long, 'file', 0],
        ['ln', 'symlink', 0],
      ],
    );
    assert.equal(data.get('a.txt')?.toString(), 'hello');
    assert.equal(entries[2]?.linkname, `t/${'y'.repeat(150)}`);
    assert.equal(entries[0]?.mtime, 1153704088);
  }
});

test('parser reads ustar prefix, pax path and size records', () => {
  const pax = (k: string, v: string): string => {
    const body = ` ${k}=${v}\n`;
    const n = Buffer.byteLength(body);
    let len = n + String(n).length;
    if (String(len).length !== String(len - n).length) len = n + String(len).length;
    return `${len}${body}`;
  };
  const paxData = pax('path', 'p/ü-name.txt');
  const ustarPrefix = rawHeader({ name: 'file.txt', magic: 'ustar', data: '' });
  ustarPrefix.write('some/prefix', 345, 'latin1');
  // recompute the checksum after editing the prefix
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (ustarPrefix[i] ?? 0);
  ustarPrefix.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const buf = Buffer.concat([
    rawTar(
      [
        { name: 'PaxHeaders/x', type: 'x', data: paxData, magic: 'ustar' },
        { name: 'short', data: 'abc', magic: 'ustar' },
      ],
      { end: false },
    ),
    ustarPrefix,
    Buffer.alloc(1024),
  ]);
  const { entries } = parseAll(buf);
  assert.equal(entries[0]?.path, 'p/ü-name.txt');
  assert.equal(entries[1]?.path, 'some/prefix/file.txt');
});

function expectCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => isSlipwayError(err) && err.code === code);
}

test('bad checksum, bad magic, non-octal numbers are TAR_HEADER_INVALID', () => {
  const good = rawTar([{ name: 'a', data: 'x' }]);
  const badSum = Buffer.from(good);
  badSum[0] = 'b'.charCodeAt(0);
  expectCode(() => parseAll(badSum), 'TAR_HEADER_INVALID');
  const badMagic = rawTar([{ name: 'a', data: 'x' }]);
  badMagic.write('junk!!', 257, 'latin1');
  expectCode(() => parseAll(badMagic), 'TAR_HEADER_INVALID');
  const h = rawHeader({ name: 'a' });
  h.write('00000009999\0', 124, 'latin1');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  expectCode(() => parseAll(Buffer.concat([h, Buffer.alloc(1024)])), 'TAR_HEADER_INVALID');
});

test('declared size beyond the data, missing end marker: TAR_TRUNCATED', () => {
  const lying = rawTar([{ name: 'a', data: 'abc', size: 100_000 }], { end: false });
  expectCode(() => parseAll(lying), 'TAR_TRUNCATED');
  expectCode(() => parseAll(rawTar([{ name: 'a', data: 'abc' }], { end: false })), 'TAR_TRUNCATED');
  expectCode(() => parseAll(rawTar([{ name: 'a', data: 'abc' }]).subarray(0, 700)), 'TAR_TRUNCATED');
});

test('limits: entries, entry size, long names', () => {
  const many = rawTar(Array.from({ length: 11 }, (_, i) => ({ name: `f${i}` })));
  expectCode(() => parseAll(many, { maxEntries: 10 }), 'TAR_TOO_MANY_ENTRIES');
  expectCode(
    () => parseAll(rawTar([{ name: 'a', data: 'abcdef' }]), { maxEntrySize: 5 }),
    'TAR_ENTRY_TOO_LARGE',
  );
  const huge = 'n'.repeat(10_000);
  expectCode(() => parseAll(rawTar([...longName(huge), { name: 'x' }])), 'TAR_NAME_TOO_LONG');
});

test('a non-UTF-8 name is rejected, not mangled', () => {
  const h = rawHeader({ name: 'ok' });
  h[0] = 0xff;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  expectCode(() => parseAll(Buffer.concat([h, Buffer.alloc(1024)])), 'TAR_HEADER_INVALID');
});

test('fuzz: random corruption never crashes the parser with anything but a SlipwayError', () => {
  const base = rawTar([
    { name: 'oxide.json', data: '{"v":"1","t":"layer"}' },
    { name: 'root/', type: '5' },
    ...longName(`root/${'z'.repeat(150)}`),
    { name: 'root/zz', data: 'data'.repeat(300) },
  ]);
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(base);
    for (let k = 0; k < 1 + rand(4); k++) b[rand(b.length)] = rand(256);
    const cut = rand(4) === 0 ? b.subarray(0, rand(b.length)) : b;
    try {
      parseAll(cut);
    } catch (err) {
      assert.ok(isSlipwayError(err), `unexpected ${String(err)}`);
    }
  }
});
