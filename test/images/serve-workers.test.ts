import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/slipway.js');

test('images serve --workers 2: processes share one port and one repository; SIGTERM stops them all', async (t) => {
  const data = path.join(tempDir(), 'data');
  const p = spawn(
    process.execPath,
    [cli, '--json', 'images', 'serve', '--data', data, '--port', '0', '--workers', '2'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // A failed assertion must not leave the server (and so this test file) running.
  t.after(() => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 20_000;
  while (!out.includes('"listening"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const info = JSON.parse(out.split('\n')[0] ?? '{}') as { listening: string; workers: number };
  assert.equal(info.workers, 2);
  // A write through one worker is visible through any other: they share the stores.
  const created = await fetch(`${info.listening}/images`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'accept-version': '~2' },
    body: JSON.stringify({
      owner: '930896af-bf8c-48d4-885c-6573a94b1853',
      name: 'w',
      version: '1.0.0',
      type: 'other',
      os: 'other',
    }),
  });
  assert.equal(created.status, 200);
  const { uuid } = (await created.json()) as { uuid: string };
  const pids = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const r = await fetch(`${info.listening}/images/${uuid}?channel=dev`, {
      headers: { 'accept-version': '~2', connection: 'close' },
    });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const ping = (await (
      await fetch(`${info.listening}/ping`, { headers: { connection: 'close' } })
    ).json()) as { pid?: number };
    if (ping.pid !== undefined) pids.add(ping.pid);
  }
  // The primary hands connections round-robin, and `listening` is announced only once every worker
  // accepts: both workers answered, so the reads above went through each.
  assert.equal(pids.size, 2);
  p.kill('SIGTERM');
  const [code] = (await once(p, 'exit')) as [number | null];
  assert.equal(code, 0);
});
