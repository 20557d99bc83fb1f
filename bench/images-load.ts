/**
 * The Node half of bench/images.sh (the image repository benchmark), three commands:
 *
 *   node dist/bench/images-load.js seed (--sqlite FILE | --postgres URL) --blobs DIR --count N --info OUT.json
 *   node dist/bench/images-load.js latency --url URL --info INFO.json [--runs 300] [--vars FILE]
 *   node dist/bench/images-load.js load --url URL --info INFO.json [--duration 60] [--clients 200]
 *        [--pid SERVER_PID] [--mix list=30,get=30,download=30,upload=10] [--vars FILE] [--md FILE]
 *
 * seed: COUNT deterministic, realistic manifests (names, versions, owners, channels, tags, a few
 * origin chains, published_at spread over ten years) through openStores().meta.createMany; on
 * PostgreSQL then VACUUM ANALYZE until the pages are all-visible (what autovacuum does after a bulk
 * load). Writes INFO.json: the ListImages queries with the expected first page (count and a digest
 * of the uuids, computed with the API's own matchesFilter), a sample of uuids, owners and names.
 *
 * latency: each query of INFO.json once (its page checked against the expectation), a few warm-up
 * requests, then RUNS sequential requests on one keep-alive connection: p50/p90/p99/max of the
 * time to the last byte, measured by the client.
 *
 * load: CLIENTS concurrent clients (one request at a time each, node:http with a keep-alive agent)
 * for DURATION seconds, each picking by the MIX weights: a list (filters, paging), a get, a
 * download of a 64 KiB–4 MiB file (sha1, size and Content-MD5 checked) or an upload (create → PUT
 * file with sha1 → activate, a random payload of 64 KiB–4 MiB, log-uniform). Before the timed window
 * it uploads a few fixtures to download; after it, every uploaded image is read back and its file
 * re-downloaded and checked by sha1. Responses are counted by kind and status, errors with their
 * messages; the server's VmRSS is polled every 500 ms (and VmHWM read) from /proc/PID/status.
 *
 * --vars FILE gets `NAME=value` lines for the shell (numbers and plain words only); --md FILE a
 * Markdown fragment (the load's per-kind table and its errors).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { ImageManifest, ImageState, ListFilter, StoredImage } from '../src/formats/imgapi-types.js';
import { DEFAULT_CHANNELS, matchesFilter, parseListQuery } from '../src/formats/imgapi.js';
import { normalizeTimestamp, openStores, type MetadataStore } from '../src/store/index.js';
import { stateFor, vacuumUntilAllVisible } from '../test/helpers/imgapi.js';
// Every run seeds the same repository (the tests' deterministic generator).
import { prng } from '../test/helpers/prng.js';

// ---------------------------------------------------------------- shared

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function fmt(ms: number): string {
  return Number.isFinite(ms) ? ms.toFixed(1) : '—';
}

function die(message: string): never {
  process.stderr.write(`images-load: ${message}\n`);
  process.exit(2);
}

function writeVars(file: string | undefined, vars: Record<string, string | number>): void {
  if (file === undefined) return;
  const lines = Object.entries(vars).map(([k, v]) => {
    const s = String(v);
    if (!/^[A-Za-z0-9_.:/+-]*$/.test(s)) die(`internal: ${k}=${s} is not shell-safe`);
    return `${k}=${s}`;
  });
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}

/** What one list query should return on its first page. */
interface ExpectedPage {
  key: string;
  label: string;
  /** Path and query, as sent. */
  path: string;
  count: number;
  /** sha1 of the uuids joined with '\n'. */
  digest: string;
}

interface SeedInfo {
  count: number;
  store: string;
  seededSeconds: number;
  analyzeSeconds?: number;
  queries: ExpectedPage[];
  /** Random uuids of seeded images (any state or channel) for GetImage. */
  sample: string[];
  /** Published images in dev, for marker paging. */
  markers: string[];
  owners: string[];
  names: string[];
}

function digestOf(uuids: string[]): string {
  return createHash('sha1').update(uuids.join('\n')).digest('hex');
}

// ---------------------------------------------------------------- seed

const NAMES = [
  'base-64',
  'base-64-lts',
  'minimal-64',
  'minimal-64-lts',
  'ubuntu-22.04',
  'ubuntu-24.04',
  'debian-12',
  'centos-7',
  'alpine-3',
  'manta-storage',
  'manta-webapi',
  'manta-buckets-api',
  'sdc-imgapi',
  'sdc-vmapi',
  'sdc-cnapi',
  'sdc-napi',
  'sdc-papi',
  'sdc-ufds',
  'sdc-sapi',
  'cloudapi',
  'adminui',
  'foo-base', // ~foo
  'my-foo-service', // ~foo
  'foodb', // ~foo
  'FooBar', // not ~foo (case-sensitive)
  'triton-grafana',
  'triton-prometheus',
  'triton-logarchiver',
];
const ORIGIN_NAMES = [
  'triton-origin-x86_64-21.4.0',
  'triton-origin-x86_64-23.4.0',
  'triton-origin-x86_64-24.4.1',
];
const OWNERS = Array.from(
  { length: 8 },
  (_, i) => `930896af-bf8c-48d4-885c-6573a94b1${(i + 100).toString().padStart(3, '0')}`,
);
const OSES = ['smartos', 'smartos', 'smartos', 'linux', 'linux', 'other'];
const TYPES = ['zone-dataset', 'zone-dataset', 'zone-dataset', 'lx-dataset', 'zvol', 'docker', 'other'];
const ROLES = ['db', 'web', 'cache', 'queue', 'lb'];
const BRANCHES = ['master', 'master', 'master', 'release-20240307', 'release-20241003', 'TRITON-2471'];
const CHANNEL_NAMES = ['dev', 'staging', 'release', 'experimental', 'support'];
const CHANNEL_ODDS = [0.6, 0.3, 0.2, 0.15, 0.05];

export function generateImages(count: number): ImageManifest[] {
  const rnd = prng(20260101);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const hex = (n: number): string =>
    Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join('');
  const out: ImageManifest[] = [];
  // Ten years of publishing: mostly increasing instants, with runs of equal ones (batch releases).
  const start = Date.parse('2016-01-01T00:00:00Z');
  const step = (10 * 365 * 86_400_000) / count;
  let t = start;
  /** The latest active origin image of each family, with its channels (the chains' tips). */
  const origins = new Map<string, ImageManifest>();
  for (let i = 0; i < count; i++) {
    if (rnd() < 0.8) t += Math.floor(rnd() * 2 * step);
    const isOrigin = i % 400 === 7; // ~250 origin images, three families, chained within a family
    const r = rnd();
    const state: ImageState = isOrigin ? 'active' : stateFor(r);
    const activated = state === 'active' || state === 'disabled';
    let channels = CHANNEL_NAMES.filter((_, k) => rnd() < (CHANNEL_ODDS[k] ?? 0));
    if (channels.length === 0 && rnd() < 0.8) channels = ['experimental'];
    const branch = pick(BRANCHES);
    const stamp = new Date(t)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
    const name = isOrigin ? pick(ORIGIN_NAMES) : pick(NAMES);
    const version =
      rnd() < 0.7
        ? `${branch}-${stamp}-g${hex(7)}`
        : `${Math.floor(rnd() * 30)}.${Math.floor(rnd() * 10)}.${Math.floor(rnd() * 10)}`;
    const m: ImageManifest = {
      v: 2,
      uuid: `${hex(8)}-${hex(4)}-4${hex(3)}-${pick(['8', '9', 'a', 'b'])}${hex(3)}-${hex(12)}`,
      owner: pick(OWNERS),
      name,
      version,
      state,
      disabled: state === 'disabled',
      public: rnd() < 0.9,
      type: isOrigin ? 'zone-dataset' : pick(TYPES),
      os: isOrigin ? 'smartos' : pick(OSES),
      files: activated
        ? [
            {
              sha1: hex(40),
              size: 1 + Math.floor(rnd() * 2e9),
              compression: pick(['gzip', 'gzip', 'gzip', 'bzip2', 'xz', 'none'] as const),
            },
          ]
        : [],
      description: `${name} ${version}: an image built from ${branch} for the benchmark, with a description of a realistic length.`,
      requirements: {
        min_platform: { '7.0': '20141030T081701Z' },
        networks: [{ name: 'net0', description: 'admin' }],
      },
      channels,
    };
    if (activated || rnd() < 0.3) m.published_at = new Date(t).toISOString();
    if (rnd() < 0.2) m.homepage = `https://github.com/TritonDataCenter/${name}`;
    if (rnd() < 0.35 || isOrigin)
      m.tags = {
        role: pick(ROLES),
        build: Math.floor(rnd() * 1000),
        branch,
        ...(rnd() < 0.3 ? { smartdc_service: true } : {}),
      };
    if (isOrigin) {
      // Each origin image builds on the previous one of its family, in the same channels.
      if (channels.length === 0) m.channels = channels = ['dev'];
      const prev = origins.get(name);
      if (prev !== undefined) {
        m.origin = prev.uuid;
        m.channels = channels = channels.filter((c) => (prev.channels ?? []).includes(c));
        if (channels.length === 0) m.channels = [...(prev.channels ?? ['dev'])];
      }
      origins.set(name, m);
    } else if (activated && origins.size > 0 && rnd() < 0.02) {
      // Services build on the newest origin image of a family: only into its channels.
      const o = pick([...origins.values()]);
      m.origin = o.uuid;
      const within = channels.filter((c) => (o.channels ?? []).includes(c));
      m.channels = within.length > 0 ? within : [...(o.channels ?? [])];
    }
    out.push(m);
  }
  return out;
}

function expectedPage(all: ImageManifest[], byUuid: Map<string, ImageManifest>, query: string): string[] {
  const q = new URLSearchParams(query);
  const f: ListFilter = parseListQuery(q, DEFAULT_CHANNELS);
  if (f.markerUuid !== undefined) {
    const marker = byUuid.get(f.markerUuid);
    if (marker?.published_at !== undefined) f.markerPublishedAt = marker.published_at;
  }
  const key = (m: ImageManifest): string =>
    m.published_at === undefined ? '' : normalizeTimestamp(m.published_at);
  const mp = f.markerPublishedAt === undefined ? undefined : normalizeTimestamp(f.markerPublishedAt);
  const xs = all.filter((m) => {
    if (!matchesFilter(m, f)) return false;
    if (mp === undefined) return true;
    if (m.published_at === undefined) return false;
    const k = key(m);
    if (k > mp) return true;
    if (k < mp) return false;
    return f.markerUuid === undefined || f.sort === 'desc' || m.uuid >= f.markerUuid;
  });
  xs.sort((a, b) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0,
  );
  if (f.sort === 'desc') xs.reverse();
  return xs.slice(0, f.limit).map((m) => m.uuid);
}

interface WithAnalyze {
  analyze?: () => Promise<void>;
}

async function seedCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      sqlite: { type: 'string' },
      postgres: { type: 'string' },
      blobs: { type: 'string' },
      count: { type: 'string', default: '100000' },
      info: { type: 'string' },
    },
  });
  const count = Number(values.count);
  if (!Number.isSafeInteger(count) || count < 1000) die('--count must be a whole number ≥ 1000');
  if ((values.sqlite === undefined) === (values.postgres === undefined))
    die('seed takes --sqlite FILE or --postgres URL');
  if (values.blobs === undefined || values.info === undefined) die('seed needs --blobs DIR and --info FILE');
  const metadata =
    values.sqlite !== undefined
      ? ({ kind: 'sqlite', file: values.sqlite } as const)
      : ({ kind: 'postgres', url: values.postgres ?? '' } as const);

  const t0 = performance.now();
  const all = generateImages(count);
  const genSeconds = (performance.now() - t0) / 1000;
  const { meta, blobs } = await openStores({ metadata, blobs: { kind: 'fs', dir: values.blobs } });
  let seededSeconds: number;
  let analyzeSeconds: number | undefined;
  try {
    if (meta.createMany === undefined) die(`the ${meta.kind} store has no createMany`);
    const t1 = performance.now();
    const inserted = await meta.createMany(all.map((manifest): StoredImage => ({ manifest, revision: 1 })));
    seededSeconds = (performance.now() - t1) / 1000;
    if (inserted !== count) die(`createMany inserted ${inserted} of ${count} images (was the store empty?)`);
    process.stdout.write(
      `seeded ${count} images into ${meta.kind} in ${seededSeconds.toFixed(1)} s (createMany; generated in ${genSeconds.toFixed(1)} s)\n`,
    );
    if (values.postgres !== undefined) analyzeSeconds = await vacuum(meta, values.postgres);
  } finally {
    await meta.close();
    await blobs.close();
  }

  const byUuid = new Map(all.map((m) => [m.uuid, m]));
  const rnd = prng(7);
  const devPublished = all
    .filter((m) => m.state === 'active' && (m.channels ?? []).includes('dev') && m.published_at !== undefined)
    .sort((a, b) => ((a.published_at ?? '') < (b.published_at ?? '') ? -1 : 1));
  const deep = devPublished[Math.floor(devPublished.length * 0.9)] ?? die('no dev images');
  const queries: ExpectedPage[] = [
    {
      key: 'FILTERED',
      label: 'filtered first page: name=~foo&channel=dev&state=active',
      path: '/images?name=~foo&channel=dev&state=active',
      count: 0,
      digest: '',
    },
    {
      key: 'UNFILTERED',
      label: 'unfiltered first page: /images (default channel dev, state active, 1000)',
      path: '/images',
      count: 0,
      digest: '',
    },
    {
      key: 'MARKER',
      label: 'deep marker page: marker=<image at 90% of dev>&limit=1000',
      path: `/images?marker=${deep.uuid}&limit=1000`,
      count: 0,
      digest: '',
    },
  ];
  for (const q of queries) {
    const uuids = expectedPage(all, byUuid, q.path.slice(q.path.indexOf('?') + 1));
    q.count = uuids.length;
    q.digest = digestOf(uuids);
  }
  const info: SeedInfo = {
    count,
    store: meta.kind,
    seededSeconds,
    ...(analyzeSeconds !== undefined ? { analyzeSeconds } : {}),
    queries,
    sample: Array.from({ length: 2000 }, () => all[Math.floor(rnd() * all.length)]?.uuid ?? ''),
    markers: Array.from(
      { length: 500 },
      () => devPublished[Math.floor(rnd() * devPublished.length)]?.uuid ?? deep.uuid,
    ),
    owners: OWNERS,
    names: NAMES,
  };
  fs.writeFileSync(values.info, JSON.stringify(info));
  const withOrigin = all.filter((m) => m.origin !== undefined).length;
  process.stdout.write(
    `${all.filter((m) => m.state === 'active').length} active, ${withOrigin} with an origin; expected first pages: ${queries
      .map((q) => `${q.key.toLowerCase()} ${q.count}`)
      .join(', ')}\n`,
  );
}

/** VACUUM ANALYZE until ≥ 99 % of the pages are all-visible (index-only scans), as autovacuum would. */
async function vacuum(meta: MetadataStore, url: string): Promise<number> {
  const store = meta as MetadataStore & WithAnalyze;
  const analyze = store.analyze;
  if (analyze === undefined) return 0;
  const t0 = performance.now();
  const probe = new pg.Client({ connectionString: url });
  await probe.connect();
  let visible: number;
  try {
    visible = await vacuumUntilAllVisible(() => analyze.call(store), probe);
  } finally {
    await probe.end();
  }
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(
    `VACUUM ANALYZE in ${s.toFixed(1)} s (${(visible * 100).toFixed(0)}% of the pages all-visible)\n`,
  );
  return s;
}

// ---------------------------------------------------------------- HTTP

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Empty when a sink took the body. */
  body: Buffer;
  bytes: number;
}

class HttpFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Call {
  method?: string;
  path: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer;
  /** Receives the response body instead of buffering it. */
  sink?: (chunk: Buffer) => void;
  timeoutMs?: number;
}

function call(base: URL, agent: http.Agent, c: Call): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method: c.method ?? 'GET',
        path: c.path,
        agent,
        headers: {
          ...(c.body !== undefined ? { 'Content-Length': c.body.length } : {}),
          ...c.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (c.sink !== undefined) c.sink(chunk);
          else chunks.push(chunk);
        });
        res.on('end', () => {
          if (!res.complete) {
            reject(new HttpFailure('truncated', `response cut short after ${bytes} bytes`));
            return;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes });
        });
        res.on('error', (err: NodeJS.ErrnoException) => {
          reject(new HttpFailure(err.code ?? 'response-error', err.message));
        });
      },
    );
    req.setTimeout(c.timeoutMs ?? 120_000, () => {
      req.destroy(new HttpFailure('timeout', `no progress for ${(c.timeoutMs ?? 120_000) / 1000} s`));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(err instanceof HttpFailure ? err : new HttpFailure(err.code ?? 'request-error', err.message));
    });
    req.end(c.body);
  });
}

/** `CODE: message` of an API error body, or the start of the body. */
function errorText(r: Reply): string {
  try {
    const e = JSON.parse(r.body.toString('utf8')) as { code?: unknown; message?: unknown };
    if (typeof e.code === 'string') return `${e.code}: ${String(e.message)}`;
  } catch {
    /* not JSON */
  }
  return r.body.toString('utf8').slice(0, 200);
}

// ---------------------------------------------------------------- latency

async function latencyCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      info: { type: 'string' },
      runs: { type: 'string', default: '300' },
      vars: { type: 'string' },
      prefix: { type: 'string', default: 'LAT' },
    },
  });
  if (values.url === undefined || values.info === undefined) die('latency needs --url and --info');
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) die('--runs must be a positive whole number');
  const info = JSON.parse(fs.readFileSync(values.info, 'utf8')) as SeedInfo;
  const base = new URL(values.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const headers = { 'Accept-Version': '~2' };
  const vars: Record<string, string | number> = {};
  let wrong = 0;
  for (const q of info.queries) {
    const first = await call(base, agent, { path: q.path, headers });
    let ok = first.status === 200;
    let rows = 0;
    let problem = '';
    if (ok) {
      const page = JSON.parse(first.body.toString('utf8')) as ImageManifest[];
      rows = page.length;
      const missingChannels = page.some((m) => !Array.isArray(m.channels));
      const digest = digestOf(page.map((m) => m.uuid));
      if (rows !== q.count || digest !== q.digest) {
        ok = false;
        problem = `got ${rows} images, expected ${q.count}${rows === q.count ? ' (a different set or order)' : ''}`;
      } else if (missingChannels) {
        ok = false;
        problem = 'Accept-Version ~2 but images without channels';
      }
    } else problem = `status ${first.status}: ${errorText(first)}`;
    if (!ok) wrong++;
    for (let i = 0; i < 5; i++) await call(base, agent, { path: q.path, headers });
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = await call(base, agent, { path: q.path, headers });
      times.push(performance.now() - t0);
      if (r.status !== 200) die(`${q.path}: status ${r.status}: ${errorText(r)}`);
    }
    times.sort((a, b) => a - b);
    const p50 = percentile(times, 50);
    const p90 = percentile(times, 90);
    const p99 = percentile(times, 99);
    const max = times[times.length - 1] ?? NaN;
    process.stdout.write(
      `  ${q.label}\n    GET ${q.path}\n    ${rows} images, ${first.bytes} bytes; ${runs} sequential requests: p50 ${fmt(p50)} ms  p90 ${fmt(p90)} ms  p99 ${fmt(p99)} ms  max ${fmt(max)} ms${ok ? '  (page checked)' : `  WRONG PAGE: ${problem}`}\n`,
    );
    const k = `${values.prefix}_${q.key}`;
    Object.assign(vars, {
      [`${k}_P50`]: p50.toFixed(1),
      [`${k}_P90`]: p90.toFixed(1),
      [`${k}_P99`]: p99.toFixed(1),
      [`${k}_MAX`]: max.toFixed(1),
      [`${k}_ROWS`]: rows,
      [`${k}_BYTES`]: first.bytes,
      [`${k}_OK`]: ok ? 1 : 0,
    });
  }
  vars[`${values.prefix}_WRONG`] = wrong;
  writeVars(values.vars, vars);
  agent.destroy();
}

// ---------------------------------------------------------------- load

type OpKind = 'list' | 'get' | 'download' | 'upload';
const OP_KINDS: OpKind[] = ['list', 'get', 'download', 'upload'];
/** Request kinds counted (an upload is three requests). */
type ReqKind =
  'list' | 'get' | 'download' | 'create' | 'put' | 'activate' | 'verify-get' | 'verify-download' | 'fixture';

const MIN_FILE = 64 * 1024;
const MAX_FILE = 4 * 1024 * 1024;

interface FileRef {
  uuid: string;
  sha1: string;
  md5: string;
  size: number;
}

class Tally {
  readonly counts = new Map<string, number>();
  readonly errors = new Map<string, { count: number; samples: string[] }>();
  readonly times = new Map<string, number[]>();

  ok(kind: ReqKind, status: number, ms: number): void {
    const key = `${kind} ${status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let t = this.times.get(kind);
    if (t === undefined) this.times.set(kind, (t = []));
    t.push(ms);
  }

  error(kind: ReqKind, status: string, message: string): void {
    const key = `${kind} ${status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let e = this.errors.get(key);
    if (e === undefined) this.errors.set(key, (e = { count: 0, samples: [] }));
    e.count++;
    if (e.samples.length < 3 && !e.samples.includes(message)) e.samples.push(message);
  }

  errorCount(prefix?: string): number {
    let n = 0;
    for (const [k, e] of this.errors) if (prefix === undefined || k.startsWith(prefix)) n += e.count;
    return n;
  }

  requests(kind: string): number {
    let n = 0;
    for (const [k, c] of this.counts) if (k.split(' ')[0] === kind) n += c;
    return n;
  }
}

/** Reads VmRSS and VmHWM (KiB) and utime+stime (s) of a process. */
function procStats(pid: number): { rss: number; hwm: number; cpu: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string): number =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
    return { rss: kib('VmRSS'), hwm: kib('VmHWM'), cpu };
  } catch {
    return undefined;
  }
}

function parseMix(text: string): Record<OpKind, number> {
  const mix: Record<OpKind, number> = { list: 0, get: 0, download: 0, upload: 0 };
  for (const part of text.split(',')) {
    const [k = '', v = ''] = part.split('=');
    const kind = OP_KINDS.find((x) => x === k.trim());
    const n = Number(v);
    if (kind === undefined || !Number.isFinite(n) || n < 0)
      die(`--mix: cannot read '${part}' (list=30,get=30,download=30,upload=10)`);
    mix[kind] = n;
  }
  if (OP_KINDS.every((k) => mix[k] === 0)) die('--mix: all weights are 0');
  return mix;
}

async function loadCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      info: { type: 'string' },
      duration: { type: 'string', default: '60' },
      clients: { type: 'string', default: '200' },
      pid: { type: 'string' },
      mix: { type: 'string', default: 'list=30,get=30,download=30,upload=10' },
      fixtures: { type: 'string', default: '32' },
      vars: { type: 'string' },
      md: { type: 'string' },
      prefix: { type: 'string', default: 'LOAD' },
      label: { type: 'string', default: 'the server' },
    },
  });
  if (values.url === undefined || values.info === undefined) die('load needs --url and --info');
  const duration = Number(values.duration);
  const clients = Number(values.clients);
  const nFixtures = Number(values.fixtures);
  if (
    !(duration > 0) ||
    !Number.isSafeInteger(clients) ||
    clients < 1 ||
    !Number.isSafeInteger(nFixtures) ||
    nFixtures < 1
  )
    die('--duration, --clients and --fixtures must be positive numbers');
  const mix = parseMix(values.mix);
  const mixTotal = OP_KINDS.reduce((s, k) => s + mix[k], 0);
  const pid = values.pid === undefined ? undefined : Number(values.pid);
  const info = JSON.parse(fs.readFileSync(values.info, 'utf8')) as SeedInfo;
  const base = new URL(values.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients + 16 });
  const tally = new Tally();
  const json = { 'Content-Type': 'application/json', 'Accept-Version': '~2' };

  // ---- the server's memory, every 500 ms
  let peakRss = 0;
  let peakRssLoad = 0;
  let inWindow = false;
  let rssSamples = 0;
  const poll = (): void => {
    if (pid === undefined) return;
    const s = procStats(pid);
    if (s === undefined) return;
    rssSamples++;
    peakRss = Math.max(peakRss, s.rss);
    if (inWindow) peakRssLoad = Math.max(peakRssLoad, s.rss);
  };
  poll();
  const rssBefore = pid !== undefined ? (procStats(pid)?.rss ?? NaN) : NaN;
  const poller = setInterval(poll, 500);

  // ---- payloads: slices of an 8 MiB random pool behind a unique 32-byte head (every file distinct)
  const pool = randomBytes(2 * MAX_FILE);
  let serial = 0;
  const payload = (rnd: () => number): Buffer => {
    const size = Math.round(MIN_FILE * Math.pow(MAX_FILE / MIN_FILE, rnd()));
    const head = Buffer.alloc(32);
    head.write(`slipway-bench ${process.pid} ${++serial} `);
    randomBytes(8).copy(head, 24);
    const off = Math.floor(rnd() * (pool.length - size));
    return Buffer.concat([head, pool.subarray(off, off + size - 32)], size);
  };
  const sums = (b: Buffer): { sha1: string; md5: string } => ({
    sha1: createHash('sha1').update(b).digest('hex'),
    md5: createHash('md5').update(b).digest('base64'),
  });

  /** One request, counted; resolves to the reply when its status is `want`, else undefined. */
  const counted = async (kind: ReqKind, c: Call, want = 200): Promise<Reply | undefined> => {
    const t0 = performance.now();
    try {
      const r = await call(base, agent, c);
      if (r.status !== want) {
        tally.error(
          kind,
          String(r.status),
          `${c.method ?? 'GET'} ${c.path.replace(/[0-9a-f-]{36}/g, ':uuid')}: ${errorText(r)}`,
        );
        return undefined;
      }
      tally.ok(kind, r.status, performance.now() - t0);
      return r;
    } catch (err) {
      const e = err instanceof HttpFailure ? err : new HttpFailure('error', String(err));
      tally.error(
        kind,
        e.code,
        `${c.method ?? 'GET'} ${c.path.replace(/[0-9a-f-]{36}/g, ':uuid')}: ${e.message}`,
      );
      return undefined;
    }
  };
  /** A check on a 200 reply failed: recount it as an error of `what`. */
  const mismatch = (kind: ReqKind, what: string, message: string): void => {
    const key = `${kind} 200`;
    tally.counts.set(key, (tally.counts.get(key) ?? 1) - 1);
    tally.error(kind, what, message);
  };

  const uploaded: FileRef[] = [];
  const fixtures: FileRef[] = [];
  let uploadsStarted = 0;
  let uploadsDone = 0;

  const upload = async (
    rnd: () => number,
    kind: 'fixture' | 'upload',
    worker: number,
  ): Promise<FileRef | undefined> => {
    const body = payload(rnd);
    const { sha1, md5 } = sums(body);
    const k = (step: ReqKind): ReqKind => (kind === 'fixture' ? 'fixture' : step);
    uploadsStarted++;
    const manifest = {
      owner: info.owners[worker % info.owners.length] ?? info.owners[0],
      name: `bench-load-${kind}-${worker}`,
      version: `1.0.${serial}-${sha1.slice(0, 8)}`,
      type: 'other',
      os: 'other',
      public: true,
      description: 'uploaded by bench/images-load.ts',
      tags: { bench: 'load', worker },
    };
    const mb = Buffer.from(JSON.stringify(manifest));
    const created = await counted(k('create'), {
      method: 'POST',
      path: '/images?channel=dev',
      headers: { ...json, 'Content-MD5': createHash('md5').update(mb).digest('base64') },
      body: mb,
    });
    if (created === undefined) return undefined;
    const uuid = (JSON.parse(created.body.toString('utf8')) as ImageManifest).uuid;
    const put = await counted(k('put'), {
      method: 'PUT',
      path: `/images/${uuid}/file?compression=none&sha1=${sha1}&channel=dev`,
      headers: { 'Content-Type': 'application/octet-stream', 'Accept-Version': '~2' },
      body,
    });
    if (put === undefined) return undefined;
    const f = (JSON.parse(put.body.toString('utf8')) as ImageManifest).files[0];
    if (f?.sha1 !== sha1 || f.size !== body.length) {
      mismatch(
        k('put'),
        'wrong-file',
        `PUT answered files[0] ${JSON.stringify(f)}, uploaded sha1 ${sha1} size ${body.length}`,
      );
      return undefined;
    }
    const act = await counted(k('activate'), {
      method: 'POST',
      path: `/images/${uuid}?action=activate&channel=dev`,
      headers: json,
      body: Buffer.from('{}'),
    });
    if (act === undefined) return undefined;
    const state = (JSON.parse(act.body.toString('utf8')) as ImageManifest).state;
    if (state !== 'active') {
      mismatch(k('activate'), 'not-active', `activate answered state ${state}`);
      return undefined;
    }
    uploadsDone++;
    return { uuid, sha1, md5, size: body.length };
  };

  const download = async (kind: ReqKind, ref: FileRef): Promise<boolean> => {
    const h = createHash('sha1');
    const r = await counted(kind, {
      path: `/images/${ref.uuid}/file?channel=dev`,
      sink: (chunk) => h.update(chunk),
    });
    if (r === undefined) return false;
    const sha1 = h.digest('hex');
    if (sha1 !== ref.sha1 || r.bytes !== ref.size) {
      mismatch(
        kind,
        'sha1-mismatch',
        `${ref.uuid}: ${r.bytes} bytes sha1 ${sha1}, uploaded ${ref.size} bytes sha1 ${ref.sha1}`,
      );
      return false;
    }
    if (r.headers['content-md5'] !== ref.md5 || r.headers.etag !== ref.sha1) {
      mismatch(
        kind,
        'bad-headers',
        `${ref.uuid}: Content-MD5 ${String(r.headers['content-md5'])} Etag ${String(r.headers.etag)}`,
      );
      return false;
    }
    return true;
  };

  const listPaths = (rnd: () => number): string => {
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    switch (Math.floor(rnd() * 7)) {
      case 0:
        return '/images?name=~foo&channel=dev&state=active';
      case 1:
        return `/images?channel=release&tag.role=${pick(ROLES)}&limit=100`;
      case 2:
        return `/images?owner=${pick(info.owners)}&os=linux&type=!zvol&channel=staging&limit=200`;
      case 3:
        return `/images?name=${encodeURIComponent(pick(info.names))}&channel=*&state=all&limit=100`;
      case 4:
        return `/images?channel=dev&marker=${pick(info.markers)}&limit=100`;
      case 5:
        return `/images?limit=100&sort=published_at.desc&channel=${pick(['dev', 'staging', 'release'])}`;
      default:
        return '/images';
    }
  };

  // ---- fixtures to download (not timed)
  process.stdout.write(
    `uploading ${nFixtures} fixture images (64 KiB–4 MiB files) to download under load…\n`,
  );
  {
    const rnd = prng(99);
    for (let i = 0; i < nFixtures; i++) {
      const f = await upload(rnd, 'fixture', i);
      if (f !== undefined) fixtures.push(f);
    }
  }
  if (fixtures.length === 0)
    die(
      `no fixture could be uploaded: ${[...tally.errors.entries()].map(([k, e]) => `${k}: ${e.samples.join('; ')}`).join(' | ')}`,
    );

  // ---- the timed window
  process.stdout.write(
    `${clients} clients for ${duration} s against ${values.label} (${base.origin}), mix ${OP_KINDS.map((k) => `${k} ${mix[k]}`).join(', ')}…\n`,
  );
  const cpuStart = pid !== undefined ? procStats(pid)?.cpu : undefined;
  const clientCpuStart = process.cpuUsage();
  const opTimes: Record<OpKind, number[]> = { list: [], get: [], download: [], upload: [] };
  const started = performance.now();
  const deadline = started + duration * 1000;
  let bytesDown = 0;
  let bytesUp = 0;
  inWindow = true;
  poll();
  const progress = setInterval(() => {
    const s = (performance.now() - started) / 1000;
    const rss = pid !== undefined ? procStats(pid)?.rss : undefined;
    process.stdout.write(
      `  ${s.toFixed(0).padStart(3)} s: ${OP_KINDS.map((k) => `${k} ${opTimes[k].length}`).join(', ')}; errors ${tally.errorCount()}${rss !== undefined ? `; server RSS ${(rss / 1024).toFixed(0)} MiB` : ''}\n`,
    );
  }, 10_000);
  const worker = async (w: number): Promise<void> => {
    const rnd = prng(1000 + w);
    // Stagger the start over the first second.
    await new Promise((resolve) => setTimeout(resolve, rnd() * 1000));
    while (performance.now() < deadline) {
      let x = rnd() * mixTotal;
      let op: OpKind = 'list';
      for (const k of OP_KINDS) {
        if (x < mix[k]) {
          op = k;
          break;
        }
        x -= mix[k];
      }
      const t0 = performance.now();
      switch (op) {
        case 'list': {
          const r = await counted('list', { path: listPaths(rnd), headers: { 'Accept-Version': '~2' } });
          if (r !== undefined) {
            bytesDown += r.bytes;
            const text = r.body.toString('utf8');
            if (!text.startsWith('[') || !text.trimEnd().endsWith(']'))
              mismatch('list', 'bad-body', `not a JSON array: ${text.slice(0, 80)}`);
          }
          break;
        }
        case 'get': {
          const uuid = info.sample[Math.floor(rnd() * info.sample.length)] ?? '';
          const r = await counted('get', {
            path: `/images/${uuid}?channel=*`,
            headers: { 'Accept-Version': '~2' },
          });
          if (r !== undefined) {
            bytesDown += r.bytes;
            const m = JSON.parse(r.body.toString('utf8')) as ImageManifest;
            if (m.uuid !== uuid) mismatch('get', 'wrong-image', `asked ${uuid}, got ${m.uuid}`);
          }
          break;
        }
        case 'download': {
          // Half from the fixtures, half from what was uploaded during the run (once there is some).
          const from = uploaded.length > 0 && rnd() < 0.5 ? uploaded : fixtures;
          const ref = from[Math.floor(rnd() * from.length)];
          if (ref !== undefined && (await download('download', ref))) bytesDown += ref.size;
          break;
        }
        case 'upload': {
          const f = await upload(rnd, 'upload', w);
          if (f !== undefined) {
            uploaded.push(f);
            bytesUp += f.size;
          }
          break;
        }
      }
      opTimes[op].push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
  const elapsed = (performance.now() - started) / 1000;
  inWindow = false;
  clearInterval(progress);
  const cpuEnd = pid !== undefined ? procStats(pid)?.cpu : undefined;
  const clientCpu = process.cpuUsage(clientCpuStart);
  const serverCpu = cpuStart !== undefined && cpuEnd !== undefined ? cpuEnd - cpuStart : NaN;
  const loadErrors = tally.errorCount();

  // ---- read back every upload
  process.stdout.write(
    `verifying the ${uploaded.length} images uploaded under load (manifest + file sha1)…\n`,
  );
  let verified = 0;
  {
    const queue = [...uploaded];
    const verifier = async (): Promise<void> => {
      for (let ref = queue.shift(); ref !== undefined; ref = queue.shift()) {
        const r = await counted('verify-get', {
          path: `/images/${ref.uuid}?channel=dev`,
          headers: { 'Accept-Version': '~2' },
        });
        if (r === undefined) continue;
        const m = JSON.parse(r.body.toString('utf8')) as ImageManifest;
        if (m.state !== 'active' || m.files[0]?.sha1 !== ref.sha1 || m.files[0].size !== ref.size) {
          mismatch(
            'verify-get',
            'wrong-manifest',
            `${ref.uuid}: state ${m.state} files ${JSON.stringify(m.files)}`,
          );
          continue;
        }
        if (await download('verify-download', ref)) verified++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, () => verifier()));
  }
  clearInterval(poller);
  poll();
  const final = pid !== undefined ? procStats(pid) : undefined;
  agent.destroy();

  // ---- report
  const kib2mib = (k: number): string => (k / 1024).toFixed(0);
  const totalOps = OP_KINDS.reduce((s, k) => s + opTimes[k].length, 0);
  const reqKinds: ReqKind[] = ['list', 'get', 'download', 'create', 'put', 'activate'];
  const rows: string[] = [];
  rows.push('| request | count | per s | mean ms | p50 ms | p99 ms | max ms | errors |');
  rows.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const k of reqKinds) {
    const t = [...(tally.times.get(k) ?? [])].sort((a, b) => a - b);
    const n = tally.requests(k);
    rows.push(
      `| ${k} | ${n} | ${(n / elapsed).toFixed(1)} | ${fmt(t.reduce((a, b) => a + b, 0) / t.length)} | ${fmt(percentile(t, 50))} | ${fmt(percentile(t, 99))} | ${fmt(t[t.length - 1] ?? NaN)} | ${tally.errorCount(`${k} `)} |`,
    );
  }
  const opRows: string[] = [];
  for (const k of OP_KINDS) {
    const t = [...opTimes[k]].sort((a, b) => a - b);
    opRows.push(`${k} ${t.length} (p50 ${fmt(percentile(t, 50))} ms, p99 ${fmt(percentile(t, 99))} ms)`);
  }
  const statusLine = [...tally.counts.entries()]
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ');
  const errorLines = [...tally.errors.entries()].map(
    ([k, e]) => `- \`${k}\` × ${e.count}: ${e.samples.map((s) => `\`${s.replace(/`/g, "'")}\``).join('; ')}`,
  );
  const md: string[] = [
    `Mixed load against ${values.label}: ${clients} clients × ${elapsed.toFixed(1)} s, mix ${OP_KINDS.map((k) => `${k} ${mix[k]}`).join(' / ')}; ` +
      `${totalOps} operations (${(totalOps / elapsed).toFixed(0)}/s): ${opRows.join(', ')}. ` +
      `Downloaded ${(bytesDown / 1e6).toFixed(0)} MB, uploaded ${(bytesUp / 1e6).toFixed(0)} MB; ` +
      `${uploadsDone - fixtures.length} uploads completed of ${uploadsStarted - nFixtures} started, ${verified}/${uploaded.length} re-downloaded and verified by sha1 afterwards.`,
    '',
    ...rows,
    '',
    `Responses by kind and status: ${statusLine}.`,
    `Server: ${Number.isFinite(serverCpu) ? `${serverCpu.toFixed(1)} s CPU in the window (${((serverCpu / elapsed) * 100).toFixed(0)}% of one core)` : 'CPU unknown'}, ` +
      `RSS ${kib2mib(rssBefore)} MiB before, peak ${kib2mib(peakRssLoad)} MiB in the window (${rssSamples} samples every 500 ms), VmHWM ${final !== undefined ? kib2mib(final.hwm) : '?'} MiB at the end. ` +
      `Client: ${((clientCpu.user + clientCpu.system) / 1e6).toFixed(1)} s CPU (same machine).`,
  ];
  if (errorLines.length > 0) md.push('', `Errors (${tally.errorCount()}):`, ...errorLines);
  process.stdout.write(`${md.join('\n')}\n`);
  if (values.md !== undefined) fs.writeFileSync(values.md, `${md.join('\n')}\n`);
  const p = values.prefix;
  writeVars(values.vars, {
    [`${p}_OPS`]: totalOps,
    [`${p}_OPS_PER_S`]: (totalOps / elapsed).toFixed(0),
    [`${p}_ELAPSED`]: elapsed.toFixed(1),
    [`${p}_ERRORS`]: loadErrors,
    [`${p}_ERRORS_ALL`]: tally.errorCount(),
    [`${p}_UPLOADED`]: uploaded.length,
    [`${p}_VERIFIED`]: verified,
    [`${p}_PEAK_RSS_MIB`]: kib2mib(peakRssLoad),
    [`${p}_PEAK_RSS_ALL_MIB`]: kib2mib(peakRss),
    [`${p}_HWM_MIB`]: final !== undefined ? kib2mib(final.hwm) : 'NaN',
    [`${p}_RSS_BEFORE_MIB`]: kib2mib(rssBefore),
    [`${p}_SERVER_CPU`]: Number.isFinite(serverCpu) ? serverCpu.toFixed(1) : 'NaN',
  });
}

// ---------------------------------------------------------------- main

const [command, ...rest] = process.argv.slice(2);
const usage = `usage: node ${path.relative(process.cwd(), process.argv[1] ?? 'images-load.js')} seed|latency|load …`;
switch (command) {
  case 'seed':
    await seedCommand(rest);
    break;
  case 'latency':
    await latencyCommand(rest);
    break;
  case 'load':
    await loadCommand(rest);
    break;
  default:
    die(usage);
}
