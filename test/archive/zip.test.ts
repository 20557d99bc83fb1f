import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as zlib from 'node:zlib';
import { checkEntryPath, extractZip, ZipReader, type ZipLimits } from '../../src/archive/zip-read.js';
import {
  sha256OfFile,
  ZipWriter,
  type ZipSource,
  type ZipWriterOptions,
} from '../../src/archive/zip-write.js';
import { AtomicFile } from '../../src/core/atomic-file.js';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import { snapshot, tempDir } from '../helpers/tmp.js';

const tmp = tempDir('slipway-zip-');
const MiB = 1024 * 1024;
let seq = 0;

function fresh(name: string): string {
  return path.join(tmp, `${seq++}-${name}`);
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}
const HAVE_UNZIP = has('unzip') && has('zipinfo');
const HAVE_ZIP = has('zip');
const HAVE_PYTHON = spawnSync('python3', ['-c', 'import zipfile']).status === 0;

// scripts/setup.sh installs them: a missing reader fails the suite instead of quietly skipping checks.
test('the independent zip readers are installed (unzip, zipinfo, python3 zipfile)', () => {
  assert.ok(HAVE_UNZIP && HAVE_PYTHON, 'install unzip and python3 (bash scripts/setup.sh as root)');
});

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd, maxBuffer: 64 * MiB });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function py(script: string, ...args: string[]): string {
  return run('python3', ['-c', script, ...args]);
}

function code(c: ErrorCode): (e: unknown) => boolean {
  return (e: unknown) => {
    if (isSlipwayError(e, c)) return true;
    assert.fail(`expected ${c}, got ${isSlipwayError(e) ? e.code : String(e)}`);
  };
}

/** Writes a zip with our writer and commits it. */
async function writeZip(
  target: string,
  entries: [string | ((sha256: string) => string), ZipSource][],
  options?: ZipWriterOptions,
): ReturnType<ZipWriter['finish']> {
  const file = await AtomicFile.open(target);
  try {
    const w = await ZipWriter.create(file, options);
    for (const [name, src] of entries) await w.addEntry(name, src);
    const r = await w.finish();
    await file.commit();
    return r;
  } catch (err) {
    await file.abort();
    throw err;
  }
}

interface RawEntry {
  name: string | Buffer;
  data: Buffer;
  /** Bytes stored in the file, if not `data` (e.g. deflated). */
  stored?: Buffer;
  method?: number;
  crc?: number;
  size?: number;
  flags?: number;
}

/** A zip built straight from APPNOTE's layouts, independent of our writer (for hostile inputs). */
function rawZip(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const e of entries) {
    const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name);
    const body = e.stored ?? e.data;
    const crc = e.crc ?? zlib.crc32(e.data);
    const size = e.size ?? e.data.length;
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(e.flags ?? 0x800, 6);
    lh.writeUInt16LE(e.method ?? 0, 8);
    lh.writeUInt16LE(0x21, 12);
    lh.writeUInt32LE(crc >>> 0, 14);
    lh.writeUInt32LE(body.length, 18);
    lh.writeUInt32LE(size, 22);
    lh.writeUInt16LE(name.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(0x0314, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(e.flags ?? 0x800, 8);
    ch.writeUInt16LE(e.method ?? 0, 10);
    ch.writeUInt16LE(0x21, 14);
    ch.writeUInt32LE(crc >>> 0, 16);
    ch.writeUInt32LE(body.length, 20);
    ch.writeUInt32LE(size, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE((0o100644 << 16) >>> 0, 38);
    ch.writeUInt32LE(off, 42);
    parts.push(lh, name, body);
    central.push(ch, name);
    off += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(off, 16);
  return Buffer.concat([...parts, cd, end]);
}

function writeRaw(name: string, entries: RawEntry[]): string {
  const p = fresh(name);
  fs.writeFileSync(p, rawZip(entries));
  return p;
}

/** The names in a directory that belong to an extraction into `dest` (dest itself or its temp dirs). */
function leftovers(dest: string): string[] {
  const base = path.basename(dest);
  return fs.readdirSync(path.dirname(dest)).filter((n) => n === base || n.startsWith(`.${base}.`));
}

async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) {
    await Promise.resolve();
    yield data.subarray(i, i + size);
  }
}

// ---------------------------------------------------------------- writer

test('zip writer: the bytes follow APPNOTE (local header, central directory, end record)', async () => {
  const target = fresh('vector.zip');
  const a = Buffer.from('hello, zip\n');
  const b = Buffer.from('second');
  const result = await writeZip(target, [
    ['repo/a.txt', { data: a }],
    ['repo/ü.bin', { data: b }],
  ]);
  const z = fs.readFileSync(target);
  assert.equal(result.size, z.length);

  // Local header 1 at 0 (APPNOTE 4.3.7).
  assert.equal(z.readUInt32LE(0), 0x04034b50);
  assert.equal(z.readUInt16LE(4), 20, 'version needed');
  assert.equal(z.readUInt16LE(6), 0x0800, 'flags: UTF-8 names, no data descriptor');
  assert.equal(z.readUInt16LE(8), 0, 'stored');
  assert.equal(z.readUInt16LE(10), 0, 'DOS time 00:00:00');
  assert.equal(z.readUInt16LE(12), 0x0021, 'DOS date 1980-01-01');
  assert.equal(z.readUInt32LE(14), zlib.crc32(a));
  assert.equal(z.readUInt32LE(18), a.length, 'compressed size');
  assert.equal(z.readUInt32LE(22), a.length, 'uncompressed size');
  assert.equal(z.readUInt16LE(26), 'repo/a.txt'.length);
  assert.equal(z.readUInt16LE(28), 0, 'no extra field');
  assert.equal(z.subarray(30, 40).toString(), 'repo/a.txt');
  assert.ok(z.subarray(40, 40 + a.length).equals(a));

  // Local header 2 right after the data; the name is UTF-8.
  const o2 = 40 + a.length;
  const name2 = Buffer.from('repo/ü.bin');
  assert.equal(z.readUInt32LE(o2), 0x04034b50);
  assert.equal(z.readUInt32LE(o2 + 14), zlib.crc32(b));
  assert.equal(z.readUInt16LE(o2 + 26), name2.length);
  assert.ok(z.subarray(o2 + 30, o2 + 30 + name2.length).equals(name2));
  const cdStart = o2 + 30 + name2.length + b.length;

  // Central directory headers (4.3.12).
  let p = cdStart;
  const offsets = [0, o2];
  const cdEntries: [Buffer, Buffer][] = [
    [Buffer.from('repo/a.txt'), a],
    [name2, b],
  ];
  for (const [i, [name, data]] of cdEntries.entries()) {
    assert.equal(z.readUInt32LE(p), 0x02014b50);
    assert.equal(z.readUInt16LE(p + 4), (3 << 8) | 20, 'made by: Unix, 2.0');
    assert.equal(z.readUInt16LE(p + 6), 20);
    assert.equal(z.readUInt16LE(p + 8), 0x0800);
    assert.equal(z.readUInt16LE(p + 10), 0);
    assert.equal(z.readUInt16LE(p + 12), 0);
    assert.equal(z.readUInt16LE(p + 14), 0x0021);
    assert.equal(z.readUInt32LE(p + 16), zlib.crc32(data));
    assert.equal(z.readUInt32LE(p + 20), data.length);
    assert.equal(z.readUInt32LE(p + 24), data.length);
    assert.equal(z.readUInt16LE(p + 28), name.length);
    assert.equal(z.readUInt16LE(p + 30), 0, 'extra');
    assert.equal(z.readUInt16LE(p + 32), 0, 'comment');
    assert.equal(z.readUInt16LE(p + 34), 0, 'disk');
    assert.equal(z.readUInt16LE(p + 36), 0, 'internal attributes');
    assert.equal(z.readUInt32LE(p + 38), (0o100644 << 16) >>> 0, 'external attributes: regular file 0644');
    assert.equal(z.readUInt32LE(p + 42), offsets[i]);
    assert.ok(z.subarray(p + 46, p + 46 + name.length).equals(name));
    p += 46 + name.length;
  }

  // End of central directory record (4.3.16), no zip64 records.
  assert.equal(p + 22, z.length);
  assert.equal(z.readUInt32LE(p), 0x06054b50);
  assert.equal(z.readUInt16LE(p + 4), 0);
  assert.equal(z.readUInt16LE(p + 6), 0);
  assert.equal(z.readUInt16LE(p + 8), 2);
  assert.equal(z.readUInt16LE(p + 10), 2);
  assert.equal(z.readUInt32LE(p + 12), p - cdStart, 'central directory size');
  assert.equal(z.readUInt32LE(p + 16), cdStart, 'central directory offset');
  assert.equal(z.readUInt16LE(p + 20), 0);

  assert.deepEqual(
    result.entries.map((e) => [e.name, e.size, e.crc32, e.offset, e.sha256]),
    [
      ['repo/a.txt', a.length, zlib.crc32(a), 0, createHash('sha256').update(a).digest('hex')],
      ['repo/ü.bin', b.length, zlib.crc32(b), o2, createHash('sha256').update(b).digest('hex')],
    ],
  );
});

test('zip writer: reproducible bytes; mtime sets the DOS date and time', async () => {
  const data = randomBytes(3000);
  const one = fresh('r1.zip');
  const two = fresh('r2.zip');
  await writeZip(one, [['x/y', { data }]]);
  await writeZip(two, [['x/y', { stream: chunksOf(data, 7), size: data.length }]]);
  assert.ok(fs.readFileSync(one).equals(fs.readFileSync(two)));

  const dated = fresh('dated.zip');
  await writeZip(dated, [['x/y', { data }]], { mtime: new Date(Date.UTC(2024, 4, 6, 7, 8, 10)) });
  const z = fs.readFileSync(dated);
  assert.equal(z.readUInt16LE(10), (7 << 11) | (8 << 5) | 5);
  assert.equal(z.readUInt16LE(12), (44 << 9) | (5 << 5) | 6);
});

test('zip writer: an entry named after its sha256; a placeholder of another length fails and leaves nothing', async () => {
  const dir = fresh('named');
  fs.mkdirSync(dir);
  const data = randomBytes(5 * MiB + 123);
  const src = path.join(dir, 'artifact.bin');
  fs.writeFileSync(src, data);
  const sha = createHash('sha256').update(data).digest('hex');
  const target = path.join(dir, 'repo.zip');
  const { entries } = await writeZip(target, [
    ['repo/metadata/1.root.json', { data: Buffer.from('{}') }],
    [(h) => `repo/targets/${h}.x`, { path: src }],
  ]);
  assert.equal(entries[1]?.name, `repo/targets/${sha}.x`);
  assert.equal(entries[1]?.sha256, sha);
  assert.equal(entries[1]?.size, data.length);
  const reader = await ZipReader.open(target);
  const e = reader.get(`repo/targets/${sha}.x`);
  assert.ok(e);
  assert.ok((await reader.readEntry(e, 10 * MiB)).equals(data));
  await reader.close();
  assert.equal(
    await sha256OfFile(target),
    createHash('sha256').update(fs.readFileSync(target)).digest('hex'),
  );

  const bad = path.join(dir, 'bad.zip');
  await assert.rejects(
    writeZip(bad, [
      [(h) => (h === '0'.repeat(64) ? 'repo/targets/short' : `repo/targets/${h}`), { path: src }],
    ]),
    code('INTERNAL'),
  );
  assert.deepEqual(fs.readdirSync(dir).sort(), ['artifact.bin', 'repo.zip']);
});

test('zip writer: declared sizes are checked; failures before any byte keep the writer usable', async () => {
  const data = randomBytes(1000);
  const shortStream = fresh('short.zip');
  await assert.rejects(
    writeZip(shortStream, [['a', { stream: chunksOf(data, 100), size: 1001 }]]),
    code('IO'),
  );
  await assert.rejects(
    writeZip(shortStream, [['a', { stream: chunksOf(data, 100), size: 999 }]]),
    code('IO'),
  );
  assert.equal(fs.existsSync(shortStream), false);

  const file = await AtomicFile.open(fresh('usable.zip'));
  const w = await ZipWriter.create(file);
  await assert.rejects(w.addEntry('a', { path: path.join(tmp, 'no-such-file') }), code('NOT_FOUND'));
  await assert.rejects(w.addEntry('../a', { data }), code('ZIP_PATH_UNSAFE'));
  await w.addEntry('a', { data });
  await assert.rejects(w.addEntry('a', { data }), code('INVALID_ARGUMENT'));
  await assert.rejects(w.addEntry('b', { stream: chunksOf(data, 10), size: 5 }), code('IO'));
  // Bytes of 'b' are in the file now: the zip can't be finished.
  await assert.rejects(w.addEntry('c', { data }), code('INTERNAL'));
  await assert.rejects(w.finish(), code('INTERNAL'));
  await file.abort();
  assert.equal(fs.existsSync(file.tempPath), false);
});

test('atomic file: writeAt and write mix (write appends after the furthest byte)', async () => {
  const target = fresh('mix.bin');
  const f = await AtomicFile.open(target);
  await f.write(Buffer.from('aaaa'));
  await f.writeAt(Buffer.from('XY'), 1);
  await f.write(Buffer.from('bb'));
  await f.writeAt(Buffer.from('cc'), 8);
  await f.write(Buffer.from('d'));
  await f.commit();
  assert.equal(fs.readFileSync(target).toString('latin1'), 'aXYabb\0\0ccd');
});

test(
  'zip writer: unzip, zipinfo and python zipfile accept our zips',
  { skip: !HAVE_UNZIP || !HAVE_PYTHON },
  async () => {
    const target = fresh('tools.zip');
    const big = randomBytes(3 * MiB + 5);
    const bigFile = fresh('big.bin');
    fs.writeFileSync(bigFile, big);
    const names = [
      'repo/metadata/1.root.json',
      'repo/metadata/timestamp.json',
      'repo/empty',
      'repo/targets/big',
    ];
    await writeZip(target, [
      [names[0] ?? '', { data: Buffer.from('{"signed":{}}\n') }],
      [names[1] ?? '', { stream: chunksOf(Buffer.from('x'.repeat(100_000)), 4096), size: 100_000 }],
      [names[2] ?? '', { data: Buffer.alloc(0) }],
      [names[3] ?? '', { path: bigFile }],
    ]);
    assert.match(run('unzip', ['-t', target]), /No errors detected/);
    assert.deepEqual(run('unzip', ['-Z1', target]).trim().split('\n'), names);
    const info = run('zipinfo', [target]).split('\n');
    for (const n of names) {
      assert.ok(
        info.some((l) => /^-rw-r--r-- +2\.0 unx .* stor 80-Jan-01 00:00 /.test(l) && l.endsWith(` ${n}`)),
        `zipinfo line for ${n}:\n${info.join('\n')}`,
      );
    }
    const out = py(
      `import zipfile,sys,hashlib
z=zipfile.ZipFile(sys.argv[1])
print(z.testzip())
for i in z.infolist(): print(i.filename, i.file_size, i.compress_type, hashlib.sha256(z.read(i)).hexdigest())`,
      target,
    );
    const lines = out.trim().split('\n');
    assert.equal(lines[0], 'None');
    assert.equal(
      lines[4],
      `repo/targets/big ${big.length} 0 ${createHash('sha256').update(big).digest('hex')}`,
    );
  },
);

test('zip writer: zip64 fields (forced by zip64Threshold) read back by python, unzip and our reader', async () => {
  const target = fresh('z64.zip');
  const datas = [randomBytes(50), randomBytes(150), randomBytes(300), Buffer.from('tail')];
  await writeZip(
    target,
    datas.map((d, i): [string, ZipSource] => [`repo/f${i}`, { data: d }]),
    { zip64Threshold: 100 },
  );
  const z = fs.readFileSync(target);
  // Entry 1 (150 bytes): local header has 0xFFFFFFFF sizes and a zip64 extra with both.
  const o1 = 30 + 'repo/f0'.length + 50;
  assert.equal(z.readUInt16LE(o1 + 4), 45);
  assert.equal(z.readUInt32LE(o1 + 18), 0xffffffff);
  assert.equal(z.readUInt32LE(o1 + 22), 0xffffffff);
  assert.equal(z.readUInt16LE(o1 + 28), 20);
  assert.equal(z.readUInt16LE(o1 + 30 + 7), 0x0001);
  assert.equal(z.readUInt16LE(o1 + 30 + 7 + 2), 16);
  assert.equal(z.readBigUInt64LE(o1 + 30 + 7 + 4), 150n);
  assert.equal(z.readBigUInt64LE(o1 + 30 + 7 + 12), 150n);
  // End: zip64 end record, locator, then the end record pointing at them.
  const end = z.length - 22;
  assert.equal(z.readUInt32LE(end), 0x06054b50);
  assert.equal(z.readUInt32LE(end + 16), 0xffffffff, 'central directory offset is in the zip64 record');
  const loc = end - 20;
  assert.equal(z.readUInt32LE(loc), 0x07064b50);
  const rec = Number(z.readBigUInt64LE(loc + 8));
  assert.equal(z.readUInt32LE(rec), 0x06064b50);
  assert.equal(z.readBigUInt64LE(rec + 32), 4n);

  const reader = await ZipReader.open(target);
  for (const [i, d] of datas.entries()) {
    const e = reader.get(`repo/f${i}`);
    assert.ok(e);
    assert.ok((await reader.readEntry(e, 1000)).equals(d));
  }
  await reader.close();
  if (HAVE_PYTHON) {
    const out = py(
      `import zipfile,sys
z=zipfile.ZipFile(sys.argv[1])
print(z.testzip())
print(' '.join('%s:%d:%d' % (i.filename, i.file_size, i.header_offset) for i in z.infolist()))`,
      target,
    );
    const [t, list] = out.trim().split('\n');
    assert.equal(t, 'None');
    const o2 = o1 + 30 + 7 + 20 + 150;
    assert.equal(
      list,
      `repo/f0:50:0 repo/f1:150:${o1} repo/f2:300:${o2} repo/f3:4:${o2 + 30 + 7 + 20 + 300}`,
    );
  }
  if (HAVE_UNZIP) assert.match(run('unzip', ['-t', target]), /No errors detected/);
});

test('zip writer: memory stays flat for a 300 MiB stream', async () => {
  const target = fresh('mem.zip');
  const size = 300 * MiB;
  const hash = createHash('sha256');
  let crc = 0;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const base = process.memoryUsage();
  let peakRss = base.rss;
  let peakAb = base.arrayBuffers;
  async function* gen(): AsyncGenerator<Uint8Array> {
    const chunk = Buffer.alloc(64 * 1024 + 17);
    for (let left = size, i = 0; left > 0; i++) {
      const c = chunk.subarray(0, Math.min(left, chunk.length));
      c.fill(i * 31);
      c.writeUInt32LE(i, 0);
      hash.update(c);
      crc = zlib.crc32(c, crc);
      left -= c.length;
      if (i % 64 === 0) {
        const m = process.memoryUsage();
        peakRss = Math.max(peakRss, m.rss);
        peakAb = Math.max(peakAb, m.arrayBuffers);
      }
      await Promise.resolve();
      yield c;
    }
  }
  const { entries } = await writeZip(target, [['repo/targets/big', { stream: gen(), size }]]);
  assert.equal(entries[0]?.sha256, hash.digest('hex'));
  assert.equal(entries[0]?.crc32, crc);
  assert.equal(fs.statSync(target).size, 30 + 16 + size + 46 + 16 + 22);
  assert.ok(peakRss - base.rss < 64 * MiB, `rss grew by ${(peakRss - base.rss) / MiB} MiB`);
  assert.ok(
    peakAb - base.arrayBuffers < 64 * MiB,
    `arrayBuffers grew by ${(peakAb - base.arrayBuffers) / MiB} MiB`,
  );
  fs.rmSync(target);
});

test('zip writer: 65 536 entries get zip64 end records; readers agree', async () => {
  const target = fresh('many.zip');
  const file = await AtomicFile.open(target);
  const w = await ZipWriter.create(file);
  const adds: Promise<unknown>[] = [];
  for (let i = 0; i < 65_536; i++) adds.push(w.addEntry(`repo/m/${i}`, { data: Buffer.from([i & 0xff]) }));
  await Promise.all(adds);
  await w.finish();
  await file.commit();
  const z = fs.readFileSync(target);
  assert.equal(z.readUInt16LE(z.length - 22 + 10), 0xffff);
  assert.equal(z.readUInt32LE(z.length - 42), 0x07064b50);
  const reader = await ZipReader.open(target);
  assert.equal(reader.entries.length, 65_536);
  assert.deepEqual([...(await reader.readEntry(reader.entries[65_535] ?? assert.fail(), 1))], [0xff]);
  await reader.close();
  await assert.rejects(ZipReader.open(target, { maxEntries: 65_535 }), code('ZIP_TOO_LARGE'));
  if (HAVE_PYTHON) {
    assert.equal(
      py('import zipfile,sys; print(len(zipfile.ZipFile(sys.argv[1]).infolist()))', target).trim(),
      '65536',
    );
  }
});

// ---------------------------------------------------------------- reader

test('checkEntryPath: plain relative file paths only', () => {
  for (const ok of ['a', 'repo/targets/abc.x', 'a/b/c', 'a..b', '.hidden/x', 'ü/ß']) {
    assert.equal(checkEntryPath(ok, 'z'), ok);
  }
  for (const bad of [
    '',
    '/abs',
    'a\\b',
    'a\0b',
    '.',
    '..',
    '../x',
    'repo/../x',
    'a/./b',
    'a//b',
    'dir/',
    'C:x',
    'c:/x',
  ]) {
    assert.throws(
      () => checkEntryPath(bad, 'z.zip'),
      (e: unknown) => {
        assert.ok(isSlipwayError(e, 'ZIP_PATH_UNSAFE'), `${JSON.stringify(bad)}: ${String(e)}`);
        assert.equal(e.where, 'z.zip');
        assert.ok(e.message.includes(JSON.stringify(bad)));
        return true;
      },
    );
  }
});

test('zip reader: reads zips made by the zip CLI and python zipfile (stored and deflated)', async () => {
  const src = fresh('src');
  const files: Record<string, Buffer> = {
    'repo/a.txt': Buffer.from('text '.repeat(10_000)),
    'repo/sub/b.bin': randomBytes(200_000),
    'repo/sub/deeper/c': Buffer.alloc(0),
  };
  for (const [n, d] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, n)), { recursive: true });
    fs.writeFileSync(path.join(src, n), d);
  }
  const zips: string[] = [];
  if (HAVE_ZIP) {
    for (const level of ['-0', '-9']) {
      const z = fresh(`cli${level}.zip`);
      run('zip', ['-q', '-r', '-D', level, z, 'repo'], src);
      zips.push(z);
    }
  }
  if (HAVE_PYTHON) {
    for (const method of ['ZIP_STORED', 'ZIP_DEFLATED']) {
      const z = fresh(`py-${method}.zip`);
      py(
        `import zipfile,sys,os
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.${method}) as z:
  for n in sys.argv[3:]: z.write(os.path.join(sys.argv[2], n), n)`,
        z,
        src,
        ...Object.keys(files),
      );
      zips.push(z);
    }
  }
  assert.ok(zips.length > 0, 'no zip tool available');
  for (const z of zips) {
    const reader = await ZipReader.open(z);
    assert.deepEqual(reader.entries.map((e) => e.name).sort(), Object.keys(files).sort());
    const methods = new Set(reader.entries.map((e) => e.method));
    assert.ok(
      z.includes('-0') || z.includes('STORED') ? methods.has(0) && !methods.has(8) : methods.has(8),
      z,
    );
    for (const [n, d] of Object.entries(files)) {
      const e = reader.get(n);
      assert.ok(e);
      assert.ok((await reader.readEntry(e, MiB)).equals(d), `${z}: ${n}`);
    }
    const dest = fresh('out');
    await extractZip(reader, dest);
    await reader.close();
    assert.deepEqual(snapshot(dest), snapshot(src));
  }
});

test('zip reader: limits', async () => {
  const z = writeRaw('limits.zip', [
    { name: 'a', data: Buffer.alloc(1000, 1) },
    { name: 'b', data: Buffer.alloc(1000, 2) },
  ]);
  const limited = (l: Partial<ZipLimits>): Promise<ZipReader> => ZipReader.open(z, l);
  await assert.rejects(limited({ maxEntries: 1 }), code('ZIP_TOO_LARGE'));
  await assert.rejects(limited({ maxEntrySize: 999 }), code('ZIP_TOO_LARGE'));
  await assert.rejects(limited({ maxTotalSize: 1999 }), code('ZIP_TOO_LARGE'));
  const reader = await limited({ maxEntries: 2, maxEntrySize: 1000, maxTotalSize: 2000 });
  await assert.rejects(reader.readEntry(reader.entries[0] ?? assert.fail(), 999), code('ZIP_TOO_LARGE'));
  await reader.close();
});

test('zip reader: hostile names are refused, each with its code', async () => {
  const data = Buffer.from('x');
  // yauzl refuses these while reading the central directory.
  for (const name of ['../x', '/abs', 'repo/../x', 'a\\b', 'C:x']) {
    const z = writeRaw('names.zip', [{ name, data }]);
    await assert.rejects(ZipReader.open(z), (e: unknown) => {
      assert.ok(isSlipwayError(e, 'ZIP_PATH_UNSAFE'), `${name}: ${String(e)}`);
      assert.equal(e.where, z);
      return true;
    });
  }
  if (HAVE_PYTHON) {
    // The same from python's zipfile (which writes what it is told).
    for (const name of ['../x', '/abs']) {
      const z = fresh('py-hostile.zip');
      py(
        `import zipfile,sys\nwith zipfile.ZipFile(sys.argv[1],'w') as z: z.writestr(sys.argv[2], b'x')`,
        z,
        name,
      );
      await assert.rejects(ZipReader.open(z), code('ZIP_PATH_UNSAFE'));
    }
    const dup = fresh('py-dup.zip');
    py(
      `import zipfile,sys,warnings\nwarnings.simplefilter('ignore')\nwith zipfile.ZipFile(sys.argv[1],'w') as z:\n  z.writestr('a', b'1')\n  z.writestr('a', b'2')`,
      dup,
    );
    await assert.rejects(ZipReader.open(dup), code('ZIP_INVALID'));
  }
  await assert.rejects(
    ZipReader.open(
      writeRaw('dup.zip', [
        { name: 'repo/a', data },
        { name: 'repo/a', data },
      ]),
    ),
    code('ZIP_INVALID'),
  );

  // These open (a reader may list them) but are never extracted; nothing is left behind.
  for (const name of ['dir/', 'a//b', './a', 'a\0b']) {
    const z = writeRaw('open-ok.zip', [
      { name: 'fine', data },
      { name, data: name.endsWith('/') ? Buffer.alloc(0) : data },
    ]);
    const reader = await ZipReader.open(z);
    if (name === 'dir/') assert.equal(reader.get('dir/')?.isDirectory, true);
    const dest = fresh('dest');
    await assert.rejects(extractZip(reader, dest), code('ZIP_PATH_UNSAFE'));
    await reader.close();
    assert.deepEqual(leftovers(dest), []);
  }

  // A name that is a file and also a directory of another file.
  const clash = writeRaw('clash.zip', [
    { name: 'a', data },
    { name: 'a/b', data },
  ]);
  const reader = await ZipReader.open(clash);
  const dest = fresh('dest');
  await assert.rejects(extractZip(reader, dest), code('ZIP_INVALID'));
  await reader.close();
  assert.deepEqual(leftovers(dest), []);
});

test('zip reader: truncated, not a zip, bad sizes', async () => {
  const good = fresh('good.zip');
  await writeZip(good, [['a', { data: randomBytes(5000) }]]);
  const bytes = fs.readFileSync(good);
  for (const [label, b] of [
    ['truncated', bytes.subarray(0, bytes.length - 1)],
    ['half', bytes.subarray(0, bytes.length >> 1)],
    ['empty', Buffer.alloc(0)],
    ['text', Buffer.from('this is not a zip file\n'.repeat(10))],
  ] as const) {
    const p = fresh(`${label}.zip`);
    fs.writeFileSync(p, b);
    await assert.rejects(ZipReader.open(p), (e: unknown) => {
      assert.ok(isSlipwayError(e, 'ZIP_INVALID'), `${label}: ${String(e)}`);
      assert.equal(e.where, p);
      return true;
    });
  }
  await assert.rejects(ZipReader.open(fresh('absent.zip')), code('NOT_FOUND'));
  // Stored entry whose compressed and uncompressed sizes differ.
  await assert.rejects(
    ZipReader.open(writeRaw('sizes.zip', [{ name: 'a', data: Buffer.from('abc'), size: 4 }])),
    code('ZIP_INVALID'),
  );
  // Central directory says the data runs past the end of the file: found when the entry is opened.
  const cut = Buffer.from(bytes);
  const cd = cut.readUInt32LE(cut.length - 22 + 16);
  cut.writeUInt32LE(0x7fffff, cd + 20);
  cut.writeUInt32LE(0x7fffff, cd + 24);
  const over = fresh('over.zip');
  fs.writeFileSync(over, cut);
  const r = await ZipReader.open(over);
  await assert.rejects(r.readEntry(r.entries[0] ?? assert.fail(), 1 << 24), code('ZIP_INVALID'));
  await r.close();
});

test('zip reader: wrong CRC, deflate lies, unsupported methods', async () => {
  const data = randomBytes(100_000);
  const z = writeRaw('crc.zip', [
    { name: 'repo/good', data },
    { name: 'repo/bad', data, crc: (zlib.crc32(data) ^ 1) >>> 0 },
  ]);
  const reader = await ZipReader.open(z);
  assert.ok((await reader.readEntry(reader.get('repo/good') ?? assert.fail(), MiB)).equals(data));
  await assert.rejects(reader.readEntry(reader.get('repo/bad') ?? assert.fail(), MiB), (e: unknown) => {
    assert.ok(isSlipwayError(e, 'ZIP_INVALID'), String(e));
    assert.equal(e.where, `${z}:repo/bad`);
    return true;
  });
  // The good entry is extracted first, then the bad one fails: nothing is left.
  const dest = fresh('dest');
  await assert.rejects(extractZip(reader, dest), code('ZIP_INVALID'));
  assert.deepEqual(leftovers(dest), []);
  // With the bad one filtered out, extraction works.
  await extractZip(reader, dest, { filter: (n) => n !== 'repo/bad' });
  assert.deepEqual(fs.readdirSync(path.join(dest, 'repo')), ['good']);
  assert.deepEqual(leftovers(dest), [path.basename(dest)]);
  // The destination must not exist.
  await assert.rejects(extractZip(reader, dest), code('INVALID_ARGUMENT'));
  await reader.close();

  const deflated = zlib.deflateRawSync(data);
  const lies = writeRaw('deflate.zip', [
    { name: 'ok', data, stored: deflated, method: 8 },
    { name: 'longer', data, stored: deflated, method: 8, size: data.length - 1 },
    { name: 'garbage', data, stored: randomBytes(1000), method: 8 },
    { name: 'bzip2', data, method: 12 },
    { name: 'encrypted', data, stored: deflated, method: 8, flags: 0x801 },
  ]);
  const r = await ZipReader.open(lies);
  assert.ok((await r.readEntry(r.get('ok') ?? assert.fail(), MiB)).equals(data));
  await assert.rejects(r.readEntry(r.get('longer') ?? assert.fail(), MiB), code('ZIP_INVALID'));
  await assert.rejects(r.readEntry(r.get('garbage') ?? assert.fail(), MiB), code('ZIP_INVALID'));
  await assert.rejects(r.openEntry(r.get('bzip2') ?? assert.fail()), code('ZIP_UNSUPPORTED'));
  await assert.rejects(r.openEntry(r.get('encrypted') ?? assert.fail()), code('ZIP_UNSUPPORTED'));
  // Streams left open are ended by close().
  const open = await r.openEntry(r.get('ok') ?? assert.fail());
  await r.close();
  assert.ok(open.destroyed);
});
