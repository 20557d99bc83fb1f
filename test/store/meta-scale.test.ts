// ListImages at scale: 100 000 images in each metadata store (SQLite in a temp file; PostgreSQL
// from the service scripts/test.sh starts — without it that half fails), then the common filtered
// first pages, timed. The timings are printed, never asserted (DESIGN.md); the results are checked
// against matchesFilter so a fast wrong answer cannot pass.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import type { ImageManifest, ImageState, ListFilter, StoredImage } from '../../src/formats/imgapi-types.js';
import { PostgresMetadataStore } from '../../src/store/meta-postgres.js';
import { SqliteMetadataStore } from '../../src/store/meta-sqlite.js';
import type { MetadataStore } from '../../src/store/types.js';
import { expectedList, stateFor, vacuumUntilAllVisible } from '../helpers/imgapi.js';
import { prng } from '../helpers/prng.js';
import { postgresEnv, START_SERVICES_HINT } from '../helpers/services.js';
import { tempDir } from '../helpers/tmp.js';

const COUNT = 100_000;
const RUNS = 40;
const tmp = tempDir('slipway-meta-scale-');
const pgEnv = postgresEnv();

const NAMES = [
  'base-64',
  'base-64-lts',
  'minimal-64',
  'minimal-64-lts',
  'ubuntu-22.04',
  'debian-12',
  'centos-7',
  'alpine-3',
  'triton-origin-x86_64-24.4.1',
  'manta-storage',
  'sdc-imgapi',
  'sdc-vmapi',
  'sdc-cnapi',
  'sdc-napi',
  'sdc-papi',
  'foo-base', // ~foo
  'my-foo-service', // ~foo
  'FooBar', // not ~foo
  'cloudapi',
  'adminui',
];
const OWNERS = Array.from(
  { length: 5 },
  (_, i) => `00000000-0000-4000-8000-0000000000${i.toString().padStart(2, '0')}`,
);
const OSES = ['smartos', 'smartos', 'smartos', 'linux', 'linux', 'other'];
const TYPES = ['zone-dataset', 'zone-dataset', 'lx-dataset', 'zvol', 'docker', 'other'];
const ROLES = ['db', 'web', 'cache', 'queue', 'lb'];

function generate(): ImageManifest[] {
  const rnd = prng(42);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const hex = (n: number): string =>
    Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join('');
  const out: ImageManifest[] = [];
  let t = Date.parse('2015-01-01T00:00:00Z');
  for (let i = 0; i < COUNT; i++) {
    // Mostly increasing instants, with runs of equal ones (batch publishing) and some ms values.
    if (rnd() < 0.8) t += Math.floor(rnd() * 3_600_000);
    const r = rnd();
    const state: ImageState = stateFor(r);
    const activated = state === 'active' || state === 'disabled';
    const channels = ['dev', 'staging', 'release', 'experimental', 'support'].filter(
      (_, k) => rnd() < ([0.6, 0.3, 0.2, 0.15, 0.05][k] ?? 0),
    );
    const m: ImageManifest = {
      v: 2,
      uuid: `${hex(8)}-${hex(4)}-4${hex(3)}-8${hex(3)}-${hex(12)}`,
      owner: pick(OWNERS),
      name: pick(NAMES),
      version: `${Math.floor(rnd() * 30)}.${Math.floor(rnd() * 10)}.${Math.floor(rnd() * 10)}`,
      state,
      disabled: state === 'disabled',
      public: rnd() < 0.9,
      type: pick(TYPES),
      os: pick(OSES),
      files: activated ? [{ sha1: hex(40), size: 1 + Math.floor(rnd() * 1e9), compression: 'gzip' }] : [],
      description: 'An image for the scale test, with a description of a realistic length.',
      requirements: { min_platform: { '7.0': '20141030T081701Z' } },
      channels,
    };
    if (activated || rnd() < 0.3) m.published_at = new Date(t).toISOString();
    if (rnd() < 0.3) m.tags = { role: pick(ROLES), build: Math.floor(rnd() * 100) };
    out.push(m);
  }
  return out;
}

function filter(over: Partial<ListFilter>): ListFilter {
  return { state: 'active', tags: [], limit: 1000, sort: 'asc', ...over };
}

const all = generate();
const published = all
  .filter((m) => m.published_at !== undefined)
  .sort((a, b) => ((a.published_at ?? '') < (b.published_at ?? '') ? -1 : 1));
const middle = published[Math.floor(published.length / 2)] ?? assert.fail('no middle image');
const middleAt = middle.published_at ?? assert.fail('no published_at');

const QUERIES: [string, ListFilter][] = [
  ['state=active name=~foo channel=dev limit=1000', filter({ name: { substring: 'foo' }, channel: 'dev' })],
  ['  … sort=desc', filter({ name: { substring: 'foo' }, channel: 'dev', sort: 'desc' })],
  ['state=active limit=1000 (no channel)', filter({})],
  ['state=active channel=dev limit=1000', filter({ channel: 'dev' })],
  [
    'state=active name=~zzz channel=dev (no match: whole scan)',
    filter({ name: { substring: 'zzz' }, channel: 'dev' }),
  ],
  ['state=active name=~zzz (no channel, no match)', filter({ name: { substring: 'zzz' } })],
  [
    'state=all channel=release tag.role=db',
    filter({ state: 'all', channel: 'release', tags: [['role', 'db']] }),
  ],
  [
    'state=active channel=dev marker=<middle> (page 51)',
    filter({ channel: 'dev', markerPublishedAt: middleAt, markerUuid: middle.uuid }),
  ],
  [
    'owner= os=linux type=!zvol channel=staging',
    filter({
      owner: OWNERS[1] ?? '',
      os: 'linux',
      type: { value: 'zvol', negate: true },
      channel: 'staging',
    }),
  ],
  ['name=foo-base (exact) channel=staging', filter({ name: { exact: 'foo-base' }, channel: 'staging' })],
  ['state=unactivated channel=* limit=1000', filter({ state: 'unactivated', channel: '*' })],
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function measure(label: string, store: MetadataStore): Promise<void> {
  const lines: string[] = [];
  for (const [name, f] of QUERIES) {
    const first = await store.list(f);
    assert.deepEqual(
      first.map((i) => i.manifest.uuid),
      expectedList(all, f),
      `${label}: ${name}`,
    );
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = process.hrtime.bigint();
      await store.list(f);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    lines.push(
      `  ${name.padEnd(58)} ${String(first.length).padStart(5)} rows  p50 ${percentile(times, 50).toFixed(1).padStart(6)} ms  p99 ${percentile(times, 99).toFixed(1).padStart(6)} ms`,
    );
  }
  console.log(`${label}: list() over ${COUNT} images, ${RUNS} runs each\n${lines.join('\n')}`);
}

async function seed(store: MetadataStore): Promise<number> {
  const images: StoredImage[] = all.map((manifest) => ({ manifest, revision: 1 }));
  const t0 = Date.now();
  assert.ok(store.createMany !== undefined);
  assert.equal(await store.createMany(images), COUNT);
  return (Date.now() - t0) / 1000;
}

test(
  `SQLite: ${COUNT} images, filtered first pages (timings printed, not asserted)`,
  { timeout: 300_000 },
  async () => {
    const store = await SqliteMetadataStore.open({ file: path.join(tmp, 'scale.db') });
    try {
      const seconds = await seed(store);
      console.log(`SQLite: seeded ${COUNT} images in ${seconds.toFixed(1)} s (createMany)`);
      await measure('SQLite', store);
    } finally {
      await store.close();
    }
  },
);

let pgDatabase: string | undefined;
after(async () => {
  if (pgDatabase === undefined || pgEnv?.PG_URL === undefined) return;
  const admin = new pg.Client({ connectionString: pgEnv.PG_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${pgDatabase} WITH (FORCE)`);
  await admin.end();
});

test(
  `PostgreSQL: ${COUNT} images, filtered first pages (timings printed, not asserted)`,
  { timeout: 300_000 },
  async () => {
    if (pgEnv?.PG_URL === undefined) {
      assert.fail(
        `the PostgreSQL service is not running (no $SLIPWAY_SERVICES_DIR/postgres/env): ${START_SERVICES_HINT}`,
      );
    }
    pgDatabase = `slipway_scale_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: pgEnv.PG_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${pgDatabase}`);
    await admin.end();
    const u = new URL(pgEnv.PG_URL);
    u.pathname = `/${pgDatabase}`;
    const store = await PostgresMetadataStore.open({ url: u.toString() });
    // This scratch database's tables skip autovacuum: the VACUUM below would otherwise race it.
    const probe = new pg.Client({ connectionString: u.toString() });
    await probe.connect();
    for (const table of ['images', 'image_channels', 'image_tags']) {
      await probe.query(`ALTER TABLE ${table} SET (autovacuum_enabled = false)`);
    }
    try {
      const seconds = await seed(store);
      console.log(`PostgreSQL: seeded ${COUNT} images in ${seconds.toFixed(1)} s (createMany)`);
      // What autovacuum does soon after a bulk load: statistics and the visibility map (index-only
      // scans). A VACUUM that runs while another session holds an older snapshot cannot mark the
      // new rows all-visible, so repeat it until the pages are.
      const t0 = Date.now();
      const visible = await vacuumUntilAllVisible(() => store.analyze(), probe);
      console.log(
        `PostgreSQL: VACUUM ANALYZE in ${((Date.now() - t0) / 1000).toFixed(1)} s (${(visible * 100).toFixed(0)}% of the pages all-visible)`,
      );
      await measure('PostgreSQL', store);
    } finally {
      await probe.end();
      await store.close();
    }
  },
);
