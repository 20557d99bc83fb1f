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
      [
        'netns',
        'exec',
        nsA,
        process.execPath,
        bin,
        'boot',
        'serve',
        image,
        '--interface',
        ifA,
        '--once',
        '--timeout',
        '60',
        '--json',
      ],
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
    // A wrong checksum: the offer is refused and nothing is written.
    const wrong = path.join(tmp, 'wrong');
    const bad = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        nsB,
        process.execPath,
        bin,
        'boot',
        'fetch',
        '--interface',
        ifB,
        '--checksum',
        '0'.repeat(64),
        '-o',
        wrong,
        '--timeout',
        '3',
      ],
      { encoding: 'utf8' },
    );
    assert.notEqual(bad.status, 0);
    assert.equal(fs.existsSync(wrong), false);
    const out = path.join(tmp, 'fetched');
    const r = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        nsB,
        process.execPath,
        bin,
        'boot',
        'fetch',
        '--interface',
        ifB,
        '--checksum',
        sum,
        '-o',
        out,
        '--timeout',
        '60',
        '--json',
      ],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(createHash('sha256').update(fs.readFileSync(out)).digest('hex'), sum);
    assert.equal(await serverDone, 0, served);
    assert.equal((JSON.parse(served) as { finished: number }).finished, 1);
  } finally {
    spawnSync('ip', ['netns', 'del', nsA]);
    spawnSync('ip', ['netns', 'del', nsB]);
  }
});
