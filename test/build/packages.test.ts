import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { isSlipwayError } from '../../src/core/errors.js';
import { buildPackages, stampPackage } from '../../src/build/index.js';
import { tempDir } from '../helpers/tmp.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const tmp = tempDir();

/** A fresh copy of examples/rack to build in. */
function rack(): { dir: string; manifest: string; out: string } {
  const dir = fs.mkdtempSync(path.join(tmp, 'rack-'));
  fs.cpSync(path.join(repo, 'examples/rack'), dir, { recursive: true });
  return { dir, manifest: path.join(dir, 'package-manifest.toml'), out: path.join(dir, 'out') };
}

function names(file: string): string[] {
  const r = spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

test('zone, tarball and composite outputs as omicron-package writes them', async () => {
  const r = rack();
  const res = await buildPackages({ manifest: r.manifest, target: ['standard'], out: r.out });
  assert.equal(
    res.report?.ok,
    true,
    JSON.stringify(res.report?.jobs.map((j) => [j.name, j.state, j.error?.message])),
  );
  // zone: oxide.json, then for each path its ancestors before it, then the rust binary under /opt/oxide/<service>/bin
  assert.deepEqual(names(path.join(r.out, 'nexus.tar.gz')), [
    'oxide.json',
    'root/',
    'root/var',
    'root/var/svc',
    'root/var/svc/manifest',
    'root/var/svc/manifest/site',
    'root/var/svc/manifest/site/nexus',
    'root/var/svc/manifest/site/nexus/manifest.xml',
    'root/',
    'root/var',
    'root/var/svc',
    'root/var/svc/manifest',
    'root/var/svc/manifest/site',
    'root/var/svc/manifest/site/nexus/',
    'root/var/svc/manifest/site/nexus/config-partial.toml',
    'root/',
    'root/opt',
    'root/opt/oxide',
    'root/opt/oxide/nexus',
    'root/opt/oxide/nexus/bin',
    'root/opt/oxide/nexus/bin/nexus',
  ]);
  const nexus = gunzipSync(fs.readFileSync(path.join(r.out, 'nexus.tar.gz')));
  const json = '{"v":"1","t":"layer","pkg":"nexus","version":"0.0.0"}';
  assert.equal(nexus.toString('utf8', 512, 512 + json.length), json);
  // {{rack-topology}} = single-sled chose that directory
  assert.match(nexus.toString('latin1'), /single-sled/);
  // tarball: VERSION first, holding 0.0.0 without a newline; paths as given
  const tarball = fs.readFileSync(path.join(r.out, 'sled-agent.tar'));
  assert.equal(tarball.toString('latin1', 0, 7), 'VERSION');
  assert.equal(tarball.toString('latin1', 124, 135), '00000000005');
  assert.equal(tarball.toString('latin1', 512, 517), '0.0.0');
  assert.equal(tarball[517], 0);
  assert.deepEqual(names(path.join(r.out, 'sled-agent.tar')), [
    'VERSION',
    'pkg/config.toml',
    'pkg/manifest.xml',
  ]);
  // composite: its own oxide.json, then each component's entries in list order without theirs
  const sw = names(path.join(r.out, 'switch.tar.gz'));
  assert.equal(sw[0], 'oxide.json');
  assert.equal(sw.filter((n) => n === 'oxide.json').length, 1);
  assert.ok(
    sw.indexOf('root/var/svc/manifest/site/switch/common.xml') <
      sw.indexOf('root/var/svc/manifest/site/switch/asic.xml'),
  );
  assert.match(
    gunzipSync(fs.readFileSync(path.join(r.out, 'switch.tar.gz'))).toString('utf8', 512, 600),
    /^\{"v":"1","t":"layer","pkg":"switch","version":"0\.0\.0"\}/,
  );
  // stamping rewrites the version and keeps every other entry
  const st = await stampPackage({
    manifest: r.manifest,
    out: r.out,
    name: 'switch',
    version: '1.0.0-0.ci+git0123456789a',
  });
  assert.deepEqual(names(st.output), sw);
  assert.match(
    gunzipSync(fs.readFileSync(st.output)).toString('utf8', 512, 600),
    /"version":"1\.0\.0-0\.ci\+git0123456789a"\}/,
  );
  // logs per job
  assert.ok(fs.existsSync(path.join(r.out, 'logs', 'nexus.log')));
});

test('cache: a no-op run rebuilds nothing; a changed input rebuilds that package and its composites; a deleted output is rebuilt', async () => {
  const r = rack();
  const first = await buildPackages({ manifest: r.manifest, target: ['standard'], out: r.out });
  assert.equal(first.report?.ok, true);
  const again = await buildPackages({ manifest: r.manifest, target: ['standard'], out: r.out });
  assert.deepEqual(
    again.report?.jobs.filter((j) => j.state !== 'cached').map((j) => j.name),
    [],
  );
  fs.appendFileSync(path.join(r.dir, 'smf/switch/asic.xml'), '<!-- changed -->\n');
  fs.rmSync(path.join(r.out, 'oximeter.tar.gz'));
  const third = await buildPackages({ manifest: r.manifest, target: ['standard'], out: r.out });
  assert.deepEqual(
    third.report?.jobs
      .filter((j) => j.state === 'ok')
      .map((j) => j.name)
      .sort(),
    ['oximeter', 'switch', 'switch-asic'],
  );
});

test('a missing input names the manifest line and the key; nothing is written for it', async () => {
  const r = rack();
  fs.rmSync(path.join(r.dir, 'config/oximeter.toml'));
  const res = await buildPackages({ manifest: r.manifest, target: ['standard'], out: r.out });
  assert.equal(res.report?.ok, false);
  const failed = res.report?.jobs.find((j) => j.name === res.report?.failed);
  assert.equal(failed?.name, 'oximeter');
  assert.equal(failed?.error?.code, 'PACKAGE_INPUT_MISSING');
  assert.match(failed?.error?.where ?? '', /package-manifest\.toml:20$/);
  assert.match(
    failed?.error?.message ?? '',
    /^package\.oximeter\.source\.paths\[1\]\.from: no such file 'config\/oximeter\.toml'/,
  );
  assert.equal(fs.existsSync(path.join(r.out, 'oximeter.tar.gz')), false);
  assert.deepEqual(
    fs.readdirSync(r.out).filter((f) => f.includes('.tmp')),
    [],
  );
});

/** Serves the prebuilt console archive; `plan` scripts the first responses' statuses. */
async function server(
  body: Buffer,
  plan: number[] = [],
): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const s = http.createServer((req, res) => {
    hits++;
    const status = plan.shift() ?? 200;
    if (
      status !== 200 ||
      req.url !== '/console/image/0123456789abcdef0123456789abcdef01234567/console-assets.tar.gz'
    ) {
      res.writeHead(status === 200 ? 404 : status).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () =>
      new Promise((resolve) => {
        s.close(() => {
          resolve();
        });
      }),
  };
}

/** Builds only the rack's prebuilt console-assets package (target full), with `more` options. */
function buildConsoleAssets(
  r: { manifest: string; out: string },
  more: { prebuiltUrl?: string; offline?: boolean },
): ReturnType<typeof buildPackages> {
  return buildPackages({
    manifest: r.manifest,
    target: ['full'],
    out: r.out,
    packages: ['console-assets'],
    ...more,
  });
}

test('prebuilt: downloaded with retries (500, 500, 200), verified, cached; --offline uses the cache', async () => {
  const r = rack();
  const body = fs.readFileSync(path.join(r.dir, 'prebuilt/console-assets.tar.gz'));
  const srv = await server(body, [500, 500]);
  try {
    const res = await buildConsoleAssets(r, { prebuiltUrl: srv.url });
    assert.equal(res.report?.ok, true, res.report?.jobs[0]?.error?.message);
    assert.equal(srv.hits(), 3);
    assert.ok(fs.readFileSync(path.join(r.out, 'console-assets.tar.gz')).equals(body));
  } finally {
    await srv.close();
  }
  fs.rmSync(path.join(r.out, 'console-assets.tar.gz'));
  const offline = await buildConsoleAssets(r, { offline: true, prebuiltUrl: 'http://127.0.0.1:9' });
  assert.equal(offline.report?.ok, true);
});

test('prebuilt: a checksum mismatch keeps nothing; --offline without a cache is a clear error', async () => {
  const r = rack();
  const srv = await server(Buffer.from('not the pinned archive'));
  try {
    const res = await buildConsoleAssets(r, { prebuiltUrl: srv.url });
    assert.equal(res.report?.ok, false);
    assert.equal(res.report?.jobs[0]?.error?.code, 'CHECKSUM_MISMATCH');
    assert.equal(fs.existsSync(path.join(r.out, 'console-assets.tar.gz')), false);
    const cache = path.join(r.out, '.slipway', 'downloads');
    const leftovers = fs.existsSync(cache)
      ? fs
          .readdirSync(cache, { recursive: true })
          .filter((f) => !fs.statSync(path.join(cache, String(f))).isDirectory())
      : [];
    assert.deepEqual(leftovers, []);
  } finally {
    await srv.close();
  }
  const offline = await buildConsoleAssets(r, { offline: true });
  assert.equal(offline.report?.jobs[0]?.error?.code, 'OFFLINE_MISSING');
  assert.match(
    offline.report?.jobs[0]?.error?.message ?? '',
    /hint: the console archive comes from the prebuilt server/,
  );
});

test('dry run builds nothing; an unknown preset is a usage error listing the presets', async () => {
  const r = rack();
  const res = await buildPackages({ manifest: r.manifest, target: ['standard'], out: r.out, dryRun: true });
  assert.equal(res.report, undefined);
  assert.ok(res.plan.order.indexOf('switch-asic') < res.plan.order.indexOf('switch'));
  assert.equal(fs.existsSync(r.out), false);
  await assert.rejects(
    buildPackages({ manifest: r.manifest, target: ['nope'], out: r.out }),
    (e: unknown) => isSlipwayError(e) && /standard/.test(e.message),
  );
});

test('SIGINT in the middle of a build leaves no partial file in out/, and the next run completes', async () => {
  const { spawn } = await import('node:child_process');
  const { randomBytes } = await import('node:crypto');
  const r = rack();
  const block = randomBytes(1 << 20);
  const fd = fs.openSync(path.join(r.dir, 'config/oximeter.toml'), 'w');
  for (let i = 0; i < 256; i++) fs.writeSync(fd, block);
  fs.closeSync(fd);
  const bin = path.join(repo, 'bin/slipway.js');
  const args = [bin, 'package', '-m', r.manifest, '-t', 'standard', '-o', r.out, '--plain'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const code = await new Promise<NodeJS.Signals | number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('[write oximeter.tar.gz] started')) setTimeout(() => child.kill('SIGINT'), 150);
    });
    child.on('exit', (c, signal) => {
      resolve(signal ?? c);
    });
  });
  // It dies of the signal it got, as a shell expects (status 130).
  assert.equal(code, 'SIGINT', stderr);
  const leftovers = fs.readdirSync(r.out).filter((f) => f.endsWith('.tmp'));
  assert.deepEqual(leftovers, []);
  assert.equal(fs.existsSync(path.join(r.out, 'oximeter.tar.gz')), false);
  const again = spawnSync(process.execPath, args.slice(0, -1).concat('--quiet'), { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.ok(fs.statSync(path.join(r.out, 'oximeter.tar.gz')).size > 200 << 20);
});

test('blobs and buildomat blobs are fetched once, verified, and land under /opt/oxide/<service>/blob', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'blobs-'));
  const s3blob = Buffer.from('s3 blob contents\n');
  const artifact = Buffer.from('buildomat artifact\n');
  const { createHash } = await import('node:crypto');
  const sha = createHash('sha256').update(artifact).digest('hex');
  let hits = 0;
  const srv = http.createServer((req, res) => {
    hits++;
    if (req.url === '/s3/data/blob.bin') res.writeHead(200).end(s3blob);
    else if (req.url === '/bm/oxidecomputer/dendrite/image/abc123/tool.bin') res.writeHead(200).end(artifact);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  fs.writeFileSync(
    path.join(dir, 'package-manifest.toml'),
    `[package.dendrite]
service_name = "dendrite"
source.type = "local"
source.blobs = ["data/blob.bin"]
source.buildomat_blobs = [{ repo = "oxidecomputer/dendrite", series = "image", commit = "abc123", artifact = "tool.bin", sha256 = "${sha}" }]
output.type = "zone"
`,
  );
  try {
    const opts = {
      manifest: path.join(dir, 'package-manifest.toml'),
      out: path.join(dir, 'out'),
      blobUrl: `${base}/s3`,
      buildomatUrl: `${base}/bm`,
    };
    const res = await buildPackages(opts);
    assert.equal(res.report?.ok, true, res.report?.jobs[0]?.error?.message);
    assert.deepEqual(names(path.join(dir, 'out/dendrite.tar.gz')), [
      'oxide.json',
      'root/',
      'root/opt',
      'root/opt/oxide',
      'root/opt/oxide/dendrite',
      'root/opt/oxide/dendrite/blob',
      'root/opt/oxide/dendrite/blob/data/blob.bin',
      'root/opt/oxide/dendrite/blob/tool.bin',
    ]);
    assert.equal(hits, 2);
    fs.rmSync(path.join(dir, 'out/dendrite.tar.gz'));
    const again = await buildPackages(opts);
    assert.equal(again.report?.ok, true);
    assert.equal(hits, 2, 'blobs come from the cache the second time');
  } finally {
    await new Promise<void>((resolve) => {
      srv.close(() => {
        resolve();
      });
    });
  }
});
