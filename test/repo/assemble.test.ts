import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { isSlipwayError } from '../../src/core/errors.js';
import { encodeArtifactsDocument } from '../../src/formats/repo-artifacts.js';
import { parseRepoManifest } from '../../src/formats/repo-manifest.js';
import { generateKey } from '../../src/formats/tuf/index.js';
import { assembleRepository, loadSigners } from '../../src/repo/index.js';
import { tempDir, snapshot } from '../helpers/tmp.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = path.join(repoRoot, 'bin/slipway.js');
const tmp = tempDir();
const key = generateKey().text;
const signers = loadSigners({ keys: [key] }).signers;
const NOW = new Date('2026-11-01T12:00:00Z');

const ALL_FAKE = `system_version = "2.0.0"
[[artifact.gimlet_sp]]
name = "sp"
version = "1.0.0"
source = { kind = "fake", size = "4KiB" }
[[artifact.gimlet_rot]]
name = "rot"
version = "1.0.0"
source = { kind = "composite-rot", archive_a = { kind = "fake", size = "1KiB" }, archive_b = { kind = "fake", size = "1KiB" } }
[[artifact.host]]
name = "host"
version = "2.0.0"
source = { kind = "composite-host", gimlet_phase_1 = "rom.bin", phase_2 = { kind = "fake", size = "8KiB" } }
[[artifact.control_plane]]
name = "cp"
version = "2.0.0"
[artifact.control_plane.source]
kind = "composite-control-plane"
zones = [ { kind = "fake", artifact_name = "nexus", file_name = "nexus.tar.gz", size = "2KiB" } ]
`;

function dirWith(manifest: string): { dir: string; manifest: string } {
  const dir = fs.mkdtempSync(path.join(tmp, 'm-'));
  fs.writeFileSync(path.join(dir, 'rom.bin'), 'phase one rom\n');
  fs.writeFileSync(path.join(dir, 'manifest.toml'), manifest);
  return { dir, manifest: path.join(dir, 'manifest.toml') };
}

/** Reads the local headers of a zip by hand (APPNOTE 4.3.7): name, method, sizes, data offset. */
function localEntries(zip: Buffer): { name: string; method: number; size: number; data: Buffer }[] {
  const out: { name: string; method: number; size: number; data: Buffer }[] = [];
  let off = 0;
  while (zip.readUInt32LE(off) === 0x04034b50) {
    const method = zip.readUInt16LE(off + 8);
    const size = zip.readUInt32LE(off + 22);
    const nameLen = zip.readUInt16LE(off + 26);
    const extraLen = zip.readUInt16LE(off + 28);
    const name = zip.subarray(off + 30, off + 30 + nameLen).toString('utf8');
    const start = off + 30 + nameLen + extraLen;
    out.push({ name, method, size, data: zip.subarray(start, start + size) });
    off = start + size;
  }
  return out;
}

test('artifacts.json: 2-space JSON, no trailing newline, ordered by the kind list', () => {
  const bytes = encodeArtifactsDocument({
    system_version: '1.0.0',
    artifacts: [
      { name: 'cp', version: '1.0.0', kind: 'control_plane', target: 't3' },
      { name: 'sp', version: '1.0.0', kind: 'gimlet_sp', target: 't1' },
      { name: 'h', version: '1.0.0', kind: 'host', target: 't2' },
    ],
  });
  const expected =
    '{\n  "system_version": "1.0.0",\n  "artifacts": [\n' +
    '    {\n      "name": "sp",\n      "version": "1.0.0",\n      "kind": "gimlet_sp",\n      "target": "t1"\n    },\n' +
    '    {\n      "name": "h",\n      "version": "1.0.0",\n      "kind": "host",\n      "target": "t2"\n    },\n' +
    '    {\n      "name": "cp",\n      "version": "1.0.0",\n      "kind": "control_plane",\n      "target": "t3"\n    }\n' +
    '  ]\n}';
  assert.equal(bytes.toString('utf8'), expected);
});

test('manifest errors name file:line and key', () => {
  const cases: [string, RegExp, number][] = [
    ['system_version = "1.0"\n', /system_version: "1.0" is not a semantic version/, 1],
    [
      'system_version = "1.0.0"\n[[artifact.gimlet_sp]]\nname = "a"\nversion = "x/y"\nsource = { kind = "fake", size = "1KiB" }\n',
      /invalid version/,
      4,
    ],
    [
      'system_version = "1.0.0"\n[[artifact.gimlet_sp]]\nname = "a"\nversion = "1.0"\nsource = { kind = "fake", size = "1KiB" }\n',
      /not a semantic version .*--allow-non-semver/,
      4,
    ],
    [
      'system_version = "1.0.0"\n[[artifact.toaster]]\nname = "a"\nversion = "1.0.0"\nsource = { kind = "fake", size = "1KiB" }\n',
      /unknown artifact kind "toaster"/,
      2,
    ],
    [
      'system_version = "1.0.0"\n[[artifact.gimlet_sp]]\nname = "../a"\nversion = "1.0.0"\nsource = { kind = "fake", size = "1KiB" }\n',
      /invalid artifact name/,
      3,
    ],
    [
      'system_version = "1.0.0"\n[[artifact.gimlet_sp]]\nname = "a"\nversion = "1.0.0"\nsource = { kind = "composite-host", phase_2 = "x" }\n',
      /only for host and trampoline/,
      5,
    ],
    [
      'system_version = "1.0.0"\n[[artifact.host]]\nname = "a"\nversion = "1.0.0"\nsource = { kind = "composite-host", phase_2 = "x" }\n',
      /phase-1 image is required/,
      5,
    ],
    [
      'system_version = "1.0.0"\n[[artifact.gimlet_sp]]\nname = "a"\nversion = "1.0.0"\nsource = { kind = "fake", size = "1KiB" }\n[[artifact.gimlet_sp]]\nname = "a"\nversion = "1.0.0"\nsource = { kind = "fake", size = "2KiB" }\n',
      /given twice/,
      6,
    ],
    [
      'system_version = "1.0.0"\n[[artifact.control_plane]]\nname = "cp"\nversion = "1.0.0"\n[artifact.control_plane.source]\nkind = "composite-control-plane"\nzones = [\n  { kind = "fake", artifact_name = "a", file_name = "z.tar.gz", size = "1KiB" },\n  { kind = "fake", artifact_name = "b", file_name = "z.tar.gz", size = "1KiB" },\n]\n',
      /zone file name "z.tar.gz" is also used by zones\[0\]/,
      9,
    ],
    [
      'system_version = "1.0.0"\n[[artifact.installinator_document]]\nname = "a"\nversion = "1.0.0"\nsource = { kind = "fake", size = "1KiB" }\n',
      /generated by assembly/,
      2,
    ],
  ];
  for (const [text, message, line] of cases) {
    assert.throws(
      () => parseRepoManifest(text, 'm.toml'),
      (err: unknown) => {
        assert.ok(isSlipwayError(err, 'REPO_MANIFEST_INVALID'), String(err));
        assert.match(err.message, message);
        assert.equal(err.where, `m.toml:${line}`, err.message);
        return true;
      },
    );
  }
  assert.equal(
    parseRepoManifest(
      'system_version = "1.0.0"\n[[artifact.gimlet_sp]]\nname = "a"\nversion = "1.0"\nsource = { kind = "fake", size = "1KiB" }\n',
      'm',
      { allowNonSemver: true },
    ).artifacts[0]?.version,
    '1.0',
  );
});

test('assemble: the zip layout of the spec, composites as tufaceous writes them', async () => {
  const m = dirWith(ALL_FAKE);
  const out = path.join(m.dir, 'repo.zip');
  const r = await assembleRepository({
    manifestFile: m.manifest,
    output: out,
    signers,
    now: NOW,
    skipAllPresent: true,
  });
  const zip = fs.readFileSync(out);
  // repo.zip.sha256.txt: hex + \n
  assert.equal(
    fs.readFileSync(`${out}.sha256.txt`, 'utf8'),
    `${createHash('sha256').update(zip).digest('hex')}\n`,
  );
  const entries = localEntries(zip);
  for (const e of entries) {
    assert.ok(e.name.startsWith('repo/'), e.name);
    assert.ok(!e.name.endsWith('/'), `no directory entries: ${e.name}`);
    assert.equal(e.method, 0, `stored: ${e.name}`);
  }
  const names = entries.map((e) => e.name);
  const version = Math.floor(NOW.getTime() / 1000);
  for (const n of [
    'repo/metadata/1.root.json',
    'repo/metadata/timestamp.json',
    `repo/metadata/${version}.snapshot.json`,
    `repo/metadata/${version}.targets.json`,
  ]) {
    assert.ok(names.includes(n), n);
  }
  // Targets are named <sha256>.<target> and the hash is of the bytes stored.
  const targets = entries.filter((e) => e.name.startsWith('repo/targets/'));
  for (const t of targets) {
    const base = t.name.slice('repo/targets/'.length);
    assert.equal(base.slice(0, 65), `${createHash('sha256').update(t.data).digest('hex')}.`);
  }
  const targetNames = targets.map((t) => t.name.slice('repo/targets/'.length + 65)).sort();
  assert.deepEqual(targetNames, [
    'artifacts.json',
    'control_plane-cp-2.0.0.tar.gz',
    'gimlet_rot-rot-1.0.0.tar.gz',
    'gimlet_sp-sp-1.0.0.tar.gz',
    'host-host-2.0.0.tar.gz',
    'installinator_document-2.0.0.json',
  ]);
  // The host composite: ustar, oxide.json first as compact JSON + \n, root-owned, 0444.
  const host = targets.find((t) => t.name.endsWith('host-host-2.0.0.tar.gz'));
  assert.ok(host !== undefined);
  const tar = gunzipSync(host.data);
  assert.equal(tar.subarray(0, 10).toString('latin1'), 'oxide.json');
  assert.equal(tar.subarray(100, 108).toString('latin1'), '0000444\0');
  assert.equal(tar.subarray(257, 263).toString('latin1'), 'ustar\0');
  assert.equal(tar.subarray(263, 265).toString('latin1'), '00');
  assert.equal(tar.subarray(265, 270).toString('latin1'), 'root\0');
  assert.equal(tar.subarray(297, 302).toString('latin1'), 'root\0');
  assert.equal(tar.subarray(512, 512 + 19).toString('latin1'), '{"v":"1","t":"os"}\n');
  const list = spawnSync('tar', ['-tzf', '-'], { input: host.data, encoding: 'utf8' });
  assert.deepEqual(list.stdout.trim().split('\n'), ['oxide.json', 'image/gimlet.rom', 'image/zfs.img']);
  // Metadata: expires without fractional seconds, a week after the clock by default.
  const ts = JSON.parse(
    entries.find((e) => e.name === 'repo/metadata/timestamp.json')?.data.toString('utf8') ?? '{}',
  ) as { signed: { expires: string; version: number } };
  assert.equal(ts.signed.expires, '2026-11-08T12:00:00Z');
  assert.equal(ts.signed.version, version);
  assert.equal(r.validUntil, '2026-11-08T12:00:00Z');
  // The installinator document names the host's phase 2 by the hash of image/zfs.img.
  const inst = targets.find((t) => t.name.endsWith('installinator_document-2.0.0.json'));
  const doc = JSON.parse(inst?.data.toString('utf8') ?? '{}') as {
    artifacts: { kind: string; hash: string }[];
  };
  assert.deepEqual(
    doc.artifacts.map((a) => a.kind),
    ['host_phase2', 'control_plane'],
  );
});

test('assemble refuses bad input and writes nothing', () => {
  const cases: [string, string][] = [
    [ALL_FAKE.replace('gimlet_phase_1 = "rom.bin"', 'gimlet_phase_1 = "missing.bin"'), 'NOT_FOUND'],
    [ALL_FAKE.replace('system_version = "2.0.0"', 'system_version = "2.0"'), 'REPO_MANIFEST_INVALID'],
    [
      `${ALL_FAKE}[[artifact.host]]\nname = "host2"\nversion = "2.0.0"\nsource = { kind = "fake", size = "1KiB" }\n`,
      'REPO_DUPLICATE_ARTIFACT',
    ],
  ];
  for (const [text, code] of cases) {
    const m = dirWith(text);
    const before = snapshot(m.dir);
    const p = spawnSync(
      process.execPath,
      [cli, 'repo', 'assemble', m.manifest, path.join(m.dir, 'out.zip'), '-k', key, '--skip-all-present'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(p.status, 2, p.stderr);
    assert.match(p.stderr, new RegExp(`^error\\[${code}\\]`, 'm'));
    assert.deepEqual(snapshot(m.dir), before, code);
  }
  // Without --skip-all-present every kind but zone, installinator_document and measurement_corpus is required.
  const m = dirWith(ALL_FAKE);
  const p = spawnSync(
    process.execPath,
    [cli, 'repo', 'assemble', m.manifest, path.join(m.dir, 'out.zip'), '-k', key],
    { encoding: 'utf8' },
  );
  assert.equal(p.status, 2);
  assert.match(p.stderr, /error\[REPO_MISSING_KIND\].*gimlet_rot_bootloader/);
  assert.ok(!fs.existsSync(path.join(m.dir, 'out.zip')));
});

test('assemble CLI: a throwaway key is printed when none is given; verify --json reports the repository', () => {
  const m = dirWith(ALL_FAKE);
  const out = path.join(m.dir, 'r.zip');
  const env: NodeJS.ProcessEnv = { ...process.env, SOURCE_DATE_EPOCH: String(NOW.getTime() / 1000) };
  delete env.SLIPWAY_TUF_KEY;
  delete env.TUFACEOUS_KEY;
  const a = spawnSync(process.execPath, [cli, 'repo', 'assemble', m.manifest, out, '--skip-all-present'], {
    encoding: 'utf8',
    env,
  });
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /throwaway signing key.*ed25519:[A-Za-z0-9_-]+=*/);
  const v = spawnSync(
    process.execPath,
    [cli, '--json', 'repo', 'verify', out, '--skip-all-present', '--ignore-expiry'],
    { encoding: 'utf8' },
  );
  assert.equal(v.status, 0, v.stderr);
  const j = JSON.parse(v.stdout) as { systemVersion: string; canonicalName: string; artifacts: unknown[] };
  assert.equal(j.systemVersion, '2.0.0');
  assert.equal(j.canonicalName, 'system-update-v2.0.0.zip');
  assert.equal(j.artifacts.length, 5);
  // Expired (SOURCE_DATE_EPOCH is in the past and validity is a week): verify refuses without --ignore-expiry.
  const e = spawnSync(process.execPath, [cli, 'repo', 'verify', out, '--skip-all-present'], {
    encoding: 'utf8',
  });
  assert.equal(e.status, 2);
  assert.match(e.stderr, /error\[TUF_EXPIRED\]/);
});
