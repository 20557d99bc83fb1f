import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { rawLayer } from '../helpers/tar-builder.js';
import { tempDir, writeTree } from '../helpers/tmp.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/slipway.js');
const tmp = tempDir();

function slipway(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    cwd: tmp,
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('pack, inspect, verify, install, diff from the command line, with --json', () => {
  const src = path.join(tmp, 'src');
  writeTree(src, { 'etc/motd': 'hi\n', 'bin/x': { data: 'x', mode: 0o755 } });
  const p = slipway('layer', 'pack', src, '-o', 'a.tar.gz', '--pkg', 'demo', '--version', '1.0.0', '--json');
  assert.equal(p.code, 0, p.stderr);
  const packed = JSON.parse(p.stdout) as { sha256: string; pkg: string; entries: number };
  assert.equal(packed.pkg, 'demo');
  assert.match(packed.sha256, /^[0-9a-f]{64}$/);
  const i = slipway('layer', 'inspect', 'a.tar.gz', '--list');
  assert.equal(i.code, 0, i.stderr);
  assert.match(i.stdout, /type: +layer/);
  assert.match(i.stdout, /pkg: +demo/);
  assert.match(i.stdout, /root\/etc\/motd/);
  const v = slipway('layer', 'verify', 'a.tar.gz');
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^ok: a\.tar\.gz/m);
  const root = path.join(tmp, 'root');
  fs.mkdirSync(root);
  const inst = slipway('layer', 'install', '--root', root, 'a.tar.gz', '--json');
  assert.equal(inst.code, 0, inst.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'etc/motd'), 'utf8'), 'hi\n');
  fs.writeFileSync(path.join(src, 'etc/motd'), 'changed\n');
  assert.equal(slipway('layer', 'pack', src, '-o', 'b.tar.gz', '--pkg', 'demo', '--quiet').code, 0);
  const d = slipway('layer', 'diff', 'a.tar.gz', 'b.tar.gz');
  assert.equal(d.code, 0);
  assert.match(d.stdout, /^~ root\/etc\/motd \(content\)$/m);
});

test('bad input: error[CODE] on stderr, exit 2, no stack, nothing written', () => {
  fs.writeFileSync(path.join(tmp, 'evil.tar.gz'), rawLayer([{ name: 'root/../../etc/passwd', data: 'x' }]));
  const root = path.join(tmp, 'evil-root');
  fs.mkdirSync(root);
  const r = slipway('layer', 'install', '--root', root, 'evil.tar.gz');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error\[PATH_UNSAFE\]: evil\.tar\.gz: root\/\.\.\/\.\.\/etc\/passwd: /m);
  assert.ok(!r.stderr.includes('    at '), 'no stack trace without --debug');
  assert.deepEqual(fs.readdirSync(root), []);
  const dbg = slipway('layer', 'install', '--root', root, 'evil.tar.gz', '--debug');
  assert.ok(dbg.stderr.includes('    at '), 'stack with --debug');
  const v = slipway('layer', 'verify', 'evil.tar.gz', '--json');
  assert.equal(v.code, 2);
  const report = JSON.parse(v.stdout) as { ok: boolean; archives: { problems: { code: string }[] }[] };
  assert.equal(report.ok, false);
  assert.equal(report.archives[0]?.problems[0]?.code, 'PATH_UNSAFE');
});

test('usage errors exit 2; a missing file is NOT_FOUND; pack leaves no output on failure', () => {
  const u = slipway('layer', 'pack');
  assert.equal(u.code, 2);
  assert.match(u.stderr, /^error\[USAGE\]/);
  assert.equal(slipway('layer', 'frobnicate').code, 2);
  assert.equal(slipway('layer', 'pack', 'x', '-o', 'y.tar.gz', '--level', 'high').code, 2);
  const nf = slipway('layer', 'inspect', 'missing.tar.gz');
  assert.equal(nf.code, 2);
  assert.match(nf.stderr, /^error\[NOT_FOUND\]: .*missing\.tar\.gz/m);
  const before = fs.readdirSync(tmp).sort();
  assert.equal(slipway('layer', 'pack', 'no-such-dir', '-o', 'never.tar.gz').code, 2);
  assert.deepEqual(fs.readdirSync(tmp).sort(), before);
});

test('plain progress lines are timestamped when not on a TTY', () => {
  const src = path.join(tmp, 'src2');
  writeTree(src, { f: 'x' });
  const r = slipway('layer', 'pack', src, '-o', 'p.tar.gz');
  assert.equal(r.code, 0);
  assert.match(r.stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[pack p\.tar\.gz\] started$/m);
  assert.ok(!r.stderr.includes('\x1b['), 'no escape codes off a TTY');
});

test('demo: the README main job builds the example and installs it into a scratch root', () => {
  const out = path.join(tmp, 'demo-out');
  const r = spawnSync(
    process.execPath,
    [bin, 'demo', path.join(repo, 'examples/zone'), '-o', out, '--quiet'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    fs.readFileSync(path.join(out, 'root/etc/motd'), 'utf8'),
    'site layer: this motd replaces the baseline one\n',
  );
  assert.ok(fs.statSync(path.join(out, 'root/opt/oxide/nexus/bin/nexus')).mode & 0o100);
  assert.equal(fs.readlinkSync(path.join(out, 'root/opt/oxide/nexus/bin/nexus-current')), 'nexus');
});

test('SIGINT during pack: exits non-zero and leaves no partial or temp file', async () => {
  const { spawn } = await import('node:child_process');
  const { randomBytes } = await import('node:crypto');
  const src = path.join(tmp, 'big');
  fs.mkdirSync(src);
  const block = randomBytes(1 << 20);
  const fd = fs.openSync(path.join(src, 'blob'), 'w');
  for (let i = 0; i < 256; i++) fs.writeSync(fd, block);
  fs.closeSync(fd);
  const outDir = path.join(tmp, 'interrupted');
  fs.mkdirSync(outDir);
  const child = spawn(
    process.execPath,
    [bin, 'layer', 'pack', src, '-o', path.join(outDir, 'big.tar.gz'), '--plain'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  const code = await new Promise<NodeJS.Signals | number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('started')) setTimeout(() => child.kill('SIGINT'), 200);
    });
    child.on('exit', (c, signal) => {
      resolve(signal ?? c);
    });
  });
  // It dies of the signal it got, as a shell expects (status 130).
  assert.equal(code, 'SIGINT', stderr);
  assert.match(stderr, /error\[INTERRUPTED\]/);
  assert.deepEqual(fs.readdirSync(outDir), []);
});
