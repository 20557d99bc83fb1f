/**
 * The registry client against a hostile or broken registry, played by small
 * in-process HTTP servers (no docker-registry needed, so each case is fast
 * and exact): repeated 401s, oversized and mis-digested manifests, blobs with
 * the wrong bytes, redirects and upload Locations to other hosts, redirect
 * loops, a token realm over plain http elsewhere; and the CLI's --dry-run,
 * --json and SIGINT behaviour. Every error asserts its code and that nothing
 * was written (or lost) locally and no credentials reached another origin.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import {
  ANNOTATION_REF_NAME,
  MEDIA_TYPE_CONFIG,
  MEDIA_TYPE_LAYER_TAR_GZIP,
  MEDIA_TYPE_MANIFEST,
  encodeManifest,
  type Descriptor,
} from '../../src/formats/oci.js';
import { OciLayout } from '../../src/oci/layout.js';
import { pullImage } from '../../src/oci/pull.js';
import { pushLayout } from '../../src/oci/push.js';
import { prng } from '../helpers/prng.js';
import { rejectsCode } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const CLI = path.join(ROOT, 'bin', 'slipway.js');
const ALICE = { username: 'alice', password: 'wonderland' };
const ALICE_BASIC = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;
const dir = tempDir('slipway-oci-hostile-');

// ---------------------------------------------------------------------------
// A one-image fixture: config + one 1 MiB layer (noise) + manifest.

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
function descriptor(mediaType: string, bytes: Uint8Array): Descriptor {
  return { mediaType, digest: sha256(bytes), size: bytes.byteLength };
}
const config = Buffer.from(
  JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
);
const layer = Buffer.alloc(1024 * 1024);
{
  const r = prng(11);
  for (let i = 0; i < layer.length; i++) layer[i] = Math.floor(r() * 256);
}
const configDesc = descriptor(MEDIA_TYPE_CONFIG, config);
const layerDesc = descriptor(MEDIA_TYPE_LAYER_TAR_GZIP, layer);
const manifest = encodeManifest({ config: configDesc, layers: [layerDesc] });
const blobs = new Map<string, Buffer>([
  [configDesc.digest, config],
  [layerDesc.digest, layer],
]);

/** A layout holding the fixture under tag `v1` (to push). */
async function fixtureLayout(name: string): Promise<string> {
  const out = path.join(dir, name);
  const layout = await OciLayout.create(out);
  await layout.putBytes(config);
  await layout.putBytes(layer);
  await layout.putBytes(manifest.bytes);
  await layout.tag(manifest.descriptor, 'v1');
  return out;
}

// ---------------------------------------------------------------------------
// Fake servers

interface Seen {
  method: string;
  url: string;
  authorization?: string;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

interface Fake {
  /** `IP:PORT` */
  host: string;
  origin: string;
  seen: Seen[];
  handler: Handler;
  stop(): Promise<void>;
}

const fakes: Fake[] = [];
after(async () => {
  for (const f of fakes) await f.stop();
});

async function fake(handler: Handler = serveImage, ip = '127.0.0.1'): Promise<Fake> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      f.seen.push({
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}),
      });
      f.handler(req, res, Buffer.concat(chunks));
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, ip, resolve));
  const host = `${ip}:${(server.address() as net.AddressInfo).port}`;
  const f: Fake = {
    host,
    origin: `http://${host}`,
    seen: [],
    handler,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
  fakes.push(f);
  return f;
}

function send(res: http.ServerResponse, status: number, body: Uint8Array | string = '', headers = {}): void {
  res.writeHead(status, { 'Content-Length': Buffer.byteLength(body), ...headers }).end(body);
}

/** An honest registry for the fixture under `demo/app` (tag `latest` or by digest), no auth. */
function serveImage(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const p = url.pathname;
  if (p === '/v2/') {
    send(res, 200, '{}');
    return;
  }
  const m = /^\/v2\/demo\/app\/(manifests|blobs)\/(.+)$/.exec(p);
  if (m?.[1] === 'manifests' && (m[2] === 'latest' || m[2] === manifest.descriptor.digest)) {
    send(res, 200, req.method === 'HEAD' ? '' : manifest.bytes, {
      'Content-Type': MEDIA_TYPE_MANIFEST,
      'Docker-Content-Digest': manifest.descriptor.digest,
    });
    return;
  }
  const blob = m?.[1] === 'blobs' ? blobs.get(m[2] ?? '') : undefined;
  if (blob !== undefined) {
    send(res, 200, blob);
    return;
  }
  send(res, 404, '{"errors":[{"code":"NOT_FOUND","message":"no"}]}');
}

/** Files under a layout's blobs/sha256: every name must be a full digest (no temp or partial file). */
function blobNames(layout: string): string[] {
  const d = path.join(layout, 'blobs', 'sha256');
  return fs.existsSync(d) ? fs.readdirSync(d).sort() : [];
}

const hex = (digest: string): string => digest.slice('sha256:'.length);
const escape = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

// ---------------------------------------------------------------------------

test('a registry that keeps answering 401: OCI_AUTH_FAILED naming the registry and scope, bounded requests, nothing written', async () => {
  const tok = await fake((_req, res) => {
    send(res, 200, JSON.stringify({ token: `opaque-${tok.seen.length}` }));
  });
  const reg = await fake((_req, res) => {
    send(res, 401, '{"errors":[{"code":"UNAUTHORIZED"}]}', {
      'WWW-Authenticate': `Bearer realm="${tok.origin}/token",service="fake"`,
    });
  });
  const out = path.join(dir, 'pull-401');
  const err = await rejectsCode(
    pullImage({ ref: `${reg.host}/demo/app:latest`, output: out, creds: ALICE, insecure: true }),
    'OCI_AUTH_FAILED',
  );
  assert.match(err.message, escape(reg.host));
  assert.match(err.message, /repository:demo\/app:pull\b/);
  // Probe, GET with a token, GET with a fresh token: then the error.
  assert.ok(reg.seen.length <= 3, `${reg.seen.length} registry requests`);
  assert.ok(tok.seen.length <= 2, `${tok.seen.length} token requests`);
  assert.equal(fs.existsSync(out), false);

  const layout = await fixtureLayout('push-401');
  reg.seen.length = 0;
  tok.seen.length = 0;
  const pushErr = await rejectsCode(
    pushLayout({
      layout,
      target: `${reg.host}/demo/app`,
      tags: [],
      creds: ALICE,
      insecure: true,
      concurrency: 1,
    }),
    'OCI_AUTH_FAILED',
  );
  assert.match(pushErr.message, escape(reg.host));
  assert.match(pushErr.message, /repository:demo\/app:pull,push/);
  assert.ok(reg.seen.length <= 3, `${reg.seen.length} registry requests`);
  assert.ok(tok.seen.length <= 2, `${tok.seen.length} token requests`);

  // Basic: the credentials are sent once; a second 401 is the error.
  reg.handler = (_req, res) => {
    send(res, 401, '', { 'WWW-Authenticate': 'Basic realm="fake"' });
  };
  reg.seen.length = 0;
  const basic = await rejectsCode(
    pullImage({ ref: `${reg.host}/demo/app:latest`, output: out, creds: ALICE, insecure: true }),
    'OCI_AUTH_FAILED',
  );
  assert.match(basic.message, escape(reg.host));
  assert.match(basic.message, /alice/);
  assert.deepEqual(
    reg.seen.map((s) => s.authorization),
    [undefined, ALICE_BASIC],
  );
  assert.equal(fs.existsSync(out), false);
});

test('hostile manifests: over the size cap, wrong bytes for a digest, a lying Docker-Content-Digest: coded errors, nothing written', async () => {
  const reg = await fake();
  const out = path.join(dir, 'pull-manifest');
  const ref = `${reg.host}/demo/app`;

  reg.handler = (req, res) => {
    if (req.url?.includes('/manifests/') === true) {
      // 5 MiB of valid-looking JSON: refused at the cap, not buffered whole.
      const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
      big[0] = 0x7b;
      big[big.length - 1] = 0x7d;
      send(res, 200, big, { 'Content-Type': MEDIA_TYPE_MANIFEST });
      return;
    }
    serveImage(req, res);
  };
  const huge = await rejectsCode(
    pullImage({ ref: `${ref}:latest`, output: out, insecure: true }),
    'OCI_REGISTRY_ERROR',
  );
  assert.match(huge.message, /larger than/);
  assert.equal(fs.existsSync(out), false);

  // Asked by digest, served other bytes.
  const other = encodeManifest({ config: configDesc, layers: [] });
  reg.handler = (req, res) => {
    if (req.url?.includes('/manifests/') === true) {
      send(res, 200, other.bytes, { 'Content-Type': MEDIA_TYPE_MANIFEST });
      return;
    }
    serveImage(req, res);
  };
  await rejectsCode(
    pullImage({ ref: `${ref}@${manifest.descriptor.digest}`, output: out, insecure: true }),
    'OCI_DIGEST_MISMATCH',
  );
  assert.equal(fs.existsSync(out), false);

  // Asked by tag, with a Docker-Content-Digest the bytes do not have.
  reg.handler = (req, res) => {
    if (req.url?.includes('/manifests/') === true) {
      send(res, 200, other.bytes, {
        'Content-Type': MEDIA_TYPE_MANIFEST,
        'Docker-Content-Digest': manifest.descriptor.digest,
      });
      return;
    }
    serveImage(req, res);
  };
  await rejectsCode(pullImage({ ref: `${ref}:latest`, output: out, insecure: true }), 'OCI_DIGEST_MISMATCH');
  assert.equal(fs.existsSync(out), false);
});

test('pull into an existing layout: a blob with wrong bytes is never stored and index.json is untouched; success keeps the other tags', async () => {
  // An existing layout with another image under `keep`.
  const out = path.join(dir, 'existing');
  const layout = await OciLayout.create(out);
  const keep = encodeManifest({ config: configDesc, layers: [] });
  await layout.putBytes(config);
  await layout.putBytes(keep.bytes);
  await layout.tag(keep.descriptor, 'keep');
  const indexBefore = fs.readFileSync(path.join(out, 'index.json'));
  const namesBefore = blobNames(out);

  const reg = await fake((req, res) => {
    if (req.url === `/v2/demo/app/blobs/${layerDesc.digest}`) {
      const bad = Buffer.from(layer);
      bad[1000] = (bad[1000] ?? 0) ^ 0xff;
      send(res, 200, bad);
      return;
    }
    serveImage(req, res);
  });
  const err = await rejectsCode(
    pullImage({ ref: `${reg.host}/demo/app:latest`, output: out, insecure: true }),
    'OCI_DIGEST_MISMATCH',
  );
  assert.match(err.message, escape(layerDesc.digest));
  assert.deepEqual(fs.readFileSync(path.join(out, 'index.json')), indexBefore);
  assert.ok(!blobNames(out).includes(hex(layerDesc.digest)));
  assert.deepEqual(blobNames(out), namesBefore, 'no temp file or partial blob left');

  // A body that ends early: same outcome (fetched again a few times, then an error).
  reg.handler = (req, res) => {
    if (req.url === `/v2/demo/app/blobs/${layerDesc.digest}`) {
      res.writeHead(200, { 'Content-Length': layer.length });
      res.write(layer.subarray(0, 4096));
      res.destroy();
      return;
    }
    serveImage(req, res);
  };
  await assert.rejects(
    pullImage({ ref: `${reg.host}/demo/app:latest`, output: out, insecure: true }),
    (e) => {
      assert.ok(isSlipwayError(e) && ['OCI_UNREACHABLE', 'OCI_DIGEST_MISMATCH'].includes(e.code), String(e));
      return true;
    },
  );
  assert.deepEqual(fs.readFileSync(path.join(out, 'index.json')), indexBefore);
  assert.deepEqual(blobNames(out), namesBefore);

  // Honest now: the new tag joins the old one, everything verifies.
  reg.handler = serveImage;
  const ok = await pullImage({ ref: `${reg.host}/demo/app:latest`, output: out, insecure: true });
  assert.equal(ok.digest, manifest.descriptor.digest);
  const index = await (await OciLayout.open(out)).readIndex();
  assert.deepEqual(
    index.manifests.map((d) => [d.annotations?.[ANNOTATION_REF_NAME], d.digest]),
    [
      ['keep', keep.descriptor.digest],
      ['latest', manifest.descriptor.digest],
    ],
  );
  await (await OciLayout.open(out)).verify();

  // An output that is some other non-empty directory: refused before any request, left as it was.
  const notLayout = path.join(dir, 'not-a-layout');
  fs.mkdirSync(notLayout);
  fs.writeFileSync(path.join(notLayout, 'notes.txt'), 'mine');
  const seen = reg.seen.length;
  await rejectsCode(
    pullImage({ ref: `${reg.host}/demo/app:latest`, output: notLayout, insecure: true }),
    'OCI_LAYOUT_INVALID',
  );
  assert.deepEqual(fs.readdirSync(notLayout), ['notes.txt']);
  assert.equal(reg.seen.length, seen);
});

test('redirects and upload Locations to another host get no credentials; a redirect loop ends with a coded error', async () => {
  const elsewhere = await fake(undefined, '127.0.0.2');
  const reg = await fake();
  const basicOnly =
    (inner: Handler): Handler =>
    (req, res, body) => {
      if (req.headers.authorization !== ALICE_BASIC) {
        send(res, 401, '', { 'WWW-Authenticate': 'Basic realm="fake"' });
        return;
      }
      inner(req, res, body);
    };
  // Pull: the layer is served from another host through a 307.
  elsewhere.handler = (_req, res) => {
    send(res, 200, layer);
  };
  reg.handler = basicOnly((req, res) => {
    if (req.url === `/v2/demo/app/blobs/${layerDesc.digest}`) {
      send(res, 307, '', { Location: `${elsewhere.origin}/storage/layer?sig=1` });
      return;
    }
    serveImage(req, res);
  });
  const out = path.join(dir, 'pull-redirect');
  const pulled = await pullImage({
    ref: `${reg.host}/demo/app:latest`,
    output: out,
    creds: ALICE,
    insecure: true,
  });
  assert.equal(pulled.blobs.fetched, 2);
  assert.deepEqual(
    elsewhere.seen.map((s) => [s.url, s.authorization]),
    [['/storage/layer?sig=1', undefined]],
  );
  assert.ok(reg.seen.some((s) => s.authorization === ALICE_BASIC));

  // Push: the upload session lives on another host.
  const layout = await fixtureLayout('push-location');
  elsewhere.seen.length = 0;
  const received = new Map<string, Buffer>();
  elsewhere.handler = (req, res, body) => {
    const digest = new URL(req.url ?? '/', 'http://x').searchParams.get('digest') ?? '';
    received.set(digest, body);
    send(res, 201, '', { 'Docker-Content-Digest': digest });
  };
  reg.handler = basicOnly((req, res) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'HEAD' && p.includes('/blobs/')) {
      send(res, 404);
      return;
    }
    if (req.method === 'POST' && p === '/v2/demo/app/blobs/uploads/') {
      send(res, 202, '', { Location: `${elsewhere.origin}/upload/u1?_state=s%2B1` });
      return;
    }
    if (req.method === 'PUT' && p.includes('/manifests/')) {
      send(res, 201);
      return;
    }
    serveImage(req, res);
  });
  const pushed = await pushLayout({
    layout,
    target: `${reg.host}/demo/app`,
    tags: [],
    creds: ALICE,
    insecure: true,
  });
  assert.equal(pushed.blobs.uploaded, 2);
  assert.equal(elsewhere.seen.length, 2);
  for (const s of elsewhere.seen) {
    assert.equal(s.authorization, undefined);
    assert.match(s.url, /^\/upload\/u1\?_state=s%2B1&digest=sha256%3A[0-9a-f]{64}$/);
  }
  assert.deepEqual(received.get(layerDesc.digest), layer);

  // A blob that redirects to itself forever: a bounded number of hops, then OCI_REGISTRY_ERROR.
  reg.handler = (req, res) => {
    if (req.url === `/v2/demo/app/blobs/${layerDesc.digest}`) {
      send(res, 302, '', { Location: req.url });
      return;
    }
    serveImage(req, res);
  };
  const loopOut = path.join(dir, 'pull-loop');
  const before = reg.seen.length;
  const loop = await rejectsCode(
    pullImage({ ref: `${reg.host}/demo/app:latest`, output: loopOut, insecure: true }),
    'OCI_REGISTRY_ERROR',
  );
  assert.match(loop.message, /too many redirects/);
  const hops = reg.seen.slice(before).filter((s) => s.url.endsWith(layerDesc.digest)).length;
  assert.ok(hops <= 6, `${hops} requests for the looping blob`);
  assert.ok(!blobNames(loopOut).includes(hex(layerDesc.digest)));
});

test('a token realm over plain http on another host never receives credentials (OCI_AUTH_CHALLENGE_INVALID)', async () => {
  const tok = await fake((_req, res) => {
    send(res, 200, '{"token":"t"}');
  }, '127.0.0.2');
  const reg = await fake((_req, res) => {
    send(res, 401, '', {
      'WWW-Authenticate': `Bearer realm="${tok.origin}/token",service="fake"`,
    });
  });
  const out = path.join(dir, 'pull-realm');
  const err = await rejectsCode(
    pullImage({ ref: `${reg.host}/demo/app:latest`, output: out, creds: ALICE, insecure: true }),
    'OCI_AUTH_CHALLENGE_INVALID',
  );
  assert.match(err.message, escape(tok.origin));
  assert.deepEqual(tok.seen, []);
  assert.ok(reg.seen.every((s) => s.authorization === undefined));
  assert.equal(fs.existsSync(out), false);
});

test('429 with Retry-After, 503 and connection resets are retried: pull and push succeed, blob upload sessions restart', async () => {
  const counts = new Map<string, number>();
  const nth = (key: string): number => {
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    return n;
  };
  const reg = await fake((req, res) => {
    if (req.url?.includes('/manifests/') === true && nth('manifest') === 1) {
      res.socket?.destroy();
      return;
    }
    if (req.url === `/v2/demo/app/blobs/${configDesc.digest}` && nth('config') <= 2) {
      send(res, 429, '', { 'Retry-After': '0' });
      return;
    }
    serveImage(req, res);
  });
  const out = path.join(dir, 'pull-flaky');
  const pulled = await pullImage({
    ref: `${reg.host}/demo/app:latest`,
    output: out,
    insecure: true,
    backoffMs: 1,
  });
  assert.equal(pulled.blobs.fetched, 2);
  assert.deepEqual([counts.get('manifest'), counts.get('config')], [2, 3]);
  await (await OciLayout.open(out)).verify();

  // Push: the first upload PUT loses its connection, the next manifest PUT gets a 503.
  const stored = new Map<string, Buffer>();
  reg.handler = (req, res, body) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    if (p === '/v2/') {
      send(res, 200, '{}');
    } else if (req.method === 'HEAD' && p.includes('/blobs/')) {
      const b = stored.get(p.split('/').pop() ?? '');
      send(res, b === undefined ? 404 : 200, '', b === undefined ? {} : { 'Content-Length': b.length });
    } else if (req.method === 'POST') {
      send(res, 202, '', { Location: `/v2/demo/app/blobs/uploads/${nth('session')}` });
    } else if (req.method === 'PUT' && p.includes('/blobs/uploads/')) {
      if (nth('upload') === 1) {
        res.socket?.destroy();
        return;
      }
      const digest = url.searchParams.get('digest') ?? '';
      assert.equal(sha256(body), digest);
      stored.set(digest, body);
      send(res, 201, '', { 'Docker-Content-Digest': digest });
    } else if (req.method === 'PUT' && p.includes('/manifests/')) {
      send(res, nth('manifest-put') === 1 ? 503 : 201);
    } else {
      send(res, 404);
    }
  };
  const layout = await fixtureLayout('push-flaky');
  const pushed = await pushLayout({
    layout,
    target: `${reg.host}/demo/app`,
    tags: [],
    insecure: true,
    backoffMs: 1,
    concurrency: 1,
  });
  assert.equal(pushed.blobs.uploaded, 2);
  assert.deepEqual(stored.get(layerDesc.digest), layer);
  assert.deepEqual([counts.get('session'), counts.get('upload'), counts.get('manifest-put')], [3, 3, 2]);
});

function cli(args: string[]): {
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  pid: number;
} {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return {
    done: new Promise((resolve) => {
      child.on('close', (code, signal) => {
        resolve({ code, signal, stdout, stderr });
      });
    }),
    pid: child.pid ?? 0,
  };
}

test('cli: push --dry-run --json sends nothing; pull and inspect --json; SIGINT mid-pull leaves no temp file and no partial blob', async () => {
  const reg = await fake();
  const layout = await fixtureLayout('cli-layout');
  const dry = await cli([
    '--json',
    'oci',
    'push',
    `${layout}:v1`,
    `${reg.host}/demo/app`,
    '--dry-run',
    '--insecure',
  ]).done;
  assert.equal(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout) as {
    dryRun: boolean;
    digest: string;
    tags: string[];
    blobs: Descriptor[];
  };
  assert.equal(plan.dryRun, true);
  assert.equal(plan.digest, manifest.descriptor.digest);
  assert.deepEqual(plan.tags, ['v1']);
  assert.deepEqual(
    plan.blobs.map((b) => b.digest),
    [configDesc.digest, layerDesc.digest],
  );
  assert.deepEqual(reg.seen, [], 'a dry run talks to no registry');

  const out = path.join(dir, 'cli-pull');
  const pulled = await cli(['--json', 'oci', 'pull', `${reg.host}/demo/app:latest`, '-o', out, '--insecure'])
    .done;
  assert.equal(pulled.code, 0, pulled.stderr);
  const pr = JSON.parse(pulled.stdout) as { digest: string; tag: string; blobs: { fetched: number } };
  assert.deepEqual([pr.digest, pr.tag, pr.blobs.fetched], [manifest.descriptor.digest, 'latest', 2]);
  const info = await cli(['--json', 'oci', 'inspect', `${reg.host}/demo/app:latest`, '--insecure']).done;
  assert.equal(info.code, 0, info.stderr);
  const ir = JSON.parse(info.stdout) as { digest: string; platform: unknown; totalSize: number };
  assert.equal(ir.digest, manifest.descriptor.digest);
  assert.deepEqual(ir.platform, { os: 'linux', architecture: 'amd64' });
  assert.equal(ir.totalSize, config.length + layer.length);

  // SIGINT while the layer is half received.
  let halfSent: () => void = () => undefined;
  const half = new Promise<void>((resolve) => (halfSent = resolve));
  reg.handler = (req, res) => {
    if (req.url === `/v2/demo/app/blobs/${layerDesc.digest}`) {
      res.writeHead(200, { 'Content-Length': layer.length });
      res.write(layer.subarray(0, layer.length / 2), () => {
        halfSent();
      });
      return; // held: the rest never comes
    }
    serveImage(req, res);
  };
  const killed = path.join(dir, 'cli-sigint');
  const run = cli([
    'oci',
    'pull',
    `${reg.host}/demo/app:latest`,
    '-o',
    killed,
    '--insecure',
    '--concurrency',
    '1',
  ]);
  await Promise.race([
    half,
    run.done.then((r) => assert.fail(`the pull ended before the held blob: ${r.stderr}`)),
  ]);
  // Wait until the half blob is in a temp file, so the test sees it removed.
  const deadline = Date.now() + 10_000;
  while (!blobNames(killed).some((n) => n.endsWith('.tmp')) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(
    blobNames(killed).some((n) => n.endsWith('.tmp')),
    `no temp file seen: ${blobNames(killed).join(' ')}`,
  );
  process.kill(run.pid, 'SIGINT');
  const r = await run.done;
  assert.equal(r.signal, 'SIGINT', `exit ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, /error\[INTERRUPTED\]/);
  assert.deepEqual(
    blobNames(killed).filter((n) => n !== hex(configDesc.digest)),
    [],
    'only whole, verified blobs remain',
  );
  assert.deepEqual((await (await OciLayout.open(killed)).readIndex()).manifests, []);
});
