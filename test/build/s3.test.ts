// s3:// downloads against a real S3 store: Ceph's RADOS Gateway, started by scripts/test.sh
// through scripts/services/ceph-s3.sh. Without it these tests fail (they never skip).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { isSlipwayError } from '../../src/core/errors.js';
import { fetchCached } from '../../src/build/fetch.js';
import { closeS3Clients, parseS3Url, s3ConfigFromEnv, s3Get } from '../../src/build/s3.js';
import { testS3Client } from '../helpers/s3.js';
import { s3Env, START_SERVICES_HINT } from '../helpers/services.js';
import { tempDir } from '../helpers/tmp.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const env = s3Env();
const tmp = tempDir();
const bucket = `slipway-test-${randomBytes(4).toString('hex')}`;
const data = randomBytes(3 * 1024 * 1024 + 17); // several stream chunks
const dataSha = createHash('sha256').update(data).digest('hex');
const small = Buffer.from('hello from ceph\n');
const keys = ['blobs/data.bin', 'small.txt'];
let client: S3Client | undefined;

/** The service's env, or a failure that says how to start it. */
function service(): Record<string, string> {
  if (env === undefined) {
    assert.fail(
      `the S3 service is not running (no $SLIPWAY_SERVICES_DIR/ceph/env; SLIPWAY_SERVICES_DIR=${process.env.SLIPWAY_SERVICES_DIR ?? '(unset)'}): ${START_SERVICES_HINT}`,
    );
  }
  return env;
}

/** Every file (not directory) under `dir`, temp files included. */
function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => !fs.statSync(path.join(dir, f)).isDirectory())
    .sort();
}

before(async () => {
  if (env === undefined) return;
  Object.assign(process.env, env);
  client = testS3Client(env);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: keys[0], Body: data }));
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: keys[1], Body: small }));
});

after(async () => {
  closeS3Clients();
  if (client === undefined) return;
  for (const Key of keys) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  client.destroy();
});

test(
  'fetchCached(s3://…) streams the object into the cache, then serves it from there',
  { timeout: 60_000 },
  async () => {
    service();
    const cacheDir = path.join(tmp, 'cache-ok');
    const url = `s3://${bucket}/${keys[0]}`;
    const first = await fetchCached(url, dataSha.toUpperCase(), { cacheDir });
    assert.equal(first.cached, false);
    assert.equal(first.sha256, dataSha);
    assert.equal(first.size, data.length);
    assert.equal(first.path, path.join(cacheDir, 'sha256', dataSha));
    assert.ok(fs.readFileSync(first.path).equals(data));
    const second = await fetchCached(url, dataSha, { cacheDir });
    assert.deepEqual(second, { ...first, cached: true });
    assert.deepEqual(files(cacheDir), [`sha256/${dataSha}`]);
    // Without a pinned sha256 the file is cached by URL.
    const byUrl = await fetchCached(`s3://${bucket}/${keys[1]}`, undefined, { cacheDir });
    assert.equal(byUrl.cached, false);
    assert.equal(fs.readFileSync(byUrl.path, 'utf8'), small.toString());
    assert.equal((await fetchCached(`s3://${bucket}/${keys[1]}`, undefined, { cacheDir })).cached, true);
  },
);

test('a wrong sha256 fails with CHECKSUM_MISMATCH and keeps nothing', { timeout: 60_000 }, async () => {
  service();
  const cacheDir = path.join(tmp, 'cache-bad');
  const wrong = '0'.repeat(64);
  const retries: string[] = [];
  await assert.rejects(
    fetchCached(`s3://${bucket}/${keys[0]}`, wrong, {
      cacheDir,
      onRetry: (_, r) => retries.push(r),
    }),
    (err: unknown) => isSlipwayError(err, 'CHECKSUM_MISMATCH') && err.message.includes(dataSha),
  );
  assert.deepEqual(retries, []);
  assert.deepEqual(files(cacheDir), []);
});

test(
  'a missing key or bucket fails with DOWNLOAD_FAILED naming them, without retries',
  { timeout: 60_000 },
  async () => {
    service();
    const cacheDir = path.join(tmp, 'cache-missing');
    const retries: string[] = [];
    await assert.rejects(
      fetchCached(`s3://${bucket}/no/such/key`, undefined, { cacheDir, onRetry: (_, r) => retries.push(r) }),
      (err: unknown) =>
        isSlipwayError(err, 'DOWNLOAD_FAILED') &&
        err.message.includes(`bucket '${bucket}'`) &&
        err.message.includes(`key 'no/such/key'`) &&
        err.message.includes('no such object'),
    );
    await assert.rejects(
      s3Get(`s3://${bucket}-nope/x`, path.join(cacheDir, 'x'), undefined, {
        onRetry: (_, r) => retries.push(r),
      }),
      (err: unknown) =>
        isSlipwayError(err, 'DOWNLOAD_FAILED') &&
        err.message.includes(`bucket '${bucket}-nope'`) &&
        err.message.includes('no such bucket'),
    );
    assert.deepEqual(retries, []);
    assert.deepEqual(files(cacheDir), []);
  },
);

test('missing or wrong credentials fail with DOWNLOAD_FAILED saying so', { timeout: 60_000 }, async () => {
  const svc = service();
  const dest = path.join(tmp, 'creds', 'x');
  const home = path.join(tmp, 'empty-home');
  fs.mkdirSync(home, { recursive: true });
  await assert.rejects(
    s3Get(`s3://${bucket}/${keys[1]}`, dest, undefined, {
      env: { S3_ENDPOINT: svc.S3_ENDPOINT, HOME: home },
    }),
    (err: unknown) =>
      isSlipwayError(err, 'DOWNLOAD_FAILED') &&
      /no S3 credentials/.test(err.message) &&
      err.message.includes(`bucket '${bucket}', key '${keys[1]}'`),
  );
  await assert.rejects(
    s3Get(`s3://${bucket}/${keys[1]}`, dest, undefined, {
      env: { ...svc, AWS_SECRET_ACCESS_KEY: 'wrong-secret' },
      retries: 1,
      backoffMs: 1,
    }),
    (err: unknown) =>
      isSlipwayError(err, 'DOWNLOAD_FAILED') &&
      /access denied/.test(err.message) &&
      err.message.includes(`key '${keys[1]}'`),
  );
  assert.deepEqual(files(path.dirname(dest)), []);
});

test('connection failures and 503s are retried with backoff', { timeout: 60_000 }, async () => {
  service();
  // Nothing listens on this loopback port: every attempt is refused.
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) =>
    closed.close(() => {
      resolve();
    }),
  );
  const retries: number[] = [];
  const dest = path.join(tmp, 'retry', 'x');
  await assert.rejects(
    s3Get('s3://b/k', dest, undefined, {
      env: { S3_ENDPOINT: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 's' },
      retries: 2,
      backoffMs: 1,
      onRetry: (n) => retries.push(n),
    }),
    (err: unknown) =>
      isSlipwayError(err, 'DOWNLOAD_FAILED') &&
      err.message.includes('gave up after 3 attempts') &&
      err.message.includes("bucket 'b', key 'k'"),
  );
  assert.deepEqual(retries, [1, 2]);
  assert.deepEqual(files(path.dirname(dest)), []);

  // A store that is busy once (503 SlowDown), then answers.
  const seen: string[] = [];
  const busy = http.createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${(req.url ?? '').split('?')[0] ?? ''}`);
    if (seen.length === 1) {
      res.writeHead(503, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>busy</Message></Error>');
      return;
    }
    res.writeHead(200, { 'content-length': small.length, etag: '"x"' });
    res.end(small);
  });
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  try {
    const got = await s3Get('s3://b/k', dest, createHash('sha256').update(small).digest('hex'), {
      env: {
        S3_ENDPOINT: `http://127.0.0.1:${(busy.address() as AddressInfo).port}`,
        AWS_ACCESS_KEY_ID: 'a',
        AWS_SECRET_ACCESS_KEY: 's',
      },
      backoffMs: 1,
    });
    assert.equal(got.size, small.length);
    assert.deepEqual(seen, ['GET /b/k', 'GET /b/k']);
    assert.ok(fs.readFileSync(dest).equals(small));
  } finally {
    closeS3Clients();
    await new Promise<void>((resolve) =>
      busy.close(() => {
        resolve();
      }),
    );
  }
});

test('s3 URLs and settings from the environment', () => {
  assert.deepEqual(parseS3Url('s3://bkt/a/b c.txt'), { bucket: 'bkt', key: 'a/b c.txt' });
  for (const bad of ['s3://bkt', 's3://bkt/', 's3:///k', 'http://x/y']) {
    assert.throws(
      () => parseS3Url(bad),
      (err: unknown) => isSlipwayError(err, 'INVALID_ARGUMENT'),
    );
  }
  const creds = { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 's' };
  assert.deepEqual(s3ConfigFromEnv({ ...creds, AWS_ENDPOINT_URL: 'http://127.0.0.1:1' }), {
    endpoint: 'http://127.0.0.1:1',
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 's' },
  });
  assert.equal(
    s3ConfigFromEnv({ ...creds, S3_ENDPOINT: 'http://e', AWS_ENDPOINT_URL: 'http://f', AWS_REGION: 'eu-1' })
      .endpoint,
    'http://e',
  );
  assert.equal(s3ConfigFromEnv({ ...creds, AWS_REGION: 'eu-1' }).region, 'eu-1');
  assert.equal(s3ConfigFromEnv({ AWS_PROFILE: 'ci', HOME: tmp }).credentials, 'sdk-default');
});
