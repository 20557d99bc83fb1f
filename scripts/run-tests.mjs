// Runs every compiled test file (dist/test/**/*.test.js) with Node's own test runner.
// Node 20 does not expand globs itself, so we list the files here.
// Usage: node scripts/run-tests.mjs [substring-filter...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk('dist/test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// A test that hangs fails after 15 minutes, and a file whose tests are done exits even if something
// (a leaked child or socket) would keep it alive: CI reports a failure instead of hanging.
const r = spawnSync(
  process.execPath,
  ['--expose-gc', '--test', '--test-reporter=spec', '--test-timeout=900000', '--test-force-exit', ...files],
  {
    stdio: 'inherit',
  },
);
process.exit(r.status ?? 1);
