import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir } from '../helpers/tmp.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(repo, 'bin/slipway.js');
const tmp = tempDir();

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
}

/** argv for `ip`: run `slipway ARGS…` inside network namespace `ns`. */
function inNs(ns: string, ...args: string[]): string[] {
  return ['netns', 'exec', ns, process.execPath, bin, ...args];
}

// Two hosts on this machine: network namespaces joined by a veth pair, made and removed here.
test('boot serve and boot fetch move a 64 MiB image over raw Ethernet between two namespaces', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('network namespaces need root: run the suite as root (CI does)');
    return;
  }
  const id = `${process.pid % 10000}`;
  const [nsA, nsB, ifA, ifB] = [`sw-a${id}`, `sw-b${id}`, `swa${id}`, `swb${id}`];
  const probe = spawnSync('ip', ['netns', 'add', nsA], { encoding: 'utf8' });
  assert.equal(probe.status, 0, `network namespaces are unavailable here: ${probe.stderr}`);
  try {
    ip('netns', 'add', nsB);
    ip('link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB);
    ip('link', 'set', ifA, 'netns', nsA);
    ip('link', 'set', ifB, 'netns', nsB);
    ip('-n', nsA, 'link', 'set', ifA, 'up');
    ip('-n', nsB, 'link', 'set', ifB, 'up');

    const raw = path.join(tmp, 'raw');
    const block = randomBytes(1 << 20);
    const fd = fs.openSync(raw, 'w');
    for (let i = 0; i < 64; i++) fs.writeSync(fd, block);
    fs.closeSync(fd);
    const hash = createHash('sha256');
    for (let i = 0; i < 64; i++) hash.update(block);
    const sum = hash.digest('hex');
    const image = path.join(tmp, 'image');
    assert.equal(
      spawnSync(process.execPath, [bin, 'boot', 'mkimage', '-i', raw, '-o', image, '--quiet']).status,
      0,
    );

    const server = spawn(
      'ip',
      inNs(nsA, 'boot', 'serve', image, '--interface', ifA, '--once', '--timeout', '60', '--json'),
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let served = '';
    server.stdout.on('data', (d: Buffer) => {
      served += d.toString();
    });
    const serverDone = new Promise<number | null>((resolve) => {
      server.on('exit', (c) => {
        resolve(c);
      });
    });
    const fetchImage = (checksum: string, out: string, ...more: string[]) =>
      spawnSync(
        'ip',
        inNs(nsB, 'boot', 'fetch', '--interface', ifB, '--checksum', checksum, '-o', out, ...more),
        { encoding: 'utf8' },
      );
    // A wrong checksum: the offer is refused and nothing is written.
    const wrong = path.join(tmp, 'wrong');
    const bad = fetchImage('0'.repeat(64), wrong, '--timeout', '3');
    assert.notEqual(bad.status, 0);
    assert.equal(fs.existsSync(wrong), false);
    const out = path.join(tmp, 'fetched');
    const r = fetchImage(sum, out, '--timeout', '60', '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(createHash('sha256').update(fs.readFileSync(out)).digest('hex'), sum);
    assert.equal(await serverDone, 0, served);
    assert.equal((JSON.parse(served) as { finished: number }).finished, 1);
  } finally {
    spawnSync('ip', ['netns', 'del', nsA]);
    spawnSync('ip', ['netns', 'del', nsB]);
  }
});

test('two clients at once through a bridge both complete, each in its own session', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('network namespaces need root: run the suite as root (CI does)');
    return;
  }
  const id = `${process.pid % 10000}`;
  const ns = [`sw-s${id}`, `sw-c1${id}`, `sw-c2${id}`] as const;
  try {
    for (const n of ns) ip('netns', 'add', n);
    ip('-n', ns[0], 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', ns[0], 'link', 'set', 'br0', 'up');
    for (const i of [1, 2] as const) {
      const [port, peer] = [`swp${i}${id}`, `swc${i}${id}`];
      ip('link', 'add', port, 'type', 'veth', 'peer', 'name', peer);
      ip('link', 'set', port, 'netns', ns[0]);
      ip('link', 'set', peer, 'netns', ns[i]);
      ip('-n', ns[0], 'link', 'set', port, 'master', 'br0');
      ip('-n', ns[0], 'link', 'set', port, 'up');
      ip('-n', ns[i], 'link', 'set', peer, 'up');
    }
    const raw = path.join(tmp, 'raw16');
    fs.writeFileSync(raw, randomBytes(16 << 20));
    const sum = createHash('sha256').update(fs.readFileSync(raw)).digest('hex');
    const image = path.join(tmp, 'image16');
    assert.equal(
      spawnSync(process.execPath, [bin, 'boot', 'mkimage', '-i', raw, '-o', image, '--quiet']).status,
      0,
    );
    const server = spawn(
      'ip',
      inNs(ns[0], 'boot', 'serve', image, '--interface', 'br0', '--timeout', '60', '--quiet'),
      {
        stdio: 'ignore',
      },
    );
    try {
      const fetchOne = (i: 1 | 2): Promise<number | null> =>
        new Promise((resolve) => {
          const c = spawn(
            'ip',
            inNs(
              ns[i],
              'boot',
              'fetch',
              '--interface',
              `swc${i}${id}`,
              '--checksum',
              sum,
              '-o',
              path.join(tmp, `out${i}`),
              '--timeout',
              '60',
              '--quiet',
            ),
            {
              stdio: 'ignore',
            },
          );
          c.on('exit', (code) => {
            resolve(code);
          });
        });
      assert.deepEqual(await Promise.all([fetchOne(1), fetchOne(2)]), [0, 0]);
      for (const i of [1, 2])
        assert.equal(
          createHash('sha256')
            .update(fs.readFileSync(path.join(tmp, `out${i}`)))
            .digest('hex'),
          sum,
        );
    } finally {
      server.kill('SIGTERM');
    }
  } finally {
    for (const n of ns) spawnSync('ip', ['netns', 'del', n]);
  }
});
