import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { isSlipwayError } from '../../src/core/errors.js';
import {
  packDirectory,
  packFromTar,
  inspectArchive,
  verifyArchive,
  installLayers,
  diffArchives,
} from '../../src/layer/index.js';
import { tempDir, writeTree } from '../helpers/tmp.js';

const tmp = tempDir();

function tree(): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'src-'));
  writeTree(dir, {
    'opt/oxide/svc/bin/svc': { data: '#!/bin/sh\necho svc\n', mode: 0o700 },
    'opt/oxide/svc/etc/config.toml': { data: 'a = 1\n', mode: 0o600 },
    'etc/motd': 'hello\n',
    'B-upper': 'sorted before a-lower by byte order\n',
    'var/empty': { dir: true },
    link: { symlink: 'etc/motd' },
    [`deep/${'n'.repeat(120)}`]: 'long name\n',
  });
  return dir;
}

/** Headers as GNU tar prints them: a real peer reading what we wrote. */
function gnuList(archive: string): string[] {
  const r = spawnSync('tar', ['--numeric-owner', '-tzvf', archive], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

test('pack: entry order, headers and oxide.json as omicron-package writes them (GNU tar reads it)', async () => {
  const src = tree();
  const out = path.join(tmp, 'svc.tar.gz');
  const r = await packDirectory(src, out, { pkg: 'svc', version: '1.2.3' });
  assert.equal(r.type, 'layer');
  const lines = gnuList(out);
  const names = lines.map((l) => l.split(/\s+/).slice(5).join(' '));
  assert.deepEqual(names, [
    'oxide.json',
    'root/',
    'root/B-upper',
    'root/deep',
    `root/deep/${'n'.repeat(120)}`,
    'root/etc',
    'root/etc/motd',
    'root/link -> etc/motd',
    'root/opt',
    'root/opt/oxide',
    'root/opt/oxide/svc',
    'root/opt/oxide/svc/bin',
    'root/opt/oxide/svc/bin/svc',
    'root/opt/oxide/svc/etc',
    'root/opt/oxide/svc/etc/config.toml',
    'root/var',
    'root/var/empty',
  ]);
  // mode rules: 0755 for dirs and owner-executable files, 0644 otherwise; owner 0/0; mtime 1153704088.
  const byName = new Map(lines.map((l) => [l.split(/\s+/).slice(5).join(' '), l.split(/\s+/)]));
  assert.equal(byName.get('root/opt/oxide/svc/bin/svc')?.[0], '-rwxr-xr-x');
  assert.equal(byName.get('root/opt/oxide/svc/etc/config.toml')?.[0], '-rw-r--r--');
  assert.equal(byName.get('root/var/empty')?.[0], 'drwxr-xr-x');
  assert.equal(byName.get('oxide.json')?.[1], '0/0');
  const verbose = spawnSync('tar', ['--full-time', '--utc', '-tzvf', out], { encoding: 'utf8' }).stdout;
  assert.match(verbose, /2006-07-24 01:21:28 oxide\.json/); // 1153704088 in UTC
  // oxide.json bytes: omicron-package's compact form without a newline.
  const tarBytes = gunzipSync(fs.readFileSync(out));
  const json = '{"v":"1","t":"layer","pkg":"svc","version":"1.2.3"}';
  assert.equal(tarBytes.toString('latin1', 0, 10), 'oxide.json');
  assert.equal(tarBytes.toString('latin1', 124, 135), json.length.toString(8).padStart(11, '0'));
  assert.equal(tarBytes.toString('utf8', 512, 512 + json.length), json);
  assert.equal(tarBytes[512 + json.length], 0);
  // gzip header as flate2 writes it at level 1: mtime 0, XFL 4, OS 255.
  assert.deepEqual([...fs.readFileSync(out).subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
  assert.equal(spawnSync('gzip', ['-t', out]).status, 0);
});

test('pack: reproducible bytes across runs and worker counts', async () => {
  const src = tree();
  const a = path.join(tmp, 'a.tar.gz');
  const b = path.join(tmp, 'b.tar.gz');
  const c = path.join(tmp, 'c.tar.gz');
  // big enough to span many 128 KiB gzip blocks
  fs.writeFileSync(path.join(src, 'blob'), Buffer.alloc(3 << 20, 'slipway '));
  await packDirectory(src, a, { workers: 1, pkg: 'same' });
  await packDirectory(src, b, { workers: 2, pkg: 'same' });
  fs.utimesSync(path.join(src, 'etc/motd'), new Date(), new Date(2000, 1, 1));
  await packDirectory(src, c, { workers: 4, pkg: 'same' });
  assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)));
  assert.ok(fs.readFileSync(a).equals(fs.readFileSync(c)));
});

test('pack --from-tar wraps a GNU tar rootfs: modes, owners, hard links and long names kept', async () => {
  const src = fs.mkdtempSync(path.join(tmp, 'rootfs-'));
  writeTree(src, {
    'usr/bin/tool': { data: 'tool', mode: 0o4755 },
    'etc/shadow': { data: 'secret', mode: 0o600 },
    [`usr/share/${'long-'.repeat(30)}`]: 'x',
  });
  fs.linkSync(path.join(src, 'usr/bin/tool'), path.join(src, 'usr/bin/tool-again'));
  const rootfs = path.join(tmp, 'rootfs.tar');
  const t = spawnSync('tar', ['--owner=7', '--group=8', '--numeric-owner', '-cf', rootfs, '-C', src, '.']);
  assert.equal(t.status, 0);
  const out = path.join(tmp, 'wrapped.tar.gz');
  await packFromTar(rootfs, out, { pkg: 'rootfs', type: 'baseline' });
  const lines = gnuList(out);
  // GNU tar stores one of the two hard-linked names as the file and the other as a link to it.
  assert.ok(
    lines.some((l) => /^-rwsr-xr-x 7\/8 .* root\/usr\/bin\/tool(-again)?$/.test(l)),
    lines.join('\n'),
  );
  assert.ok(lines.some((l) => /^-rw------- 7\/8 .* root\/etc\/shadow$/.test(l)));
  assert.ok(
    lines.some((l) => / root\/usr\/bin\/tool(-again)? link to root\/usr\/bin\/tool(-again)?$/.test(l)),
  );
  assert.ok(lines.some((l) => l.endsWith(`root/usr/share/${'long-'.repeat(30)}`)));
  const report = await verifyArchive(out);
  assert.deepEqual(report.problems, []);
  assert.equal(report.oxide?.t, 'baseline');
  const root = fs.mkdtempSync(path.join(tmp, 'installed-'));
  await installLayers(root, [], { baseline: out });
  assert.equal(fs.readFileSync(path.join(root, 'usr/bin/tool-again'), 'utf8'), 'tool');
  assert.equal(
    fs.statSync(path.join(root, 'usr/bin/tool')).ino,
    fs.statSync(path.join(root, 'usr/bin/tool-again')).ino,
  );
  assert.equal(fs.statSync(path.join(root, 'etc/shadow')).mode & 0o7777, 0o600);
});

test('pack refuses a device node in --from-tar input and leaves no output', async () => {
  const { rawTar } = await import('../helpers/tar-builder.js');
  const rootfs = path.join(tmp, 'dev.tar');
  fs.writeFileSync(
    rootfs,
    rawTar([
      { name: 'dev/', type: '5' },
      { name: 'dev/null', type: '3' },
    ]),
  );
  const out = path.join(tmp, 'dev-out.tar.gz');
  const before = fs.readdirSync(tmp).sort();
  await assert.rejects(packFromTar(rootfs, out), (e: unknown) => isSlipwayError(e, 'TAR_ENTRY_UNSUPPORTED'));
  assert.deepEqual(fs.readdirSync(tmp).sort(), before);
});

test('pack of a missing directory is NOT_FOUND and writes nothing', async () => {
  const out = path.join(tmp, 'none.tar.gz');
  await assert.rejects(packDirectory(path.join(tmp, 'nope'), out), (e: unknown) =>
    isSlipwayError(e, 'NOT_FOUND'),
  );
  assert.equal(fs.existsSync(out), false);
});

test('pack into the directory being packed does not include its own output', async () => {
  const src = tree();
  const out = path.join(src, 'self.tar.gz');
  const r = await packDirectory(src, out);
  const names = gnuList(out).map((l) => l.split(/\s+/).slice(5).join(' '));
  assert.ok(!names.some((n) => n.includes('self.tar.gz')));
  assert.ok(r.entries > 3);
});

test('inspect and diff', async () => {
  const src = tree();
  const a = path.join(tmp, 'd1.tar.gz');
  const b = path.join(tmp, 'd2.tar.gz');
  await packDirectory(src, a, { pkg: 'svc', version: '1.0.0' });
  fs.writeFileSync(path.join(src, 'etc/motd'), 'changed\n');
  fs.rmSync(path.join(src, 'B-upper'));
  fs.writeFileSync(path.join(src, 'etc/new'), 'new\n');
  fs.chmodSync(path.join(src, 'opt/oxide/svc/etc/config.toml'), 0o755);
  await packDirectory(src, b, { pkg: 'svc', version: '1.0.1' });
  const info = await inspectArchive(a, { list: true });
  assert.equal(info.type, 'layer');
  assert.equal(info.pkg, 'svc');
  assert.equal(info.version, '1.0.0');
  assert.equal(info.counts.symlinks, 1);
  assert.equal(
    info.list?.find((e) => e.path === 'root/etc/motd')?.sha256,
    createHash('sha256').update('hello\n').digest('hex'),
  );
  const d = await diffArchives(a, b);
  assert.deepEqual(
    d.added.map((e) => e.path),
    ['root/etc/new'],
  );
  assert.deepEqual(
    d.removed.map((e) => e.path),
    ['root/B-upper'],
  );
  assert.deepEqual(
    d.changed.map((e) => [e.path, e.changes]),
    [
      ['root/etc/motd', ['content']],
      ['root/opt/oxide/svc/etc/config.toml', ['mode']],
    ],
  );
});

test('--follow-links archives link targets (as omicron-package does) and refuses a loop', async () => {
  const src = fs.mkdtempSync(path.join(tmp, 'follow-'));
  writeTree(src, { 'real/file': 'content', alias: { symlink: 'real/file' } });
  const out = path.join(tmp, 'follow.tar.gz');
  await packDirectory(src, out, { followLinks: true });
  const lines = gnuList(out);
  assert.ok(
    lines.some((l) => /^-rw-r--r-- .* root\/alias$/.test(l)),
    lines.join('\n'),
  );
  fs.symlinkSync('..', path.join(src, 'real/loop'));
  const before = fs.readdirSync(tmp).sort();
  await assert.rejects(
    packDirectory(src, path.join(tmp, 'loop.tar.gz'), { followLinks: true }),
    (e: unknown) => isSlipwayError(e, 'WALK_CYCLE'),
  );
  assert.deepEqual(fs.readdirSync(tmp).sort(), before);
});
