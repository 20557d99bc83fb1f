import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ociBuildCommand } from '../../src/cli/oci-build.js';
import type { CliContext } from '../../src/cli/context.js';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import { packDirectory } from '../../src/layer/index.js';
import { buildOciLayout, type OciBuildOptions } from '../../src/oci/build.js';
import { OciLayout } from '../../src/oci/layout.js';
import { RootfsTree, rootfsNameParts } from '../../src/oci/rootfs.js';
import { rawTar, type RawEntry } from '../helpers/tar-builder.js';
import { snapshot, tempDir, writeTree, type TreeSpec } from '../helpers/tmp.js';
import { quietCliContext } from '../helpers/cli.js';

const tmp = tempDir('slipway-oci-build-');
let counter = 0;
function fresh(name: string): string {
  return path.join(tmp, `${name}-${++counter}`);
}

const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

/** Modes a layer archive keeps (0644/0755), so one tree serves every kind of source. */
const TREE: TreeSpec = {
  'bin/app': { data: '#!/bin/sh\necho app\n', mode: 0o755 },
  'etc/motd': 'hello\n',
  'etc/os-release': 'ID=slipway\n',
  'B-upper': 'byte order puts me before a-lower\n',
  'a-lower': 'after B-upper\n',
  'usr/lib/libx.so.1': Buffer.alloc(300_000, 7),
  'usr/lib/libx.so': { symlink: 'libx.so.1' },
  'usr/bin/sh': { symlink: '/bin/app' },
  'var/empty': { dir: true },
  [`deep/${'n'.repeat(120)}/${'m'.repeat(90)}`]: 'long name\n',
};

function tree(spec: TreeSpec = TREE): string {
  const dir = fresh('tree');
  fs.mkdirSync(dir);
  writeTree(dir, spec);
  return dir;
}

function json(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

function blob(layout: string, digest: string): Buffer {
  return fs.readFileSync(path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}

/** Every file below `dir` with its bytes (or '<dir>'), to prove a failed build changed nothing. */
function fileState(dir: string): Record<string, string> | 'absent' {
  if (!fs.existsSync(dir)) return 'absent';
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const r = `${rel}/${name}`;
      if (fs.lstatSync(p).isDirectory()) {
        out[r] = '<dir>';
        walk(p, r);
      } else out[r] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

function gnuTar(args: string[]): void {
  const r = spawnSync('tar', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** `tar -cf` of a tree in readdir order (not our canonical order), numeric owner 0. */
function tarOf(dir: string, gzip: boolean): string {
  const out = fresh(gzip ? 'rootfs-gz' : 'rootfs-tar');
  gnuTar(['--owner=0', '--group=0', '--numeric-owner', '-cf', `${out}.tmp`, '-C', dir, '.']);
  if (gzip) fs.writeFileSync(out, gzipSync(fs.readFileSync(`${out}.tmp`)));
  else fs.renameSync(`${out}.tmp`, out);
  fs.rmSync(`${out}.tmp`, { force: true });
  return out; // no .tar/.tar.gz suffix: the kind is found by magic bytes
}

async function build(o: Partial<OciBuildOptions> & Pick<OciBuildOptions, 'platforms'>) {
  const out = o.output ?? fresh('layout');
  return { ...(await buildOciLayout({ ...o, output: out })), out };
}

/** The mtime field of every header in a layer (GNU tar prints local time; read the octal field itself). */
function mtimes(layout: string, digest: string): Set<number> {
  const tar = gunzipSync(blob(layout, digest));
  const seen = new Set<number>();
  for (let off = 0; off + 512 <= tar.length;) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    seen.add(parseInt(h.toString('latin1', 136, 147), 8));
    const size = parseInt(h.toString('latin1', 124, 135), 8);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return seen;
}

async function rejects(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isSlipwayError(err, code), `expected ${code}, got ${String(err)}`);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

test('layout facts from the image-layout spec: oci-layout, index.json ref.name, blobs named by sha256, media types, platforms', async () => {
  const out = fresh('layout');
  const r = await buildOciLayout({
    platforms: [
      { platform: AMD64, rootfs: tree() },
      { platform: ARM64, rootfs: tree({ 'etc/motd': 'arm\n' }) },
    ],
    output: out,
    tag: 'v1.2.3',
    annotations: {
      'org.opencontainers.image.version': '1.2.3',
      'org.opencontainers.image.source': 'https://example.com/x',
    },
    labels: { 'com.example.team': 'releng' },
    entrypoint: ['/bin/app'],
    cmd: ['--serve'],
    env: ['PATH=/usr/bin:/bin'],
    workingDir: '/srv',
    created: new Date('2024-05-06T07:08:09Z'),
  });

  assert.equal(fs.readFileSync(path.join(out, 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');
  const indexJson = json(path.join(out, 'index.json'));
  assert.equal(indexJson['schemaVersion'], 2);
  const entries = indexJson['manifests'] as Record<string, unknown>[];
  assert.equal(entries.length, 1);
  const entry = entries[0] as {
    mediaType: string;
    digest: string;
    size: number;
    annotations: Record<string, string>;
  };
  assert.equal(entry.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(entry.annotations['org.opencontainers.image.ref.name'], 'v1.2.3');
  assert.equal(entry.digest, r.index.digest);

  // Every blob hashes to its own name; no temp files left behind.
  const names = fs.readdirSync(path.join(out, 'blobs', 'sha256'));
  assert.ok(names.length >= 6);
  for (const n of names) {
    assert.match(n, /^[0-9a-f]{64}$/);
    assert.equal(createHash('sha256').update(blob(out, n)).digest('hex'), n);
  }
  assert.deepEqual(fs.readdirSync(out).sort(), ['blobs', 'index.json', 'oci-layout']);

  const index = JSON.parse(blob(out, entry.digest).toString()) as {
    mediaType: string;
    manifests: { mediaType: string; digest: string; size: number; platform: Record<string, string> }[];
    annotations: Record<string, string>;
  };
  assert.equal(blob(out, entry.digest).length, entry.size);
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(index.annotations, {
    'org.opencontainers.image.created': '2024-05-06T07:08:09Z',
    'org.opencontainers.image.source': 'https://example.com/x',
    'org.opencontainers.image.version': '1.2.3',
  });
  assert.deepEqual(
    index.manifests.map((m) => m.platform),
    [
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ],
  );
  const diffIds = new Set<string>();
  for (const [i, d] of index.manifests.entries()) {
    assert.equal(d.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const manifest = JSON.parse(blob(out, d.digest).toString()) as {
      schemaVersion: number;
      mediaType: string;
      config: { mediaType: string; digest: string; size: number };
      layers: { mediaType: string; digest: string; size: number }[];
    };
    assert.equal(manifest.schemaVersion, 2);
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(manifest.layers.length, 1);
    const layer = manifest.layers[0] as { mediaType: string; digest: string; size: number };
    assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    const gz = blob(out, layer.digest);
    assert.equal(gz.length, layer.size);
    const config = JSON.parse(blob(out, manifest.config.digest).toString()) as {
      created: string;
      architecture: string;
      os: string;
      variant?: string;
      config: Record<string, unknown>;
      rootfs: { type: string; diff_ids: string[] };
      history: unknown[];
    };
    assert.equal(config.created, '2024-05-06T07:08:09Z');
    assert.equal(config.os, 'linux');
    assert.equal(config.architecture, i === 0 ? 'amd64' : 'arm64');
    assert.equal(config.variant, i === 0 ? undefined : 'v8');
    assert.deepEqual(config.config, {
      Env: ['PATH=/usr/bin:/bin'],
      Entrypoint: ['/bin/app'],
      Cmd: ['--serve'],
      WorkingDir: '/srv',
      Labels: { 'com.example.team': 'releng' },
    });
    // diff_id: the sha256 of the uncompressed layer.
    const diffId = `sha256:${createHash('sha256').update(gunzipSync(gz)).digest('hex')}`;
    assert.deepEqual(config.rootfs, { type: 'layers', diff_ids: [diffId] });
    assert.equal(r.images[i]?.diffId, diffId);
    diffIds.add(diffId);
  }
  assert.equal(diffIds.size, 2);

  // GNU tar reads the layer: relative names, directories before their contents, owner 0, fixed mtime.
  const layerFile = path.join(tmp, 'layer.tar.gz');
  fs.writeFileSync(layerFile, blob(out, r.images[0]?.layers[0]?.digest ?? ''));
  const list = spawnSync('tar', ['--numeric-owner', '--full-time', '-tvzf', layerFile], {
    encoding: 'utf8',
    env: { ...process.env, TZ: 'UTC' },
  });
  assert.equal(list.status, 0, list.stderr);
  const lines = list.stdout.trim().split('\n');
  assert.deepEqual(
    lines.map((l) => l.split(/\s+/).slice(5).join(' ')),
    [
      'B-upper',
      'a-lower',
      'bin/',
      'bin/app',
      'deep/',
      `deep/${'n'.repeat(120)}/`,
      `deep/${'n'.repeat(120)}/${'m'.repeat(90)}`,
      'etc/',
      'etc/motd',
      'etc/os-release',
      'usr/',
      'usr/bin/',
      'usr/bin/sh -> /bin/app',
      'usr/lib/',
      'usr/lib/libx.so -> libx.so.1',
      'usr/lib/libx.so.1',
      'var/',
      'var/empty/',
    ],
  );
  for (const l of lines) assert.match(l, /^\S+ 0\/0 +\d+ 2024-05-06 07:08:09 /);
});

test('deterministic: twice, other worker counts, and directory = tar = tar.gz = layer archive give one index digest', async () => {
  const dir = tree();
  const created = new Date(1_700_000_000_000);
  const layerArchive = fresh('layer.tar.gz');
  await packDirectory(dir, layerArchive, { pkg: 'svc', version: '1.0.0' });
  const digests: Record<string, string> = {};
  const one = async (rootfs: string, workers?: number) =>
    (
      await build({
        platforms: [
          { platform: AMD64, rootfs },
          { platform: ARM64, rootfs },
        ],
        created,
        annotations: { 'org.opencontainers.image.version': '1.0.0' },
        ...(workers !== undefined ? { workers } : {}),
      })
    ).index.digest;
  digests['dir'] = await one(dir);
  digests['dir again'] = await one(dir);
  digests['dir, 1 worker'] = await one(dir, 1);
  digests['dir, 3 workers'] = await one(dir, 3);
  digests['tar'] = await one(tarOf(dir, false));
  digests['tar.gz'] = await one(tarOf(dir, true));
  digests['layer archive'] = await one(layerArchive);
  assert.equal(new Set(Object.values(digests)).size, 1, JSON.stringify(digests, null, 2));

  // The inputs that should matter do.
  const other = (
    await build({
      platforms: [
        { platform: AMD64, rootfs: dir },
        { platform: ARM64, rootfs: dir },
      ],
      created: new Date(0),
    })
  ).index.digest;
  assert.notEqual(other, digests['dir']);
});

test('SOURCE_DATE_EPOCH sets created and every mtime; without it the epoch, never the clock', async () => {
  const dir = tree({ f: 'x' });
  const saved = process.env.SOURCE_DATE_EPOCH;
  try {
    process.env.SOURCE_DATE_EPOCH = '1234567890';
    const a = await build({ platforms: [{ platform: AMD64, rootfs: dir }] });
    delete process.env.SOURCE_DATE_EPOCH;
    const b = await build({ platforms: [{ platform: AMD64, rootfs: dir }] });
    const c = await build({
      platforms: [{ platform: AMD64, rootfs: dir }],
      created: new Date(1234567890_000),
    });
    assert.equal(a.index.digest, c.index.digest);
    assert.notEqual(a.index.digest, b.index.digest);
    const layerOf = (r: typeof a): string => r.images[0]?.layers[0]?.digest ?? '';
    assert.deepEqual([...mtimes(a.out, layerOf(a))], [1234567890]);
    assert.deepEqual([...mtimes(b.out, layerOf(b))], [0]);
    const config = json(path.join(b.out, 'blobs', 'sha256', (b.images[0]?.config.digest ?? '').slice(7)));
    assert.equal(config['created'], '1970-01-01T00:00:00Z');
  } finally {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
  }
});

/** umoci unpacks one image of a layout; umoci 0.4 will not pick a platform from an index, so tag each manifest. */
function umociUnpack(layout: string, tag: string): string {
  const bundle = fresh('bundle');
  const r = spawnSync(
    'umoci',
    ['--log', 'error', 'unpack', '--rootless', '--image', `${layout}:${tag}`, bundle],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, `umoci unpack ${tag}: ${r.stderr}`);
  return path.join(bundle, 'rootfs');
}

test('umoci unpacks each platform to exactly the input tree (names, contents, modes, symlink targets)', async () => {
  const amd = tree({
    ...TREE,
    'etc/shadow': { data: 'root:*:1::::::\n', mode: 0o640 },
    'srv/private': { dir: true },
    'srv/private/key': { data: 'k', mode: 0o600 },
    'usr/bin/suid-free': { data: 'x', mode: 0o750 },
  });
  fs.chmodSync(path.join(amd, 'srv/private'), 0o700);
  const arm = tree({
    'etc/motd': 'arm64 motd\n',
    'lib/ld.so': { data: 'ld', mode: 0o755 },
    lib64: { symlink: 'lib' },
  });
  const armTar = tarOf(arm, true);
  const r = await build({
    platforms: [
      { platform: AMD64, rootfs: amd },
      { platform: ARM64, rootfs: armTar },
    ],
    tag: 'latest',
    entrypoint: ['/bin/app'],
  });
  const layout = await OciLayout.open(r.out);
  for (const [i, img] of r.images.entries()) await layout.tag(img.manifest, `p${i}`);
  assert.deepEqual(snapshot(umociUnpack(r.out, 'p0')), snapshot(amd));
  assert.deepEqual(snapshot(umociUnpack(r.out, 'p1')), snapshot(arm));
  const config = json(path.join(path.dirname(umociUnpack(r.out, 'p0')), 'config.json')) as {
    process: { args: string[] };
  };
  assert.deepEqual(config.process.args, ['/bin/app']);
});

test('hard links: kept, the first path in canonical order carries the data, same digest from a directory and from GNU tar', async () => {
  const dir = tree({ 'z/original': 'shared bytes\n', 'a/other': 'x' });
  fs.linkSync(path.join(dir, 'z/original'), path.join(dir, 'a/alias'));
  const created = new Date(0);
  const fromDir = await build({ platforms: [{ platform: AMD64, rootfs: dir }], created });
  const fromTar = await build({ platforms: [{ platform: AMD64, rootfs: tarOf(dir, false) }], created });
  assert.equal(fromDir.index.digest, fromTar.index.digest);
  const layer = fresh('hl.tar.gz');
  fs.writeFileSync(layer, blob(fromDir.out, fromDir.images[0]?.layers[0]?.digest ?? ''));
  const list = spawnSync('tar', ['-tvzf', layer], { encoding: 'utf8' });
  assert.match(list.stdout, /^-.* a\/alias$/m);
  assert.match(list.stdout, /^h.* z\/original link to a\/alias$/m);
  const layout = await OciLayout.open(fromDir.out);
  await layout.tag(fromDir.images[0]?.manifest ?? fromDir.index, 'one');
  const root = umociUnpack(fromDir.out, 'one');
  assert.equal(fs.readFileSync(path.join(root, 'z/original'), 'utf8'), 'shared bytes\n');
  assert.equal(fs.statSync(path.join(root, 'z/original')).ino, fs.statSync(path.join(root, 'a/alias')).ino);
});

test('a rootfs shared by two platforms is read once and gives both the same layer', async () => {
  const dir = tree();
  const r = await build({
    platforms: [
      { platform: AMD64, rootfs: dir },
      { platform: ARM64, rootfs: `${dir}/` },
    ],
  });
  assert.equal(r.images[0]?.layers[0]?.digest, r.images[1]?.layers[0]?.digest);
  assert.notEqual(r.images[0]?.config.digest, r.images[1]?.config.digest);
});

test('an existing layout keeps its other tags; the same tag is replaced', async () => {
  const out = fresh('layout');
  const a = await build({
    platforms: [{ platform: AMD64, rootfs: tree({ f: 'a' }) }],
    output: out,
    tag: 'a',
  });
  const b = await build({
    platforms: [{ platform: AMD64, rootfs: tree({ f: 'b' }) }],
    output: out,
    tag: 'b',
  });
  const b2 = await build({
    platforms: [{ platform: AMD64, rootfs: tree({ f: 'b2' }) }],
    output: out,
    tag: 'b',
  });
  const entries = (
    json(path.join(out, 'index.json'))['manifests'] as {
      digest: string;
      annotations: Record<string, string>;
    }[]
  ).map((e) => [e.annotations['org.opencontainers.image.ref.name'], e.digest]);
  assert.deepEqual(entries, [
    ['a', a.index.digest],
    ['b', b2.index.digest],
  ]);
  assert.notEqual(b.index.digest, b2.index.digest);
  await (await OciLayout.open(out)).verify();
});

// ---------------------------------------------------------------- bad input: the code, and nothing written

async function refusedWithoutWriting(
  o: Omit<OciBuildOptions, 'output'>,
  code: ErrorCode,
  message?: RegExp,
): Promise<void> {
  // Into a path that does not exist: it must still not exist.
  const absent = fresh('never');
  await rejects(buildOciLayout({ ...o, output: absent }), code, message);
  assert.equal(fs.existsSync(absent), false, `${absent} was created`);
  // Into an existing layout: every file must be as it was.
  const existing = fresh('existing');
  await buildOciLayout({
    platforms: [{ platform: AMD64, rootfs: tree({ keep: 'me' }) }],
    output: existing,
    tag: 'old',
  });
  const before = fileState(existing);
  await rejects(buildOciLayout({ tag: 'old', ...o, output: existing }), code, message);
  assert.deepEqual(fileState(existing), before);
}

function hostileTar(entries: RawEntry[], gzip = false): string {
  const file = fresh('hostile');
  const bytes = rawTar(entries);
  fs.writeFileSync(file, gzip ? gzipSync(bytes) : bytes);
  return file;
}

test("refused: a tarball entry with '..' (names the source and the entry)", async () => {
  const src = hostileTar([
    { name: 'ok', data: 'x' },
    { name: '../x', data: 'escape' },
  ]);
  await refusedWithoutWriting(
    { platforms: [{ platform: AMD64, rootfs: src }] },
    'OCI_ROOTFS_INVALID',
    new RegExp(`${src.replace(/[/.]/g, '\\$&')}: entry '\\.\\./x'`),
  );
});

test('refused: an entry below an absolute symlink (a gzip tarball escaping through evil -> /etc)', async () => {
  const src = hostileTar(
    [
      { name: 'evil', type: '2', linkname: '/etc' },
      { name: 'evil/passwd', data: 'root::0:0::/:/bin/sh\n' },
    ],
    true,
  );
  await refusedWithoutWriting(
    { platforms: [{ platform: AMD64, rootfs: src }] },
    'OCI_ROOTFS_INVALID',
    /entry 'evil\/passwd': it is inside 'evil', which is a symlink/,
  );
});

test('refused: absolute names, duplicates, whiteouts, dangling hard links, a directory under a file', async () => {
  const cases: [RawEntry[], RegExp][] = [
    [[{ name: '/etc/passwd', data: 'x' }], /absolute name/],
    [
      [
        { name: 'a', data: '1' },
        { name: './a', data: '2' },
      ],
      /entry '\.\/a': duplicate name/,
    ],
    [
      [
        { name: 'd/', type: '5' },
        { name: 'd', data: 'x' },
      ],
      /entry 'd': duplicate name/,
    ],
    [[{ name: 'etc/.wh.motd', data: '' }], /whiteout/],
    [
      [{ name: 'link', type: '1', linkname: 'missing' }],
      /hard link to 'missing', which is not in the rootfs/,
    ],
    [
      [
        { name: 'f', data: 'x' },
        { name: 'f/g', data: 'y' },
      ],
      /inside 'f', which is a file/,
    ],
    [
      [
        { name: 'd/g', data: 'y' },
        { name: 'd', data: 'x' },
      ],
      /other entries are inside it/,
    ],
    [[{ name: 'dev/sock', type: 'S', data: '' }], /unsupported entry type 'S'/],
  ];
  for (const [entries, message] of cases) {
    await refusedWithoutWriting(
      { platforms: [{ platform: AMD64, rootfs: hostileTar(entries) }] },
      'OCI_ROOTFS_INVALID',
      message,
    );
  }
});

test('refused: a missing rootfs, a file that is no archive, and a bad second platform after a good first', async () => {
  await refusedWithoutWriting(
    { platforms: [{ platform: AMD64, rootfs: path.join(tmp, 'no-such-rootfs') }] },
    'OCI_ROOTFS_INVALID',
    /does not exist/,
  );
  const text = fresh('notes.txt');
  fs.writeFileSync(text, 'just text, no tar\n');
  await refusedWithoutWriting(
    { platforms: [{ platform: AMD64, rootfs: text }] },
    'OCI_ROOTFS_INVALID',
    /not a directory, a tar/,
  );
  await refusedWithoutWriting(
    {
      platforms: [
        { platform: AMD64, rootfs: tree() },
        { platform: ARM64, rootfs: hostileTar([{ name: '../../etc/cron.d/x', data: '' }]) },
      ],
    },
    'OCI_ROOTFS_INVALID',
  );
});

test('refused: duplicate platforms, unknown platforms, a bad tag, env without =', async () => {
  const dir = tree({ f: 'x' });
  await refusedWithoutWriting(
    {
      platforms: [
        { platform: AMD64, rootfs: dir },
        { platform: { os: 'linux', architecture: 'amd64' }, rootfs: dir },
      ],
    },
    'INVALID_ARGUMENT',
    /linux\/amd64 is given more than once/,
  );
  await refusedWithoutWriting(
    { platforms: [{ platform: { os: 'linux', architecture: 'x86_64' }, rootfs: dir }] },
    'OCI_INVALID',
    /did you mean amd64/,
  );
  await refusedWithoutWriting(
    { platforms: [{ platform: AMD64, rootfs: dir }], tag: 'bad tag!' },
    'INVALID_ARGUMENT',
    /--tag/,
  );
  await refusedWithoutWriting(
    { platforms: [{ platform: AMD64, rootfs: dir }], env: ['NOVALUE'] },
    'INVALID_ARGUMENT',
    /--env/,
  );
});

test('refused: an output that exists and is not a layout is left as it was', async () => {
  const dir = tree({ f: 'x' });
  const notLayout = fresh('not-layout');
  fs.mkdirSync(notLayout);
  fs.writeFileSync(path.join(notLayout, 'README'), 'mine\n');
  const before = fileState(notLayout);
  await rejects(
    buildOciLayout({ platforms: [{ platform: AMD64, rootfs: dir }], output: notLayout }),
    'OCI_LAYOUT_INVALID',
  );
  assert.deepEqual(fileState(notLayout), before);
  const file = fresh('a-file');
  fs.writeFileSync(file, 'x');
  await rejects(
    buildOciLayout({ platforms: [{ platform: AMD64, rootfs: dir }], output: file }),
    'OCI_LAYOUT_INVALID',
  );
  assert.equal(fs.readFileSync(file, 'utf8'), 'x');
  // An empty directory is fine (mkdir out && slipway oci build -o out).
  const empty = fresh('empty');
  fs.mkdirSync(empty);
  await buildOciLayout({ platforms: [{ platform: AMD64, rootfs: dir }], output: empty });
  assert.ok(fs.existsSync(path.join(empty, 'oci-layout')));
});

test('the temp spool of a gzip tarball is removed after a build and after a refusal', async () => {
  const spool = fresh('spool');
  fs.mkdirSync(spool);
  const good = tarOf(tree(), true);
  await build({ platforms: [{ platform: AMD64, rootfs: good }], tmpDir: spool });
  assert.deepEqual(fs.readdirSync(spool), []);
  const bad = hostileTar(
    [
      { name: 'a', data: 'x' },
      { name: 'a', data: 'y' },
    ],
    true,
  );
  await rejects(
    build({ platforms: [{ platform: AMD64, rootfs: bad }], tmpDir: spool }),
    'OCI_ROOTFS_INVALID',
  );
  assert.deepEqual(fs.readdirSync(spool), []);
});

// ---------------------------------------------------------------- the CLI adapter

const ctx = (): CliContext => quietCliContext();

test('cli: flags become options; --version/--revision/--source become annotations; one line per platform', async () => {
  const dir = tree();
  const out = fresh('cli');
  const r = await ociBuildCommand(
    [
      '--platform',
      `linux/amd64=${dir}`,
      '--platform',
      `linux/arm64/v8=${tarOf(dir, true)}`,
      '-o',
      out,
      '--tag',
      '2.0.0',
      '--version',
      '2.0.0',
      '--revision',
      'abc123',
      '--source',
      'https://example.com/repo',
      '--annotation',
      'org.opencontainers.image.title=demo',
      '--label',
      'a=b=c',
      '--entrypoint',
      '["/bin/sh","-c"]',
      '--cmd',
      'echo hi',
      '--env',
      'A=1',
      '--workdir',
      '/srv',
      '--workers',
      '1',
    ],
    ctx(),
  );
  const lines = r.human.split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0] ?? '', /^linux\/amd64 +manifest sha256:[0-9a-f]{64} +layer \S+/);
  assert.match(lines[1] ?? '', /^linux\/arm64\/v8 +manifest sha256:/);
  assert.match(lines[2] ?? '', /^index sha256:[0-9a-f]{64} tagged '2\.0\.0' in /);
  const data = r.data as { index: { digest: string }; images: { config: { digest: string } }[] };
  const index = JSON.parse(blob(out, data.index.digest).toString()) as {
    annotations: Record<string, string>;
  };
  assert.deepEqual(index.annotations, {
    'org.opencontainers.image.created': '1970-01-01T00:00:00Z',
    'org.opencontainers.image.revision': 'abc123',
    'org.opencontainers.image.source': 'https://example.com/repo',
    'org.opencontainers.image.title': 'demo',
    'org.opencontainers.image.version': '2.0.0',
  });
  const config = JSON.parse(blob(out, data.images[0]?.config.digest ?? '').toString()) as { config: unknown };
  assert.deepEqual(config.config, {
    Env: ['A=1'],
    Entrypoint: ['/bin/sh', '-c'],
    Cmd: ['echo hi'],
    WorkingDir: '/srv',
    Labels: { a: 'b=c' },
  });

  const dry = fresh('dry');
  const plan = await ociBuildCommand(['--platform', `linux/amd64=${dir}`, '-o', dry, '--dry-run'], ctx());
  assert.match(plan.human, /linux\/amd64 +directory +\d+ entries/);
  assert.equal(fs.existsSync(dry), false);
});

test('cli: bad flags are usage errors and write nothing', async () => {
  const dir = tree({ f: 'x' });
  const bad: [string[], ErrorCode, RegExp][] = [
    [['--annotation', 'no-equals-sign'], 'USAGE', /--annotation takes KEY=VALUE/],
    [['--annotation', '=v'], 'USAGE', /--annotation takes KEY=VALUE/],
    [['--annotation', 'k=1', '--annotation', 'k=2'], 'USAGE', /more than once/],
    [['--version', '1', '--annotation', 'org.opencontainers.image.version=2'], 'USAGE', /both set/],
    [['--label', 'x'], 'USAGE', /--label/],
    [['--entrypoint', '[1,2]'], 'USAGE', /array of strings/],
    [['--entrypoint', '["unterminated'], 'USAGE', /not a JSON array/],
    [['--platform', 'linux/amd64'], 'USAGE', /OS\/ARCH\[\/VARIANT\]=ROOTFS/],
    [['--platform', 'linux=x'], 'OCI_INVALID', /os\/arch/],
    [['--level', 'fast'], 'USAGE', /--level/],
  ];
  for (const [flags, code, message] of bad) {
    const out = fresh('cli-bad');
    await rejects(
      ociBuildCommand(['--platform', `linux/amd64=${dir}`, '-o', out, ...flags], ctx()),
      code,
      message,
    );
    assert.equal(fs.existsSync(out), false, `${flags.join(' ')} wrote ${out}`);
  }
  await rejects(ociBuildCommand(['-o', fresh('x')], ctx()), 'USAGE', /--platform and -o are required/);
});

// ---------------------------------------------------------------- the pure core

test('rootfs names: ./ prefixes and doubled slashes go; .. and absolute names are refused', () => {
  assert.deepEqual(rootfsNameParts('./usr//bin/./sh', 's'), ['usr', 'bin', 'sh']);
  assert.deepEqual(rootfsNameParts('./', 's'), []);
  assert.throws(
    () => rootfsNameParts('a/../../b', 's'),
    (e: unknown) => isSlipwayError(e, 'OCI_ROOTFS_INVALID'),
  );
  assert.throws(
    () => rootfsNameParts('/abs', 's'),
    (e: unknown) => isSlipwayError(e, 'OCI_ROOTFS_INVALID'),
  );
});

test('rootfs tree: canonical order, implicit parents 0755, a hard link before its file takes the data', () => {
  const t = new RootfsTree('src');
  const base = { mode: 0o644, uid: 0, gid: 0, size: 0, linkname: '', devmajor: 0, devminor: 0 };
  t.add({
    ...base,
    raw: 'z/file',
    parts: ['z', 'file'],
    type: 'file',
    size: 5,
    data: { file: 'x', offset: 512 },
  });
  t.add({ ...base, raw: 'a/link', parts: ['a', 'link'], type: 'hardlink', linkname: 'z/file' });
  t.add({
    ...base,
    raw: 'dev/null',
    parts: ['dev', 'null'],
    type: 'char',
    mode: 0o666,
    devmajor: 1,
    devminor: 3,
  });
  t.add({ ...base, raw: 'z/', parts: ['z'], type: 'directory', mode: 0o700 });
  const e = t.entries();
  assert.deepEqual(
    e.map((x) => [x.path, x.type, x.mode.toString(8), x.linkname]),
    [
      ['a', 'directory', '755', ''],
      ['a/link', 'file', '644', ''],
      ['dev', 'directory', '755', ''],
      ['dev/null', 'char', '666', ''],
      ['z', 'directory', '700', ''],
      ['z/file', 'hardlink', '644', 'a/link'],
    ],
  );
  assert.deepEqual(e[1]?.data, { file: 'x', offset: 512 });
  assert.equal(e[1]?.size, 5);
  assert.deepEqual([e[3]?.devmajor, e[3]?.devminor], [1, 3]);
});

test('rootfs tree: a directory listed twice (as layer archives repeat ancestors) keeps the last metadata', () => {
  const t = new RootfsTree('zone.tar.gz');
  const base = { uid: 0, gid: 0, size: 0, linkname: '', devmajor: 0, devminor: 0 };
  t.add({ ...base, raw: 'root/var/', parts: ['var'], type: 'directory', mode: 0o755 });
  t.add({ ...base, raw: 'root/var/svc/', parts: ['var', 'svc'], type: 'directory', mode: 0o755 });
  t.add({ ...base, raw: 'root/var/', parts: ['var'], type: 'directory', mode: 0o750, uid: 2 });
  assert.deepEqual(
    t.entries().map((x) => [x.path, x.mode.toString(8), x.uid]),
    [
      ['var', '750', 2],
      ['var/svc', '755', 0],
    ],
  );
});
