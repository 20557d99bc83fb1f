/**
 * `oci push` / `pull` / `inspect` against a real registry (Debian's
 * docker-registry, distribution 2.8) in three auth modes, checked with real
 * clients (skopeo, umoci), with a fault-injecting proxy in front to count
 * requests, fail some with 500 and hold some while the CLI is killed.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST } from '../../src/formats/oci.js';
import { buildOciLayout, type OciBuildResult } from '../../src/oci/build.js';
import { inspectImage } from '../../src/oci/inspect.js';
import { OciLayout } from '../../src/oci/layout.js';
import { pullImage } from '../../src/oci/pull.js';
import { pushLayout, type PushEvent } from '../../src/oci/push.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { prng } from '../helpers/prng.js';
import {
  grantAll,
  grantPullOnly,
  isBlobUpload,
  rejectsCode,
  startFaultProxy,
  startRegistry,
  type FaultProxy,
  type Registry,
} from '../helpers/registry.js';
import { snapshot, tempDir, writeTree } from '../helpers/tmp.js';

const run = promisify(execFile);
const ALICE = { username: 'alice', password: 'wonderland' };
const ROOT = path.resolve(import.meta.dirname, '../../..');
const CLI = path.join(ROOT, 'bin', 'slipway.js');

const dir = tempDir('slipway-oci-push-');
let layoutDir: string;
let built: OciBuildResult;
let indexBytes: Uint8Array;
const rootfs = { amd64: '', arm64: '' };

before(async () => {
  rootfs.amd64 = path.join(dir, 'rootfs-amd64');
  rootfs.arm64 = path.join(dir, 'rootfs-arm64');
  // 3 MiB of noise (gzip cannot shrink it) so the amd64 layer needs several chunks at 1 MiB.
  const r = prng(7);
  const noise = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(r() * 256);
  writeTree(rootfs.amd64, {
    'etc/os-release': 'ID=slipway\nARCH=amd64\n',
    'usr/bin/hello': { data: '#!/bin/sh\necho amd64\n', mode: 0o755 },
    'var/lib/noise.bin': noise,
    'etc/alias': { symlink: 'os-release' },
  });
  writeTree(rootfs.arm64, {
    'etc/os-release': 'ID=slipway\nARCH=arm64\n',
    'usr/bin/hello': { data: '#!/bin/sh\necho arm64\n', mode: 0o755 },
    'srv/empty': { dir: true },
  });
  layoutDir = path.join(dir, 'layout');
  built = await buildOciLayout({
    platforms: [
      { platform: { os: 'linux', architecture: 'amd64' }, rootfs: rootfs.amd64 },
      { platform: { os: 'linux', architecture: 'arm64' }, rootfs: rootfs.arm64 },
    ],
    output: layoutDir,
    tag: 'v1',
    annotations: { 'org.opencontainers.image.version': '1.0.0' },
  });
  indexBytes = await (await OciLayout.open(layoutDir)).readBytes(built.index);
});

/** Every registry and proxy a test starts is stopped (by pid) when the file ends, failures included. */
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
async function registry(o: Parameters<typeof startRegistry>[0] = {}): Promise<Registry> {
  const r = await startRegistry(o);
  cleanups.push(() => r.stop());
  return r;
}
async function proxy(r: Registry): Promise<FaultProxy> {
  const p = await startFaultProxy(r.host);
  cleanups.push(() => p.stop());
  return p;
}

async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return stdout;
}

/** skopeo copy of one platform into a fresh OCI layout, unpacked with umoci; returns the rootfs. */
async function copyAndUnpack(ref: string, arch: string, extra: string[] = []): Promise<string> {
  const out = fs.mkdtempSync(path.join(dir, 'copy-'));
  await skopeo(
    'copy',
    '--src-tls-verify=false',
    ...extra,
    '--override-arch',
    arch,
    `docker://${ref}`,
    `oci:${out}/image:x`,
  );
  await run('umoci', ['unpack', '--rootless', '--image', `${out}/image:x`, `${out}/bundle`]);
  return path.join(out, 'bundle', 'rootfs');
}

test('push to a registry without auth: skopeo sees our bytes, arm64 resolves, the file tree round-trips; a second push uploads nothing', async (t) => {
  const reg = await registry();
  const px = await proxy(reg);
  const events: PushEvent[] = [];
  const first = await pushLayout({
    layout: layoutDir,
    target: `${px.host}/demo/app`,
    tags: ['1.0.0', 'latest'],
    insecure: true,
    onProgress: (e) => events.push(e),
  });
  assert.equal(first.digest, built.index.digest);
  assert.deepEqual(first.tags, ['1.0.0', 'latest']);
  assert.deepEqual(first.blobs.uploaded, 4);
  assert.equal(first.manifests, 3);
  const firstUploads = px.blobUploads();
  assert.equal(firstUploads.filter((e) => e.method === 'PUT').length, 4);
  assert.ok(events.some((e) => e.kind === 'blob-progress'));
  assert.equal(events.filter((e) => e.kind === 'blob-done').length, 4);
  // Children before the index.
  const manifestPuts = px.log
    .filter((e) => e.method === 'PUT' && e.path.includes('/manifests/'))
    .map((e) => e.path);
  assert.deepEqual(
    manifestPuts.map((p) => p.split('/manifests/')[1]),
    [...built.images.map((i) => i.manifest.digest), '1.0.0', 'latest'],
  );

  // skopeo: the exact index bytes, the arm64 child, and a copy whose tree is the input's.
  const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/demo/app:1.0.0`);
  assert.equal(raw, Buffer.from(indexBytes).toString('utf8'));
  const arm = JSON.parse(
    await skopeo(
      'inspect',
      '--tls-verify=false',
      '--override-arch',
      'arm64',
      '--override-os',
      'linux',
      `docker://${reg.host}/demo/app:latest`,
    ),
  ) as { Digest: string; Architecture: string; Layers: string[] };
  // skopeo 1.9 reports the digest it was asked about (the index) and the resolved child's contents.
  assert.ok([built.index.digest, built.images[1]?.manifest.digest].includes(arm.Digest));
  assert.equal(arm.Architecture, 'arm64');
  assert.deepEqual(
    arm.Layers,
    built.images[1]?.layers.map((l) => l.digest),
  );
  const unpacked = await copyAndUnpack(`${reg.host}/demo/app@${built.index.digest}`, 'arm64');
  assert.deepEqual(snapshot(unpacked), snapshot(rootfs.arm64));

  // Second push: HEAD finds every blob; no upload request at all.
  const mark = px.log.length;
  const second = await pushLayout({
    layout: layoutDir,
    target: `${px.host}/demo/app:1.0.0`,
    tags: [],
    insecure: true,
  });
  assert.deepEqual(second.blobs, { uploaded: 0, mounted: 0, skipped: 4, bytesUploaded: 0 });
  assert.deepEqual(px.blobUploads(mark), []);
  t.diagnostic(
    `requests: first push ${first.requests} (${firstUploads.length} upload requests), second push ${second.requests} (0 upload requests)`,
  );

  // Pull it back: every digest verified, the layout identical in content.
  const pulled = path.join(dir, 'pulled');
  const p = await pullImage({ ref: `${reg.host}/demo/app:1.0.0`, output: pulled, insecure: true });
  assert.equal(p.digest, built.index.digest);
  assert.equal(p.blobs.fetched, 4);
  const pl = await OciLayout.open(pulled);
  assert.deepEqual(await pl.verify(), {
    manifests: 3,
    blobs: 4,
    bytes: (await (await OciLayout.open(layoutDir)).verify()).bytes,
  });
  const entry = await pl.resolve('1.0.0');
  assert.equal(entry.digest, built.index.digest);
  assert.equal(entry.annotations?.[ANNOTATION_REF_NAME], '1.0.0');
  assert.deepEqual(Buffer.from(await pl.readBytes(entry)), Buffer.from(indexBytes));
  // A second pull into the same layout fetches nothing.
  const again = await pullImage({ ref: `${reg.host}/demo/app:1.0.0`, output: pulled, insecure: true });
  assert.equal(again.blobs.fetched, 0);
  assert.equal(again.blobs.present, 4);
  // One platform by digest: recorded untagged.
  const one = path.join(dir, 'pulled-arm64');
  const pa = await pullImage({
    ref: `${reg.host}/demo/app@${built.index.digest}`,
    output: one,
    platform: 'linux/arm64',
    insecure: true,
  });
  assert.equal(pa.digest, built.images[1]?.manifest.digest);
  assert.equal(pa.mediaType, MEDIA_TYPE_MANIFEST);
  assert.equal(pa.blobs.fetched, 2);

  // Inspect: summary, platform child, exact bytes.
  const info = await inspectImage({ ref: `${reg.host}/demo/app:latest`, insecure: true });
  assert.equal(info.mediaType, MEDIA_TYPE_INDEX);
  assert.deepEqual(
    info.summary.manifests?.map((d) => d.platform?.architecture),
    ['amd64', 'arm64'],
  );
  const child = await inspectImage({
    ref: `${reg.host}/demo/app:latest`,
    platform: 'linux/arm64',
    insecure: true,
  });
  assert.equal(child.digest, built.images[1]?.manifest.digest);
  assert.deepEqual(child.platform, { os: 'linux', architecture: 'arm64' });
  assert.equal(
    child.totalSize,
    (built.images[1]?.config.size ?? 0) + (built.images[1]?.layers[0]?.size ?? 0),
  );
  await rejectsCode(
    inspectImage({ ref: `${reg.host}/demo/app:latest`, platform: 'linux/s390x', insecure: true }),
    'OCI_NOT_FOUND',
  );
  await rejectsCode(
    inspectImage({ ref: `${reg.host}/demo/nothing:latest`, insecure: true }),
    'OCI_NOT_FOUND',
  );
  const local = await inspectImage({ ref: `oci:${layoutDir}:v1`, raw: true });
  assert.deepEqual(Buffer.from(local.bytes), Buffer.from(indexBytes));
});

test('chunked upload (PATCH with Content-Range, then PUT ?digest=) round-trips a large layer', async () => {
  const reg = await registry();
  const px = await proxy(reg);
  const r = await pushLayout({
    layout: layoutDir,
    target: `${px.host}/demo/chunked:v1`,
    tags: [],
    insecure: true,
    chunkSize: 1024 * 1024,
    concurrency: 2,
  });
  assert.equal(r.blobs.uploaded, 4);
  const patches = px.log.filter((e) => e.method === 'PATCH');
  const big = built.images[0]?.layers[0]?.size ?? 0;
  assert.ok(big > 3 * 1024 * 1024, `the amd64 layer is ${big} bytes`);
  assert.equal(patches.length, Math.ceil(big / (1024 * 1024)));
  assert.ok(patches.every((e) => e.status === 202));
  const unpacked = await copyAndUnpack(`${reg.host}/demo/chunked:v1`, 'amd64');
  assert.deepEqual(snapshot(unpacked), snapshot(rootfs.amd64));
});

test('a blob whose bytes do not match its descriptor is never committed (OCI_DIGEST_MISMATCH)', async () => {
  const reg = await registry();
  const copy = path.join(dir, 'corrupt');
  fs.cpSync(layoutDir, copy, { recursive: true });
  const cfg = built.images[1]?.config;
  assert.ok(cfg !== undefined);
  const file = path.join(copy, 'blobs', 'sha256', cfg.digest.slice('sha256:'.length));
  const bytes = fs.readFileSync(file);
  bytes[0] = (bytes[0] ?? 0) ^ 1;
  fs.chmodSync(file, 0o644);
  fs.writeFileSync(file, bytes);
  for (const chunkSize of [undefined, 64]) {
    const err = await rejectsCode(
      pushLayout({
        layout: copy,
        target: `${reg.host}/demo/bad`,
        tags: [],
        insecure: true,
        concurrency: 1,
        ...(chunkSize !== undefined ? { chunkSize } : {}),
      }),
      'OCI_DIGEST_MISMATCH',
    );
    assert.match(err.message, new RegExp(cfg.digest));
  }
  const head = await fetch(`http://${reg.host}/v2/demo/bad/blobs/${cfg.digest}`, { method: 'HEAD' });
  assert.equal(head.status, 404);
});

test('htpasswd Basic auth: right credentials push (flag, env, auth file); wrong or none → OCI_AUTH_FAILED naming the registry', async () => {
  const reg = await registry({ mode: 'htpasswd' });
  const target = `${reg.host}/demo/basic`;
  const ok = await pushLayout({ layout: layoutDir, target, tags: [], creds: ALICE, insecure: true });
  assert.equal(ok.blobs.uploaded, 4);

  const wrong = await rejectsCode(
    pushLayout({
      layout: layoutDir,
      target,
      tags: [],
      creds: { username: 'alice', password: 'nope' },
      insecure: true,
    }),
    'OCI_AUTH_FAILED',
  );
  assert.match(wrong.message, new RegExp(reg.host.replace(/\./g, '\\.')));
  assert.match(wrong.message, /alice/);
  // No credentials anywhere (an empty auth file): a clear error before any upload.
  const empty = path.join(dir, 'empty-auth.json');
  fs.writeFileSync(empty, '{"auths":{}}');
  const none = await rejectsCode(
    pushLayout({ layout: layoutDir, target, tags: [], insecure: true, authFile: empty }),
    'OCI_AUTH_FAILED',
  );
  assert.match(none.message, /requires credentials/);

  // A docker config.json with a scheme-qualified key, and a malformed one.
  const authFile = path.join(dir, 'config.json');
  fs.writeFileSync(
    authFile,
    JSON.stringify({
      auths: { [`https://${reg.host}`]: { auth: Buffer.from('alice:wonderland').toString('base64') } },
    }),
  );
  const viaFile = await pushLayout({
    layout: layoutDir,
    target: `${target}:file`,
    tags: [],
    authFile,
    insecure: true,
  });
  assert.equal(viaFile.blobs.skipped, 4);
  fs.writeFileSync(
    authFile,
    JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('no-colon').toString('base64') } } }),
  );
  const bad = await rejectsCode(
    pushLayout({ layout: layoutDir, target, tags: [], authFile, insecure: true }),
    'OCI_CREDENTIALS_INVALID',
  );
  assert.match(bad.message, /config\.json/);
  assert.match(bad.message, new RegExp(reg.host.replace(/\./g, '\\.')));

  // Pull with credentials from the environment.
  process.env.SLIPWAY_REGISTRY_USER = 'alice';
  process.env.SLIPWAY_REGISTRY_PASSWORD = 'wonderland';
  try {
    const p = await pullImage({
      ref: `${target}:latest`,
      output: path.join(dir, 'pulled-basic'),
      insecure: true,
    });
    assert.equal(p.digest, built.index.digest);
  } finally {
    delete process.env.SLIPWAY_REGISTRY_USER;
    delete process.env.SLIPWAY_REGISTRY_PASSWORD;
  }
  const raw = await skopeo(
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--creds',
    'alice:wonderland',
    `docker://${target}:latest`,
  );
  assert.equal(raw, Buffer.from(indexBytes).toString('utf8'));
});

test('Bearer tokens (RS256 JWT): push, mount from another repository, access_token; pull-only grant → OCI_INSUFFICIENT_SCOPE with bounded requests', async (t) => {
  const reg = await registry({ mode: 'token' });
  const token = reg.token;
  assert.ok(token !== undefined);
  const r = await pushLayout({
    layout: layoutDir,
    target: `${reg.host}/demo/tok`,
    tags: [],
    creds: ALICE,
    insecure: true,
  });
  assert.equal(r.blobs.uploaded, 4);
  t.diagnostic(`token push: ${r.requests} requests, ${token.requests.length} token request(s)`);
  // One token for the whole push (the probe learns the realm; parallel requests share the fetch).
  assert.deepEqual(token.requests, [
    { user: 'alice', scopes: ['repository:demo/tok:pull,push'], status: 200 },
  ]);

  // Cross-repository mount: one token for both scopes, every blob mounted.
  token.requests.length = 0;
  const m = await pushLayout({
    layout: layoutDir,
    target: `${reg.host}/demo/mounted`,
    tags: [],
    from: 'demo/tok',
    creds: ALICE,
    insecure: true,
  });
  assert.deepEqual(m.blobs, { uploaded: 0, mounted: 4, skipped: 0, bytesUploaded: 0 });
  assert.ok(
    token.requests.some(
      (t) => t.scopes.join(' ') === 'repository:demo/mounted:pull,push repository:demo/tok:pull',
    ),
  );

  // No pull on the mount source: the blobs are uploaded instead.
  token.grant = (_user, requested) => requested.filter((a) => a.name !== 'demo/tok');
  const noMount = await pushLayout({
    layout: layoutDir,
    target: `${reg.host}/demo/nomount`,
    tags: [],
    from: 'demo/tok',
    creds: ALICE,
    insecure: true,
  });
  assert.deepEqual([noMount.blobs.uploaded, noMount.blobs.mounted], [4, 0]);
  token.grant = grantAll;

  // access_token instead of token.
  token.field = 'access_token';
  const viaAccess = await pullImage({
    ref: `${reg.host}/demo/tok:latest`,
    output: path.join(dir, 'pulled-token'),
    creds: ALICE,
    insecure: true,
  });
  assert.equal(viaAccess.digest, built.index.digest);
  token.field = 'token';

  const raw = await skopeo(
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--creds',
    'alice:wonderland',
    `docker://${reg.host}/demo/tok:latest`,
  );
  assert.equal(raw, Buffer.from(indexBytes).toString('utf8'));

  // The token server refuses the password.
  token.requests.length = 0;
  const wrong = await rejectsCode(
    pushLayout({
      layout: layoutDir,
      target: `${reg.host}/demo/tok2`,
      tags: [],
      creds: { username: 'alice', password: 'x' },
      insecure: true,
    }),
    'OCI_AUTH_FAILED',
  );
  assert.match(wrong.message, /token server/);
  assert.match(wrong.message, new RegExp(reg.host.replace(/\./g, '\\.')));
  assert.ok(token.requests.length <= 4, `${token.requests.length} token requests`);

  // Pull-only: a clear insufficient_scope error, a handful of token requests, no loop.
  token.grant = grantPullOnly;
  token.requests.length = 0;
  let requests = 0;
  const err = await rejectsCode(
    pushLayout({
      layout: layoutDir,
      target: `${reg.host}/demo/readonly`,
      tags: [],
      creds: ALICE,
      insecure: true,
    }),
    'OCI_INSUFFICIENT_SCOPE',
  );
  assert.match(err.message, /push on 'demo\/readonly'/);
  assert.match(err.message, new RegExp(reg.host.replace(/\./g, '\\.')));
  assert.ok(token.requests.length <= 3, `${token.requests.length} token requests`);
  const tokenRequests = token.requests.length;
  // The same through a bare client, counting every HTTP request.
  const client = new RegistryClient(reg.host, {
    credentials: ALICE,
    insecure: true,
    onRequest: () => {
      requests++;
    },
  });
  await client.probe();
  await rejectsCode(
    client.uploadBlob(
      'demo/readonly',
      { mediaType: 'application/octet-stream', digest: built.index.digest, size: 1 },
      () => fs.createReadStream(CLI),
    ),
    'OCI_INSUFFICIENT_SCOPE',
  );
  client.close();
  assert.ok(requests <= 6, `${requests} requests for one refused upload`);
  t.diagnostic(`pull-only push: ${tokenRequests} token requests; bare client: ${requests} requests in all`);
  // Pulling is still allowed.
  const p = await pullImage({
    ref: `${reg.host}/demo/tok:latest`,
    output: path.join(dir, 'pulled-ro'),
    creds: ALICE,
    insecure: true,
  });
  assert.equal(p.digest, built.index.digest);
});

test('a registry answering 500 twice: the push retries and succeeds (manifest PUT retried, blob upload session restarted)', async () => {
  const reg = await registry();
  const px = await proxy(reg);
  px.failNext(2, (method, p) => method === 'PUT' && p.includes('/manifests/'));
  const r = await pushLayout({
    layout: layoutDir,
    target: `${px.host}/demo/flaky`,
    tags: [],
    insecure: true,
    backoffMs: 5,
  });
  assert.equal(r.digest, built.index.digest);
  assert.equal(px.log.filter((e) => e.injected && e.status === 500).length, 2);

  px.failNext(2, (method, p) => method === 'PUT' && p.includes('/blobs/uploads/'));
  const r2 = await pushLayout({
    layout: layoutDir,
    target: `${px.host}/demo/flaky2`,
    tags: [],
    insecure: true,
    backoffMs: 5,
    concurrency: 1,
  });
  assert.equal(r2.blobs.uploaded, 4);
  assert.equal(px.log.filter((e) => e.injected && e.status === 500).length, 4);
  const raw = await skopeo(
    'inspect',
    '--raw',
    '--tls-verify=false',
    `docker://${reg.host}/demo/flaky2:latest`,
  );
  assert.equal(raw, Buffer.from(indexBytes).toString('utf8'));

  // Always 500: a bounded number of attempts, then a coded error with the status and path.
  px.failNext(100, (method, p) => method === 'PUT' && p.includes('/manifests/'));
  const before = px.log.length;
  const err = await rejectsCode(
    pushLayout({
      layout: layoutDir,
      target: `${px.host}/demo/flaky3`,
      tags: [],
      insecure: true,
      backoffMs: 1,
      attempts: 3,
    }),
    'OCI_REGISTRY_ERROR',
  );
  assert.match(err.message, /HTTP 500/);
  assert.match(err.message, /\/v2\/demo\/flaky3\/manifests\//);
  assert.equal(px.log.slice(before).filter((e) => e.injected).length, 3);
  px.failNext(0, () => false);
});

function cli(args: string[]): {
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  pid: number;
} {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code) => {
      resolve({ code, stdout, stderr });
    });
  });
  return { done, pid: child.pid ?? 0 };
}

test('a push killed halfway (SIGKILL) finishes on re-run without re-sending the blobs the registry has', async () => {
  const reg = await registry();
  const px = await proxy(reg);
  // Let two blobs through, then hold the third upload's POST until the CLI is dead.
  let posts = 0;
  px.hold((method, p) => method === 'POST' && p.includes('/blobs/uploads/') && ++posts >= 3);
  const target = `${px.host}/demo/killed`;
  const first = cli([
    'oci',
    'push',
    `${layoutDir}:v1`,
    target,
    '--insecure',
    '--concurrency',
    '1',
    '--plain',
  ]);
  // (If the CLI ends before reaching the held request, fail instead of waiting forever.)
  await Promise.race([
    px.waitFor((e) => e.injected && e.method === 'POST'),
    first.done.then((r) => assert.fail(`the push ended before the held request: ${r.stderr}`)),
  ]);
  process.kill(first.pid, 'SIGKILL');
  const killed = await first.done;
  assert.equal(killed.code, null);
  const committed = px.log.filter((e) => isBlobUpload(e) && e.method === 'PUT' && e.status === 201).length;
  assert.equal(committed, 2);
  px.hold(undefined);

  const mark = px.log.length;
  const second = cli(['--json', 'oci', 'push', `${layoutDir}:v1`, target, '--insecure']);
  const done = await second.done;
  assert.equal(done.code, 0, done.stderr);
  const result = JSON.parse(done.stdout) as {
    digest: string;
    tags: string[];
    blobs: { uploaded: number; skipped: number };
  };
  assert.equal(result.digest, built.index.digest);
  assert.deepEqual(result.tags, ['v1']);
  assert.deepEqual([result.blobs.uploaded, result.blobs.skipped], [2, 2]);
  const resent = px.blobUploads(mark);
  assert.equal(resent.filter((e) => e.method === 'POST').length, 2);

  // The CLI's inspect --raw prints the exact index bytes.
  const raw = cli(['oci', 'inspect', '--raw', '--insecure', `${reg.host}/demo/killed:v1`]);
  const out = await raw.done;
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, `${Buffer.from(indexBytes).toString('utf8')}\n`);
  // And a wrong password through the CLI: error[OCI_AUTH_FAILED]-style output, exit 2, for a Basic registry.
  const basic = await registry({ mode: 'htpasswd' });
  const denied = await cli([
    'oci',
    'push',
    layoutDir,
    `${basic.host}/demo/x`,
    '--insecure',
    '--creds',
    'alice:bad',
  ]).done;
  assert.equal(denied.code, 2);
  assert.match(denied.stderr, /^error\[OCI_AUTH_FAILED\]: .*127\.0\.0\.1:\d+.*alice/m);
});
