/**
 * The image repository API (specs/imgapi.md) over real HTTP on loopback,
 * against both store pairs: SQLite + a directory, and PostgreSQL + Ceph RGW
 * S3 (started by scripts/test.sh; without them the second half fails, it
 * never skips). Every endpoint, status and error code of the spec; paging
 * past 1000 images as clients page; Accept-Version; channels; origin rules;
 * upload failures that leave nothing behind (checked in the blob store
 * itself); concurrent uploads; GetImageFile's headers; two servers over the
 * same stores; graceful shutdown; auth.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import type { CliContext } from '../../src/cli/context.js';
import { imagesServeCommand } from '../../src/cli/images-serve.js';
import { MemoryReporter } from '../../src/core/events.js';
import { ImgapiError, type ImageManifest, type StoredImage } from '../../src/formats/imgapi-types.js';
import {
  defaultImagesConfig,
  imagesConfigFromEnv,
  loadImagesConfig,
  parseImagesConfig,
  type ImagesConfig,
} from '../../src/images/config.js';
import { formatSshPublicKey, signRequest } from '../../src/images/http-signature.js';
import { startImagesServer, type ImagesServer } from '../../src/server/imgapi-server.js';
import { OWNER, publishedImage, SERVED_HEAD } from '../helpers/imgapi.js';
import { testS3Client } from '../helpers/s3.js';
import { postgresEnv, s3Env, START_SERVICES_HINT } from '../helpers/services.js';
import { tempDir } from '../helpers/tmp.js';
import { quietCliContext } from '../helpers/cli.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const tmp = tempDir('slipway-images-api-');
const PACKAGE_VERSION = (
  JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
/** Small, so that the over-cap case is cheap. */
const MAX_FILE = 256 * 1024;

// ---- HTTP helpers

interface Res {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
  json: unknown;
}

interface CallOptions {
  /** JSON body (sent with Content-MD5, as clients do). */
  json?: unknown;
  /** A raw body. */
  raw?: Buffer | string;
  headers?: Record<string, string>;
  /** Accept-Version; null sends none. */
  version?: string | null;
}

async function call(base: string, method: string, p: string, o: CallOptions = {}): Promise<Res> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.version !== null) headers['accept-version'] = o.version ?? '*';
  let body: Buffer | undefined;
  if (o.json !== undefined) {
    body = Buffer.from(JSON.stringify(o.json));
    headers['content-type'] = 'application/json';
    headers['content-md5'] ??= createHash('md5').update(body).digest('base64');
  } else if (o.raw !== undefined) body = Buffer.from(o.raw);
  const r = await fetch(base + p, { method, headers, ...(body !== undefined ? { body } : {}) });
  const buf = Buffer.from(await r.arrayBuffer());
  const text = buf.toString('utf8');
  let json: unknown;
  if ((r.headers.get('content-type') ?? '').startsWith('application/json') && text !== '')
    json = JSON.parse(text);
  return { status: r.status, headers: r.headers, body: buf, text, json };
}

/** A JSON response as IMGAPI sends it: application/json, 2-space pretty, a correct Content-MD5. */
function assertJsonResponse(r: Res): void {
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal(r.text, JSON.stringify(r.json, null, 2));
  assert.equal(r.headers.get('content-md5'), createHash('md5').update(r.body).digest('base64'));
}

function assertError(r: Res, status: number, code: string, message?: RegExp): void {
  assert.equal(r.status, status, r.text);
  assertJsonResponse(r);
  const body = r.json as { code: string; message: string };
  assert.equal(body.code, code, r.text);
  assert.equal(typeof body.message, 'string');
  if (message !== undefined) assert.match(body.message, message);
}

function image(r: Res): ImageManifest {
  assert.equal(r.status, 200, r.text);
  assertJsonResponse(r);
  return r.json as ImageManifest;
}

function images(r: Res): ImageManifest[] {
  assert.equal(r.status, 200, r.text);
  assertJsonResponse(r);
  return r.json as ImageManifest[];
}

function sha1(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex');
}

function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('base64');
}

function manifest(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { owner: OWNER, name: 'base-64', version: '1.0.0', type: 'zone-dataset', os: 'smartos', ...fields };
}

/** A raw HTTP/1.1 exchange: write `head` and `parts` (with pauses), then `finish` the socket; the reply text. */
function rawRequest(
  port: number,
  head: string,
  parts: Buffer[],
  finish: 'end' | 'destroy' | 'keep',
): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    sock.on('data', (d: Buffer) => {
      data += d.toString('utf8');
    });
    sock.on('error', (err) => {
      if (finish === 'destroy') resolve(data);
      else reject(err);
    });
    sock.on('close', () => {
      resolve(data);
    });
    sock.on('connect', () => {
      void (async () => {
        sock.write(head);
        for (const p of parts) {
          sock.write(p);
          await new Promise((r) => setTimeout(r, 50));
        }
        if (finish === 'end') sock.end();
        else if (finish === 'destroy') sock.destroy();
      })();
    });
  });
}

function parseRaw(reply: string): { status: number; json: unknown } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 0);
  const at = reply.indexOf('\r\n\r\n');
  const body = at >= 0 ? reply.slice(at + 4) : '';
  return { status, json: body.trim() === '' ? undefined : (JSON.parse(body) as unknown) };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

// ---- the two store pairs

interface Backend {
  name: string;
  /** Whether separate servers open the stores themselves (PG + S3), or share the first server's (SQLite). */
  shared: boolean;
  setup(): Promise<ImagesConfig>;
  /** Every blob key (temp objects included) under `prefix`. */
  blobKeys(prefix: string): Promise<string[]>;
  cleanup(): Promise<void>;
}

function baseConfig(dataDir: string): ImagesConfig {
  return { ...defaultImagesConfig(dataDir), port: 0, maxFileSize: MAX_FILE, closeGraceMs: 5000 };
}

function sqliteBackend(): Backend {
  const dir = path.join(tmp, 'sqlite');
  return {
    name: 'SQLite + directory',
    shared: true,
    setup: () => {
      fs.mkdirSync(dir, { recursive: true });
      return Promise.resolve(baseConfig(dir));
    },
    blobKeys: (prefix) => {
      const root = path.join(dir, 'blobs');
      const start = path.join(root, ...prefix.split('/').filter((s) => s !== ''));
      if (!fs.existsSync(start)) return Promise.resolve([]);
      const keys = fs
        .readdirSync(start, { recursive: true, encoding: 'utf8' })
        .map((f) => path.join(start, f))
        .filter((f) => !fs.statSync(f).isDirectory())
        .map((f) => path.relative(root, f).split(path.sep).join('/'));
      return Promise.resolve(keys.sort());
    },
    cleanup: () => Promise.resolve(),
  };
}

function postgresS3Backend(): Backend {
  const bucket = `slipway-api-${randomBytes(4).toString('hex')}`;
  const database = `slipway_api_${randomBytes(4).toString('hex')}`;
  let client: S3Client | undefined;
  let pgUrl: string | undefined;
  const list = async (prefix: string): Promise<string[]> => {
    if (client === undefined) return [];
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(token !== undefined ? { ContinuationToken: token } : {}),
        }),
      );
      for (const o of r.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
      token = r.IsTruncated === true ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys.sort();
  };
  return {
    name: 'PostgreSQL + Ceph RGW S3',
    shared: false,
    async setup() {
      const s3 = s3Env();
      const pgEnv = postgresEnv();
      if (s3 === undefined || pgEnv?.PG_URL === undefined) {
        assert.fail(
          `the ${s3 === undefined ? 'S3' : 'PostgreSQL'} service is not running (SLIPWAY_SERVICES_DIR=${process.env.SLIPWAY_SERVICES_DIR ?? '(unset)'}): ${START_SERVICES_HINT}`,
        );
      }
      Object.assign(process.env, s3);
      client = testS3Client(s3);
      pgUrl = pgEnv.PG_URL;
      const admin = new pg.Client({ connectionString: pgUrl });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${database}`);
      } finally {
        await admin.end();
      }
      const u = new URL(pgUrl);
      u.pathname = `/${database}`;
      const dir = path.join(tmp, 'pg-s3');
      fs.mkdirSync(dir, { recursive: true });
      return {
        ...baseConfig(dir),
        metadata: { kind: 'postgres', url: u.toString() },
        blobs: { kind: 's3', bucket, ...(s3.S3_ENDPOINT !== undefined ? { endpoint: s3.S3_ENDPOINT } : {}) },
      };
    },
    blobKeys: list,
    async cleanup() {
      if (client !== undefined) {
        for (const Key of await list('')) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
        await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
        client.destroy();
      }
      if (pgUrl !== undefined) {
        const admin = new pg.Client({ connectionString: pgUrl });
        await admin.connect();
        await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
        await admin.end();
      }
    },
  };
}

// ---- the suite, once per store pair

for (const backend of [sqliteBackend(), postgresS3Backend()]) {
  describe(`IMGAPI over ${backend.name}`, () => {
    let config: ImagesConfig;
    let main: ImagesServer;
    /** strictOrigins = false */
    let loose: ImagesServer;
    /** No channels. */
    let plain: ImagesServer;
    /** A second server over the same stores (PG + S3: opened on its own). */
    let other: ImagesServer;
    let base = '';
    const reporter = new MemoryReporter();
    const servers: ImagesServer[] = [];

    const start = async (
      edit: (c: ImagesConfig) => void = () => undefined,
      share = backend.shared,
      allowPrivateFileUrls = true,
    ): Promise<ImagesServer> => {
      const c: ImagesConfig = structuredClone(config);
      edit(c);
      const s = await startImagesServer(c, {
        reporter,
        allowPrivateFileUrls,
        ...(share && servers[0] !== undefined
          ? { stores: { meta: servers[0].service.meta, blobs: servers[0].service.blobs } }
          : {}),
      });
      servers.push(s);
      return s;
    };

    const api = (method: string, p: string, o?: CallOptions): Promise<Res> => call(base, method, p, o);

    const create = async (fields: Record<string, unknown> = {}, query = ''): Promise<ImageManifest> =>
      image(await api('POST', `/images${query}`, { json: manifest(fields) }));

    const upload = (uuid: string, data: Buffer, query = 'compression=gzip'): Promise<Res> =>
      api('PUT', `/images/${uuid}/file?${query}`, {
        raw: data,
        headers: { 'content-type': 'application/octet-stream' },
      });

    /** Create, upload a file, activate: an active image (in `channel` when given). */
    const activeImage = async (
      fields: Record<string, unknown> = {},
      channel?: string,
    ): Promise<{ m: ImageManifest; data: Buffer }> => {
      const q = channel !== undefined ? `?channel=${channel}` : '';
      const created = await create(fields, q);
      const data = randomBytes(2048);
      image(
        await upload(
          created.uuid,
          data,
          `compression=gzip${channel !== undefined ? `&channel=${channel}` : ''}`,
        ),
      );
      const m = image(
        await api('POST', `/images/${created.uuid}?action=activate${q.replace('?', '&')}`, { json: {} }),
      );
      return { m, data };
    };

    const logsFor = (needle: string): string[] =>
      reporter.events.flatMap((e) => (e.kind === 'log' && e.message.includes(needle) ? [e.message] : []));

    before(async () => {
      config = await backend.setup();
      main = await start();
      base = main.url;
      loose = await start(
        (c) => {
          c.strictOrigins = false;
        },
        backend.shared,
        false,
      );
      plain = await start((c) => {
        c.channels = [];
      });
      other = await start(() => undefined, backend.shared);
    });

    after(async () => {
      // Servers sharing the first one's stores close before it.
      for (const s of [...servers].reverse()) await s.close();
      await backend.cleanup();
    });

    test('Ping, unknown routes and methods', async () => {
      const r = await api('GET', '/ping');
      assert.equal(r.status, 200);
      assertJsonResponse(r);
      const body = r.json as Record<string, unknown>;
      assert.equal(body.ping, 'pong');
      assert.equal(body.version, PACKAGE_VERSION);
      assert.equal(body.imgapi, true);
      assertError(await api('GET', '/nope'), 404, 'ResourceNotFound', /\/nope does not exist/);
      assertError(await api('GET', '/images/x/y/z/w'), 404, 'ResourceNotFound');
      const bad = await api('PATCH', '/images');
      assertError(bad, 405, 'BadMethod');
      assert.match(bad.headers.get('allow') ?? '', /GET/);
    });

    test('ListChannels; no /channels, no channels in images and no channel-add without channels', async () => {
      const channels = (await api('GET', '/channels')).json as { name: string; default?: boolean }[];
      assert.deepEqual(
        channels.map((c) => c.name),
        ['experimental', 'dev', 'staging', 'release', 'support'],
      );
      assert.deepEqual(
        channels.filter((c) => c.default === true).map((c) => c.name),
        ['dev'],
      );
      assertError(await call(plain.url, 'GET', '/channels'), 404, 'ResourceNotFound');
      const m = image(await call(plain.url, 'POST', '/images', { json: manifest({ name: 'nochan' }) }));
      assert.equal(m.channels, undefined);
      assertError(
        await call(plain.url, 'POST', `/images/${m.uuid}?action=channel-add`, { json: { channel: 'dev' } }),
        422,
        'InvalidParameter',
        /"channel-add" is not a valid action/,
      );
      // `?channel=` means nothing to a server without channels.
      assert.equal(image(await call(plain.url, 'GET', `/images/${m.uuid}?channel=bogus`)).uuid, m.uuid);
      assert.equal((await api('DELETE', `/images/${m.uuid}?channel=*`)).status, 422);
      assert.equal((await call(plain.url, 'DELETE', `/images/${m.uuid}`)).status, 204);
    });

    test('Accept-Version: none → no channels; ~2 and * → channels; ~3 → 400 InvalidVersion', async () => {
      const m = await create({ name: 'versions' });
      const v1 = image(await api('GET', `/images/${m.uuid}`, { version: null }));
      assert.equal(v1.channels, undefined);
      assert.equal(image(await api('GET', `/images/${m.uuid}`, { version: '~1' })).channels, undefined);
      assert.deepEqual(image(await api('GET', `/images/${m.uuid}`, { version: '~2' })).channels, ['dev']);
      assert.deepEqual(image(await api('GET', `/images/${m.uuid}`, { version: '*' })).channels, ['dev']);
      const listed = images(await api('GET', '/images?state=all&name=versions', { version: null }));
      assert.ok(listed.length > 0 && listed.every((i) => i.channels === undefined));
      assertError(await api('GET', `/images/${m.uuid}`, { version: '~3' }), 400, 'InvalidVersion');
      assertError(await api('GET', '/images', { version: '~3' }), 400, 'InvalidVersion');
      assertError(await api('POST', '/images', { version: '~3', json: manifest() }), 400, 'InvalidVersion');
    });

    test('CreateImage: defaults, channel, and every refusal', async () => {
      const m = await create({ name: 'created', description: 'd' });
      assert.equal(m.v, 2);
      assert.equal(m.state, 'unactivated');
      assert.equal(m.disabled, false);
      assert.equal(m.public, false);
      assert.deepEqual(m.files, []);
      assert.deepEqual(m.channels, ['dev']);
      assert.equal(m.published_at, undefined);
      assert.deepEqual(Object.keys(m), [...SERVED_HEAD, 'type', 'os', 'files', 'description', 'channels']);
      assert.deepEqual((await create({ name: 'staged' }, '?channel=staging')).channels, ['staging']);
      assertError(
        await api('POST', '/images?channel=bogus', { json: manifest() }),
        422,
        'ValidationFailed',
        /unknown channel: bogus/,
      );
      assertError(await api('POST', '/images?channel=*', { json: manifest() }), 422, 'ValidationFailed');
      const st = await api('POST', '/images', { json: manifest({ state: 'active' }) });
      assertError(st, 422, 'ValidationFailed');
      assertError(
        await api('POST', '/images', { json: manifest({ bogus: 1 }) }),
        422,
        'InvalidParameter',
        /invalid extra parameters: "bogus"/,
      );
      const missing = await api('POST', '/images', { json: { owner: OWNER } });
      assertError(missing, 422, 'ValidationFailed');
      assert.ok(((missing.json as { errors?: unknown[] }).errors ?? []).length > 0);
      assertError(
        await api('POST', '/images', { json: manifest({ origin: randomUUID() }) }),
        422,
        'OriginDoesNotExist',
      );
      // Bodies: bad JSON, a wrong Content-MD5, too large.
      assertError(
        await api('POST', '/images', { raw: '{"owner":', headers: { 'content-type': 'application/json' } }),
        400,
        'InvalidContent',
      );
      assertError(
        await api('POST', '/images', { json: manifest(), headers: { 'content-md5': md5(Buffer.from('x')) } }),
        400,
        'BadDigest',
      );
      const big = await api('POST', '/images', {
        json: manifest({ description: 'x'.repeat(1024 * 1024 + 10) }),
      });
      assertError(big, 413, 'RequestEntityTooLarge');
    });

    test('GetImage: channel rules, malformed and unknown uuids, conditional GET', async () => {
      const m = await create({ name: 'getme' });
      const r = await api('GET', `/images/${m.uuid}`);
      assert.equal(image(r).name, 'getme');
      const etag = r.headers.get('etag') ?? '';
      assert.match(etag, /^[0-9a-f]{40}$/);
      assert.equal(
        (await api('GET', `/images/${m.uuid}`, { headers: { 'if-none-match': etag } })).status,
        304,
      );
      assertError(
        await api('GET', `/images/${m.uuid}?channel=staging`),
        404,
        'ResourceNotFound',
        /^image not found$/,
      );
      assert.equal(image(await api('GET', `/images/${m.uuid}?channel=*`)).uuid, m.uuid);
      assertError(await api('GET', `/images/${m.uuid}?channel=bogus`), 422, 'ValidationFailed');
      assertError(await api('GET', '/images/not-a-uuid'), 404, 'ResourceNotFound', /does not exist/);
      assertError(await api('GET', `/images/${m.uuid.toUpperCase()}`), 404, 'ResourceNotFound');
      assertError(await api('GET', `/images/${randomUUID()}`), 404, 'ResourceNotFound');
      assertError(await api('POST', '/images/nope?action=activate', { json: {} }), 404, 'ResourceNotFound');
      assertError(await api('DELETE', '/images/nope'), 404, 'ResourceNotFound');
    });

    test('AddImageFile and GetImageFile: headers, Content-MD5, 304, ranges, HEAD', async () => {
      const m = await create({ name: 'filed' });
      assertError(await api('GET', `/images/${m.uuid}/file`), 404, 'ResourceNotFound', /has no file/);
      const data = randomBytes(100_000);
      const put = image(await upload(m.uuid, data, `compression=xz&sha1=${sha1(data)}`));
      assert.deepEqual(put.files, [{ sha1: sha1(data), size: data.length, compression: 'xz' }]);
      assert.equal(put.state, 'unactivated');

      const r = await api('GET', `/images/${m.uuid}/file`);
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(data));
      assert.equal(r.headers.get('etag'), sha1(data));
      assert.equal(r.headers.get('content-type'), 'application/octet-stream');
      assert.equal(r.headers.get('content-length'), String(data.length));
      assert.equal(r.headers.get('content-md5'), md5(data));
      const lastModified = r.headers.get('last-modified') ?? '';
      assert.ok(Number.isFinite(Date.parse(lastModified)), lastModified);
      assert.ok(Math.abs(Date.parse(lastModified) - Date.now()) < 60_000);

      // Conditional requests.
      const inm = await api('GET', `/images/${m.uuid}/file`, { headers: { 'if-none-match': sha1(data) } });
      assert.equal(inm.status, 304);
      assert.equal(inm.body.length, 0);
      assert.equal(
        (await api('GET', `/images/${m.uuid}/file`, { headers: { 'if-none-match': `"${sha1(data)}"` } }))
          .status,
        304,
      );
      assert.equal(
        (await api('GET', `/images/${m.uuid}/file`, { headers: { 'if-none-match': 'other' } })).status,
        200,
      );
      assert.equal(
        (await api('GET', `/images/${m.uuid}/file`, { headers: { 'if-modified-since': lastModified } }))
          .status,
        304,
      );
      assert.equal(
        (
          await api('GET', `/images/${m.uuid}/file`, {
            headers: { 'if-modified-since': new Date(Date.parse(lastModified) - 3_600_000).toUTCString() },
          })
        ).status,
        200,
      );

      // Ranges.
      const part = await api('GET', `/images/${m.uuid}/file`, { headers: { range: 'bytes=10-19' } });
      assert.equal(part.status, 206);
      assert.ok(part.body.equals(data.subarray(10, 20)));
      assert.equal(part.headers.get('content-range'), `bytes 10-19/${data.length}`);
      assert.equal(part.headers.get('content-length'), '10');
      const tail = await api('GET', `/images/${m.uuid}/file`, { headers: { range: 'bytes=-5' } });
      assert.equal(tail.status, 206);
      assert.ok(tail.body.equals(data.subarray(data.length - 5)));
      const open = await api('GET', `/images/${m.uuid}/file`, {
        headers: { range: `bytes=${data.length - 3}-` },
      });
      assert.ok(open.body.equals(data.subarray(data.length - 3)));
      const none = await api('GET', `/images/${m.uuid}/file`, {
        headers: { range: `bytes=${data.length}-` },
      });
      assert.equal(none.status, 416);
      assert.equal(none.headers.get('content-range'), `bytes */${data.length}`);
      const stale = await api('GET', `/images/${m.uuid}/file`, {
        headers: { range: 'bytes=0-9', 'if-range': 'old' },
      });
      assert.equal(stale.status, 200);
      assert.equal(stale.body.length, data.length);

      // HEAD: the headers, no body.
      const head = await api('HEAD', `/images/${m.uuid}/file`);
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(data.length));
      assert.equal(head.headers.get('content-md5'), md5(data));
      assert.equal(head.body.length, 0);

      // Replacing the file (still unactivated) drops the old blob.
      const data2 = randomBytes(3000);
      assert.equal(image(await upload(m.uuid, data2)).files[0]?.sha1, sha1(data2));
      assert.equal((await backend.blobKeys(`images/${m.uuid}/`)).length, 1);
      assert.ok((await api('GET', `/images/${m.uuid}/file`)).body.equals(data2));
    });

    test('AddImageFile refusals leave nothing: compression, empty, sha1, over the cap, short body, activated', async () => {
      const m = await create({ name: 'refusals' });
      const data = randomBytes(5000);
      assertError(await upload(m.uuid, data, ''), 422, 'InvalidParameter', /missing "compression"/);
      assertError(
        await upload(m.uuid, data, 'compression=zip'),
        422,
        'InvalidParameter',
        /invalid compression/,
      );
      assertError(await upload(m.uuid, Buffer.alloc(0)), 400, 'Download', /empty/);
      assertError(
        await upload(m.uuid, data, `compression=gzip&sha1=${sha1(Buffer.from('other'))}`),
        400,
        'Download',
        /sha1/,
      );
      // Over the cap, declared (refused before reading) and streamed without a length.
      assertError(await upload(m.uuid, randomBytes(MAX_FILE + 1)), 400, 'Upload');
      const chunked = await fetch(`${base}/images/${m.uuid}/file?compression=gzip`, {
        method: 'PUT',
        headers: { 'accept-version': '*' },
        body: new ReadableStream<Uint8Array>({
          start(controller) {
            for (let i = 0; i < 5; i++) controller.enqueue(randomBytes(64 * 1024));
            controller.close();
          },
        }),
        duplex: 'half',
      });
      assert.equal(chunked.status, 400);
      assert.equal(((await chunked.json()) as { code: string }).code, 'Upload');
      // A body that ends before its Content-Length (the client half-closes): 400 Download.
      const reply = await rawRequest(
        main.port,
        `PUT /images/${m.uuid}/file?compression=gzip HTTP/1.1\r\nHost: x\r\nAccept-Version: *\r\nContent-Length: 10000\r\n\r\n`,
        [randomBytes(4000)],
        'end',
      );
      const short = parseRaw(reply);
      assert.equal(short.status, 400, reply);
      assert.equal((short.json as { code: string }).code, 'Download');
      await until('the short upload to be logged', () =>
        logsFor(`/images/${m.uuid}/file`).some((l) => l.includes('error=Download')),
      );
      // The same check at the service level: the declared length must match.
      await assert.rejects(
        main.service.addImageFile(m.uuid, new URLSearchParams('compression=gzip'), {
          body: Readable.from([Buffer.from('12345')]),
          contentLength: 10,
        }),
        (err: unknown) => err instanceof ImgapiError && err.statusCode === 400 && err.restCode === 'Download',
      );
      const after = image(await api('GET', `/images/${m.uuid}`));
      assert.deepEqual(after.files, []);
      await until('no blob left', async () => (await backend.blobKeys(`images/${m.uuid}/`)).length === 0);

      // Once activated, files are immutable.
      const { m: active } = await activeImage({ name: 'immutable' });
      assertError(await upload(active.uuid, data), 422, 'ImageFilesImmutable');
      assertError(await upload(randomUUID(), data), 404, 'ResourceNotFound');
      assertError(await upload(m.uuid, data, 'compression=gzip&channel=staging'), 404, 'ResourceNotFound');
    });

    test('a killed upload (socket destroyed mid-body) leaves no file and no blob', async () => {
      const m = await create({ name: 'killed' });
      const before = logsFor(`/images/${m.uuid}/file`).length;
      await rawRequest(
        main.port,
        `PUT /images/${m.uuid}/file?compression=gzip HTTP/1.1\r\nHost: x\r\nAccept-Version: *\r\nContent-Length: 200000\r\n\r\n`,
        [randomBytes(30_000), randomBytes(30_000)],
        'destroy',
      );
      await until('the killed upload to end', () => logsFor(`/images/${m.uuid}/file`).length > before);
      assert.deepEqual(image(await api('GET', `/images/${m.uuid}`)).files, []);
      assertError(await api('GET', `/images/${m.uuid}/file`), 404, 'ResourceNotFound');
      await until('no blob left', async () => (await backend.blobKeys(`images/${m.uuid}/`)).length === 0);
      // The server is fine afterwards.
      assert.equal(image(await upload(m.uuid, randomBytes(1000))).files.length, 1);
    });

    test('two concurrent uploads of one image: both finish (or one errors), the manifest matches the served blob', async () => {
      const m = await create({ name: 'racing' });
      const a = randomBytes(200_000);
      const b = randomBytes(180_000);
      const [ra, rb] = await Promise.all([upload(m.uuid, a), upload(m.uuid, b)]);
      for (const r of [ra, rb]) {
        if (r.status !== 200) assertError(r, 409, 'Conflict');
      }
      assert.ok(ra.status === 200 || rb.status === 200);
      const now = image(await api('GET', `/images/${m.uuid}`));
      const served = await api('GET', `/images/${m.uuid}/file`);
      assert.equal(served.status, 200);
      assert.equal(now.files[0]?.sha1, sha1(served.body));
      assert.equal(now.files[0]?.size, served.body.length);
      assert.equal(served.headers.get('content-md5'), md5(served.body));
      assert.ok([sha1(a), sha1(b)].includes(sha1(served.body)));
      await until('one blob left', async () => (await backend.blobKeys(`images/${m.uuid}/`)).length === 1);
    });

    test('uploads racing each other and readers: every file served matches its own headers', async () => {
      const m = await create({ name: 'racing-readers' });
      const bodies = new Set<string>();
      for (let round = 0; round < 4; round++) {
        let uploading = true;
        const readers = Array.from({ length: 3 }, async () => {
          let served = 0;
          while (uploading || served === 0) {
            const r = await call(other.url, 'GET', `/images/${m.uuid}/file`);
            if (r.status === 404 && round === 0 && served === 0) continue; // no file yet
            assert.equal(r.status, 200, r.text);
            assert.equal(r.headers.get('etag'), sha1(r.body));
            assert.equal(r.headers.get('content-md5'), md5(r.body));
            assert.equal(r.headers.get('content-length'), String(r.body.length));
            served++;
          }
        });
        const uploads = Array.from({ length: 3 }, async () => {
          const data = randomBytes(20_000 + Math.floor(Math.random() * 100_000));
          bodies.add(sha1(data));
          const r = await upload(m.uuid, data);
          if (r.status !== 200) assertError(r, 409, 'Conflict');
          return r.status;
        });
        const statuses = await Promise.all(uploads);
        uploading = false;
        await Promise.all(readers);
        assert.ok(statuses.includes(200));
      }
      const now = image(await api('GET', `/images/${m.uuid}`));
      assert.ok(bodies.has(now.files[0]?.sha1 ?? ''));
      await until('one blob left', async () => (await backend.blobKeys(`images/${m.uuid}/`)).length === 1);
    });

    test('Activate, Disable, Enable, Update', async () => {
      const m = await create({ name: 'lifecycle' });
      assertError(
        await api('POST', `/images/${m.uuid}?action=activate`, { json: {} }),
        422,
        'NoActivationNoFile',
      );
      image(await upload(m.uuid, randomBytes(1000)));
      const t0 = Date.now();
      const a = image(await api('POST', `/images/${m.uuid}?action=activate`, { json: {} }));
      assert.equal(a.state, 'active');
      assert.match(a.published_at ?? '', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      assert.ok(Math.abs(Date.parse(a.published_at ?? '') - t0) < 60_000);
      assertError(
        await api('POST', `/images/${m.uuid}?action=activate`, { json: {} }),
        422,
        'ImageAlreadyActivated',
      );
      const d = image(await api('POST', `/images/${m.uuid}?action=disable`));
      assert.equal(d.state, 'disabled');
      assert.equal(d.disabled, true);
      assert.equal(d.published_at, a.published_at);
      assert.ok(!images(await api('GET', '/images?name=lifecycle')).some((i) => i.uuid === m.uuid));
      assert.ok(
        images(await api('GET', '/images?name=lifecycle&state=disabled')).some((i) => i.uuid === m.uuid),
      );
      const e = image(await api('POST', `/images/${m.uuid}?action=enable`));
      assert.equal(e.state, 'active');
      assert.equal(e.disabled, false);
      const u = image(
        await api('POST', `/images/${m.uuid}?action=update`, {
          json: { description: 'now described', tags: { role: 'x' } },
        }),
      );
      assert.equal(u.description, 'now described');
      assert.deepEqual(u.tags, { role: 'x' });
      assert.equal(
        image(await api('POST', `/images/${m.uuid}?action=update`, { json: { description: null } }))
          .description,
        undefined,
      );
      assertError(
        await api('POST', `/images/${m.uuid}?action=update`, { json: { state: 'failed' } }),
        422,
        'ValidationFailed',
      );
      assertError(
        await api('POST', `/images/${m.uuid}?action=update`, { json: { uuid: randomUUID() } }),
        422,
        'ValidationFailed',
      );
      assertError(
        await api('POST', `/images/${m.uuid}?action=bogus`, { json: {} }),
        422,
        'InvalidParameter',
        /"bogus" is not a valid action/,
      );
      assertError(await api('POST', `/images/${m.uuid}`, { json: {} }), 422, 'MissingParameter');
      assertError(
        await api('POST', `/images/${m.uuid}?action=enable&channel=staging`),
        404,
        'ResourceNotFound',
      );
    });

    test('AdminImport: the flow of the reference CLI, and its refusals', async () => {
      const data = randomBytes(4096);
      const uuid = randomUUID();
      const published = publishedImage(uuid, {
        name: 'imported',
        version: '2.0.0',
        files: [{ sha1: sha1(data), size: data.length, compression: 'gzip' }],
        channels: ['release'],
      });
      const mismatch = await api('POST', `/images/${randomUUID()}?action=import`, { json: published });
      assertError(mismatch, 422, 'InvalidParameter', /do not match/);
      const imported = image(await api('POST', `/images/${uuid}?action=import`, { json: published }));
      assert.equal(imported.state, 'unactivated');
      assert.deepEqual(imported.files, []);
      assert.deepEqual(imported.channels, ['dev']);
      assert.equal(imported.published_at, '2024-01-02T03:04:05Z');
      assertError(
        await api('POST', `/images/${uuid}?action=import`, { json: published }),
        409,
        'ImageUuidAlreadyExists',
      );
      const put = image(await upload(uuid, data, `compression=gzip&sha1=${sha1(data)}`));
      assert.equal(put.files[0]?.sha1, sha1(data));
      assert.equal(put.files[0]?.size, data.length);
      const act = image(await api('POST', `/images/${uuid}?action=activate`, { json: {} }));
      assert.equal(act.state, 'active');
      assert.equal(act.published_at, '2024-01-02T03:04:05Z');
      assertError(
        await api('POST', `/images/${randomUUID()}?action=import`, {
          json: { ...published, uuid: undefined },
        }),
        422,
        'InvalidParameter',
      );
      const withOrigin = { ...published, uuid: randomUUID(), origin: randomUUID() };
      assertError(
        await api('POST', `/images/${withOrigin.uuid}?action=import`, { json: withOrigin }),
        422,
        'OriginDoesNotExist',
      );
      // A failed step: the CLI deletes the image.
      const doomed = { ...published, uuid: randomUUID() };
      image(await api('POST', `/images/${doomed.uuid}?action=import`, { json: doomed }));
      assertError(
        await upload(doomed.uuid, data, `compression=gzip&sha1=${'0'.repeat(40)}`),
        400,
        'Download',
      );
      assert.equal((await api('DELETE', `/images/${doomed.uuid}`)).status, 204);
      assertError(await api('GET', `/images/${doomed.uuid}`), 404, 'ResourceNotFound');
    });

    test('ChannelAdd: unknown target, no-op, lookup channel', async () => {
      const { m } = await activeImage({ name: 'channelled' });
      assertError(
        await api('POST', `/images/${m.uuid}?action=channel-add`, { json: { channel: 'bogus' } }),
        422,
        'ValidationFailed',
        /unknown channel: bogus/,
      );
      assertError(
        await api('POST', `/images/${m.uuid}?action=channel-add`, { json: {} }),
        422,
        'ValidationFailed',
      );
      const same = image(
        await api('POST', `/images/${m.uuid}?action=channel-add`, { json: { channel: 'dev' } }),
      );
      assert.deepEqual(same.channels, ['dev']);
      const added = image(
        await api('POST', `/images/${m.uuid}?action=channel-add`, { json: { channel: 'staging' } }),
      );
      assert.deepEqual(added.channels, ['dev', 'staging']);
      assert.equal(image(await api('GET', `/images/${m.uuid}?channel=staging`)).uuid, m.uuid);
      // Looked up in ?channel= (here release, where it is not).
      assertError(
        await api('POST', `/images/${m.uuid}?action=channel-add&channel=release`, {
          json: { channel: 'support' },
        }),
        404,
        'ResourceNotFound',
      );
      const rel = image(
        await api('POST', `/images/${m.uuid}?action=channel-add&channel=staging`, {
          json: { channel: 'release' },
        }),
      );
      assert.deepEqual(rel.channels, ['dev', 'staging', 'release']);
      assert.ok(
        images(await api('GET', '/images?channel=release&name=channelled')).some((i) => i.uuid === m.uuid),
      );
    });

    test('origin chains: strict create/import/channel-add need the chain active in the channel; loose allows', async () => {
      const { m: root } = await activeImage({ name: 'origin-root' });
      const { m: mid } = await activeImage({ name: 'origin-mid', origin: root.uuid });
      // In dev, the chain is complete.
      const leaf = await create({ name: 'origin-leaf', origin: mid.uuid });
      assert.equal(leaf.origin, mid.uuid);
      // Elsewhere it is not: create, import and channel-add are refused.
      assertError(
        await api('POST', '/images?channel=staging', { json: manifest({ origin: mid.uuid }) }),
        422,
        'OriginNotInChannel',
      );
      const imported = { ...manifest({ origin: mid.uuid }), v: 2, uuid: randomUUID() };
      assertError(
        await api('POST', `/images/${imported.uuid}?action=import&channel=staging`, { json: imported }),
        422,
        'OriginNotInChannel',
      );
      assertError(
        await api('POST', `/images/${mid.uuid}?action=channel-add`, { json: { channel: 'staging' } }),
        422,
        'OriginNotInChannel',
      );
      // Add the root first, then the mid: fine.
      image(await api('POST', `/images/${root.uuid}?action=channel-add`, { json: { channel: 'staging' } }));
      image(await api('POST', `/images/${mid.uuid}?action=channel-add`, { json: { channel: 'staging' } }));
      image(await api('POST', '/images?channel=staging', { json: manifest({ origin: mid.uuid }) }));
      // An origin that is not active breaks the chain too.
      const inactive = await create({ name: 'origin-inactive' });
      assertError(
        await api('POST', '/images', { json: manifest({ origin: inactive.uuid }) }),
        422,
        'OriginNotInChannel',
      );
      // The loose server only wants the origin to exist.
      const l = image(
        await call(loose.url, 'POST', '/images?channel=release', { json: manifest({ origin: mid.uuid }) }),
      );
      assert.equal(l.origin, mid.uuid);
      image(await call(loose.url, 'POST', '/images', { json: manifest({ origin: inactive.uuid }) }));
      assertError(
        await call(loose.url, 'POST', '/images', { json: manifest({ origin: randomUUID() }) }),
        422,
        'OriginDoesNotExist',
      );
    });

    test('DeleteImage: dependents, one channel of several, force_all_channels, blobs', async () => {
      const { m: parent } = await activeImage({ name: 'delete-parent' });
      const child = await create({ name: 'delete-child', origin: parent.uuid });
      assertError(
        await api('DELETE', `/images/${parent.uuid}`),
        422,
        'ImageHasDependentImages',
        new RegExp(child.uuid),
      );
      assert.equal((await api('DELETE', `/images/${child.uuid}`)).status, 204);

      const { m } = await activeImage({ name: 'delete-multi' });
      image(await api('POST', `/images/${m.uuid}?action=channel-add`, { json: { channel: 'staging' } }));
      assertError(await api('DELETE', `/images/${m.uuid}?channel=release`), 404, 'ResourceNotFound');
      assertError(await api('DELETE', `/images/${m.uuid}?force_all_channels=maybe`), 422, 'InvalidParameter');
      const gone = await api('DELETE', `/images/${m.uuid}?channel=staging`);
      assert.equal(gone.status, 204);
      assert.equal(gone.body.length, 0);
      assert.deepEqual(image(await api('GET', `/images/${m.uuid}`)).channels, ['dev']);
      assertError(await api('GET', `/images/${m.uuid}?channel=staging`), 404, 'ResourceNotFound');
      assert.equal((await backend.blobKeys(`images/${m.uuid}/`)).length, 1);

      image(await api('POST', `/images/${m.uuid}?action=channel-add`, { json: { channel: 'staging' } }));
      assert.equal((await api('DELETE', `/images/${m.uuid}?force_all_channels=true`)).status, 204);
      assertError(await api('GET', `/images/${m.uuid}?channel=*`), 404, 'ResourceNotFound');
      assertError(await api('GET', `/images/${m.uuid}/file?channel=*`), 404, 'ResourceNotFound');
      assert.deepEqual(await backend.blobKeys(`images/${m.uuid}/`), []);
      assertError(await api('DELETE', `/images/${m.uuid}`), 404, 'ResourceNotFound');
    });

    test('AddImageAcl / RemoveImageAcl', async () => {
      const m = await create({ name: 'acl' });
      const [u1, u2] = [randomUUID(), randomUUID()];
      assert.deepEqual(image(await api('POST', `/images/${m.uuid}/acl?action=add`, { json: [u1, u2] })).acl, [
        u1,
        u2,
      ]);
      assert.deepEqual(image(await api('POST', `/images/${m.uuid}/acl`, { json: [u1] })).acl, [u1, u2]);
      assert.deepEqual(image(await api('POST', `/images/${m.uuid}/acl?action=remove`, { json: [u1] })).acl, [
        u2,
      ]);
      assert.equal(
        image(await api('POST', `/images/${m.uuid}/acl?action=remove`, { json: [u2] })).acl,
        undefined,
      );
      assertError(
        await api('POST', `/images/${m.uuid}/acl?action=add`, { json: { a: 1 } }),
        422,
        'InvalidParameter',
      );
      assertError(
        await api('POST', `/images/${m.uuid}/acl?action=add`, { json: ['nope'] }),
        422,
        'InvalidParameter',
      );
      assertError(
        await api('POST', `/images/${m.uuid}/acl?action=zap`, { json: [u1] }),
        422,
        'InvalidParameter',
      );
    });

    test('AddImageIcon / GetImageIcon / DeleteImageIcon', async () => {
      const m = await create({ name: 'iconic' });
      assertError(await api('GET', `/images/${m.uuid}/icon`), 404, 'ResourceNotFound');
      const png = randomBytes(500);
      assertError(
        await api('PUT', `/images/${m.uuid}/icon`, { raw: png, headers: { 'content-type': 'text/plain' } }),
        400,
        'Upload',
      );
      const withIcon = image(
        await api('PUT', `/images/${m.uuid}/icon`, { raw: png, headers: { 'content-type': 'image/png' } }),
      );
      assert.equal(withIcon.icon, true);
      const got = await api('GET', `/images/${m.uuid}/icon`);
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('content-type'), 'image/png');
      assert.ok(got.body.equals(png));
      const etag = got.headers.get('etag') ?? '';
      assert.equal(
        (await api('GET', `/images/${m.uuid}/icon`, { headers: { 'if-none-match': etag } })).status,
        304,
      );
      assertError(
        await api('PUT', `/images/${m.uuid}/icon`, {
          raw: randomBytes(200 * 1024),
          headers: { 'content-type': 'image/png' },
        }),
        400,
        'Upload',
      );
      const without = image(await api('DELETE', `/images/${m.uuid}/icon`));
      assert.equal(without.icon, undefined);
      assertError(await api('GET', `/images/${m.uuid}/icon`), 404, 'ResourceNotFound');
      assert.deepEqual(await backend.blobKeys(`images/${m.uuid}/`), []);
    });

    test('AddImageFileFromUrl: http download with the same checks; private addresses need the option', async () => {
      const data = randomBytes(50_000);
      const remote = http.createServer((req, res) => {
        if (req.url === '/file') {
          res.writeHead(200, { 'Content-Length': data.length });
          res.end(data);
        } else if (req.url === '/empty') {
          res.writeHead(200, { 'Content-Length': 0 });
          res.end();
        } else {
          res.writeHead(404);
          res.end();
        }
      });
      await new Promise<void>((resolve) => remote.listen(0, '127.0.0.1', resolve));
      const origin = `http://127.0.0.1:${(remote.address() as AddressInfo).port}`;
      try {
        const m = await create({ name: 'from-url' });
        const from = (q: string, body: unknown, server = base): Promise<Res> =>
          call(server, 'POST', `/images/${m.uuid}/file/from-url?${q}`, { json: body });
        assertError(await from('compression=gzip', {}), 422, 'InvalidParameter', /file_url/);
        assertError(await from('compression=gzip', { file_url: 'ftp://x/y' }), 422, 'InvalidParameter');
        assertError(await from('', { file_url: `${origin}/file` }), 422, 'InvalidParameter', /compression/);
        assertError(
          await from('compression=gzip', { file_url: `${origin}/missing` }),
          400,
          'Download',
          /HTTP 404/,
        );
        assertError(await from('compression=gzip', { file_url: `${origin}/empty` }), 400, 'Download');
        assertError(
          await from(`compression=gzip&sha1=${'1'.repeat(40)}`, { file_url: `${origin}/file` }),
          400,
          'Download',
        );
        assertError(await from('compression=gzip', { file_url: 'http://127.0.0.1:1/file' }), 400, 'Download');
        // A server without the option does not fetch from loopback.
        assertError(
          await from('compression=gzip', { file_url: `${origin}/file` }, loose.url),
          400,
          'Download',
          /private/,
        );
        const ok = image(await from(`compression=none&sha1=${sha1(data)}`, { file_url: `${origin}/file` }));
        assert.deepEqual(ok.files, [{ sha1: sha1(data), size: data.length, compression: 'none' }]);
        assert.ok((await api('GET', `/images/${m.uuid}/file`)).body.equals(data));
        assert.equal((await backend.blobKeys(`images/${m.uuid}/`)).length, 1);
      } finally {
        await new Promise((resolve) => remote.close(resolve));
      }
    });

    test('ListImages filters', async () => {
      const tag = randomBytes(4).toString('hex');
      const { m: a } = await activeImage({
        name: `flt-${tag}-alpha`,
        version: '1.0.0',
        tags: { k: tag, n: 5 },
        public: true,
      });
      const { m: b } = await activeImage({
        name: `flt-${tag}-beta`,
        version: '2.0.0',
        type: 'zvol',
        os: 'linux',
        nic_driver: 'virtio',
        disk_driver: 'virtio',
        cpu_type: 'host',
        image_size: 1024,
      });
      const c = await create({ name: `flt-${tag}-gamma` });
      const uuids = (r: Res): string[] => images(r).map((i) => i.uuid);
      const list = (q: string): Promise<Res> => api('GET', `/images?${q}`);
      assert.deepEqual(uuids(await list(`name=~${tag}`)), [a.uuid, b.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&state=all`)).sort(), [a.uuid, b.uuid, c.uuid].sort());
      assert.deepEqual(uuids(await list(`name=~${tag}&state=unactivated`)), [c.uuid]);
      assert.deepEqual(uuids(await list(`name=flt-${tag}-alpha`)), [a.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&version=2.0.0`)), [b.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&type=zvol`)), [b.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&type=!zvol`)), [a.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&os=linux`)), [b.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&public=true`)), [a.uuid]);
      assert.deepEqual(uuids(await list(`tag.k=${tag}`)), [a.uuid]);
      assert.deepEqual(uuids(await list(`tag.k=${tag}&tag.n=5`)), [a.uuid]);
      assert.deepEqual(uuids(await list(`tag.k=${tag}&tag.n=6`)), []);
      assert.deepEqual(uuids(await list(`name=~${tag}&sort=published_at.desc`)), [b.uuid, a.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&limit=1`)), [a.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&marker=${b.uuid}`)), [b.uuid]);
      assert.deepEqual(uuids(await list(`name=~${tag}&marker=${encodeURIComponent(b.published_at ?? '')}`)), [
        b.uuid,
      ]);
      assert.deepEqual(uuids(await list(`name=~${tag}&channel=staging`)), []);
      assert.deepEqual(uuids(await list(`name=~${tag}&channel=*`)), [a.uuid, b.uuid]);
      assertError(await list('state=bogus'), 422, 'InvalidParameter');
      assertError(await list('owner=nope'), 422, 'InvalidParameter');
      assertError(await list('limit=abc'), 422, 'InvalidParameter');
      assertError(await list('sort=name'), 422, 'InvalidParameter');
      assertError(await list('marker=yesterday'), 422, 'InvalidParameter');
      assertError(await list(`marker=${randomUUID()}`), 404, 'ResourceNotFound');
      assertError(await list('channel=bogus'), 422, 'ValidationFailed');
    });

    test('paging past 1000 images the way clients page: each image exactly once', async () => {
      const owner = randomUUID();
      const total = 2345;
      const t0 = Date.parse('2023-06-01T00:00:00.000Z');
      const stored: StoredImage[] = [];
      for (let i = 0; i < total; i++) {
        stored.push({
          revision: 1,
          manifest: {
            v: 2,
            uuid: randomUUID(),
            owner,
            name: 'paged',
            version: `1.${i}`,
            state: 'active',
            disabled: false,
            public: true,
            published_at: new Date(t0 + i * 1000).toISOString(),
            type: 'zone-dataset',
            os: 'smartos',
            files: [{ sha1: sha1(Buffer.from(String(i))), size: 1000 + i, compression: 'gzip' }],
            channels: ['dev'],
          },
        });
      }
      for (let i = 0; i < total; i += 100) {
        const created = await Promise.all(stored.slice(i, i + 100).map((s) => main.service.meta.create(s)));
        assert.ok(created.every(Boolean));
      }
      const seen: string[] = [];
      let page = images(await api('GET', `/images?owner=${owner}`));
      assert.equal(page.length, 1000);
      seen.push(...page.map((i) => i.uuid));
      let requests = 1;
      while (page.length > 0) {
        const marker = page[page.length - 1]?.uuid ?? '';
        page = images(await api('GET', `/images?owner=${owner}&marker=${marker}&limit=1000`));
        requests++;
        if (page[0]?.uuid === marker) page = page.slice(1);
        seen.push(...page.map((i) => i.uuid));
        assert.ok(requests < 10, 'paging does not end');
      }
      assert.equal(seen.length, total);
      assert.equal(new Set(seen).size, total);
      assert.deepEqual(
        seen,
        stored.map((s) => s.manifest.uuid),
      );
      // Through the other server too (stateless).
      assert.equal(
        images(await call(other.url, 'GET', `/images?owner=${owner}&limit=5&sort=published_at.desc`))[0]
          ?.uuid,
        stored[total - 1]?.manifest.uuid,
      );
    });

    test('two servers over the same stores serve the same repository', async () => {
      const m = image(await call(main.url, 'POST', '/images', { json: manifest({ name: 'two-servers' }) }));
      const data = randomBytes(10_000);
      image(await call(other.url, 'PUT', `/images/${m.uuid}/file?compression=gzip`, { raw: data }));
      const act = image(await call(main.url, 'POST', `/images/${m.uuid}?action=activate`, { json: {} }));
      const seen = image(await call(other.url, 'GET', `/images/${m.uuid}`));
      assert.deepEqual(seen, act);
      const file = await call(other.url, 'GET', `/images/${m.uuid}/file`);
      assert.ok(file.body.equals(data));
      assert.equal(file.headers.get('content-md5'), md5(data));
      assertError(
        await call(other.url, 'POST', `/images/${m.uuid}?action=activate`, { json: {} }),
        422,
        'ImageAlreadyActivated',
      );
      assert.equal((await call(other.url, 'DELETE', `/images/${m.uuid}`)).status, 204);
      assertError(await call(main.url, 'GET', `/images/${m.uuid}`), 404, 'ResourceNotFound');
    });

    test('request log lines: method, path, status, bytes, ms, user', () => {
      const lines = logsFor('route=Ping');
      assert.ok(lines.length > 0);
      assert.match(
        lines[0] ?? '',
        /^http method=GET path="\/ping" status=200 route=Ping bytes=\d+ ms=\d+ user=- id=/,
      );
    });
  });
}

// ---- what needs only one store pair

describe('graceful shutdown, auth, config', () => {
  test('close() lets an in-flight upload finish, refuses new connections, then stops', async () => {
    const dir = path.join(tmp, 'drain');
    const config = baseConfig(dir);
    const server = await startImagesServer(config, {});
    const m = image(await call(server.url, 'POST', '/images', { json: manifest({ name: 'drain' }) }));
    const data = randomBytes(60_000);
    let closing: Promise<void> | undefined;
    let refused = false;
    const replyP = new Promise<string>((resolve, reject) => {
      const sock = net.connect(server.port, '127.0.0.1');
      let reply = '';
      sock.on('data', (d: Buffer) => {
        reply += d.toString('utf8');
      });
      sock.on('close', () => {
        resolve(reply);
      });
      sock.on('error', reject);
      sock.on('connect', () => {
        sock.write(
          `PUT /images/${m.uuid}/file?compression=gzip HTTP/1.1\r\nHost: x\r\nAccept-Version: *\r\nContent-Length: ${data.length}\r\n\r\n`,
        );
        sock.write(data.subarray(0, 30_000));
        void (async () => {
          await new Promise((r) => setTimeout(r, 200));
          closing = server.close();
          await new Promise((r) => setTimeout(r, 200));
          refused = await fetch(`${server.url}/ping`).then(
            () => false,
            () => true,
          );
          sock.write(data.subarray(30_000));
        })();
      });
    });
    const reply = await replyP;
    const r = parseRaw(reply);
    assert.equal(r.status, 200, reply);
    assert.equal((r.json as ImageManifest).files[0]?.sha1, sha1(data));
    assert.match(reply, /\r\nConnection: close\r\n/i);
    await closing;
    assert.ok(refused, 'a new connection was accepted while closing');
    // The data is all there for the next server.
    const again = await startImagesServer(config, {});
    try {
      assert.ok((await call(again.url, 'GET', `/images/${m.uuid}/file`)).body.equals(data));
    } finally {
      await again.close();
    }
  });

  test('auth = signature: writes need a valid signature; reads may be anonymous (active images only)', async () => {
    const dir = path.join(tmp, 'signed');
    const keysDir = path.join(dir, 'keys');
    fs.mkdirSync(keysDir, { recursive: true });
    const alice = generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(
      path.join(keysDir, 'alice.keys'),
      `${formatSshPublicKey(alice.publicKey, 'alice@ci')}\n`,
    );
    const reporter = new MemoryReporter();
    const server = await startImagesServer(
      { ...baseConfig(dir), auth: { type: 'signature', keysDir, reads: false } },
      { reporter },
    );
    const signed = (): Record<string, string> => {
      const h = signRequest({ keyId: 'alice', privateKey: alice.privateKey });
      return { date: h.date, authorization: h.authorization };
    };
    try {
      assertError(await call(server.url, 'POST', '/images', { json: manifest() }), 401, 'Unauthorized');
      const m = image(
        await call(server.url, 'POST', '/images', { json: manifest({ name: 'signed' }), headers: signed() }),
      );
      assertError(await call(server.url, 'DELETE', `/images/${m.uuid}`), 401, 'Unauthorized');
      assertError(
        await call(server.url, 'PUT', `/images/${m.uuid}/file?compression=gzip`, { raw: 'abc' }),
        401,
        'Unauthorized',
      );
      // Anonymous reads: allowed, but only active images are listed.
      assert.equal(image(await call(server.url, 'GET', `/images/${m.uuid}`)).uuid, m.uuid);
      assert.deepEqual(images(await call(server.url, 'GET', '/images?state=unactivated')), []);
      assert.equal(
        images(await call(server.url, 'GET', '/images?state=unactivated', { headers: signed() })).length,
        1,
      );
      assert.equal((await call(server.url, 'GET', '/ping')).status, 200);
      assert.ok(
        reporter.events.some((e) => e.kind === 'log' && /route=CreateImage .*user=alice/.test(e.message)),
      );
    } finally {
      await server.close();
    }
  });

  test('config: defaults, TOML file, SLIPWAY_IMAGES_* env, flags over env over file', () => {
    const d = defaultImagesConfig('/data');
    assert.equal(d.host, '127.0.0.1');
    assert.equal(d.port, 8080);
    assert.equal(d.maxFileSize, 20 * 1024 ** 3);
    assert.equal(d.strictOrigins, true);
    assert.deepEqual(d.auth, { type: 'none' });
    assert.deepEqual(d.metadata, { kind: 'sqlite', file: '/data/images.sqlite' });
    assert.deepEqual(d.blobs, { kind: 'fs', dir: '/data/blobs' });
    assert.equal(d.channels.find((c) => c.default === true)?.name, 'dev');

    const file = path.join(tmp, 'cfg', 'images.toml');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      [
        'data = "state"',
        'port = 9000',
        'max_file_size = "1GiB"',
        'strict_origins = false',
        'surprise = 1',
        '[metadata]',
        'kind = "postgres"',
        'url = "postgres://db/imgapi"',
        '[auth]',
        'type = "signature"',
        'keys = "keys"',
        '[[channels]]',
        'name = "main"',
        'description = "the only one"',
        'default = true',
        '',
      ].join('\n'),
    );
    const { config, warnings } = loadImagesConfig({
      configFile: file,
      env: {
        SLIPWAY_IMAGES_PORT: '9100',
        SLIPWAY_IMAGES_S3_BUCKET: 'bkt',
        SLIPWAY_IMAGES_S3_ENDPOINT: 'http://s3',
      },
      flags: { port: 9200 },
    });
    assert.equal(config.port, 9200);
    assert.equal(config.dataDir, path.join(path.dirname(file), 'state'));
    assert.equal(config.maxFileSize, 1024 ** 3);
    assert.equal(config.strictOrigins, false);
    assert.deepEqual(config.metadata, { kind: 'postgres', url: 'postgres://db/imgapi' });
    assert.deepEqual(config.blobs, { kind: 's3', bucket: 'bkt', endpoint: 'http://s3' });
    assert.deepEqual(config.auth, {
      type: 'signature',
      keysDir: path.join(path.dirname(file), 'keys'),
      reads: false,
    });
    assert.deepEqual(config.channels, [{ name: 'main', description: 'the only one', default: true }]);
    assert.deepEqual(
      warnings.map((w) => w.key),
      ['surprise'],
    );
    assert.deepEqual(parseImagesConfig('channels = []\n', '/x/c.toml').layer.channels, []);
    assert.deepEqual(imagesConfigFromEnv({ SLIPWAY_IMAGES_STRICT_ORIGINS: 'false' }).strictOrigins, false);
    assert.throws(() => parseImagesConfig('port = "x"\n', '/x/c.toml'), /port/);
    assert.throws(
      () => parseImagesConfig('[[channels]]\nname = "Bad"\ndescription = ""\n', '/x/c.toml'),
      /channel/,
    );
    assert.throws(() => imagesConfigFromEnv({ SLIPWAY_IMAGES_AUTH: 'magic' }), /none or signature/);
    assert.throws(() => loadImagesConfig({ env: { SLIPWAY_IMAGES_AUTH: 'signature' } }), /keys/);
  });

  test('slipway images serve: flags → server; the first SIGINT/SIGTERM drains and returns', async () => {
    const dir = path.join(tmp, 'cli');
    let stop: ((signal: string) => void) | undefined;
    let printed = '';
    const ctx: CliContext = quietCliContext({
      json: true,
      onFirstInterrupt: (fn) => {
        stop = fn;
        return () => {
          stop = undefined;
        };
      },
      print: (text) => {
        printed = text;
      },
    });
    await assert.rejects(imagesServeCommand(['--auth', 'magic'], ctx), /none or signature/);
    await assert.rejects(imagesServeCommand(['--auth', 'signature', '--data', dir], ctx), /keys/);
    const running = imagesServeCommand(['--port', '0', '--data', dir, '--allow-loose-origins'], ctx);
    await until('the server to listen', () => printed !== '');
    const { listening } = JSON.parse(printed) as { listening: string };
    assert.equal((await call(listening, 'GET', '/ping')).status, 200);
    assert.ok(fs.existsSync(path.join(dir, 'images.sqlite')));
    stop?.('SIGTERM');
    const result = await running;
    assert.equal((result.data as { stopped: string }).stopped, 'SIGTERM');
    assert.equal(stop, undefined, 'the interrupt hook is removed');
    await assert.rejects(fetch(`${listening}/ping`));
  });
});
