import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { MemoryReporter } from '../../src/core/events.js';
import type { AssembleResult } from '../../src/repo/assemble.js';
import { extractRepository } from '../../src/repo/extract.js';
import {
  decodeTarget,
  etagFor,
  isPlainName,
  methodsFor,
  rangeApplies,
  routeOf,
  startRepoServer,
  statusOf,
  type RepoServer,
} from '../../src/repo/serve.js';
import { compareSemver, encodeIndex, parseIndex, type StoredRepo } from '../../src/repo/store.js';
import { SlipwayError } from '../../src/core/errors.js';
import { verifyRepositoryZip, type VerifyResult } from '../../src/repo/verify.js';
import { assembleFake, rawZip, sha256, tufjsDirs, tufjsUpdater } from '../helpers/fake-repo.js';
import { request } from '../helpers/http.js';
import { snapshot, tempDir } from '../helpers/tmp.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Only two kinds: assembled with skipAllPresent, refused by an upload server. */
const PARTIAL_MANIFEST = `system_version = "3.0.0"

[[artifact.gimlet_sp]]
name = "fake-gimlet-sp"
version = "1.0.0"
source = { kind = "fake", size = "64KiB" }

[[artifact.psc_sp]]
name = "fake-psc-sp"
version = "1.0.0"
source = { kind = "fake", size = "64KiB" }
`;

const tmp = tempDir('slipway-serve-');

async function waitFor(what: string, pred: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function fileOf(x: { target: string; sha256: string }): string {
  return `${x.sha256}.${x.target}`;
}

/** tuf-js as an independent client: refresh, then fetch every target; name → sha256 of what it wrote. */
async function tufJsDownloadAll(
  root: Buffer,
  baseUrl: string,
  targets: readonly string[],
): Promise<Record<string, string>> {
  const dirs = tufjsDirs(root);
  const updater = tufjsUpdater({ baseUrl, dirs });
  await updater.refresh();
  const out: Record<string, string> = {};
  for (const t of targets) {
    const info = await updater.getTargetInfo(t);
    assert.ok(info !== undefined, `tuf-js knows ${t}`);
    const file = await updater.downloadTarget(info, path.join(dirs.targetDir, t.replaceAll('/', '_')));
    out[t] = sha256(fs.readFileSync(file));
  }
  return out;
}

function expectedTargets(v: VerifyResult): Record<string, string> {
  return Object.fromEntries(v.artifacts.map((a) => [a.target, a.sha256]));
}

let repoA: AssembleResult; // 1.0.0
let repoA2: AssembleResult; // 1.0.0 again, another key: a different repository
let repoB: AssembleResult; // 2.0.0
let repoC: AssembleResult; // 10.0.0
let partial: AssembleResult; // 3.0.0, two kinds only
let verifiedA: VerifyResult;
let rootA: Buffer;
let dirA: string;

before(async () => {
  // A fresh throwaway key each time, so two repos of one version differ.
  repoA = await assembleFake(path.join(tmp, 'a'), { systemVersion: '1.0.0' });
  repoA2 = await assembleFake(path.join(tmp, 'a2'), { systemVersion: '1.0.0' });
  repoB = await assembleFake(path.join(tmp, 'b'), { systemVersion: '2.0.0' });
  repoC = await assembleFake(path.join(tmp, 'c'), { systemVersion: '10.0.0' });
  partial = await assembleFake(path.join(tmp, 'partial'), {
    manifest: PARTIAL_MANIFEST,
    skipAllPresent: true,
  });
  verifiedA = await verifyRepositoryZip(repoA.output, { now: new Date() });
  dirA = path.join(tmp, 'a-dir');
  await extractRepository(repoA.output, dirA, { verify: false, now: new Date() });
  rootA = fs.readFileSync(path.join(dirA, 'metadata', '1.root.json'));
});

describe('pure parts', () => {
  test('decodeTarget and routeOf: plain names only, decoded per segment', () => {
    const r = (url: string, mode: 'source' | 'store' = 'source') => {
      const t = decodeTarget(url);
      return t === undefined ? { kind: 'none' } : routeOf(t.segments, mode);
    };
    assert.deepEqual(r('/metadata/1.root.json'), { kind: 'file', area: 'metadata', name: '1.root.json' });
    assert.deepEqual(r('/targets/ab.x%20y?z=1'), { kind: 'file', area: 'targets', name: 'ab.x y' });
    for (const bad of [
      '/',
      '/metadata/',
      '/metadata',
      '/../etc/passwd',
      '/targets/%2e%2e%2fx',
      '/targets/..',
      '/targets/%2E%2E',
      '/targets/a%2Fb',
      '/targets/a%5Cb',
      '/targets/a%00b',
      '/targets/%zz',
      '/targets/.hidden',
      '/targets/a/b',
      '//targets/x',
      '/other/x',
      'http://host/metadata/x',
      '*',
    ]) {
      assert.deepEqual(r(bad), { kind: 'none' }, bad);
    }
    assert.deepEqual(r('/v1/system/update/repositories', 'store'), { kind: 'list' });
    assert.deepEqual(r('/v1/system/update/repository?file_name=x.zip', 'store'), { kind: 'upload' });
    assert.equal(
      decodeTarget('/v1/system/update/repository?file_name=x%20y.zip')?.query.get('file_name'),
      'x y.zip',
    );
    assert.deepEqual(r('/v1/system/update/repository/1.0.0', 'store'), { kind: 'repo', version: '1.0.0' });
    assert.deepEqual(r('/v1/system/update/repository/1.0.0/targets/x', 'store'), {
      kind: 'file',
      area: 'targets',
      name: 'x',
      version: '1.0.0',
    });
    for (const bad of [
      '/metadata/1.root.json',
      '/v1/system/update/repositories/x',
      '/v1/system/update/repository/..',
      '/v1/system/update/repository/1.0.0/metadata',
      '/v1/system/update/repository/1.0.0/other/x',
      '/v1/system/update/repository/1.0.0/targets/x/y',
      '/v1/system/update',
    ]) {
      assert.deepEqual(r(bad, 'store'), { kind: 'none' }, bad);
    }
    assert.deepEqual(methodsFor({ kind: 'upload' }), ['PUT']);
    assert.deepEqual(methodsFor({ kind: 'list' }), ['GET', 'HEAD']);
    assert.equal(isPlainName('a'.repeat(256)), false);
  });

  test('ETags, conditionals and error statuses', () => {
    const sha = 'ab'.repeat(32);
    assert.equal(etagFor(`${sha}.host.tar.gz`, 5, 1), `"${sha}"`);
    assert.equal(etagFor('1.root.json', 255, 4096.7), '"ff-1000"');
    assert.ok(rangeApplies(undefined, '"a"'));
    assert.ok(rangeApplies('"a"', '"a"'));
    assert.ok(!rangeApplies('Wed, 21 Oct 2015 07:28:00 GMT', '"a"'));
    assert.equal(statusOf(new SlipwayError('REPO_CONFLICT', 'x')), 409);
    assert.equal(statusOf(new SlipwayError('REPO_UPLOAD_TOO_LARGE', 'x')), 413);
    assert.equal(statusOf(new SlipwayError('ZIP_INVALID', 'x')), 400);
    assert.equal(statusOf(new SlipwayError('IO', 'x')), 500);
    assert.equal(statusOf(new Error('x')), 500);
  });

  test('compareSemver orders by precedence; the index round-trips and refuses junk', () => {
    const versions = [
      '10.0.0',
      '2.0.0',
      '1.0.0',
      '1.0.0-rc.1',
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta.11',
      '1.0.0-beta.2',
      'junk',
    ];
    assert.deepEqual([...versions].sort(compareSemver), [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '2.0.0',
      '10.0.0',
      'junk',
    ]);
    const rec = (v: string, h: string): StoredRepo => ({
      system_version: v,
      sha256: h.repeat(64),
      file_name: `${v}.zip`,
      valid_until: '2030-01-01T00:00:00Z',
      targets_role_version: 1,
      uploaded_at: '2025-01-01T00:00:00.000Z',
      artifacts: [{ kind: 'host', name: 'h', version: '1', target: 't', sha256: h.repeat(64), size: 3 }],
    });
    const text = encodeIndex([rec('10.0.0', 'a'), rec('2.0.0', 'b')]);
    assert.deepEqual(
      parseIndex(Buffer.from(text), 'i').map((r) => r.system_version),
      ['2.0.0', '10.0.0'],
    );
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
        return undefined;
      } catch (err) {
        return (err as SlipwayError).code;
      }
    };
    assert.equal(
      code(() => parseIndex(Buffer.from('{'), 'i')),
      'REPO_STORE_INVALID',
    );
    assert.equal(
      code(() => parseIndex(Buffer.from('[]'), 'i')),
      'REPO_STORE_INVALID',
    );
    assert.equal(
      code(() => parseIndex(Buffer.from('{"repos":[{"sha256":"x"}]}'), 'i')),
      'REPO_STORE_INVALID',
    );
    assert.equal(
      code(() => parseIndex(Buffer.from(encodeIndex([rec('1.0.0', 'a'), rec('1.0.0', 'b')])), 'i')),
      'REPO_STORE_INVALID',
    );
  });
});

/** The checks of part (1), against a server over `repoA` (zip or extracted directory). */
async function checkServedRepo(url: string): Promise<void> {
  const root = await request(url, '/metadata/1.root.json');
  assert.equal(root.status, 200);
  assert.equal(root.headers['content-type'], 'application/json');
  assert.equal(root.headers['accept-ranges'], 'bytes');
  assert.match(String(root.headers.etag), /^"[0-9a-f]+-[0-9a-f]+"$/);
  assert.deepEqual(root.body, rootA);
  assert.equal(Number(root.headers['content-length']), rootA.length);

  const host = verifiedA.artifacts.find((a) => a.kind === 'gimlet_sp');
  assert.ok(host !== undefined);
  const file = `/targets/${fileOf(host)}`;
  const whole = await request(url, file);
  assert.equal(whole.status, 200);
  assert.equal(whole.headers['content-type'], 'application/octet-stream');
  assert.equal(whole.headers.etag, `"${host.sha256}"`);
  assert.equal(whole.body.length, host.size);
  assert.equal(sha256(whole.body), host.sha256);

  const head = await request(url, file, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(host.size));
  assert.equal(head.headers.etag, `"${host.sha256}"`);
  assert.equal(head.body.length, 0);

  const first = await request(url, file, { headers: { Range: 'bytes=0-99' } });
  assert.equal(first.status, 206);
  assert.equal(first.headers['content-range'], `bytes 0-99/${host.size}`);
  assert.equal(first.headers['content-length'], '100');
  assert.deepEqual(first.body, whole.body.subarray(0, 100));

  const suffix = await request(url, file, { headers: { Range: 'bytes=-10' } });
  assert.equal(suffix.status, 206);
  assert.equal(suffix.headers['content-range'], `bytes ${host.size - 10}-${host.size - 1}/${host.size}`);
  assert.deepEqual(suffix.body, whole.body.subarray(host.size - 10));

  const open = await request(url, file, { headers: { Range: 'bytes=1000000-' } });
  assert.equal(open.status, 206);
  assert.deepEqual(open.body, whole.body.subarray(1000000));

  const middle = await request(url, '/metadata/1.root.json', { headers: { Range: 'bytes=10-19' } });
  assert.equal(middle.status, 206);
  assert.deepEqual(middle.body, rootA.subarray(10, 20));

  const past = await request(url, file, { headers: { Range: `bytes=${host.size}-` } });
  assert.equal(past.status, 416);
  assert.equal(past.headers['content-range'], `bytes */${host.size}`);
  assert.equal(past.body.length, 0);

  const multi = await request(url, file, { headers: { Range: 'bytes=0-1,5-6' } });
  assert.equal(multi.status, 200);
  assert.equal(multi.body.length, host.size);

  const stale = await request(url, file, { headers: { Range: 'bytes=0-9', 'If-Range': '"other"' } });
  assert.equal(stale.status, 200);
  const cached = await request(url, file, { headers: { 'If-None-Match': `"${host.sha256}"` } });
  assert.equal(cached.status, 304);
  assert.equal(cached.body.length, 0);

  for (const p of [
    '/',
    '/metadata/',
    '/../etc/passwd',
    '/targets/%2e%2e%2fx',
    '/metadata/nope.json',
    '/repo/metadata/1.root.json',
    '/metadata/../metadata/1.root.json',
  ]) {
    const r = await request(url, p);
    assert.equal(r.status, 404, p);
    assert.equal((JSON.parse(r.body.toString()) as { error_code: string }).error_code, 'NOT_FOUND');
  }
  const post = await request(url, '/metadata/1.root.json', { method: 'POST', body: Buffer.from('x') });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
}

describe('serving one repository', () => {
  test('from the zip: metadata, targets, HEAD, ranges, 404s, 405', async () => {
    const log = new MemoryReporter();
    const server = await startRepoServer({ source: repoA.output, host: '127.0.0.1', port: 0, reporter: log });
    try {
      assert.equal(server.url, `http://127.0.0.1:${server.port}`);
      await checkServedRepo(server.url);
      const lines = log.events.flatMap((e) => (e.kind === 'log' ? [e.message] : []));
      assert.ok(
        lines.some((l) =>
          /^http method=GET path="\/metadata\/1\.root\.json" status=200 bytes=\d+ ms=\d+$/.test(l),
        ),
        lines.join('\n'),
      );
      assert.ok(lines.some((l) => l.includes('status=206 bytes=100 ')));
    } finally {
      await server.close();
    }
  });

  test('from an extracted directory, refusing symlinks out of it', async () => {
    const outside = path.join(tmp, 'outside');
    fs.mkdirSync(outside, { recursive: true });
    fs.writeFileSync(path.join(outside, 'secret.json'), '{"secret":true}');
    fs.symlinkSync(path.join(outside, 'secret.json'), path.join(dirA, 'targets', 'evil'));
    fs.symlinkSync('../metadata/1.root.json', path.join(dirA, 'targets', 'inner-link'));
    execFileSync('mkfifo', [path.join(dirA, 'targets', 'fifo')]);
    const server = await startRepoServer({ source: dirA, host: '127.0.0.1', port: 0 });
    try {
      await checkServedRepo(server.url);
      assert.equal((await request(server.url, '/targets/evil')).status, 404);
      assert.equal((await request(server.url, '/targets/inner-link')).status, 404);
      assert.equal(
        (await request(server.url, '/targets/fifo')).status,
        404,
        'a FIFO neither blocks nor is served',
      );
    } finally {
      await server.close();
      fs.rmSync(path.join(dirA, 'targets', 'evil'));
      fs.rmSync(path.join(dirA, 'targets', 'inner-link'));
      fs.rmSync(path.join(dirA, 'targets', 'fifo'));
    }
    // A whole area that is a symlink pointing out of DIR.
    const linked = path.join(tmp, 'linked-dir');
    fs.mkdirSync(linked);
    fs.symlinkSync(outside, path.join(linked, 'metadata'));
    const s2 = await startRepoServer({ source: linked, host: '127.0.0.1', port: 0 });
    try {
      assert.equal((await request(s2.url, '/metadata/secret.json')).status, 404);
    } finally {
      await s2.close();
    }
  });

  test('tuf-js refreshes and downloads every target over HTTP, from the zip and from the directory', async () => {
    const names = ['artifacts.json', ...verifiedA.artifacts.map((a) => a.target)];
    for (const source of [repoA.output, dirA]) {
      const server = await startRepoServer({ source, host: '127.0.0.1', port: 0 });
      try {
        const got = await tufJsDownloadAll(rootA, server.url, names);
        const { ['artifacts.json']: artifactsSha, ...rest } = got;
        assert.deepEqual(rest, expectedTargets(verifiedA));
        assert.match(artifactsSha ?? '', /^[0-9a-f]{64}$/);
      } finally {
        await server.close();
      }
    }
  });

  test('over HTTPS with a self-signed ed25519 certificate: tuf-js (NODE_EXTRA_CA_CERTS, child process) and https.get', async () => {
    const cert = path.join(tmp, 'cert.pem');
    const key = path.join(tmp, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ed25519',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-nodes',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const ca = fs.readFileSync(cert);
    const server = await startRepoServer({
      source: repoA.output,
      host: '127.0.0.1',
      port: 0,
      tls: { cert: ca, key: fs.readFileSync(key) },
    });
    try {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const r = await request(server.url, '/metadata/1.root.json', { ca, headers: { Range: 'bytes=-10' } });
      assert.equal(r.status, 206);
      assert.deepEqual(r.body, rootA.subarray(rootA.length - 10));
      // The trust store of Node's fetch (which tuf-js uses) is fixed at start-up: a child process with the CA.
      const dir = path.dirname(tufjsDirs(rootA).metadataDir);
      const names = verifiedA.artifacts.map((a) => a.target);
      const script = `
        import { Updater } from 'tuf-js';
        import { createHash } from 'node:crypto';
        import { readFileSync } from 'node:fs';
        const [dir, url, names] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3])];
        const u = new Updater({ metadataDir: dir + '/metadata', metadataBaseUrl: url + '/metadata',
          targetDir: dir + '/targets', targetBaseUrl: url + '/targets', config: { fetchRetry: 0 } });
        await u.refresh();
        const out = {};
        for (const n of names) {
          const info = await u.getTargetInfo(n);
          const f = await u.downloadTarget(info, dir + '/targets/' + n);
          out[n] = createHash('sha256').update(readFileSync(f)).digest('hex');
        }
        process.stdout.write(JSON.stringify(out));`;
      const child = spawn(
        process.execPath,
        ['--input-type=module', '-e', script, dir, server.url, JSON.stringify(names)],
        {
          cwd: projectRoot,
          env: { ...process.env, NODE_EXTRA_CA_CERTS: cert },
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 0, stderr);
      assert.deepEqual(JSON.parse(stdout), expectedTargets(verifiedA));
    } finally {
      await server.close();
    }
  });

  test('close() lets an in-flight response finish, and cuts it after the grace period', async () => {
    // A sparse 64 MiB file: more than the socket buffers hold, so the response stays in flight.
    const dir = path.join(tmp, 'big-dir');
    fs.mkdirSync(path.join(dir, 'targets'), { recursive: true });
    const size = 64 << 20;
    const big = path.join(dir, 'targets', 'big.bin');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, size);
    const get = async (url: string): Promise<http.IncomingMessage> => {
      const u = new URL(url);
      return new Promise((resolve, reject) => {
        http.get({ host: u.hostname, port: u.port, path: '/targets/big.bin' }, resolve).on('error', reject);
      });
    };
    const server = await startRepoServer({ source: dir, host: '127.0.0.1', port: 0 });
    const res = await get(server.url);
    res.pause();
    let closed = false;
    const closing = server.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(closed, false, 'close waits for the response');
    let n = 0;
    for await (const c of res) n += (c as Buffer).length;
    assert.equal(n, size);
    await closing;
    await assert.rejects(request(server.url, '/targets/big.bin'), /ECONNREFUSED/);

    const s2 = await startRepoServer({ source: dir, host: '127.0.0.1', port: 0, closeGraceMs: 200 });
    const stuck = await get(s2.url);
    stuck.pause();
    const t0 = Date.now();
    await s2.close();
    assert.ok(Date.now() - t0 < 5000);
    stuck.resume();
    let got = 0;
    try {
      for await (const c of stuck) got += (c as Buffer).length;
    } catch {
      // aborted: what we expect
    }
    assert.ok(got < size && !stuck.complete, 'the stuck response was cut short');
  });
});

describe('accepting uploads', () => {
  let store: string;
  let server: RepoServer;
  const log = new MemoryReporter();
  const putLogs = (): number =>
    log.events.filter((e) => e.kind === 'log' && e.message.startsWith('http method=PUT')).length;

  before(async () => {
    store = path.join(tmp, 'store');
    server = await startRepoServer({ store, host: '127.0.0.1', port: 0, reporter: log });
  });
  after(async () => {
    await server.close();
  });

  const put = async (
    file: string | Buffer,
    fileName: string | undefined = 'repo.zip',
  ): Promise<{ status: number; json: Record<string, unknown> }> => {
    const body = typeof file === 'string' ? Readable.toWeb(fs.createReadStream(file)) : file;
    const q = fileName === undefined ? '' : `?file_name=${encodeURIComponent(fileName)}`;
    const res = await fetch(`${server.url}/v1/system/update/repository${q}`, {
      method: 'PUT',
      body: body as NonNullable<RequestInit['body']>,
      duplex: 'half',
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  const getJson = async (p: string): Promise<{ status: number; json: unknown }> => {
    const r = await request(server.url, p);
    return { status: r.status, json: JSON.parse(r.body.toString()) };
  };

  test('insert, then the same again: inserted, already_exists, nothing rewritten', async () => {
    const r = await put(repoA.output, 'system-update-v1.0.0.zip');
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.status, 'inserted');
    const recorded = r.json.recorded as {
      repo: Record<string, unknown>;
      artifacts: { id: { kind: string; name: string; version: string }; hash: string; size: number }[];
    };
    assert.deepEqual(recorded.repo, {
      hash: repoA.sha256,
      targets_role_version: verifiedA.targetsVersion,
      valid_until: verifiedA.validUntil,
      system_version: '1.0.0',
      file_name: 'system-update-v1.0.0.zip',
    });
    assert.deepEqual(
      recorded.artifacts,
      verifiedA.artifacts.map((a) => ({
        id: { name: a.name, version: a.version, kind: a.kind },
        hash: a.sha256,
        size: a.size,
      })),
    );
    assert.deepEqual(fs.readdirSync(path.join(store, 'repos')), [`${repoA.sha256}.zip`]);
    assert.deepEqual(
      fs.readFileSync(path.join(store, 'repos', `${repoA.sha256}.zip`)),
      fs.readFileSync(repoA.output),
    );
    const index = JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8')) as {
      repos: StoredRepo[];
    };
    assert.equal(index.repos.length, 1);
    assert.equal(index.repos[0]?.sha256, repoA.sha256);
    assert.equal(index.repos[0]?.system_version, '1.0.0');
    assert.equal(index.repos[0]?.artifacts.length, verifiedA.artifacts.length);

    const before = snapshot(store);
    const again = await put(repoA.output, 'other-name.zip');
    assert.equal(again.status, 200);
    assert.equal(again.json.status, 'already_exists');
    assert.equal(
      (again.json.recorded as { repo: { file_name: string } }).repo.file_name,
      'system-update-v1.0.0.zip',
    );
    assert.deepEqual(snapshot(store), before);
  });

  test('rejected uploads leave the store exactly as it was', async () => {
    const before = snapshot(store);
    const cases: { what: string; body: string | Buffer; status: number; code: string; fileName?: string }[] =
      [
        {
          what: 'another repository claiming 1.0.0',
          body: repoA2.output,
          status: 409,
          code: 'REPO_CONFLICT',
        },
        {
          what: 'not a zip',
          body: Buffer.from('PK\x03\x04 this is not a zip at all '.repeat(100)),
          status: 400,
          code: 'ZIP_INVALID',
        },
        {
          what: 'a truncated zip',
          body: fs.readFileSync(repoB.output).subarray(0, 100_000),
          status: 400,
          code: 'ZIP_INVALID',
        },
        {
          what: 'a ../ entry',
          body: rawZip([
            { name: 'repo/metadata/1.root.json', data: rootA },
            { name: 'repo/../x', data: Buffer.from('x') },
          ]),
          status: 400,
          code: 'ZIP_PATH_UNSAFE',
        },
        {
          what: 'a repository missing required kinds',
          body: partial.output,
          status: 400,
          code: 'REPO_MISSING_KIND',
        },
        { what: 'no file_name', body: repoB.output, status: 400, code: 'INVALID_ARGUMENT', fileName: '' },
      ];
    for (const c of cases) {
      const r = await put(c.body, c.fileName);
      assert.equal(r.status, c.status, `${c.what}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error_code, c.code, c.what);
      assert.equal(typeof r.json.message, 'string');
      assert.deepEqual(snapshot(store), before, c.what);
    }
  });

  test('an upload cut mid-body leaves nothing in tmp/', async () => {
    const before = snapshot(store);
    const data = fs.readFileSync(repoB.output);
    const seen = putLogs();
    const u = new URL(server.url);
    const req = http.request({
      host: u.hostname,
      port: u.port,
      method: 'PUT',
      path: '/v1/system/update/repository?file_name=cut.zip',
      headers: { 'Content-Length': data.length },
    });
    req.on('error', () => undefined);
    req.write(data.subarray(0, data.length >> 1));
    // Let the server start writing the temp file before the connection drops.
    await waitFor('the temp file', () => fs.readdirSync(path.join(store, 'tmp')).length > 0);
    req.destroy();
    await waitFor('the server to log the cut upload', () => putLogs() > seen);
    assert.deepEqual(fs.readdirSync(path.join(store, 'tmp')), []);
    assert.deepEqual(snapshot(store), before);
    const last = log.events.filter((e) => e.kind === 'log').at(-1);
    assert.match(
      last?.kind === 'log' ? last.message : '',
      /^http method=PUT path="[^"]*cut\.zip" status=0 incomplete=true error=REPO_UPLOAD_INCOMPLETE bytes=0 received=\d+ ms=\d+$/,
    );
  });

  test('list and get, in semver order; tuf-js against a stored repository', async () => {
    assert.equal((await put(repoC.output, 'c.zip')).json.status, 'inserted');
    assert.equal((await put(repoB.output, 'b.zip')).json.status, 'inserted');
    const list = await getJson('/v1/system/update/repositories');
    assert.equal(list.status, 200);
    const items = (list.json as { items: { system_version: string; hash: string }[] }).items;
    assert.deepEqual(
      items.map((i) => i.system_version),
      ['1.0.0', '2.0.0', '10.0.0'],
    );
    assert.deepEqual(
      items.map((i) => i.hash),
      [repoA.sha256, repoB.sha256, repoC.sha256],
    );
    const one = await getJson('/v1/system/update/repository/2.0.0');
    assert.equal(one.status, 200);
    assert.equal((one.json as { hash: string }).hash, repoB.sha256);
    const none = await getJson('/v1/system/update/repository/9.9.9');
    assert.equal(none.status, 404);
    assert.equal((none.json as { error_code: string }).error_code, 'NOT_FOUND');
    const wrongMethod = await request(server.url, '/v1/system/update/repository');
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'PUT');
    assert.equal(
      (await request(server.url, '/v1/system/update/repositories', { method: 'DELETE' })).status,
      405,
    );

    const prefix = `${server.url}/v1/system/update/repository/1.0.0`;
    const got = await tufJsDownloadAll(
      rootA,
      prefix,
      verifiedA.artifacts.map((a) => a.target),
    );
    assert.deepEqual(got, expectedTargets(verifiedA));
    const a = verifiedA.artifacts[0];
    assert.ok(a !== undefined);
    const ranged = await request(server.url, `/v1/system/update/repository/1.0.0/targets/${fileOf(a)}`, {
      headers: { Range: 'bytes=-10' },
    });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.body.length, 10);
    assert.equal(
      (await request(server.url, `/v1/system/update/repository/9.9.9/targets/${fileOf(a)}`)).status,
      404,
    );
    assert.equal((await request(server.url, '/metadata/1.root.json')).status, 404);
  });

  test('a restart keeps the index and clears leftovers of a crash', async () => {
    await server.close();
    const before = snapshot(store);
    fs.writeFileSync(path.join(store, 'tmp', 'upload-dead.zip'), 'half an upload');
    fs.writeFileSync(path.join(store, 'repos', `${'e'.repeat(64)}.zip`), 'renamed, never indexed');
    fs.writeFileSync(path.join(store, '.index.json.1.abcd.tmp'), '{');
    server = await startRepoServer({ store, host: '127.0.0.1', port: 0, reporter: log });
    assert.deepEqual(snapshot(store), before);
    const list = await getJson('/v1/system/update/repositories');
    assert.equal((list.json as { items: unknown[] }).items.length, 3);
  });
});

describe('upload limits and races', () => {
  test('a body over --max-upload gets 413, declared or not, and leaves nothing', async () => {
    const store = path.join(tmp, 'small-store');
    const server = await startRepoServer({ store, host: '127.0.0.1', port: 0, maxUpload: 4096 });
    try {
      const before = snapshot(store);
      const declared = await request(server.url, '/v1/system/update/repository?file_name=x.zip', {
        method: 'PUT',
        body: Buffer.alloc(5000),
      });
      assert.equal(declared.status, 413);
      assert.equal(
        (JSON.parse(declared.body.toString()) as { error_code: string }).error_code,
        'REPO_UPLOAD_TOO_LARGE',
      );
      const streamed = await fetch(`${server.url}/v1/system/update/repository?file_name=x.zip`, {
        method: 'PUT',
        body: Readable.toWeb(Readable.from([Buffer.alloc(3000), Buffer.alloc(3000)])) as NonNullable<
          RequestInit['body']
        >,
        duplex: 'half',
      });
      assert.equal(streamed.status, 413);
      assert.equal(((await streamed.json()) as { error_code: string }).error_code, 'REPO_UPLOAD_TOO_LARGE');
      assert.deepEqual(snapshot(store), before);
    } finally {
      await server.close();
    }
  });

  test('two different repositories of one version at once: one inserted, one 409', async () => {
    const store = path.join(tmp, 'race-store');
    const server = await startRepoServer({ store, host: '127.0.0.1', port: 0 });
    try {
      const put = (file: string) =>
        request(server.url, '/v1/system/update/repository?file_name=r.zip', {
          method: 'PUT',
          body: fs.readFileSync(file),
        });
      const results = await Promise.all([put(repoA.output), put(repoA2.output)]);
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 409]);
      assert.equal(fs.readdirSync(path.join(store, 'repos')).length, 1);
      assert.deepEqual(fs.readdirSync(path.join(store, 'tmp')), []);
    } finally {
      await server.close();
    }
  });

  test('a trusted root refuses repositories signed by other keys', async () => {
    const store = path.join(tmp, 'pinned-store');
    const server = await startRepoServer({ store, host: '127.0.0.1', port: 0, trustedRoot: rootA });
    try {
      const ok = await request(server.url, '/v1/system/update/repository?file_name=a.zip', {
        method: 'PUT',
        body: fs.readFileSync(repoA.output),
      });
      assert.equal(ok.status, 200);
      const other = await request(server.url, '/v1/system/update/repository?file_name=b.zip', {
        method: 'PUT',
        body: fs.readFileSync(repoB.output),
      });
      assert.equal(other.status, 400);
      assert.match((JSON.parse(other.body.toString()) as { error_code: string }).error_code, /^TUF_/);
    } finally {
      await server.close();
    }
  });
});

describe('slipway repo serve (the command)', () => {
  test('prints the URL and bound port, serves, and stops cleanly on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [path.join(projectRoot, 'bin/slipway.js'), 'repo', 'serve', repoA.output, '--port', '0'],
      {
        env: { ...process.env, NO_COLOR: '1' },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor('the URL line', () => /at (http:\S+) \(bound port \d+\)/.test(stdout));
      const m = /at (http:\S+) \(bound port (\d+)\)/.exec(stdout);
      assert.ok(m?.[1] !== undefined);
      assert.equal(m[1], `http://127.0.0.1:${m[2]}`);
      const r = await request(m[1], '/metadata/timestamp.json');
      assert.equal(r.status, 200);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.match(stdout, /stopped serving/);
      assert.match(stderr, /method=GET path="\/metadata\/timestamp\.json" status=200/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('usage errors exit 2', () => {
    const run = (...args: string[]) => {
      try {
        execFileSync(process.execPath, [path.join(projectRoot, 'bin/slipway.js'), 'repo', 'serve', ...args], {
          stdio: 'pipe',
        });
        return 0;
      } catch (err) {
        return (err as { status: number }).status;
      }
    };
    assert.equal(run(), 2);
    assert.equal(run(repoA.output, '--tls-cert', 'x.pem'), 2);
    assert.equal(run(repoA.output, '--root', 'r.json'), 2);
    assert.equal(run(repoA.output, '--port', '70000'), 2);
  });
});
