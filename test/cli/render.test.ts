import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliReporter } from '../../src/cli/render.js';

/** A stand-in for process.stderr that records what is written. */
function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const stream = {
    isTTY,
    write: (s: string) => {
      chunks.push(s);
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join('') };
}

test('plain mode: timestamped lines, no escape codes', () => {
  const { stream, text } = fakeStream(false);
  const r = new CliReporter({ stream, env: {}, now: () => new Date('2026-01-02T03:04:05.678Z') });
  r.emit({ kind: 'task-start', task: 'pack x' });
  r.emit({ kind: 'log', level: 'warn', message: 'careful', task: 'pack x' });
  r.emit({ kind: 'task-end', task: 'pack x', ok: true });
  r.close();
  const lines = text().trim().split('\n');
  assert.equal(lines[0], '2026-01-02T03:04:05.678Z [pack x] started');
  assert.equal(lines[1], '2026-01-02T03:04:05.678Z [pack x] warning: careful');
  assert.match(lines[2] ?? '', /^2026-01-02T03:04:05\.678Z ✓ \[pack x\] done in \d+\.\ds$/);
  assert.ok(!text().includes('\x1b['));
});

test('TTY mode: a live task display redrawn in place, coloured unless NO_COLOR', async () => {
  const { stream, text } = fakeStream(true);
  const r = new CliReporter({ stream, env: {} });
  r.emit({ kind: 'task-start', task: 'install a', total: 2048, unit: 'bytes' });
  r.emit({ kind: 'task-progress', task: 'install a', done: 1024, total: 2048 });
  await new Promise((resolve) => setTimeout(resolve, 150));
  r.emit({ kind: 'task-end', task: 'install a', ok: true });
  r.close();
  const out = text();
  assert.match(out, /install a 50% 1 KiB\/2 KiB/);
  assert.ok(out.includes('\x1b[1A\x1b[J'), 'the live line is cleared and redrawn');
  assert.ok(out.includes('\x1b[32m✓\x1b[0m'), 'colour on a TTY');

  const plain = fakeStream(true);
  const r2 = new CliReporter({ stream: plain.stream, env: { NO_COLOR: '1' } });
  r2.emit({ kind: 'task-start', task: 't' });
  r2.emit({ kind: 'task-end', task: 't', ok: false });
  r2.close();
  assert.ok(!plain.text().includes('\x1b[3'), 'NO_COLOR: no colour codes');
  assert.match(plain.text(), /✗ \[t\] failed/);
});
