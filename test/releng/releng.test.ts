import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isSlipwayError } from '../../src/core/errors.js';
import { releaseVersion, runReleng } from '../../src/releng/releng.js';
import { verifyRepositoryZip } from '../../src/repo/index.js';
import { lookimage } from '../../src/boot/index.js';
import { tempDir } from '../helpers/tmp.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const tmp = tempDir();
const cli = path.join(repo, 'bin/slipway.js');

function rack(): { dir: string; out: string } {
  const dir = fs.mkdtempSync(path.join(tmp, 'rack-'));
  fs.cpSync(path.join(repo, 'examples/rack'), dir, { recursive: true });
  fs.rmSync(path.join(dir, 'out'), { recursive: true, force: true });
  return { dir, out: path.join(dir, 'out') };
}

const env: NodeJS.ProcessEnv = { ...process.env, CI: '' };
delete env.SLIPWAY_TUF_KEY;
delete env.TUFACEOUS_KEY;

function states(r: Awaited<ReturnType<typeof runReleng>>): Record<string, string> {
  return Object.fromEntries((r.report?.jobs ?? []).map((j) => [j.name, j.state]));
}

test('release version: Omicron rule', () => {
  assert.equal(
    releaseVersion(17, { CI: 'true' }, () => '0123456789abcdef0123'),
    '17.0.0-0.ci+git0123456789a',
  );
  assert.equal(
    releaseVersion(17, {}, () => assert.fail('no git outside CI')),
    '17.0.0-0.local',
  );
  assert.equal(
    releaseVersion(3, { CI: 'false' }, () => ''),
    '3.0.0-0.local',
  );
});

test('releng on the example: a verified repository; the second run is a no-op; an edit redoes only what depends on it', async () => {
  const r = rack();
  const first = await runReleng({ dir: r.dir, out: r.out, env });
  assert.equal(
    first.report?.ok,
    true,
    JSON.stringify(first.report?.jobs.map((j) => [j.name, j.state, j.error?.message])),
  );
  assert.ok(first.generatedKey?.startsWith('ed25519:'));
  const zip = path.join(r.out, 'repo.zip');
  const sha = createHash('sha256').update(fs.readFileSync(zip)).digest('hex');
  assert.equal(fs.readFileSync(`${zip}.sha256.txt`, 'utf8'), `${sha}\n`);
  const v = await verifyRepositoryZip(zip, { now: new Date() });
  assert.equal(v.systemVersion, '1.0.0-0.local');
  const kinds = v.artifacts.map((a) => a.kind);
  for (const k of [
    'host',
    'trampoline',
    'control_plane',
    'gimlet_sp',
    'switch_rot_bootloader',
    'installinator_document',
  ]) {
    assert.ok(kinds.includes(k), k);
  }
  // The control plane holds the stamped zones, each a t=layer image of the release version.
  const cp = v.artifacts.find((a) => a.kind === 'control_plane');
  assert.deepEqual(
    cp?.zones?.map((z) => [z.file, z.pkg, z.version]),
    [
      ['zones/nexus.tar.gz', 'nexus', '1.0.0-0.local'],
      ['zones/oximeter.tar.gz', 'oximeter', '1.0.0-0.local'],
      ['zones/switch.tar.gz', 'switch', '1.0.0-0.local'],
    ],
  );
  // The host image's phase 2 is a real boot image (boot mkimage), readable by lookimage.
  const img = await lookimage(path.join(r.out, 'os/host/zfs.img'));
  assert.equal(img.header.name, 'helios-example');
  assert.equal(img.header.dataset, 'rpool/ROOT/helios');
  const tar = spawnSync('tar', ['-tzvf', path.join(r.out, 'os/host/os.tar.gz')], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  assert.match(tar.stdout, /^-r--r--r-- root\/root .* oxide\.json$/m);
  assert.match(tar.stdout, /image\/zfs\.img$/m);

  const second = await runReleng({ dir: r.dir, out: r.out, env });
  assert.equal(second.generatedKey, undefined, 'the throwaway key is kept and reused');
  assert.ok(
    Object.values(states(second)).every((s) => s === 'cached'),
    JSON.stringify(states(second)),
  );
  assert.equal(createHash('sha256').update(fs.readFileSync(zip)).digest('hex'), sha, 'repo.zip untouched');

  // An edited SMF file: packages, the nexus stamp, the control plane and the repo rebuild; the OS images do not.
  const smf = path.join(r.dir, 'smf/nexus/manifest.xml');
  fs.appendFileSync(smf, '<!-- edited -->\n');
  const third = await runReleng({ dir: r.dir, out: r.out, env });
  const s3 = states(third);
  assert.equal(third.report?.ok, true);
  assert.equal(s3['os:host'], 'cached');
  assert.equal(s3['os:trampoline'], 'cached');
  assert.equal(s3['stamp:oximeter'], 'cached');
  assert.equal(s3['stamp:nexus'], 'ok');
  assert.equal(s3.repo, 'ok');
  assert.equal(s3.verify, 'ok');
  assert.notEqual(createHash('sha256').update(fs.readFileSync(zip)).digest('hex'), sha);
});

test('releng: a failing job stops the run, names the job, and leaves no repo.zip', async () => {
  const r = rack();
  const cfg = path.join(r.dir, 'releng.toml');
  // The first phase_1 line is the host's.
  fs.writeFileSync(
    cfg,
    fs.readFileSync(cfg, 'utf8').replace('gimlet = "os/gimlet.rom"', 'gimlet = "os/missing.rom"'),
  );
  const res = await runReleng({ dir: r.dir, out: r.out, env });
  assert.equal(res.report?.ok, false);
  assert.equal(res.report?.failed, 'os:host');
  const st = states(res);
  assert.equal(st.repo, 'dependency-failed');
  assert.ok(!fs.existsSync(path.join(r.out, 'repo.zip')));
  // The CLI says which job failed and exits non-zero.
  const p = spawnSync(process.execPath, [cli, 'releng', r.dir, '-o', path.join(r.dir, 'out2')], {
    encoding: 'utf8',
    env,
  });
  assert.equal(p.status, 1, p.stderr);
  assert.match(p.stderr, /error\[JOB_FAILED\].*os:host/);
});

test('releng: a bad releng.toml names file and line, and nothing is written', async () => {
  const r = rack();
  const cfg = path.join(r.dir, 'releng.toml');
  fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('major = 1', 'major = "one"'));
  await assert.rejects(runReleng({ dir: r.dir, out: r.out, env }), (err: unknown) => {
    assert.ok(isSlipwayError(err, 'MANIFEST_INVALID'));
    assert.match(err.where ?? '', /releng\.toml:\d+$/);
    return true;
  });
  assert.ok(!fs.existsSync(r.out));
});

test('releng --dry-run prints the plan and changes nothing', async () => {
  const r = rack();
  const res = await runReleng({ dir: r.dir, out: r.out, env, dryRun: true });
  assert.equal(res.dryRun, true);
  assert.deepEqual(
    res.plan.map((j) => j.name),
    [
      'os:host',
      'os:trampoline',
      'packages',
      'stamp:nexus',
      'stamp:oximeter',
      'stamp:switch',
      'control-plane',
      'repo',
      'verify',
    ],
  );
  assert.ok(!fs.existsSync(r.out));
});

test('releng with pinned firmware downloads (prereqs.toml over a local server)', async () => {
  const r = rack();
  const fixtures = path.join(r.dir, 'tools/fixtures');
  const server = http.createServer((req, res) => {
    const file = path.join(fixtures, decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/'));
    if (!file.startsWith(fixtures) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': fs.statSync(file).size });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    const cfg = path.join(r.dir, 'releng.toml');
    fs.writeFileSync(
      cfg,
      fs
        .readFileSync(cfg, 'utf8')
        .replace(
          'name = "gimlet-sp"\nversion = "1.0.0"\nsource = { kind = "fake", size = "256KiB" }',
          'name = "gimlet-sp"\nversion = "1.0.0"\nsource = { kind = "prereq", name = "gimlet-sp" }',
        ),
    );
    const res = await runReleng({
      dir: r.dir,
      out: r.out,
      env,
      vars: { base_url: `http://127.0.0.1:${port}` },
    });
    assert.equal(
      res.report?.ok,
      true,
      JSON.stringify(res.report?.jobs.map((j) => [j.name, j.state, j.error?.message])),
    );
    assert.equal(states(res).prereqs, 'ok');
    const v = await verifyRepositoryZip(path.join(r.out, 'repo.zip'), { now: new Date() });
    const sp = v.artifacts.find((a) => a.kind === 'gimlet_sp');
    const pinned = createHash('sha256')
      .update(
        fs.readFileSync(path.join(fixtures, 'sp/4b0c2f1e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c/gimlet-sp.zip')),
      )
      .digest('hex');
    assert.equal(sp?.sha256, pinned);
  } finally {
    server.close();
  }
});
