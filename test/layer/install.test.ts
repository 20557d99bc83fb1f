import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { isSlipwayError } from '../../src/core/errors.js';
import { installLayers, verifyArchive } from '../../src/layer/index.js';
import { BASELINE_JSON, longName, rawLayer, rawTar, type RawEntry } from '../helpers/tar-builder.js';
import { snapshot, tempDir, writeTree } from '../helpers/tmp.js';

const tmp = tempDir();

interface World {
  root: string;
  outside: string;
  write: (name: string, bytes: Buffer) => string;
}

/** A target root with some content, and a sibling "outside" directory that must never change. */
function world(): World {
  const base = fs.mkdtempSync(path.join(tmp, 'w-'));
  const root = path.join(base, 'zone');
  const outside = path.join(base, 'outside');
  writeTree(root, { 'etc/motd': 'old motd\n', 'etc/hosts': 'hosts\n', 'var/log/README': 'logs\n' });
  writeTree(outside, { passwd: 'root:x:0:0\n', 'dir/keep': 'keep\n' });
  const archives = path.join(base, 'archives');
  fs.mkdirSync(archives);
  return {
    root,
    outside,
    write: (name, bytes) => {
      const p = path.join(archives, name);
      fs.writeFileSync(p, bytes);
      return p;
    },
  };
}

async function expectRefused(w: World, layers: string[], code: string, baseline?: string): Promise<void> {
  const before = { root: snapshot(w.root), outside: snapshot(w.outside) };
  await assert.rejects(
    installLayers(w.root, layers, baseline === undefined ? {} : { baseline }),
    (e: unknown) => {
      assert.ok(isSlipwayError(e), String(e));
      assert.equal(e.code, code, e.message);
      return true;
    },
  );
  assert.deepEqual(snapshot(w.root), before.root, 'the root changed');
  assert.deepEqual(snapshot(w.outside), before.outside, 'something outside the root changed');
}

const dirs = (...names: string[]): RawEntry[] => names.map((name) => ({ name, type: '5', mode: 0o755 }));

// ---------------------------------------------------------------- hostile corpus

test('hostile: ../ paths', async () => {
  const w = world();
  await expectRefused(
    w,
    [w.write('a.tar.gz', rawLayer([...dirs('root/'), { name: 'root/../../outside/passwd', data: 'pwned' }]))],
    'PATH_UNSAFE',
  );
  await expectRefused(
    w,
    [w.write('b.tar.gz', rawLayer([{ name: '../outside/passwd', data: 'pwned' }]))],
    'PATH_UNSAFE',
  );
});

test('hostile: absolute paths', async () => {
  const w = world();
  await expectRefused(
    w,
    [w.write('a.tar.gz', rawLayer([{ name: `${w.outside}/passwd`, data: 'pwned' }]))],
    'PATH_UNSAFE',
  );
});

test('hostile: a symlink, then a file written through it', async () => {
  const w = world();
  const layer = rawLayer([
    ...dirs('root/'),
    { name: 'root/escape', type: '2', linkname: w.outside },
    { name: 'root/escape/passwd', data: 'pwned' },
  ]);
  await expectRefused(w, [w.write('a.tar.gz', layer)], 'PATH_UNSAFE');
  // …and through a symlink that already exists in the root
  fs.symlinkSync(w.outside, path.join(w.root, 'preexisting'));
  await expectRefused(
    w,
    [w.write('b.tar.gz', rawLayer([...dirs('root/'), { name: 'root/preexisting/passwd', data: 'pwned' }]))],
    'PATH_UNSAFE',
  );
});

test('hostile: hard links to /etc/passwd and out of root/', async () => {
  const w = world();
  await expectRefused(
    w,
    [
      w.write(
        'a.tar.gz',
        rawLayer([...dirs('root/'), { name: 'root/pw', type: '1', linkname: '/etc/passwd' }]),
      ),
    ],
    'LINK_UNSAFE',
  );
  await expectRefused(
    w,
    [
      w.write(
        'b.tar.gz',
        rawLayer([...dirs('root/'), { name: 'root/pw', type: '1', linkname: 'root/../../etc/passwd' }]),
      ),
    ],
    'LINK_UNSAFE',
  );
  await expectRefused(
    w,
    [
      w.write(
        'c.tar.gz',
        rawLayer([...dirs('root/'), { name: 'root/pw', type: '1', linkname: 'etc/passwd' }]),
      ),
    ],
    'LINK_UNSAFE',
  );
  // a hard link to a path that is a symlink's child would resolve outside
  fs.symlinkSync(w.outside, path.join(w.root, 'out'));
  await expectRefused(
    w,
    [
      w.write(
        'd.tar.gz',
        rawLayer([...dirs('root/'), { name: 'root/pw', type: '1', linkname: 'root/out/passwd' }]),
      ),
    ],
    'PATH_UNSAFE',
  );
});

test('hostile: device nodes and fifos', async () => {
  const w = world();
  await expectRefused(
    w,
    [w.write('a.tar.gz', rawLayer([...dirs('root/', 'root/dev'), { name: 'root/dev/sda', type: '4' }]))],
    'TAR_ENTRY_UNSUPPORTED',
  );
  await expectRefused(
    w,
    [w.write('b.tar.gz', rawLayer([...dirs('root/'), { name: 'root/fifo', type: '6' }]))],
    'TAR_ENTRY_UNSUPPORTED',
  );
});

test('hostile: declared size larger than the data', async () => {
  const w = world();
  const tar = rawTar(
    [
      { name: 'oxide.json', data: '{"v":"1","t":"layer"}' },
      ...dirs('root/'),
      { name: 'root/big', data: 'short', size: 1 << 20 },
    ],
    { end: false },
  );
  await expectRefused(w, [w.write('a.tar.gz', gzipSync(tar))], 'TAR_TRUNCATED');
});

test('hostile: truncated and corrupted gzip', async () => {
  const w = world();
  const good = rawLayer([
    ...dirs('root/', 'root/etc'),
    { name: 'root/etc/motd', data: `${'x'.repeat(50_000)}${Math.random()}` },
  ]);
  await expectRefused(w, [w.write('a.tar.gz', good.subarray(0, good.length - 20))], 'GZIP_TRUNCATED');
  const bad = Buffer.from(good);
  bad.fill(0x55, 30, 60);
  await expectRefused(w, [w.write('b.tar.gz', bad)], 'GZIP_CORRUPT');
  await expectRefused(w, [w.write('c.tar.gz', Buffer.from('not a gzip file at all'))], 'GZIP_CORRUPT');
});

test('hostile: 100 000 tiny entries', async () => {
  const w = world();
  const entries: RawEntry[] = dirs('root/', 'root/many');
  for (let i = 0; i < 100_000; i++) entries.push({ name: `root/many/${i}` });
  await expectRefused(w, [w.write('a.tar.gz', rawLayer(entries))], 'TAR_TOO_MANY_ENTRIES');
});

test('hostile: a name of 10 000 bytes', async () => {
  const w = world();
  const name = `root/${'n'.repeat(9995)}`;
  await expectRefused(
    w,
    [
      w.write(
        'a.tar.gz',
        rawLayer([...dirs('root/'), ...longName(name), { name: name.slice(0, 100), data: 'x' }]),
      ),
    ],
    'TAR_NAME_TOO_LONG',
  );
});

test('hostile: duplicate entries that change type', async () => {
  const w = world();
  const layer = rawLayer([
    ...dirs('root/'),
    { name: 'root/x', data: 'file' },
    { name: 'root/x', type: '5' },
    { name: 'root/x/y', data: 'y' },
  ]);
  await expectRefused(w, [w.write('a.tar.gz', layer)], 'INSTALL_CONFLICT');
});

test('hostile: not a layer, no oxide.json, bad oxide.json', async () => {
  const w = world();
  await expectRefused(
    w,
    [w.write('os.tar.gz', rawLayer([...dirs('root/')], '{"v":"1","t":"os"}'))],
    'IMAGE_TYPE_MISMATCH',
  );
  await expectRefused(
    w,
    [w.write('none.tar.gz', gzipSync(rawTar([...dirs('root/'), { name: 'root/a', data: 'a' }])))],
    'OXIDE_JSON_MISSING',
  );
  await expectRefused(
    w,
    [w.write('v2.tar.gz', rawLayer([...dirs('root/')], '{"v":"2","t":"layer"}'))],
    'OXIDE_JSON_INVALID',
  );
  await expectRefused(
    w,
    [w.write('junk.tar.gz', rawLayer([...dirs('root/')], '{"v":"1",'))],
    'OXIDE_JSON_INVALID',
  );
  await expectRefused(
    w,
    [w.write('bl.tar.gz', rawLayer([...dirs('root/')]))],
    'IMAGE_TYPE_MISMATCH',
    w.write('l.tar.gz', rawLayer([...dirs('root/')])),
  );
});

test('a hostile second layer stops the whole install before the first is written', async () => {
  const w = world();
  const good = w.write(
    'good.tar.gz',
    rawLayer([...dirs('root/', 'root/etc'), { name: 'root/etc/motd', data: 'new motd\n' }]),
  );
  const bad = w.write('bad.tar.gz', rawLayer([...dirs('root/'), { name: 'root/../evil', data: 'x' }]));
  await expectRefused(w, [good, bad], 'PATH_UNSAFE');
});

test('install into a missing root or a file: INSTALL_ROOT_INVALID', async () => {
  const w = world();
  const good = w.write('good.tar.gz', rawLayer([...dirs('root/')]));
  await assert.rejects(installLayers(path.join(w.root, 'nope'), [good]), (e: unknown) =>
    isSlipwayError(e, 'INSTALL_ROOT_INVALID'),
  );
  await assert.rejects(installLayers(path.join(w.root, 'etc/motd'), [good]), (e: unknown) =>
    isSlipwayError(e, 'INSTALL_ROOT_INVALID'),
  );
});

// ---------------------------------------------------------------- brand semantics

test('brand: baseline, then layers in order; a later layer replaces a file', async () => {
  const w = world();
  const root = fs.mkdtempSync(path.join(tmp, 'empty-'));
  const baseline = w.write(
    'base.tar.gz',
    rawLayer(
      [
        ...dirs('root/', 'root/etc', 'root/usr', 'root/usr/bin'),
        { name: 'root/etc/motd', data: 'base\n' },
        { name: 'root/usr/bin/sh', data: 'sh', mode: 0o755 },
      ],
      BASELINE_JSON,
    ),
  );
  const l1 = w.write(
    'l1.tar.gz',
    rawLayer([
      ...dirs('root/', 'root/etc'),
      { name: 'root/etc/motd', data: 'one\n' },
      { name: 'root/etc/link', type: '2', linkname: 'motd' },
    ]),
  );
  const l2 = w.write(
    'l2.tar.gz',
    rawLayer([
      ...dirs('root/', 'root/etc'),
      { name: 'root/etc/motd', data: 'two\n', mode: 0o600 },
      { name: 'root/etc/link', data: 'now a file' },
      { name: 'root/etc/hard', type: '1', linkname: 'root/usr/bin/sh' },
    ]),
  );
  const r = await installLayers(root, [l1, l2], { baseline });
  assert.equal(r.archives.length, 3);
  assert.equal(fs.readFileSync(path.join(root, 'etc/motd'), 'utf8'), 'two\n');
  assert.equal(fs.statSync(path.join(root, 'etc/motd')).mode & 0o777, 0o600);
  assert.equal(fs.lstatSync(path.join(root, 'etc/link')).isFile(), true);
  assert.equal(fs.statSync(path.join(root, 'etc/hard')).ino, fs.statSync(path.join(root, 'usr/bin/sh')).ino);
  assert.equal(fs.statSync(path.join(root, 'usr/bin/sh')).mode & 0o777, 0o755);
  assert.equal(fs.statSync(path.join(root, 'usr/bin/sh')).mtimeMs, 1153704088 * 1000);
});

test('brand: a directory over a file, or a file over a directory, is a conflict', async () => {
  const w = world();
  await expectRefused(
    w,
    [w.write('a.tar.gz', rawLayer([...dirs('root/', 'root/etc', 'root/etc/motd')]))],
    'INSTALL_CONFLICT',
  );
  await expectRefused(
    w,
    [w.write('b.tar.gz', rawLayer([...dirs('root/', 'root/var'), { name: 'root/var/log', data: 'file' }]))],
    'INSTALL_CONFLICT',
  );
});

test('brand: parents must precede children (not recursive)', async () => {
  const w = world();
  await expectRefused(
    w,
    [w.write('a.tar.gz', rawLayer([...dirs('root/'), { name: 'root/new/file', data: 'x' }]))],
    'INSTALL_PARENT_MISSING',
  );
  // a parent that exists in the root already is fine
  await installLayers(w.root, [w.write('b.tar.gz', rawLayer([{ name: 'root/var/log/new', data: 'x' }]))]);
  assert.equal(fs.readFileSync(path.join(w.root, 'var/log/new'), 'utf8'), 'x');
});

test("brand: an existing directory takes the layer's mode; entries outside root/ are ignored", async () => {
  const w = world();
  fs.chmodSync(path.join(w.root, 'var'), 0o700);
  const layer = w.write(
    'a.tar.gz',
    rawLayer([
      ...dirs('root/'),
      { name: 'root/var', type: '5', mode: 0o751 },
      { name: 'README', data: 'not installed' },
    ]),
  );
  await installLayers(w.root, [layer]);
  assert.equal(fs.statSync(path.join(w.root, 'var')).mode & 0o777, 0o751);
  assert.equal(fs.existsSync(path.join(w.root, 'README')), false);
  const report = await verifyArchive(layer);
  assert.equal(report.ok, false);
  assert.equal(report.problems[0]?.code, 'PATH_OUTSIDE_ROOT');
});

test('verify: a clean layer passes; each broken one names its code', async () => {
  const w = world();
  const ok = await verifyArchive(
    w.write('ok.tar.gz', rawLayer([...dirs('root/', 'root/etc'), { name: 'root/etc/x', data: 'x' }])),
  );
  assert.equal(ok.ok, true);
  assert.equal(ok.oxide?.t, 'layer');
  const missingParent = await verifyArchive(
    w.write('mp.tar.gz', rawLayer([...dirs('root/'), { name: 'root/etc/x', data: 'x' }])),
  );
  assert.equal(missingParent.ok, true, 'a layer may rely on the baseline for parents');
  assert.equal(missingParent.warnings[0]?.code, 'INSTALL_PARENT_MISSING');
  const cases: [Buffer, string][] = [
    [rawLayer([{ name: 'root/../x' }]), 'PATH_UNSAFE'],
    [rawLayer([...dirs('root/'), { name: 'root/dev', type: '3' }]), 'TAR_ENTRY_UNSUPPORTED'],
    [rawLayer([...dirs('root/')], '{"v":"1","t":"nope"}'), 'OXIDE_JSON_INVALID'],
    [rawLayer([...dirs('root/')]).subarray(0, 30), 'GZIP_TRUNCATED'],
  ];
  for (const [i, [bytes, code]] of cases.entries()) {
    const r = await verifyArchive(w.write(`bad${i}.tar.gz`, bytes));
    assert.equal(r.ok, false);
    assert.equal(r.problems[0]?.code, code);
  }
});

test('GNU tar peer: a layer written by GNU tar (long names, hard links, symlinks) verifies and installs', async () => {
  const { spawnSync } = await import('node:child_process');
  const w = world();
  const stage = fs.mkdtempSync(path.join(tmp, 'gnu-'));
  fs.writeFileSync(path.join(stage, 'oxide.json'), '{"v":"1","t":"layer"}\n');
  const long = `opt/${'deep-name-'.repeat(15)}/file`;
  writeTree(path.join(stage, 'root'), {
    [long]: 'long',
    'bin/tool': { data: 'tool', mode: 0o755 },
    'bin/alias': { symlink: 'tool' },
  });
  fs.linkSync(path.join(stage, 'root/bin/tool'), path.join(stage, 'root/bin/tool2'));
  const archive = path.join(path.dirname(w.root), 'gnu.tar.gz');
  const r = spawnSync('tar', ['--format=gnu', '-czf', archive, '-C', stage, 'oxide.json', 'root']);
  assert.equal(r.status, 0, r.stderr.toString());
  const report = await verifyArchive(archive);
  assert.deepEqual(report.problems, []);
  const root = fs.mkdtempSync(path.join(tmp, 'gnu-root-'));
  await installLayers(root, [archive]);
  assert.equal(fs.readFileSync(path.join(root, long), 'utf8'), 'long');
  assert.equal(fs.statSync(path.join(root, 'bin/tool')).ino, fs.statSync(path.join(root, 'bin/tool2')).ino);
  assert.equal(fs.readlinkSync(path.join(root, 'bin/alias')), 'tool');
  // and pax format, GNU tar's other common output
  const pax = path.join(path.dirname(w.root), 'pax.tar.gz');
  assert.equal(spawnSync('tar', ['--format=pax', '-czf', pax, '-C', stage, 'oxide.json', 'root']).status, 0);
  const root2 = fs.mkdtempSync(path.join(tmp, 'pax-root-'));
  await installLayers(root2, [pax]);
  assert.equal(fs.readFileSync(path.join(root2, long), 'utf8'), 'long');
});

test('a path twice in one archive (as composites write): the later one wins; verify warns', async () => {
  const w = world();
  const layer = w.write(
    'dup.tar.gz',
    rawLayer([
      ...dirs('root/', 'root/etc'),
      { name: 'root/etc/motd', data: 'first' },
      { name: 'root/etc/motd', data: 'second' },
    ]),
  );
  const report = await verifyArchive(layer);
  assert.equal(report.ok, true);
  assert.equal(report.warnings[0]?.code, 'DUPLICATE_ENTRY');
  await installLayers(w.root, [layer]);
  assert.equal(fs.readFileSync(path.join(w.root, 'etc/motd'), 'utf8'), 'second');
});
