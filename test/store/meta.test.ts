// The metadata stores: the SAME suite runs against SQLite (a temp file) and PostgreSQL (the
// service scripts/test.sh starts through scripts/services/postgres.sh; without it the PostgreSQL
// half fails, never skips). List results are cross-checked against matchesFilter (formats/imgapi.ts),
// the pure statement of ListImages' semantics, plus sorting, marker and limit done in JS.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { isSlipwayError } from '../../src/core/errors.js';
import type { ImageManifest, ListFilter, StoredImage } from '../../src/formats/imgapi-types.js';
import { PostgresMetadataStore } from '../../src/store/meta-postgres.js';
import { SqliteMetadataStore } from '../../src/store/meta-sqlite.js';
import { openStores } from '../../src/store/index.js';
import type { MetadataStore } from '../../src/store/types.js';
import { expectedList } from '../helpers/imgapi.js';
import { postgresEnv, START_SERVICES_HINT } from '../helpers/services.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('slipway-meta-');
const pgEnv = postgresEnv();

const OWNER_A = '930896af-bf8c-48d4-885c-6573a94b1853';
const OWNER_B = '00000000-0000-0000-0000-00000000000b';
const SHA1 = 'a'.repeat(40);

/** A deterministic uuid from a number (sorts by the number). */
function uuidOf(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

/** A manifest; `over` keys set to undefined are left out (as JSON would). */
function manifest(n: number, over: Partial<ImageManifest> = {}): ImageManifest {
  const m: ImageManifest = {
    v: 2,
    uuid: uuidOf(n),
    owner: OWNER_A,
    name: 'base-64',
    version: '1.0.0',
    state: 'active',
    disabled: false,
    public: true,
    published_at: '2020-01-01T00:00:00Z',
    type: 'zone-dataset',
    os: 'smartos',
    files: [{ sha1: SHA1, size: 100, compression: 'gzip' }],
    channels: ['dev'],
    ...over,
  };
  return Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined)) as unknown as ImageManifest;
}

function stored(m: ImageManifest, extra: Partial<StoredImage> = {}): StoredImage {
  return { manifest: m, revision: 1, ...extra };
}

function filter(over: Partial<ListFilter> = {}): ListFilter {
  return { state: 'all', tags: [], limit: 1000, sort: 'asc', ...over };
}

const uuids = (images: StoredImage[]): string[] => images.map((i) => i.manifest.uuid);

// ---- the backends

interface Backend {
  kind: 'sqlite' | 'postgres';
  /** A fresh, empty database; `open()` opens a store over it (any number of times). */
  fresh(): Promise<{
    open(): Promise<MetadataStore>;
    config: { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };
  }>;
}

let dbCount = 0;
const sqliteBackend: Backend = {
  kind: 'sqlite',
  fresh() {
    const file = path.join(tmp, `meta-${++dbCount}.db`);
    return Promise.resolve({
      open: () => SqliteMetadataStore.open({ file }),
      config: { kind: 'sqlite', file },
    });
  },
};

/** Databases this file created, dropped at the end. */
const pgDatabases: string[] = [];

function pgService(): string {
  if (pgEnv?.PG_URL === undefined) {
    assert.fail(
      `the PostgreSQL service is not running (no $SLIPWAY_SERVICES_DIR/postgres/env; SLIPWAY_SERVICES_DIR=${process.env.SLIPWAY_SERVICES_DIR ?? '(unset)'}): ${START_SERVICES_HINT}`,
    );
  }
  return pgEnv.PG_URL;
}

const postgresBackend: Backend = {
  kind: 'postgres',
  async fresh() {
    const base = pgService();
    const name = `slipway_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    pgDatabases.push(name);
    const u = new URL(base);
    u.pathname = `/${name}`;
    const url = u.toString();
    return { open: () => PostgresMetadataStore.open({ url }), config: { kind: 'postgres', url } };
  },
};

after(async () => {
  if (pgEnv?.PG_URL === undefined || pgDatabases.length === 0) return;
  const admin = new pg.Client({ connectionString: pgEnv.PG_URL });
  await admin.connect();
  for (const name of pgDatabases) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

/** Opens a store over a fresh database, runs `fn`, closes the store. */
async function withStore(backend: Backend, fn: (store: MetadataStore) => Promise<void>): Promise<void> {
  const db = await backend.fresh();
  const store = await db.open();
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

// ---- the fixture for filters: every field varied

function filterFixture(): ImageManifest[] {
  const ms: ImageManifest[] = [];
  let n = 1;
  const add = (over: Partial<ImageManifest>): void => {
    ms.push(manifest(n++, over));
  };
  add({ name: 'foo', published_at: '2021-01-01T00:00:00Z' });
  add({ name: 'my-foo-image', published_at: '2021-01-01T00:00:00.000Z', tags: { role: 'db', size: 5 } });
  add({ name: 'FooBar', published_at: '2021-01-01T00:00:00.500Z', tags: { role: 'web', beta: true } });
  add({
    name: 'FOO',
    version: '2.0.0-foo',
    published_at: '2021-01-02T00:00:00Z',
    channels: ['dev', 'staging'],
  });
  add({ name: 'base-64', version: '1.2.3', owner: OWNER_B, published_at: '2021-01-03T00:00:00Z' });
  add({
    name: 'base-64',
    version: '1.2.4',
    os: 'linux',
    type: 'lx-dataset',
    published_at: '2021-01-03T00:00:00Z',
  });
  add({ name: 'ubuntu', os: 'linux', type: 'zvol', public: false, published_at: '2021-02-01T12:00:00Z' });
  add({
    name: 'docker-thing',
    type: 'docker',
    channels: ['experimental'],
    published_at: '2021-03-01T00:00:00Z',
  });
  add({ name: 'disabled-one', state: 'disabled', disabled: true, published_at: '2021-04-01T00:00:00Z' });
  add({ name: 'unactivated-foo', state: 'unactivated', published_at: undefined, files: [] });
  add({ name: 'imported', state: 'unactivated', published_at: '2019-06-01T00:00:00Z', files: [] });
  add({ name: 'creating-one', state: 'creating', published_at: undefined, files: [] });
  add({ name: 'failed-one', state: 'failed', published_at: undefined, files: [], channels: ['staging'] });
  add({
    name: 'odd-unact-disabled',
    state: 'unactivated',
    disabled: true,
    published_at: undefined,
    files: [],
  });
  add({ name: 'no-channels', channels: [], published_at: '2021-05-01T00:00:00Z' });
  add({ name: 'tagged', tags: { role: 'db', long: 'x'.repeat(150), obj: { a: 1 }, empty: '' } });
  add({ name: 'tagged-2', tags: { role: 'db', size: '5', beta: 'true' }, channels: ['release', 'dev'] });
  add({ name: 'with space', version: '1.0.0+build', published_at: '2022-01-01T00:00:00Z' });
  add({ name: 'support-only', channels: ['support'], published_at: '2018-01-01T00:00:00Z' });
  add({ name: 'public-false', public: false, published_at: '2022-02-01T00:00:00Z', channels: ['staging'] });
  return ms;
}

const FILTERS: [string, Partial<ListFilter>][] = [
  ['all', {}],
  ['state=active', { state: 'active' }],
  ['state=disabled', { state: 'disabled' }],
  ['state=unactivated (creating and failed included)', { state: 'unactivated' }],
  ['state=creating', { state: 'creating' }],
  ['state=failed', { state: 'failed' }],
  ['name=foo (exact)', { name: { exact: 'foo' } }],
  ['name=~foo (case-sensitive substring)', { name: { substring: 'foo' } }],
  ['name=~Foo', { name: { substring: 'Foo' } }],
  ['name=~FOO', { name: { substring: 'FOO' } }],
  ['name=~% (no LIKE wildcards)', { name: { substring: '%' } }],
  ['name=~_ (no LIKE wildcards)', { name: { substring: '_' } }],
  ['name=~ (with space)', { name: { substring: 'h s' } }],
  ['version=1.2.3', { version: { exact: '1.2.3' } }],
  ['version=~foo', { version: { substring: 'foo' } }],
  ['version=~+build', { version: { substring: '+build' } }],
  ['owner', { owner: OWNER_B }],
  ['os=linux', { os: 'linux' }],
  ['type=zvol', { type: { value: 'zvol', negate: false } }],
  ['type=!zone-dataset', { type: { value: 'zone-dataset', negate: true } }],
  ['public=true', { public: true }],
  ['public=false', { public: false }],
  ['tag.role=db', { tags: [['role', 'db']] }],
  [
    'tag.role=db&tag.size=5 (numbers as strings)',
    {
      tags: [
        ['role', 'db'],
        ['size', '5'],
      ],
    },
  ],
  ['tag.beta=true (booleans as strings)', { tags: [['beta', 'true']] }],
  ['tag.role= (any value)', { tags: [['role', '']] }],
  ['tag.obj= (an object value: found by key only)', { tags: [['obj', '']] }],
  ['tag.obj={"a":1} (never)', { tags: [['obj', '{"a":1}']] }],
  ['tag.long=<150 x> (too long to search)', { tags: [['long', 'x'.repeat(150)]] }],
  ['tag.long=', { tags: [['long', '']] }],
  ['tag.missing=1', { tags: [['missing', '1']] }],
  ['channel=dev', { channel: 'dev' }],
  ['channel=staging', { channel: 'staging' }],
  ['channel=*', { channel: '*' }],
  ['channel=unknown', { channel: 'nope' }],
  ['channel=dev&state=active&name=~foo', { channel: 'dev', state: 'active', name: { substring: 'foo' } }],
  ['channel=staging&state=all&sort=desc', { channel: 'staging', sort: 'desc' }],
  ['sort=desc', { sort: 'desc' }],
  ['limit=1', { limit: 1 }],
  ['limit=3, desc', { limit: 3, sort: 'desc' }],
  ['marker date (inclusive)', { markerPublishedAt: '2021-01-03T00:00:00Z' }],
  ['marker date with ms equal to a run', { markerPublishedAt: '2021-01-01T00:00:00.000Z' }],
  ['marker date between .000 and .500', { markerPublishedAt: '2021-01-01T00:00:00.250Z' }],
  ['marker date, desc', { markerPublishedAt: '2021-01-03T00:00:00Z', sort: 'desc' }],
  ['marker uuid in a run', { markerPublishedAt: '2021-01-03T00:00:00Z', markerUuid: uuidOf(6) }],
  [
    'marker uuid in a run, channel',
    { markerPublishedAt: '2021-01-01T00:00:00Z', markerUuid: uuidOf(2), channel: 'dev' },
  ],
  ['marker + limit + state', { markerPublishedAt: '2021-01-01T00:00:00Z', limit: 2, state: 'active' }],
];

function defineSuite(backend: Backend): void {
  describe(`metadata store: ${backend.kind}`, () => {
    test('create → revision 1; get returns what was stored; a duplicate uuid → false', async () => {
      await withStore(backend, async (store) => {
        assert.equal(store.kind, backend.kind);
        const m = manifest(1, {
          tags: { a: 'b' },
          origin: uuidOf(99),
          description: 'd',
          channels: ['dev', 'staging'],
        });
        const image = stored(m, {
          revision: 7, // ignored: a new image is revision 1
          fileKey: 'images/x/file',
          fileMd5: 'md5==',
          iconKey: 'images/x/icon',
          iconContentType: 'image/png',
        });
        assert.equal(await store.create(image), true);
        const got = await store.get(m.uuid);
        assert.deepEqual(got, { ...image, revision: 1 });
        assert.equal(await store.create(stored({ ...m, name: 'other' })), false);
        assert.equal((await store.get(m.uuid))?.manifest.name, 'base-64');
        assert.equal(await store.get(uuidOf(2)), undefined);
        // Without optional fields nothing extra appears.
        const bare = stored(manifest(3, { published_at: undefined, channels: undefined, files: [] }));
        assert.equal(await store.create(bare), true);
        assert.deepEqual(await store.get(uuidOf(3)), bare);
      });
    });

    test('update and delete are conditional on the revision; stale → false, nothing changed', async () => {
      await withStore(backend, async (store) => {
        const m = manifest(1);
        await store.create(stored(m));
        assert.equal(await store.update(stored({ ...m, name: 'renamed' }, { fileKey: 'k1' }), 1), true);
        let got = await store.get(m.uuid);
        assert.equal(got?.revision, 2);
        assert.equal(got?.manifest.name, 'renamed');
        assert.equal(got?.fileKey, 'k1');
        // A writer that read revision 1 loses.
        assert.equal(await store.update(stored({ ...m, name: 'stale' }), 1), false);
        assert.equal(await store.delete(m.uuid, 1), false);
        got = await store.get(m.uuid);
        assert.equal(got?.revision, 2);
        assert.equal(got?.manifest.name, 'renamed');
        // Fields dropped by an update are gone.
        assert.equal(await store.update(stored({ ...m, name: 'again' }), 2), true);
        assert.equal((await store.get(m.uuid))?.fileKey, undefined);
        assert.equal(await store.delete(m.uuid, 3), true);
        assert.equal(await store.get(m.uuid), undefined);
        assert.equal(await store.delete(m.uuid, 3), false);
        assert.equal(await store.update(stored(m), 3), false);
        assert.equal(await store.get(m.uuid), undefined);
        // The uuid can be created again, from revision 1.
        assert.equal(await store.create(stored(m)), true);
        assert.equal((await store.get(m.uuid))?.revision, 1);
      });
    });

    test('concurrent updates from the same revision: exactly one wins', async () => {
      const db = await backend.fresh();
      const a = await db.open();
      const b = await db.open();
      try {
        const m = manifest(1);
        await a.create(stored(m));
        for (let round = 0; round < 5; round++) {
          const rev = (await a.get(m.uuid))?.revision ?? 0;
          const results = await Promise.all([
            a.update(stored({ ...m, version: `a${round}` }), rev),
            b.update(stored({ ...m, version: `b${round}` }), rev),
            a.update(stored({ ...m, version: `c${round}` }), rev),
          ]);
          assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${JSON.stringify(results)}`);
          assert.equal((await b.get(m.uuid))?.revision, rev + 1);
        }
      } finally {
        await a.close();
        await b.close();
      }
    });

    test('two store instances over one database see each other’s writes', async () => {
      const db = await backend.fresh();
      const a = await db.open();
      const b = await db.open();
      try {
        const m = manifest(1, { channels: ['dev'] });
        assert.equal(await a.create(stored(m)), true);
        assert.equal((await b.get(m.uuid))?.manifest.name, 'base-64');
        assert.equal(await b.create(stored(m)), false);
        assert.deepEqual(uuids(await b.list(filter({ channel: 'dev' }))), [m.uuid]);
        assert.equal(await b.update(stored({ ...m, channels: ['staging'] }), 1), true);
        assert.deepEqual(uuids(await a.list(filter({ channel: 'dev' }))), []);
        assert.deepEqual(uuids(await a.list(filter({ channel: 'staging' }))), [m.uuid]);
        assert.equal(await a.update(stored(m), 1), false);
        assert.equal(await a.delete(m.uuid, 2), true);
        assert.equal(await b.get(m.uuid), undefined);
      } finally {
        await a.close();
        await b.close();
      }
    });

    test('list: every ListFilter field, cross-checked with matchesFilter', async () => {
      await withStore(backend, async (store) => {
        const all = filterFixture();
        for (const m of all) assert.equal(await store.create(stored(m)), true);
        for (const [name, over] of FILTERS) {
          const f = filter(over);
          assert.deepEqual(uuids(await store.list(f)), expectedList(all, f), name);
        }
        // A few facts spelled out, so the cross-check cannot agree with a wrong reference.
        const names = async (over: Partial<ListFilter>): Promise<string[]> =>
          (await store.list(filter(over))).map((i) => i.manifest.name);
        assert.deepEqual(await names({ name: { substring: 'foo' }, state: 'active' }), [
          'foo',
          'my-foo-image',
        ]);
        assert.deepEqual(await names({ name: { substring: 'Foo' } }), ['FooBar']);
        assert.deepEqual((await names({ type: { value: 'zone-dataset', negate: true } })).sort(), [
          'base-64',
          'docker-thing',
          'ubuntu',
        ]);
        assert.deepEqual((await names({ tags: [['role', 'db']] })).sort(), [
          'my-foo-image',
          'tagged',
          'tagged-2',
        ]);
        assert.deepEqual((await names({ tags: [['size', '5']] })).sort(), ['my-foo-image', 'tagged-2']);
        assert.deepEqual(await names({ state: 'creating' }), ['creating-one']);
        assert.deepEqual((await names({ state: 'unactivated' })).sort(), [
          'creating-one',
          'failed-one',
          'imported',
          'odd-unact-disabled',
          'unactivated-foo',
        ]);
        assert.deepEqual(await names({ state: 'disabled' }), ['disabled-one']);
        assert.equal((await names({ channel: '*' })).length, all.length);
        assert.equal((await names({})).length, all.length);
        assert.deepEqual(await names({ channel: 'support' }), ['support-only']);
      });
    });

    test('list: sorted by (published_at, uuid); no published_at first ascending, last descending', async () => {
      await withStore(backend, async (store) => {
        const all = [
          manifest(5, { published_at: '2020-01-02T00:00:00Z' }),
          manifest(4, { published_at: undefined, state: 'unactivated' }),
          manifest(3, { published_at: '2020-01-01T00:00:00.001Z' }),
          manifest(2, { published_at: '2020-01-01T00:00:00Z' }),
          manifest(1, { published_at: '2020-01-02T00:00:00Z' }),
          manifest(6, { published_at: undefined, state: 'unactivated' }),
        ];
        for (const m of all) await store.create(stored(m));
        const asc = [uuidOf(4), uuidOf(6), uuidOf(2), uuidOf(3), uuidOf(1), uuidOf(5)];
        assert.deepEqual(uuids(await store.list(filter())), asc);
        assert.deepEqual(uuids(await store.list(filter({ sort: 'desc' }))), [...asc].reverse());
        assert.deepEqual(
          uuids(await store.list(filter({ channel: 'dev', sort: 'desc' }))),
          [...asc].reverse(),
        );
        assert.deepEqual(uuids(await store.list(filter({ limit: 2 }))), asc.slice(0, 2));
        assert.deepEqual(uuids(await store.list(filter({ limit: 2, sort: 'desc' }))), [uuidOf(5), uuidOf(1)]);
        // An image without published_at never passes a marker.
        assert.deepEqual(
          uuids(await store.list(filter({ markerPublishedAt: '1970-01-01T00:00:00Z' }))),
          asc.slice(2),
        );
      });
    });

    test('marker paging over 2 500 images with runs of equal published_at: each image once, in order', async () => {
      await withStore(backend, async (store) => {
        // Runs of 1..37 images per instant, so page boundaries fall inside runs; one run of 1 200
        // (longer than a page) too.
        const all: ImageManifest[] = [];
        let n = 1;
        let t = Date.parse('2020-01-01T00:00:00Z');
        let run = 0;
        while (all.length < 2500) {
          const len = run === 40 ? 1200 : 1 + ((run * 7) % 37);
          const at = new Date(t).toISOString();
          for (let i = 0; i < len && all.length < 2500; i++) {
            // uuids not in insertion order within a run
            all.push(manifest(((n * 7919) % 100_000) + 1, { published_at: at, channels: ['dev'] }));
            n++;
          }
          t += 1000;
          run++;
        }
        assert.equal(new Set(all.map((m) => m.uuid)).size, 2500);
        if (store.createMany !== undefined)
          assert.equal(await store.createMany(all.map((m) => stored(m))), 2500);
        else for (const m of all) await store.create(stored(m));
        const byUuid = new Map(all.map((m) => [m.uuid, m]));

        // The reference client (sdc-clients listImages without a limit): pages of 1000, the next
        // page from the last uuid, a first element equal to the marker dropped, stop on a short or
        // empty page. The service resolves a marker uuid to its published_at.
        const page = async (marker: string | undefined, channel?: string): Promise<string[]> => {
          const f = filter({ state: 'active', limit: 1000 });
          if (channel !== undefined) f.channel = channel;
          if (marker !== undefined) {
            f.markerUuid = marker;
            f.markerPublishedAt = byUuid.get(marker)?.published_at;
          }
          return uuids(await store.list(f));
        };
        for (const channel of [undefined, 'dev']) {
          const got: string[] = [];
          let marker: string | undefined;
          let requests = 0;
          for (;;) {
            const images = await page(marker, channel);
            requests++;
            const stop = images.length < 1000;
            if (marker !== undefined && images[0] === marker) images.shift();
            if (images.length === 0) break;
            const next = images[images.length - 1];
            if (marker !== undefined && marker === next) break;
            marker = next;
            got.push(...images);
            if (stop) break;
            assert.ok(requests < 10, 'paging does not end');
          }
          assert.equal(got.length, 2500, `channel ${channel ?? '(none)'}`);
          assert.deepEqual(got, expectedList(all, filter({ state: 'active', limit: 5000 })));
        }

        // Without the marker's uuid the bound is published_at ≥ marker alone: the whole run is back.
        const mid = expectedList(all, filter({ limit: 5000 }))[1500] ?? '';
        const at = byUuid.get(mid)?.published_at ?? '';
        const f = filter({ markerPublishedAt: at });
        const inclusive = uuids(await store.list(f));
        assert.deepEqual(inclusive, expectedList(all, f));
        assert.equal(byUuid.get(inclusive[0] ?? '')?.published_at, at);
        assert.ok(inclusive.indexOf(mid) > 0, 'the run before the marker uuid is included');
      });
    });

    test('update keeps the list indexes in step (channels, tags, published_at, state)', async () => {
      await withStore(backend, async (store) => {
        const m = manifest(1, { state: 'unactivated', published_at: undefined, files: [], tags: { a: '1' } });
        await store.create(stored(m));
        assert.deepEqual(uuids(await store.list(filter({ state: 'active', channel: 'dev' }))), []);
        const active: ImageManifest = {
          ...m,
          state: 'active',
          published_at: '2024-05-05T05:05:05.555Z',
          channels: ['staging', 'release'],
          tags: { b: '2' },
        };
        assert.equal(await store.update(stored(active), 1), true);
        assert.deepEqual(uuids(await store.list(filter({ channel: 'dev' }))), []);
        assert.deepEqual(uuids(await store.list(filter({ state: 'active', channel: 'release' }))), [m.uuid]);
        assert.deepEqual(uuids(await store.list(filter({ tags: [['a', '1']] }))), []);
        assert.deepEqual(uuids(await store.list(filter({ tags: [['b', '2']], channel: 'staging' }))), [
          m.uuid,
        ]);
        assert.deepEqual(
          uuids(
            await store.list(filter({ markerPublishedAt: '2024-05-05T05:05:05.555Z', channel: 'release' })),
          ),
          [m.uuid],
        );
        assert.equal(await store.update(stored({ ...active, state: 'disabled', disabled: true }), 2), true);
        assert.deepEqual(uuids(await store.list(filter({ state: 'active' }))), []);
        assert.deepEqual(uuids(await store.list(filter({ state: 'disabled', channel: 'staging' }))), [
          m.uuid,
        ]);
        assert.equal(await store.delete(m.uuid, 3), true);
        assert.deepEqual(uuids(await store.list(filter({ channel: 'staging' }))), []);
        assert.deepEqual(uuids(await store.list(filter({ tags: [['b', '']] }))), []);
      });
    });

    test('dependents: images whose origin is the uuid, optionally in one channel', async () => {
      await withStore(backend, async (store) => {
        const base = manifest(1, { channels: ['dev', 'staging'] });
        await store.create(stored(base));
        await store.create(stored(manifest(3, { origin: base.uuid, channels: ['dev'] })));
        await store.create(stored(manifest(2, { origin: base.uuid, channels: ['staging', 'dev'] })));
        await store.create(stored(manifest(4, { origin: base.uuid, channels: [] })));
        await store.create(stored(manifest(5, { origin: uuidOf(3), channels: ['staging'] })));
        assert.deepEqual(await store.dependents(base.uuid), [uuidOf(2), uuidOf(3), uuidOf(4)]);
        assert.deepEqual(await store.dependents(base.uuid, '*'), [uuidOf(2), uuidOf(3), uuidOf(4)]);
        assert.deepEqual(await store.dependents(base.uuid, 'dev'), [uuidOf(2), uuidOf(3)]);
        assert.deepEqual(await store.dependents(base.uuid, 'staging'), [uuidOf(2)]);
        assert.deepEqual(await store.dependents(base.uuid, 'release'), []);
        assert.deepEqual(await store.dependents(uuidOf(3)), [uuidOf(5)]);
        assert.deepEqual(await store.dependents(uuidOf(5)), []);
        const child = await store.get(uuidOf(2));
        assert.ok(child !== undefined);
        assert.equal(
          await store.update(stored({ ...child.manifest, channels: ['dev'] }), child.revision),
          true,
        );
        assert.deepEqual(await store.dependents(base.uuid, 'staging'), []);
        assert.equal(await store.delete(uuidOf(3), 1), true);
        assert.deepEqual(await store.dependents(base.uuid, 'dev'), [uuidOf(2)]);
      });
    });

    test('a closed store rejects (never throws synchronously)', async () => {
      const db = await backend.fresh();
      const store = await db.open();
      await store.close();
      await store.close(); // twice is fine
      const pending = store.get(uuidOf(1));
      assert.ok(pending instanceof Promise);
      await assert.rejects(pending, (err: unknown) => isSlipwayError(err));
      await assert.rejects(store.list(filter()), (err: unknown) => isSlipwayError(err));
      await assert.rejects(store.create(stored(manifest(1))), (err: unknown) => isSlipwayError(err));
    });

    test('openStores() opens this store (and a directory of blobs) from a config', async () => {
      const db = await backend.fresh();
      const stores = await openStores({
        metadata: db.config,
        blobs: { kind: 'fs', dir: path.join(tmp, `blobs-${++dbCount}`) },
      });
      try {
        assert.equal(stores.meta.kind, backend.kind);
        assert.equal(stores.blobs.kind, 'fs');
        assert.equal(await stores.meta.create(stored(manifest(1))), true);
      } finally {
        await stores.meta.close();
        await stores.blobs.close();
      }
      // Reopening an existing database keeps its data (migrations are idempotent).
      const again = await db.open();
      try {
        assert.equal((await again.get(uuidOf(1)))?.revision, 1);
      } finally {
        await again.close();
      }
    });
  });
}

test('SQLite: a path that cannot be a database fails to open with IO', async () => {
  await assert.rejects(SqliteMetadataStore.open({ file: tmp }), (err: unknown) => isSlipwayError(err, 'IO'));
});

test('PostgreSQL: a wrong password fails to open with IO, without the password in the message', async () => {
  const u = new URL(pgService());
  u.password = 'not-the-password';
  await assert.rejects(
    PostgresMetadataStore.open({ url: u.toString() }),
    (err: unknown) => isSlipwayError(err, 'IO') && !err.message.includes('not-the-password'),
  );
});

defineSuite(sqliteBackend);
defineSuite(postgresBackend);
