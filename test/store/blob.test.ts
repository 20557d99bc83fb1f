// The blob stores: the SAME suite runs against a directory and against a real S3 store (Ceph's
// RADOS Gateway, started by scripts/test.sh through scripts/services/ceph-s3.sh; without it the S3
// half fails, never skips). Every failed put is checked to leave nothing: no object, no temp file,
// no pending multipart upload.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import {
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  AbortMultipartUploadCommand,
} from '@aws-sdk/client-s3';
import { isSlipwayError } from '../../src/core/errors.js';
import { isBlobPutError } from '../../src/store/blob-common.js';
import { FsBlobStore } from '../../src/store/blob-fs.js';
import { S3BlobStore } from '../../src/store/blob-s3.js';
import type { BlobStore } from '../../src/store/types.js';
import { s3Env, START_SERVICES_HINT } from '../helpers/services.js';
import { tempDir } from '../helpers/tmp.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const tmp = tempDir('slipway-blob-');
const s3 = s3Env();
const MiB = 1024 * 1024;

/** The body as an async iterable of `chunk`-sized pieces (optionally failing after `failAfter` bytes). */
async function* chunks(data: Buffer, chunk = 64 * 1024, failAfter?: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += chunk) {
    if (failAfter !== undefined && off >= failAfter) throw new Error('the client went away');
    yield data.subarray(off, Math.min(off + chunk, data.length));
    await Promise.resolve();
  }
  if (failAfter !== undefined && failAfter >= data.length) throw new Error('the client went away');
}

/** `size` bytes produced 1 MiB at a time without holding them all (a large upload). */
async function* generated(size: number, failAfter?: number): AsyncGenerator<Uint8Array> {
  const block = Buffer.alloc(MiB);
  for (let off = 0, n = 0; off < size; off += MiB, n++) {
    if (failAfter !== undefined && off >= failAfter) throw new Error('the client went away');
    block.writeUInt32BE(n, 0); // every block different
    yield Buffer.from(block.subarray(0, Math.min(MiB, size - off)));
    await Promise.resolve();
  }
}

function digestsOfGenerated(size: number): { sha1: string; md5: string } {
  const sha1 = createHash('sha1');
  const md5 = createHash('md5');
  const block = Buffer.alloc(MiB);
  for (let off = 0, n = 0; off < size; off += MiB, n++) {
    block.writeUInt32BE(n, 0);
    const part = block.subarray(0, Math.min(MiB, size - off));
    sha1.update(part);
    md5.update(part);
  }
  return { sha1: sha1.digest('hex'), md5: md5.digest('base64') };
}

async function readAll(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/** Hashes a (large) body without keeping it. */
async function sha1Of(body: Readable): Promise<{ sha1: string; size: number }> {
  const h = createHash('sha1');
  let size = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { sha1: h.digest('hex'), size };
}

/** The value, asserted present. */
function must<T>(value: T | undefined): T {
  assert.ok(value !== undefined, 'expected a value');
  return value;
}

const digests = (data: Buffer): { size: number; sha1: string; md5: string } => ({
  size: data.length,
  sha1: createHash('sha1').update(data).digest('hex'),
  md5: createHash('md5').update(data).digest('base64'),
});

// ---- the backends

interface Backend {
  kind: 'fs' | 's3';
  open(): Promise<BlobStore>;
  /** Every trace of `key` the store could leave: objects, temp files, pending multipart uploads. */
  leftovers(store: BlobStore, key: string): Promise<string[]>;
  /** Multipart tests need parts: S3 only. */
  large: boolean;
}

let fsCount = 0;
const fsBackend: Backend = {
  kind: 'fs',
  large: false,
  open: () => FsBlobStore.open({ dir: path.join(tmp, `blobs-${++fsCount}`) }),
  leftovers(store, key) {
    assert.ok(store instanceof FsBlobStore);
    const dir = path.dirname(store.pathOf(key));
    if (!fs.existsSync(dir)) return Promise.resolve([]);
    // Any file in the key's directory: the object itself or a temp file.
    return Promise.resolve(
      fs
        .readdirSync(dir)
        .filter((f) => f === path.basename(key) || f.startsWith(`.${path.basename(key)}.`))
        .map((f) => `file ${f}`),
    );
  },
};

const buckets: S3BlobStore[] = [];

function s3Service(): Record<string, string> {
  if (s3 === undefined) {
    assert.fail(
      `the S3 service is not running (no $SLIPWAY_SERVICES_DIR/ceph/env; SLIPWAY_SERVICES_DIR=${process.env.SLIPWAY_SERVICES_DIR ?? '(unset)'}): ${START_SERVICES_HINT}`,
    );
  }
  return s3;
}

const s3Backend: Backend = {
  kind: 's3',
  large: true,
  async open() {
    const env = s3Service();
    // A fresh bucket each time (the store creates it), under a prefix.
    const store = await S3BlobStore.open({
      bucket: `slipway-blob-test-${randomBytes(5).toString('hex')}`,
      prefix: 'imgapi/',
      env,
    });
    buckets.push(store);
    return store;
  },
  async leftovers(s, key) {
    assert.ok(s instanceof S3BlobStore);
    const Key = s.objectKey(key);
    const objects = await s.client.send(new ListObjectsV2Command({ Bucket: s.bucket, Prefix: Key }));
    const uploads = await s.client.send(new ListMultipartUploadsCommand({ Bucket: s.bucket, Prefix: Key }));
    return [
      ...(objects.Contents ?? []).map((o) => `object ${o.Key ?? ''}`),
      ...(uploads.Uploads ?? []).map((u) => `multipart upload ${u.Key ?? ''} ${u.UploadId ?? ''}`),
    ];
  },
};

after(async () => {
  // Empty and remove the test buckets (whatever a failed test left), then close the clients.
  for (const store of buckets) {
    try {
      const { client, bucket } = store;
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      for (const u of uploads.Uploads ?? []) {
        await client.send(
          new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }),
        );
      }
      const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const o of objects.Contents ?? [])
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    } catch {
      /* best effort */
    }
    await store.close();
  }
});

async function withStore(backend: Backend, fn: (store: BlobStore) => Promise<void>): Promise<void> {
  const store = await backend.open();
  try {
    await fn(store);
  } finally {
    if (backend.kind === 'fs') await store.close(); // S3 stores are closed (and their buckets removed) at the end
  }
}

function defineSuite(backend: Backend): void {
  describe(`blob store: ${backend.kind}`, { timeout: 300_000 }, () => {
    test('put / get / range / head / delete', async () => {
      await withStore(backend, async (store) => {
        assert.equal(store.kind, backend.kind);
        const data = randomBytes(300_000 + 17);
        const key = 'images/0b1c/file-1';
        assert.equal(await store.head(key), undefined);
        assert.equal(await store.get(key), undefined);
        assert.deepEqual(await store.put(key, chunks(data), { maxBytes: data.length }), digests(data));
        assert.deepEqual(await store.head(key), { size: data.length });
        const whole = await store.get(key);
        assert.equal(whole?.size, data.length);
        assert.ok((await readAll(must(whole).body)).equals(data));
        const part = await store.get(key, { start: 1000, end: 1999 });
        assert.equal(part?.size, data.length);
        assert.ok((await readAll(must(part).body)).equals(data.subarray(1000, 2000)));
        const one = await store.get(key, { start: 0, end: 0 });
        assert.ok((await readAll(must(one).body)).equals(data.subarray(0, 1)));
        // An end past the object is clamped.
        const tail = await store.get(key, { start: data.length - 10, end: data.length + 1000 });
        assert.ok((await readAll(must(tail).body)).equals(data.subarray(data.length - 10)));
        // A start past it is refused.
        await assert.rejects(store.get(key, { start: data.length, end: data.length + 5 }), (err: unknown) =>
          isSlipwayError(err, 'INVALID_ARGUMENT'),
        );
        // Overwrite: the new bytes replace the old.
        const data2 = Buffer.from('second version\n');
        assert.deepEqual(
          await store.put(key, chunks(data2), {
            maxBytes: 100,
            expectedLength: data2.length,
            contentType: 'application/octet-stream',
          }),
          digests(data2),
        );
        assert.ok((await readAll(must(await store.get(key)).body)).equals(data2));
        await store.delete(key);
        assert.equal(await store.head(key), undefined);
        assert.equal(await store.get(key), undefined);
        await store.delete(key); // missing: no error
        await store.delete('never/was');
        assert.deepEqual(await backend.leftovers(store, key), []);
      });
    });

    test('an empty body is an empty object', async () => {
      await withStore(backend, async (store) => {
        const empty = Buffer.alloc(0);
        assert.deepEqual(
          await store.put('empty', chunks(empty), { maxBytes: 10, expectedLength: 0 }),
          digests(empty),
        );
        assert.deepEqual(await store.head('empty'), { size: 0 });
        const got = await store.get('empty');
        assert.equal(got?.size, 0);
        assert.equal((await readAll(must(got).body)).length, 0);
        await store.delete('empty');
      });
    });

    test('keys outside [a-z0-9/._-] (or with empty, dot-led or .. segments) are refused', async () => {
      await withStore(backend, async (store) => {
        const bad = [
          '',
          'A',
          'a b',
          '../x',
          'a/../b',
          './a',
          'a/./b',
          '/abs',
          'a//b',
          'a/',
          '.hidden',
          'a/.tmp',
          'ü',
          'a\\b',
          'a:b',
          'x'.repeat(600),
        ];
        for (const key of bad) {
          const refused = (err: unknown): boolean => isSlipwayError(err, 'INVALID_ARGUMENT');
          await assert.rejects(
            store.put(key, chunks(Buffer.from('x')), { maxBytes: 10 }),
            refused,
            JSON.stringify(key),
          );
          await assert.rejects(store.get(key), refused, key);
          await assert.rejects(store.head(key), refused, key);
          await assert.rejects(store.delete(key), refused, key);
        }
        // The edges of what is allowed.
        for (const key of ['a', '0', 'a/b/c', 'a.b_c-d/e.f', 'images/3f5e-9a/file.gz']) {
          await store.put(key, chunks(Buffer.from(key)), { maxBytes: 100 });
          assert.deepEqual(await store.head(key), { size: key.length });
          await store.delete(key);
        }
      });
    });

    test('over maxBytes, or not expectedLength: refused, nothing left, an older object kept', async () => {
      await withStore(backend, async (store) => {
        const key = 'images/limits/file';
        const old = Buffer.from('the old object\n');
        await store.put(key, chunks(old), { maxBytes: 100 });
        const data = randomBytes(200_000);
        const cases: [
          string,
          { maxBytes: number; expectedLength?: number },
          'too-large' | 'length-mismatch',
        ][] = [
          ['over maxBytes', { maxBytes: data.length - 1 }, 'too-large'],
          ['over maxBytes by far', { maxBytes: 1000 }, 'too-large'],
          [
            'shorter than expectedLength',
            { maxBytes: data.length * 2, expectedLength: data.length + 1 },
            'length-mismatch',
          ],
          [
            'longer than expectedLength',
            { maxBytes: data.length * 2, expectedLength: data.length - 1 },
            'length-mismatch',
          ],
        ];
        for (const [name, options, reason] of cases) {
          await assert.rejects(
            store.put(key, chunks(data), options),
            (err: unknown) => isBlobPutError(err, reason) && isSlipwayError(err, 'INVALID_ARGUMENT'),
            name,
          );
          assert.ok((await readAll(must(await store.get(key)).body)).equals(old), name);
          const fresh = `${key}-${reason}`;
          await assert.rejects(
            store.put(fresh, chunks(data), options),
            (err: unknown) => isBlobPutError(err, reason),
            name,
          );
          assert.deepEqual(await backend.leftovers(store, fresh), [], name);
          assert.equal(await store.head(fresh), undefined, name);
        }
        // Exactly maxBytes is fine.
        assert.equal(
          (await store.put(key, chunks(data), { maxBytes: data.length, expectedLength: data.length })).size,
          data.length,
        );
        await store.delete(key);
        assert.deepEqual(await backend.leftovers(store, key), []);
      });
    });

    test('a body that errors midway, or an abort: the error, nothing left', async () => {
      await withStore(backend, async (store) => {
        const data = randomBytes(500_000);
        const key = 'images/broken/file';
        await assert.rejects(
          store.put(key, chunks(data, 64 * 1024, 200_000), { maxBytes: 1e9 }),
          /the client went away/,
        );
        assert.deepEqual(await backend.leftovers(store, key), []);
        // Errors after the last byte (e.g. a trailer check) count too.
        await assert.rejects(
          store.put(key, chunks(data, 64 * 1024, data.length), { maxBytes: 1e9 }),
          /the client went away/,
        );
        assert.deepEqual(await backend.leftovers(store, key), []);
        // Aborted midway.
        const ac = new AbortController();
        async function* slow(): AsyncGenerator<Uint8Array> {
          yield data.subarray(0, 1000);
          ac.abort(new Error('request closed'));
          await new Promise((resolve) => setTimeout(resolve, 50));
          yield data.subarray(1000, 2000);
        }
        await assert.rejects(store.put(key, slow(), { maxBytes: 1e9, signal: ac.signal }), /request closed/);
        assert.deepEqual(await backend.leftovers(store, key), []);
        // Already aborted.
        await assert.rejects(
          store.put(key, chunks(data), { maxBytes: 1e9, signal: AbortSignal.abort() }),
          (err: unknown) => err instanceof Error && err.name === 'AbortError',
        );
        assert.deepEqual(await backend.leftovers(store, key), []);
        // A source that stalls is cut by the abort.
        const stall = new AbortController();
        async function* stalled(): AsyncGenerator<Uint8Array> {
          yield data.subarray(0, 1000);
          await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
        }
        setTimeout(() => {
          stall.abort(new Error('timed out'));
        }, 100);
        await assert.rejects(store.put(key, stalled(), { maxBytes: 1e9, signal: stall.signal }), /timed out/);
        assert.deepEqual(await backend.leftovers(store, key), []);
      });
    });

    if (backend.large) {
      test('multipart (16 MiB parts): complete → one object; a failure after parts were sent → no object, no pending upload', async () => {
        await withStore(backend, async (store) => {
          const size = 40 * MiB + 12345; // three parts
          const key = 'images/large/file';
          const result = await store.put(key, generated(size), {
            maxBytes: 20 * 1024 * MiB,
            expectedLength: size,
          });
          assert.deepEqual(result, { size, ...digestsOfGenerated(size) });
          assert.deepEqual(await store.head(key), { size });
          const got = await store.get(key);
          assert.deepEqual(await sha1Of(must(got).body), { sha1: result.sha1, size });
          const range = await store.get(key, { start: 16 * MiB - 2, end: 16 * MiB + 1 }); // across a part boundary
          assert.equal((await readAll(must(range).body)).length, 4);
          await store.delete(key);
          assert.deepEqual(await backend.leftovers(store, key), []);

          const failing: [string, () => Promise<unknown>, RegExp | ((err: unknown) => boolean)][] = [
            [
              'the body errors after two parts',
              () => store.put(key, generated(size, 35 * MiB), { maxBytes: 1e12 }),
              /the client went away/,
            ],
            [
              'over maxBytes after a part',
              () => store.put(key, generated(size), { maxBytes: 20 * MiB }),
              (err) => isBlobPutError(err, 'too-large'),
            ],
            [
              'shorter than expectedLength',
              () => store.put(key, generated(size), { maxBytes: 1e12, expectedLength: size + 1 }),
              (err) => isBlobPutError(err, 'length-mismatch'),
            ],
          ];
          for (const [name, put, expected] of failing) {
            await assert.rejects(put(), expected, name);
            assert.deepEqual(await backend.leftovers(store, key), [], name);
          }
          // Aborted while parts are in flight.
          const ac = new AbortController();
          setTimeout(() => {
            ac.abort(new Error('request closed'));
          }, 300);
          async function* slowLarge(): AsyncGenerator<Uint8Array> {
            for await (const c of generated(size)) {
              yield c;
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
          }
          await assert.rejects(
            store.put(key, slowLarge(), { maxBytes: 1e12, signal: ac.signal }),
            /request closed/,
          );
          assert.deepEqual(await backend.leftovers(store, key), []);
        });
      });
    }
  });
}

defineSuite(fsBackend);
defineSuite(s3Backend);
