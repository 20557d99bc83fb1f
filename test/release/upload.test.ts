// `release upload`'s object storage half against a real S3 store (Ceph's RADOS Gateway, started by
// scripts/test.sh through scripts/services/ceph-s3.sh; without it these tests fail, never skip),
// checked with an independent client: Debian's awscli (/usr/bin/aws). Each test uploads a small
// build directory made here into a bucket of its own.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import {
  applyReleaseUpload,
  formatUploadPlan,
  planReleaseUpload,
  type ReleaseUploadInput,
  type UploadEvent,
} from '../../src/release/s3-upload.js';
import { testS3Client } from '../helpers/s3.js';
import { s3Env, START_SERVICES_HINT } from '../helpers/services.js';
import { tempDir } from '../helpers/tmp.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const s3 = s3Env();
const tmp = tempDir('slipway-release-upload-');
const MiB = 1024 * 1024;
/** Debian's awscli; the `aws` earlier in PATH may be another installation. */
const AWS_CLI = '/usr/bin/aws';
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'upload-child.js');
/** Small parts, so that a few MiB make a multipart upload. */
const PART = 5 * MiB;

function s3Service(): Record<string, string> {
  if (s3 === undefined) {
    assert.fail(
      `the S3 service is not running (no $SLIPWAY_SERVICES_DIR/ceph/env; SLIPWAY_SERVICES_DIR=${process.env.SLIPWAY_SERVICES_DIR ?? '(unset)'}): ${START_SERVICES_HINT}`,
    );
  }
  // The library takes credentials from the SDK's default chain, which reads the environment first.
  process.env.AWS_ACCESS_KEY_ID = s3.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = s3.AWS_SECRET_ACCESS_KEY;
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
  return s3;
}

let client: S3Client | undefined;
function admin(): S3Client {
  client ??= testS3Client(s3Service());
  return client;
}

const buckets: string[] = [];
let bucketCount = 0;

async function newBucket(): Promise<string> {
  const name = `slipway-rel-${process.pid}-${++bucketCount}-${Date.now().toString(36)}`;
  await admin().send(new CreateBucketCommand({ Bucket: name }));
  buckets.push(name);
  return name;
}

async function listKeys(bucket: string, prefix = ''): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await admin().send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) out.set(o.Key ?? '', o.Size ?? 0);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return out;
}

async function pendingUploads(bucket: string): Promise<string[]> {
  const out = await admin().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => u.Key ?? '');
}

async function latestVersion(bucket: string): Promise<string | undefined> {
  const text = await getText(bucket, 'demo/latest.json');
  return text === undefined ? undefined : (JSON.parse(text) as { version: string }).version;
}

async function head(bucket: string, key: string): Promise<{ size: number; sha256?: string } | undefined> {
  try {
    const out = await admin().send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { size: out.ContentLength ?? -1, sha256: out.Metadata?.sha256 };
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
      return undefined;
    throw err;
  }
}

async function getText(bucket: string, key: string): Promise<string | undefined> {
  try {
    const out = await admin().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await out.Body?.transformToString();
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
}

after(async () => {
  // Free the store's memory (memstore): every object, pending upload and bucket made here.
  if (client === undefined) return;
  for (const bucket of buckets) {
    try {
      const keys = [...(await listKeys(bucket)).keys()];
      for (let i = 0; i < keys.length; i += 1000) {
        await client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
          }),
        );
      }
      const pending = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      for (const u of pending.Uploads ?? []) {
        await client.send(
          new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }),
        );
      }
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    } catch {
      /* best effort: the cluster is throwaway */
    }
  }
  client.destroy();
});

// ---- build directories as `release build` leaves them

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

interface Build {
  dir: string;
  product: string;
  version: string;
  major: string;
  official: boolean;
  /** Every file of files/ (artifacts, .sha256 files, manifest.json) by name. */
  files: Map<string, Buffer>;
}

let buildCount = 0;

function makeBuild(spec: {
  version: string;
  product?: string;
  official?: boolean;
  artifacts: Record<string, Buffer>;
  docs?: Record<string, string | Buffer>;
}): Build {
  const product = spec.product ?? 'demo';
  const official = spec.official ?? false;
  const major = spec.version.split('.').slice(0, 2).join('.');
  const dir = path.join(tmp, `build-${++buildCount}`);
  const filesDir = path.join(dir, 'files');
  fs.mkdirSync(filesDir, { recursive: true });
  const files = new Map<string, Buffer>();
  const listed: { name: string; size: number; sha256: string }[] = [];
  for (const [name, data] of Object.entries(spec.artifacts)) {
    const sum = Buffer.from(`${sha256(data)}  ${name}\n`);
    files.set(name, data);
    files.set(`${name}.sha256`, sum);
    listed.push({ name, size: data.length, sha256: sha256(data) });
  }
  const manifest = {
    product,
    version: spec.version,
    major,
    official,
    commit: 'c0ffee',
    name: 'Test',
    files: listed,
  };
  files.set('manifest.json', Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
  for (const [name, data] of files) fs.writeFileSync(path.join(filesDir, name), data);
  fs.writeFileSync(
    path.join(dir, 'latest.json'),
    `${JSON.stringify({ product, version: spec.version, major })}\n`,
  );
  for (const [rel, data] of Object.entries(spec.docs ?? {})) {
    const p = path.join(dir, 'docs', ...rel.split('/'));
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
  }
  return { dir, product, version: spec.version, major, official, files };
}

function inputFor(build: Build, bucket: string, more: Partial<ReleaseUploadInput> = {}): ReleaseUploadInput {
  const env = s3Service();
  return {
    s3: { endpoint: env.S3_ENDPOINT ?? '', region: env.AWS_REGION ?? 'us-east-1' },
    releasesBucket: bucket,
    docsBucket: bucket,
    product: build.product,
    version: build.version,
    major: build.major,
    official: build.official,
    buildDir: build.dir,
    partSize: PART,
    ...more,
  };
}

async function upload(input: ReleaseUploadInput): Promise<Awaited<ReturnType<typeof applyReleaseUpload>>> {
  return applyReleaseUpload(input, await planReleaseUpload(input));
}

async function rejectsWith(
  p: Promise<unknown>,
  code: ErrorCode,
  mentions: string[] = [],
  label = '',
): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isSlipwayError(err, code), `${label}: expected ${code}, got ${String(err)}`);
    for (const m of mentions) assert.ok(err.message.includes(m), `'${err.message}' should mention '${m}'`);
    return true;
  });
}

/** Every object of `build` under its release prefix, with its sha256 metadata. */
async function assertReleasePresent(bucket: string, build: Build): Promise<void> {
  const prefix = `${build.product}/${build.product}-${build.version}/`;
  for (const [name, data] of build.files) {
    assert.deepEqual(await head(bucket, prefix + name), { size: data.length, sha256: sha256(data) }, name);
  }
}

// ---- Debian's awscli

function aws(args: string[]): Promise<string> {
  const env = s3Service();
  return new Promise((resolve, reject) => {
    execFile(
      AWS_CLI,
      [...args, '--endpoint-url', env.S3_ENDPOINT ?? '', '--region', 'us-east-1'],
      {
        maxBuffer: 64 * MiB,
        env: {
          PATH: process.env.PATH,
          HOME: tmp,
          AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID,
          AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY,
          AWS_CONFIG_FILE: path.join(tmp, 'no-aws-config'),
          AWS_SHARED_CREDENTIALS_FILE: path.join(tmp, 'no-aws-credentials'),
          AWS_EC2_METADATA_DISABLED: 'true',
          AWS_PAGER: '',
        },
      },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`aws ${args.join(' ')}: ${err.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

// ---- a counting proxy in front of the store

interface Proxy {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

/** Forwards every request to `target` unchanged (SigV4 signs the Host, which passes through) and notes it. */
async function countingProxy(target: string): Promise<Proxy> {
  const t = new URL(target);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method ?? '?'} ${req.url ?? ''}`);
    const up = http.request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', (err) => res.destroy(err));
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

const writes = (requests: string[]): string[] => requests.filter((r) => /^(PUT|POST|DELETE) /.test(r));

// ---- the tests

describe('release upload to S3 (Ceph RGW)', () => {
  test('uploads every object; awscli lists each, sees its sha256 metadata and reads the same bytes', async () => {
    const bucket = await newBucket();
    const build = makeBuild({
      version: '1.2.0',
      artifacts: {
        'demo-1.2.0.tar.gz': randomBytes(12 * MiB + 17), // multipart (5 MiB parts)
        'demo-x86_64-linux.tar.xz': randomBytes(300_000),
      },
      docs: { 'index.html': '<h1>demo</h1>\n', 'guide/install.html': '<p>install</p>\n', '.nojekyll': '' },
    });
    const events: UploadEvent[] = [];
    // queueSize 2: files up to 10 MiB go whole (one PutObject), the 12 MiB one in three parts.
    const result = await upload(inputFor(build, bucket, { queueSize: 2, onProgress: (e) => events.push(e) }));
    const expected = new Map<string, Buffer>();
    for (const [name, data] of build.files) expected.set(`demo/demo-1.2.0/${name}`, data);
    expected.set('manual/1.2/index.html', Buffer.from('<h1>demo</h1>\n'));
    expected.set('manual/1.2/guide/install.html', Buffer.from('<p>install</p>\n'));
    expected.set('manual/1.2/.nojekyll', Buffer.alloc(0)); // an empty object
    expected.set('demo/latest.json', fs.readFileSync(path.join(build.dir, 'latest.json')));
    const total = [...expected.values()].reduce((n, d) => n + d.length, 0);
    assert.deepEqual(result, {
      uploaded: expected.size,
      skipped: 0,
      deleted: 0,
      bytes: total,
      abortedMultipart: 0,
    });
    // latest.json is the last object done.
    const done = events.filter((e) => e.kind === 'done');
    assert.equal(done.at(-1)?.key, 'demo/latest.json');
    assert.equal(done.length, expected.size);

    const listing = await aws(['s3', 'ls', '--recursive', `s3://${bucket}/`]);
    const listed = new Map(
      listing
        .trim()
        .split('\n')
        .map((line) => {
          const m = /^\S+ \S+ +(\d+) (.+)$/.exec(line);
          assert.ok(m, `aws s3 ls line: ${line}`);
          return [m[2] ?? '', Number(m[1])] as const;
        }),
    );
    assert.deepEqual(listed, new Map([...expected].map(([k, d]) => [k, d.length])));

    const heads = await Promise.all(
      [...expected.keys()].map(async (key) => {
        const out = JSON.parse(await aws(['s3api', 'head-object', '--bucket', bucket, '--key', key])) as {
          ContentLength: number;
          Metadata?: Record<string, string>;
          ContentType?: string;
          ETag?: string;
        };
        return [key, out] as const;
      }),
    );
    for (const [key, out] of heads) {
      const data = expected.get(key) ?? Buffer.alloc(0);
      assert.equal(out.ContentLength, data.length, key);
      assert.equal(out.Metadata?.sha256, sha256(data), key);
    }
    const types = new Map(heads.map(([k, o]) => [k, o.ContentType]));
    assert.equal(types.get('demo/demo-1.2.0/demo-1.2.0.tar.gz'), 'application/gzip');
    assert.equal(types.get('manual/1.2/index.html'), 'text/html; charset=utf-8');
    assert.equal(types.get('demo/latest.json'), 'application/json');
    // A multipart object's ETag ends in -<parts>: one object of each kind was checked above.
    const etags = new Map(heads.map(([k, o]) => [k, o.ETag ?? '']));
    assert.match(etags.get('demo/demo-1.2.0/demo-1.2.0.tar.gz') ?? '', /-3"?$/);
    assert.doesNotMatch(etags.get('demo/demo-1.2.0/demo-x86_64-linux.tar.xz') ?? '', /-\d+"?$/);

    const back = path.join(tmp, `aws-cp-${bucket}`);
    await aws(['s3', 'cp', '--recursive', '--only-show-errors', `s3://${bucket}/`, back]);
    for (const [key, data] of expected) {
      assert.ok(fs.readFileSync(path.join(back, ...key.split('/'))).equals(data), `${key}: bytes differ`);
    }
    assert.deepEqual(await pendingUploads(bucket), []);
  });

  test('a second upload plans only skips and sends no object (requests counted by a proxy)', async () => {
    const env = s3Service();
    const bucket = await newBucket();
    const build = makeBuild({
      version: '1.3.0',
      official: true,
      artifacts: { 'demo-1.3.0.tar.gz': randomBytes(11 * MiB), 'demo.img': randomBytes(1000) },
      docs: { 'index.html': 'home\n', 'a/b.css': 'b {}\n' },
    });
    const proxy = await countingProxy(env.S3_ENDPOINT ?? '');
    try {
      const input = inputFor(build, bucket, { s3: { endpoint: proxy.url, region: 'us-east-1' } });
      const first = await upload(input);
      assert.equal(first.uploaded, build.files.size + 4 + 1); // files, docs twice (1.3 and stable), latest
      assert.ok(writes(proxy.requests).length >= first.uploaded, 'the proxy sees the uploads');

      proxy.requests.length = 0;
      const plan = await planReleaseUpload(input);
      assert.deepEqual(
        plan.objects.filter((o) => o.action !== 'skip').map((o) => `${o.action} ${o.key}`),
        [],
      );
      assert.deepEqual(plan.totals, { upload: 0, uploadBytes: 0, skip: first.uploaded, delete: 0, keep: 0 });
      assert.match(
        formatUploadPlan(plan),
        new RegExp(`0 to upload \\(0 B\\), ${first.uploaded} unchanged, 0 to delete`),
      );
      const again = await applyReleaseUpload(input, plan);
      assert.deepEqual(again, {
        uploaded: 0,
        skipped: first.uploaded,
        deleted: 0,
        bytes: 0,
        abortedMultipart: 0,
      });
      assert.deepEqual(writes(proxy.requests), []);
      assert.ok(proxy.requests.length > 0, 'the second run did ask the store (lists and heads)');
    } finally {
      await proxy.close();
    }
  });

  test('an upload killed midway: latest.json never names an incomplete release; a re-run completes', async () => {
    const bucket = await newBucket();
    const v1 = makeBuild({ version: '3.0.0', artifacts: { 'demo-3.0.0.tar.gz': randomBytes(2 * MiB) } });
    await upload(inputFor(v1, bucket));
    const v2 = makeBuild({
      version: '3.1.0',
      artifacts: Object.fromEntries(
        [
          'demo-3.1.0.tar.gz',
          'demo-aarch64.tar.gz',
          'demo-x86_64.tar.gz',
          'demo-image.tar',
          'demo-os.zip',
        ].map((n) => [n, randomBytes(8 * MiB)]),
      ),
    });
    const builds = new Map([
      [v1.version, v1],
      [v2.version, v2],
    ]);

    // The watcher: whenever latest.json names a version, every file of that version must be there.
    const problems: string[] = [];
    const seen = new Map<string, number>();
    let watching = true;
    const check = async (): Promise<void> => {
      const text = await getText(bucket, 'demo/latest.json');
      if (text === undefined) {
        problems.push('latest.json is missing');
        return;
      }
      const version = (JSON.parse(text) as { version: string }).version;
      const build = builds.get(version);
      if (build === undefined) {
        problems.push(`latest.json names ${version}`);
        return;
      }
      seen.set(version, (seen.get(version) ?? 0) + 1);
      await Promise.all(
        [...build.files].map(async ([name, data]) => {
          const h = await head(bucket, `demo/demo-${version}/${name}`);
          if (h?.size !== data.length || h.sha256 !== sha256(data))
            problems.push(`latest.json names ${version} but ${name} is ${JSON.stringify(h)}`);
        }),
      );
    };
    const watcher = (async () => {
      while (watching) {
        await check();
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    try {
      // One file at a time, one part at a time: slow enough to be killed between files.
      const input = inputFor(v2, bucket, { concurrency: 1, queueSize: 1 });
      const child = spawn(process.execPath, [CHILD, JSON.stringify(input)], {
        env: process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      let killedAfter: string | undefined;
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (killedAfter !== undefined) return;
        for (const line of out.split('\n').slice(0, -1)) {
          const e = JSON.parse(line) as UploadEvent;
          if (e.kind === 'done' && e.action === 'uploaded' && e.size > MiB) {
            killedAfter = e.key;
            child.kill('SIGKILL');
            break;
          }
        }
      });
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.on('exit', (c, s) => {
          resolve([c, s]);
        }),
      );
      assert.equal(signal, 'SIGKILL', `the child ended with ${code} before it was killed: ${out}\n${err}`);
      assert.ok(killedAfter !== undefined);
      assert.ok(!out.includes('"kind":"result"'), 'the child must not have finished');
      assert.equal(await latestVersion(bucket), '3.0.0');

      // The re-run skips what the killed run finished and does the rest.
      const events: UploadEvent[] = [];
      const plan = await planReleaseUpload(inputFor(v2, bucket));
      assert.equal(plan.objects.find((o) => o.key === killedAfter)?.action, 'skip');
      assert.equal(plan.objects.find((o) => o.key === 'demo/latest.json')?.action, 'upload');
      const result = await applyReleaseUpload(
        inputFor(v2, bucket, { onProgress: (e) => events.push(e) }),
        plan,
      );
      assert.ok(result.skipped >= 1 && result.uploaded >= 2, JSON.stringify(result));
      assert.equal(result.abortedMultipart, plan.abortMultipart.length);
      await assertReleasePresent(bucket, v2);
      assert.equal(await latestVersion(bucket), '3.1.0');
      assert.deepEqual(await pendingUploads(bucket), [], 'no multipart upload left pending');
    } finally {
      watching = false;
      await watcher;
    }
    await check();
    assert.deepEqual(problems, []);
    assert.ok((seen.get('3.0.0') ?? 0) > 0 && (seen.get('3.1.0') ?? 0) > 0, JSON.stringify([...seen]));
  });

  test('docs sync: new and changed files up, stale ones deleted, unchanged kept; official → manual/stable/ too', async () => {
    const bucket = await newBucket();
    // Another major's manual is not touched.
    await admin().send(
      new PutObjectCommand({ Bucket: bucket, Key: 'manual/2.0/index.html', Body: 'old major' }),
    );
    const first = makeBuild({
      version: '2.1.0',
      official: true,
      artifacts: { 'demo-2.1.0.tar.gz': randomBytes(1000) },
      docs: { 'index.html': 'home\n', 'a.html': 'a v1\n', 'sub/gone.css': 'x {}\n', 'sub/keep.png': 'png' },
    });
    await upload(inputFor(first, bucket));
    const second = makeBuild({
      version: '2.1.1',
      official: true,
      artifacts: { 'demo-2.1.1.tar.gz': randomBytes(1000) },
      docs: {
        'index.html': 'home\n',
        'a.html': 'a v2, longer\n',
        'new.html': 'new\n',
        'sub/keep.png': 'png',
      },
    });
    const input = inputFor(second, bucket);
    const plan = await planReleaseUpload(input);
    const docs = plan.objects.filter((o) => o.group === 'docs').map((o) => `${o.action} ${o.key}`);
    assert.deepEqual(docs, [
      'upload manual/2.1/a.html',
      'skip manual/2.1/index.html',
      'upload manual/2.1/new.html',
      'skip manual/2.1/sub/keep.png',
      'upload manual/stable/a.html',
      'skip manual/stable/index.html',
      'upload manual/stable/new.html',
      'skip manual/stable/sub/keep.png',
      'delete manual/2.1/sub/gone.css',
      'delete manual/stable/sub/gone.css',
    ]);
    const text = formatUploadPlan(plan);
    assert.match(text, /delete .* manual\/stable\/sub\/gone\.css/);
    assert.ok(text.indexOf('stale docs') < text.indexOf('latest.json, LAST'));
    const result = await applyReleaseUpload(input, plan);
    assert.equal(result.deleted, 2);
    const want = (prefix: string): [string, number][] => [
      [`${prefix}a.html`, 13],
      [`${prefix}index.html`, 5],
      [`${prefix}new.html`, 4],
      [`${prefix}sub/keep.png`, 3],
    ];
    assert.deepEqual([...(await listKeys(bucket, 'manual/'))].sort(), [
      ['manual/2.0/index.html', 9],
      ...want('manual/2.1/'),
      ...want('manual/stable/'),
    ]);
    assert.equal((await head(bucket, 'manual/stable/a.html'))?.sha256, sha256('a v2, longer\n'));

    // A pre-release syncs manual/<MAJOR>/ only: stable/ keeps the official docs.
    const pre = makeBuild({
      version: '2.2.0-rc1',
      artifacts: { 'demo-2.2.0-rc1.tar.gz': randomBytes(10) },
      docs: { 'index.html': 'rc\n' },
    });
    const prePlan = await planReleaseUpload(inputFor(pre, bucket, { major: '2.2' }));
    assert.deepEqual(prePlan.docsPrefixes, ['manual/2.2/']);
    assert.ok(prePlan.objects.every((o) => !o.key.startsWith('manual/stable/')));
  });

  test('docs sync pages through more than 1000 keys and deletes them in batches', async () => {
    const bucket = await newBucket();
    const many: Record<string, string> = {};
    for (let i = 0; i < 1005; i++) many[`p/${String(i).padStart(4, '0')}.html`] = `page ${i}\n`;
    const first = makeBuild({ version: '4.0.0', artifacts: { 'demo.tgz': randomBytes(10) }, docs: many });
    const r1 = await upload(inputFor(first, bucket, { concurrency: 16 }));
    assert.equal(r1.uploaded, 1005 + first.files.size + 1);
    const again = await planReleaseUpload(inputFor(first, bucket));
    assert.equal(again.objects.filter((o) => o.group === 'docs' && o.action === 'skip').length, 1005);
    const second = makeBuild({
      version: '4.0.1',
      artifacts: { 'demo.tgz': randomBytes(10) },
      docs: { 'p/0003.html': 'page 3\n' },
    });
    const r2 = await upload(inputFor(second, bucket));
    assert.equal(r2.deleted, 1004);
    assert.deepEqual([...(await listKeys(bucket, 'manual/'))], [['manual/4.0/p/0003.html', 7]]);
  });

  test('wrong credentials: RELEASE_S3_AUTH naming the endpoint and bucket, nothing written', async () => {
    const env = s3Service();
    const bucket = await newBucket();
    await admin().send(new PutObjectCommand({ Bucket: bucket, Key: 'demo/keep.txt', Body: 'there before' }));
    const build = makeBuild({ version: '5.0.0', artifacts: { 'demo-5.0.0.tar.gz': randomBytes(6 * MiB) } });
    const input = inputFor(build, bucket);
    const goodPlan = await planReleaseUpload(input);
    const before = await listKeys(bucket);
    for (const [id, secret] of [
      ['AKIAWRONGWRONGWRONG0', env.AWS_SECRET_ACCESS_KEY ?? ''], // unknown key id
      [env.AWS_ACCESS_KEY_ID ?? '', 'not-the-secret-key-at-all'], // bad signature
    ] as const) {
      process.env.AWS_ACCESS_KEY_ID = id;
      process.env.AWS_SECRET_ACCESS_KEY = secret;
      try {
        await rejectsWith(planReleaseUpload(input), 'RELEASE_S3_AUTH', [bucket, env.S3_ENDPOINT ?? '']);
        // A plan made with good credentials, applied with wrong ones: refused at the first write.
        await rejectsWith(applyReleaseUpload(input, goodPlan), 'RELEASE_S3_AUTH', [bucket]);
      } finally {
        s3Service();
      }
    }
    assert.deepEqual(await listKeys(bucket), before);
    assert.deepEqual(await pendingUploads(bucket), []);
  });

  test('a missing bucket: RELEASE_ENV_INVALID naming it', async () => {
    const build = makeBuild({ version: '5.1.0', artifacts: { 'demo.tgz': randomBytes(10) } });
    const missing = `slipway-rel-missing-${process.pid}-${Date.now().toString(36)}`;
    await rejectsWith(planReleaseUpload(inputFor(build, missing)), 'RELEASE_ENV_INVALID', [missing]);
  });

  test('a build that does not match manifest.json or its .sha256 files: RELEASE_BUILD_INVALID, nothing uploaded', async () => {
    const bucket = await newBucket();
    const fresh = (): Build =>
      makeBuild({
        version: '6.0.0',
        artifacts: { 'demo-6.0.0.tar.gz': randomBytes(4096), 'demo.img': randomBytes(100) },
        docs: { 'index.html': 'x' },
      });
    const files = (b: Build): string => path.join(b.dir, 'files');
    const cases: [string, (b: Build) => void, string][] = [
      [
        'a flipped byte (same size)',
        (b) => {
          const p = path.join(files(b), 'demo-6.0.0.tar.gz');
          const d = fs.readFileSync(p);
          d[100] = (d[100] ?? 0) ^ 1;
          fs.writeFileSync(p, d);
        },
        'demo-6.0.0.tar.gz',
      ],
      [
        'a wrong .sha256',
        (b) => {
          fs.writeFileSync(path.join(files(b), 'demo.img.sha256'), `${'0'.repeat(64)}  demo.img\n`);
        },
        'demo.img.sha256',
      ],
      [
        'a missing .sha256',
        (b) => {
          fs.rmSync(path.join(files(b), 'demo.img.sha256'));
        },
        'demo.img.sha256',
      ],
      [
        'a missing artifact',
        (b) => {
          fs.rmSync(path.join(files(b), 'demo.img'));
        },
        'demo.img',
      ],
      [
        'a stray file',
        (b) => {
          fs.writeFileSync(path.join(files(b), 'stray.bin'), 'x');
        },
        'stray.bin',
      ],
      [
        'a dangling link',
        (b) => {
          fs.symlinkSync('nowhere', path.join(files(b), 'gone.bin'));
        },
        'gone.bin',
      ],
      [
        'docs/ that is a file',
        (b) => {
          fs.rmSync(path.join(b.dir, 'docs'), { recursive: true });
          fs.writeFileSync(path.join(b.dir, 'docs'), 'x');
        },
        'docs',
      ],
      [
        'a docs link out of docs/ (its target would be published)',
        (b) => {
          fs.symlinkSync(path.join(b.dir, 'files', 'demo.img'), path.join(b.dir, 'docs', 'leak.bin'));
        },
        'leak.bin',
      ],
      [
        'no manifest.json',
        (b) => {
          fs.rmSync(path.join(files(b), 'manifest.json'));
        },
        'manifest.json',
      ],
      [
        'latest.json of another version',
        (b) => {
          fs.writeFileSync(path.join(b.dir, 'latest.json'), '{"version":"5.9.9"}');
        },
        'latest.json',
      ],
    ];
    for (const [what, breakIt, mentions] of cases) {
      const build = fresh();
      breakIt(build);
      await rejectsWith(
        planReleaseUpload(inputFor(build, bucket)),
        'RELEASE_BUILD_INVALID',
        [mentions],
        what,
      );
    }
    // A build for another version than the one being uploaded.
    await rejectsWith(
      planReleaseUpload({ ...inputFor(fresh(), bucket), version: '6.0.1' }),
      'RELEASE_BUILD_INVALID',
      ['version 6.0.0'],
    );
    assert.deepEqual([...(await listKeys(bucket))], []);
  });

  test('a file changed after planning: RELEASE_BUILD_INVALID at apply, no object, nothing pending, latest untouched', async () => {
    const bucket = await newBucket();
    const build = makeBuild({ version: '7.0.0', artifacts: { 'demo-7.0.0.tar.gz': randomBytes(12 * MiB) } });
    const input = inputFor(build, bucket, { queueSize: 2 }); // 12 MiB: in parts (whole only up to 10 MiB)
    const p = path.join(build.dir, 'files', 'demo-7.0.0.tar.gz');
    const flipLastByte = (): void => {
      // In the last part: the first two are sent already when the change shows.
      const d = fs.readFileSync(p);
      d[d.length - 1] = (d[d.length - 1] ?? 0) ^ 0xff;
      fs.writeFileSync(p, d);
    };
    // As planned here (the file's stamp: inode, size, mtime, ctime), and as a plan without stamps
    // (made elsewhere), where the bytes are hashed again while they are sent.
    for (const stamps of [true, false]) {
      const plan = await planReleaseUpload(input);
      if (!stamps) for (const o of plan.objects) delete o.stamp;
      flipLastByte();
      await rejectsWith(applyReleaseUpload(input, plan), 'RELEASE_BUILD_INVALID', [
        'demo-7.0.0.tar.gz',
        'changed',
      ]);
      assert.equal(await head(bucket, 'demo/demo-7.0.0/demo-7.0.0.tar.gz'), undefined);
      assert.equal(await head(bucket, 'demo/latest.json'), undefined);
      assert.deepEqual(await pendingUploads(bucket), []);
      flipLastByte(); // back to the bytes the manifest names
    }
  });

  test('a whole-object upload carries its sha256 to the store, which checks it against the bytes', async () => {
    const bucket = await newBucket();
    const build = makeBuild({ version: '7.1.0', artifacts: { 'demo-7.1.0.tar.gz': randomBytes(3 * MiB) } });
    const input = inputFor(build, bucket);
    const plan = await planReleaseUpload(input);
    // A plan that claims another sha256 for the bytes (the file's stamp still matches): the
    // store refuses the PutObject (XAmzContentSHA256Mismatch), nothing is stored.
    const tarball = plan.objects.find((o) => o.key.endsWith('.tar.gz'));
    assert.ok(tarball);
    tarball.sha256 = 'f'.repeat(64);
    await rejectsWith(applyReleaseUpload(input, plan), 'RELEASE_UPLOAD_FAILED', [
      'demo/demo-7.1.0/demo-7.1.0.tar.gz',
      'XAmzContentSHA256Mismatch',
    ]);
    assert.equal(await head(bucket, 'demo/demo-7.1.0/demo-7.1.0.tar.gz'), undefined);
    assert.equal(await head(bucket, 'demo/latest.json'), undefined);
  });

  test('pending multipart uploads left under the release prefix are aborted before uploading', async () => {
    const bucket = await newBucket();
    const build = makeBuild({ version: '8.0.0', artifacts: { 'demo-8.0.0.tar.gz': randomBytes(1000) } });
    const key = 'demo/demo-8.0.0/demo-8.0.0.tar.gz';
    const mpu = await admin().send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await admin().send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: mpu.UploadId,
        PartNumber: 1,
        Body: randomBytes(PART),
      }),
    );
    const plan = await planReleaseUpload(inputFor(build, bucket));
    assert.deepEqual(
      plan.abortMultipart.map((m) => [m.key, m.uploadId]),
      [[key, mpu.UploadId]],
    );
    assert.match(formatUploadPlan(plan), /abort +s3:\/\/.*demo-8\.0\.0\.tar\.gz/);
    const result = await applyReleaseUpload(inputFor(build, bucket), plan);
    assert.equal(result.abortedMultipart, 1);
    assert.deepEqual(await pendingUploads(bucket), []);
    await assertReleasePresent(bucket, build);
  });
});
