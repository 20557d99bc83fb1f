import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import { checkPrereqs, fetchPrereqs, loadPrereqs } from '../../src/build/prereq.js';
import { tempDir } from '../helpers/tmp.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const example = path.join(repo, 'examples/rack');
const tmp = tempDir('slipway-prereq-');
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Serves examples/rack/tools/fixtures plus any bytes a test puts in `extra`; counts requests. */
const extra = new Map<string, Buffer>();
const requests: string[] = [];
const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  requests.push(url);
  const body = extra.get(url) ?? readFixture(url);
  if (body === undefined) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-length': body.length }).end(body);
});
function readFixture(url: string): Buffer | undefined {
  const p = path.join(example, 'tools/fixtures', decodeURIComponent(url.split('?')[0] ?? ''));
  if (!p.startsWith(path.join(example, 'tools/fixtures') + path.sep)) return undefined;
  try {
    return fs.readFileSync(p);
  } catch {
    return undefined;
  }
}
let baseUrl = '';
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.close();
});

/** A fresh copy of examples/rack (its prereqs.toml and tools/). */
function rack(): { dir: string; file: string; vars: Record<string, string> } {
  const dir = fs.mkdtempSync(path.join(tmp, 'rack-'));
  fs.cpSync(example, dir, { recursive: true, filter: (src) => !src.includes(`${path.sep}out`) });
  return { dir, file: path.join(dir, 'prereqs.toml'), vars: { base_url: baseUrl } };
}

/** Every regular file under `dir` (relative), or [] when it does not exist. */
function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .sort();
}

const VERSION = fs.readFileSync(path.join(example, 'tools/clickhouse_version'), 'utf8').trim();

test('the conventions: shell vars, a bare version, a checksum key, a permslip list', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'conv-'));
  const a = 'a'.repeat(64);
  const b = 'B'.repeat(64);
  fs.mkdirSync(path.join(dir, 'tools'));
  fs.writeFileSync(path.join(dir, 'tools/crdb_version'), 'v22.1.9\n');
  fs.writeFileSync(path.join(dir, 'tools/console_version'), 'COMMIT="abc123"\nSHA2="ignored"\n');
  fs.writeFileSync(
    path.join(dir, 'tools/crdb_checksums'),
    `CIDL_SHA256_DARWIN="${'0'.repeat(64)}"\nCIDL_SHA256_LINUX="${a}"\n`,
  );
  fs.writeFileSync(path.join(dir, 'tools/permslip'), `${'1'.repeat(64)} sidecar-sp\n${b} gimlet-rot\n`);
  fs.writeFileSync(
    path.join(dir, 'prereqs.toml'),
    `[vars]
base = "https://example.invalid"

[[prereq]]
name = "cockroachdb"
url = "{{base}}/cockroach-{{ VERSION }}.linux-amd64.tgz"
version_file = "tools/crdb_version"
checksum_file = "tools/crdb_checksums"
sha256_key = "CIDL_SHA256_LINUX"
dest = "out/cockroach.tgz"

[[prereq]]
name = "console"
url = "{{base}}/console/{{COMMIT}}.tar.gz"
version_file = "tools/console_version"
sha256 = "${a}"
dest = "out/console.tar.gz"
colour = "blue"

[[prereq]]
name = "gimlet-rot"
url = "{{base}}/rot.zip"
checksum_list = "tools/permslip"
dest = "out/rot.zip"
`,
  );
  const list = loadPrereqs(path.join(dir, 'prereqs.toml'), { base: 'http://127.0.0.1:1' });
  assert.deepEqual(
    list.prereqs.map((p) => [p.name, p.url, p.sha256, path.relative(dir, p.dest)]),
    [
      ['cockroachdb', 'http://127.0.0.1:1/cockroach-v22.1.9.linux-amd64.tgz', a, 'out/cockroach.tgz'],
      ['console', 'http://127.0.0.1:1/console/abc123.tar.gz', a, 'out/console.tar.gz'],
      // checksum_name defaults to the prereq's name; the pin is lowercased
      ['gimlet-rot', 'http://127.0.0.1:1/rot.zip', b.toLowerCase(), 'out/rot.zip'],
    ],
  );
  assert.match(list.prereqs[0]?.pinnedBy ?? '', /crdb_checksums:2 CIDL_SHA256_LINUX$/);
  assert.equal(list.warnings.length, 1);
  assert.match(list.warnings[0]?.where ?? '', /prereqs\.toml:18$/);
  assert.match(list.warnings[0]?.message ?? '', /prereq\[1\]\.colour: unknown key/);
});

test('bad lists name file:line and key', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'bad-'));
  const file = path.join(dir, 'prereqs.toml');
  fs.mkdirSync(path.join(dir, 'tools'));
  fs.writeFileSync(path.join(dir, 'tools/v'), 'COMMIT="abc"\n');
  fs.writeFileSync(path.join(dir, 'tools/sums'), `OTHER="${'a'.repeat(64)}"\n`);
  const cases: [string, string, RegExp, RegExp][] = [
    [
      `[[prereq]]\nname = "x"\nsha256 = "${'a'.repeat(64)}"\nversion_file = "tools/v"\nurl = "https://h/{{COMMIT}}/{{NOPE}}"\ndest = "out/x"\n`,
      'PREREQ_INVALID',
      /prereqs\.toml:5$/,
      /prereq\[0\]\.url: prereq 'x': \{\{NOPE\}\} is not set/,
    ],
    [
      `[[prereq]]\nname = "x"\nsha256 = "${'a'.repeat(64)}"\nversion_file = "tools/missing_version"\nurl = "https://h/"\ndest = "out/x"\n`,
      'NOT_FOUND',
      /prereqs\.toml:4$/,
      /version_file: prereq 'x': .*tools\/missing_version: no such file/,
    ],
    [
      `[[prereq]]\nname = "x"\nchecksum_file = "tools/sums"\nsha256_key = "CIDL_SHA256_LINUX"\nurl = "https://h/"\ndest = "out/x"\n`,
      'VERSION_FILE_INVALID',
      /prereqs\.toml:4$/,
      /sha256_key: prereq 'x': .*no key CIDL_SHA256_LINUX \(has: OTHER\)/,
    ],
    [
      `[[prereq]]\nname = "x"\nurl = "https://h/"\ndest = "out/x"\n`,
      'PREREQ_INVALID',
      /prereqs\.toml:1$/,
      /no pin/,
    ],
    [
      `[[prereq]]\nname = "x"\nsha256 = "${'a'.repeat(64)}"\nurl = "https://h/"\ndest = "../x"\n`,
      'PREREQ_INVALID',
      /prereqs\.toml:5$/,
      /dest: .*must be a relative path inside/,
    ],
  ];
  for (const [text, code, where, message] of cases) {
    fs.writeFileSync(file, text);
    assert.throws(
      () => loadPrereqs(file),
      (err: unknown) => {
        assert.ok(isSlipwayError(err), String(err));
        assert.equal(err.code, code, err.message);
        assert.match(err.where ?? '', where);
        assert.match(err.message, message);
        return true;
      },
    );
  }
});

test('fetch downloads and verifies; a second run is a no-op', async () => {
  const r = rack();
  const before = requests.length;
  const res = await fetchPrereqs({ file: r.file, vars: r.vars });
  assert.equal(res.ok, true, JSON.stringify(res.prereqs.map((p) => [p.name, p.state, p.error?.message])));
  assert.deepEqual(
    res.prereqs.map((p) => [p.name, p.state]),
    [
      ['clickhouse', 'downloaded'],
      ['gimlet-sp', 'downloaded'],
    ],
  );
  assert.equal(requests.length - before, 2);
  const fixture = fs.readFileSync(
    path.join(example, `tools/fixtures/clickhouse/clickhouse-${VERSION}.linux.tar.gz`),
  );
  const dest = path.join(r.dir, 'out/downloads/clickhouse.tar.gz');
  assert.deepEqual(fs.readFileSync(dest), fixture);
  assert.ok(fs.existsSync(path.join(r.dir, 'out/.slipway/downloads/sha256', sha(fixture))));

  const st = fs.statSync(dest);
  const again = await fetchPrereqs({ file: r.file, vars: r.vars });
  assert.deepEqual(
    again.prereqs.map((p) => p.state),
    ['cached', 'cached'],
  );
  assert.equal(requests.length - before, 2, 'the server saw no request');
  const st2 = fs.statSync(dest);
  assert.equal(st2.ino, st.ino);
  assert.equal(st2.mtimeMs, st.mtimeMs);

  const check = await checkPrereqs({ file: r.file, vars: r.vars });
  assert.equal(check.ok, true);
  assert.deepEqual(
    check.prereqs.map((p) => [p.name, p.state, p.inCache]),
    [
      ['clickhouse', 'ok', true],
      ['gimlet-sp', 'ok', true],
    ],
  );
});

test('a version bump: check says stale, fetch replaces it', async () => {
  const r = rack();
  assert.equal((await fetchPrereqs({ file: r.file, vars: r.vars })).ok, true);
  const next = Buffer.from('clickhouse v23.8.1.1 (new bytes)\n');
  extra.set('/clickhouse/clickhouse-v23.8.1.1.linux.tar.gz', next);
  fs.writeFileSync(path.join(r.dir, 'tools/clickhouse_version'), 'v23.8.1.1\n');
  fs.writeFileSync(path.join(r.dir, 'tools/clickhouse_checksums'), `CIDL_SHA256_LINUX="${sha(next)}"\n`);

  const check = await checkPrereqs({ file: r.file, vars: r.vars });
  assert.equal(check.ok, false);
  assert.deepEqual(
    check.prereqs.map((p) => [p.name, p.state]),
    [
      ['clickhouse', 'stale'],
      ['gimlet-sp', 'ok'],
    ],
  );
  assert.equal(
    check.prereqs[0]?.actual,
    sha(fs.readFileSync(path.join(r.dir, 'out/downloads/clickhouse.tar.gz'))),
  );

  const res = await fetchPrereqs({ file: r.file, vars: r.vars });
  assert.deepEqual(
    res.prereqs.map((p) => p.state),
    ['downloaded', 'cached'],
  );
  assert.deepEqual(fs.readFileSync(path.join(r.dir, 'out/downloads/clickhouse.tar.gz')), next);
  assert.equal((await checkPrereqs({ file: r.file, vars: r.vars })).ok, true);
});

test('a checksum mismatch keeps nothing, in the cache or at dest', async () => {
  const r = rack();
  fs.writeFileSync(path.join(r.dir, 'tools/clickhouse_checksums'), `CIDL_SHA256_LINUX="${'e'.repeat(64)}"\n`);
  const res = await fetchPrereqs({ file: r.file, vars: r.vars, jobs: 1 });
  assert.equal(res.ok, false);
  const ch = res.prereqs.find((p) => p.name === 'clickhouse');
  assert.equal(ch?.state, 'failed');
  assert.equal(ch?.error?.code, 'CHECKSUM_MISMATCH');
  assert.deepEqual(files(path.join(r.dir, 'out/.slipway/downloads')), []);
  assert.equal(fs.existsSync(path.join(r.dir, 'out/downloads/clickhouse.tar.gz')), false);
  // jobs: 1 and the graph runs clickhouse first: the failure stops gimlet-sp before it starts.
  assert.deepEqual(files(path.join(r.dir, 'out/downloads')), []);
});

test('--offline with an empty cache: OFFLINE_MISSING', async () => {
  const r = rack();
  const before = requests.length;
  const res = await fetchPrereqs({ file: r.file, vars: r.vars, offline: true, jobs: 1 });
  assert.equal(res.ok, false);
  assert.equal(res.prereqs[0]?.error?.code, 'OFFLINE_MISSING');
  assert.equal(requests.length, before);
  assert.deepEqual(files(path.join(r.dir, 'out/downloads')), []);
});

test('offline from a warm cache, and a damaged cache entry is replaced', async () => {
  const r = rack();
  const cacheDir = path.join(r.dir, 'cache');
  assert.equal((await fetchPrereqs({ file: r.file, vars: r.vars, cacheDir })).ok, true);
  fs.rmSync(path.join(r.dir, 'out/downloads'), { recursive: true });
  const offline = await fetchPrereqs({ file: r.file, vars: r.vars, cacheDir, offline: true });
  assert.deepEqual(
    offline.prereqs.map((p) => p.state),
    ['from-cache', 'from-cache'],
  );
  // Damage the cached clickhouse: the copy is verified, so it is downloaded again.
  fs.rmSync(path.join(r.dir, 'out/downloads/clickhouse.tar.gz'));
  const entry = path.join(cacheDir, 'sha256', offline.prereqs[0]?.sha256 ?? '');
  fs.writeFileSync(entry, 'damaged');
  const res = await fetchPrereqs({ file: r.file, vars: r.vars, cacheDir });
  assert.equal(res.prereqs[0]?.state, 'downloaded');
  assert.equal(sha(fs.readFileSync(entry)), res.prereqs[0]?.sha256);
});

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(repo, 'bin/slipway.js'), ...args], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

test('CLI: prereq check --json, fetch, check again', async () => {
  const r = rack();
  const args = ['-f', r.file, '--var', `base_url=${baseUrl}`];
  // check needs no network, so a blocking spawn is fine here.
  const c1 = spawnSync(
    process.execPath,
    [path.join(repo, 'bin/slipway.js'), '--json', 'prereq', 'check', ...args],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(c1.status, 1, c1.stderr);
  const data = JSON.parse(c1.stdout) as {
    ok: boolean;
    prereqs: { name: string; state: string; url: string }[];
  };
  assert.equal(data.ok, false);
  assert.deepEqual(
    data.prereqs.map((p) => [p.name, p.state]),
    [
      ['clickhouse', 'missing'],
      ['gimlet-sp', 'missing'],
    ],
  );
  assert.equal(data.prereqs[0]?.url, `${baseUrl}/clickhouse/clickhouse-${VERSION}.linux.tar.gz`);

  // fetch talks to this process's server: run it without blocking the event loop.
  const f = await runCli(['--plain', 'prereq', 'fetch', ...args]);
  assert.equal(f.code, 0, f.stderr);
  assert.match(f.stdout, /^clickhouse +downloaded +\S*clickhouse\.tar\.gz$/m);

  const c2 = await runCli(['prereq', 'check', ...args]);
  assert.equal(c2.code, 0, c2.stderr);
  assert.match(c2.stdout, /^gimlet-sp +ok +\S*gimlet-sp\.zip$/m);

  const bad = await runCli(['prereq', 'check', '-f', path.join(r.dir, 'nope.toml')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /error\[NOT_FOUND\]/);
});
