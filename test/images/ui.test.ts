/**
 * The image repository's web UI (src/server/ui.ts, src/server/ui/) in real
 * Chromium against the real server: SQLite + files in a temp directory, the
 * standard channels, 10 000 images seeded through the metadata store plus one
 * uploaded through the API. The server mounts serveUi in front of its routes.
 *
 * Needs Debian's `chromium` at /usr/bin/chromium (playwright-core drives it;
 * it never downloads a browser). The page's load time is printed, not asserted.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { Socket } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { ImageManifest } from '../../src/formats/imgapi-types.js';
import { defaultImagesConfig } from '../../src/images/config.js';
import { startImagesServer, type ImagesServer } from '../../src/server/imgapi-server.js';
import { serveUi, UI_CSP } from '../../src/server/ui.js';
import { openStores } from '../../src/store/index.js';
import { request } from '../helpers/http.js';
import { OWNER } from '../helpers/imgapi.js';
import { tempDir } from '../helpers/tmp.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHROMIUM = '/usr/bin/chromium';
const TOTAL = 10_000;
/** img-0000 … img-2490, four versions each; every tenth name is in release too. */
const NAMES = 2491;
const VERSIONS = 4;
const RELEASE_IMAGES = Math.ceil(NAMES / 10) * VERSIONS;
const FILE_CONTENT = Buffer.from('a small image file for the web UI test\n'.repeat(100));

const tmp = tempDir('slipway-ui-');

// ---------------------------------------------------------------------------
// Seeding

interface Seeded {
  chain: { root: string; a: string; b: string; c: string };
  orphan: string;
  missingOrigin: string;
  probe: { uuid: string; name: string; version: string };
}

/** 9 999 images straight into the metadata store (the API's create path would take minutes). */
async function seed(config: ReturnType<typeof defaultImagesConfig>): Promise<Seeded> {
  const { meta, blobs } = await openStores(config);
  const base = Date.parse('2024-01-01T00:00:00.000Z');
  let tick = 0;
  const make = (fields: Partial<ImageManifest> & { name: string; version: string }): ImageManifest => {
    const n = tick++;
    return {
      v: 2,
      uuid: randomUUID(),
      owner: OWNER,
      state: 'active',
      disabled: false,
      public: true,
      published_at: new Date(base + n * 60_000).toISOString(),
      type: 'zone-dataset',
      os: 'smartos',
      files: [
        {
          sha1: createHash('sha1').update(String(n)).digest('hex'),
          size: 1_000_000 + n,
          compression: 'gzip',
        },
      ],
      channels: ['dev'],
      ...fields,
    };
  };
  const all: ImageManifest[] = [];
  for (let v = 0; v < VERSIONS; v++) {
    for (let i = 0; i < NAMES; i++) {
      const m = make({
        name: `img-${String(i).padStart(4, '0')}`,
        version: `1.${v}.0`,
        tags: { group: `g${i % 7}`, build: i * 10 + v },
        channels: i % 10 === 0 ? ['dev', 'release'] : ['dev'],
      });
      if (v === VERSIONS - 1 && i % 50 === 7) Object.assign(m, { state: 'disabled', disabled: true });
      all.push(m);
    }
  }
  const root = make({ name: 'chain-root', version: '1.0.0', os: 'linux', type: 'lx-dataset' });
  const a = make({ name: 'chain-a', version: '2.0.0', origin: root.uuid });
  const b = make({ name: 'chain-b', version: '3.0.0', origin: a.uuid });
  const c = make({ name: 'chain-c', version: '4.0.0', origin: b.uuid });
  const missingOrigin = randomUUID();
  const orphan = make({ name: 'orphan', version: '1.0.0', origin: missingOrigin });
  all.push(root, a, b, c, orphan);
  const probe = all[1234];
  assert.ok(probe !== undefined);
  for (let k = all.length; k < TOTAL - 1; k++) {
    all.push(make({ name: `misc-${k}`, version: '0.1.0', channels: ['dev', 'experimental'] }));
  }
  for (const m of all) assert.equal(await meta.create({ manifest: m, revision: 1 }), true);
  await meta.close();
  await blobs.close();
  return {
    chain: { root: root.uuid, a: a.uuid, b: b.uuid, c: c.uuid },
    orphan: orphan.uuid,
    missingOrigin,
    probe: { uuid: probe.uuid, name: probe.name, version: probe.version },
  };
}

async function api(
  base: string,
  method: string,
  pathAndQuery: string,
  body?: Buffer | object,
): Promise<{ status: number; json: unknown }> {
  const isJson = body !== undefined && !Buffer.isBuffer(body);
  const res = await fetch(`${base}${pathAndQuery}`, {
    method,
    headers: {
      'Accept-Version': '~2',
      ...(isJson ? { 'Content-Type': 'application/json' } : {}),
      ...(Buffer.isBuffer(body) ? { 'Content-Type': 'application/octet-stream' } : {}),
    },
    ...(body !== undefined ? { body: Buffer.isBuffer(body) ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

/** The one image with a real file: created, file uploaded, activated, all through the API. */
async function uploadFileImage(base: string): Promise<string> {
  const created = await api(base, 'POST', '/images?channel=dev', {
    owner: OWNER,
    name: 'ui-file-test',
    version: '1.0.0',
    type: 'other',
    os: 'other',
    public: true,
    tags: { purpose: 'download' },
  });
  assert.equal(created.status, 200, JSON.stringify(created.json));
  const uuid = (created.json as { uuid: string }).uuid;
  const put = await api(base, 'PUT', `/images/${uuid}/file?channel=dev&compression=none`, FILE_CONTENT);
  assert.equal(put.status, 200, JSON.stringify(put.json));
  const activated = await api(base, 'POST', `/images/${uuid}?channel=dev&action=activate`, {});
  assert.equal(activated.status, 200, JSON.stringify(activated.json));
  return uuid;
}

// ---------------------------------------------------------------------------
// The UI in front of the API

/** A raw GET (or `method`) with the body as text. */
async function get(
  base: string,
  rawPath: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const r = await request(base, rawPath, options);
  return { ...r, body: r.body.toString() };
}

// ---------------------------------------------------------------------------

describe('images web UI', () => {
  let server: ImagesServer | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  let seeded: Seeded;
  let fileUuid: string;
  /** Messages the page logged about CSP violations, and uncaught page errors: both must stay empty. */
  const problems: string[] = [];
  let base = '';

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
    const config = { ...defaultImagesConfig(path.join(tmp, 'data')), port: 0 };
    const t0 = performance.now();
    seeded = await seed(config);
    const t1 = performance.now();
    server = await startImagesServer(config);
    base = server.url;
    fileUuid = await uploadFileImage(base);
    console.log(`# seeded ${TOTAL - 1} images through the store in ${Math.round(t1 - t0)} ms`);
    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
      ],
      acceptDownloads: true,
      viewport: { width: 1400, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
  });

  after(async () => {
    await context?.close();
    await server?.close();
  });

  test('serveUi: / redirects, assets with types, ETag, CSP; 304, 404, 405; other paths fall through', async () => {
    const root = await get(base, '/');
    assert.equal(root.status, 302);
    assert.equal(root.headers.location, '/ui/');

    const index = await get(base, '/ui/');
    assert.equal((await get(base, '/ui')).body, index.body);
    assert.equal(index.status, 200);
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.headers['content-security-policy'], UI_CSP);
    assert.match(UI_CSP, /script-src 'self'(;|$)/);
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    assert.equal(index.headers['cache-control'], 'no-cache');
    const etag = index.headers.etag;
    assert.match(etag ?? '', /^"[0-9a-f]{32}"$/);
    // No inline code for the CSP to block: every script is external, no handlers or style attributes.
    for (const tag of index.body.match(/<script\b[^>]*>/g) ?? []) assert.match(tag, /\bsrc="\/ui\/app\.js"/);
    assert.doesNotMatch(index.body, /<script\b[^>]*>\s*[^<\s]/);
    assert.doesNotMatch(index.body, /\son[a-z]+=|\sstyle=/i);

    const again = await get(base, '/ui/', { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
    const head = await get(base, '/ui/index.html', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.etag, etag);
    assert.equal(head.body, '');

    const types: Record<string, string> = {
      '/ui/app.js': 'text/javascript; charset=utf-8',
      '/ui/style.css': 'text/css; charset=utf-8',
      '/ui/favicon.svg': 'image/svg+xml',
    };
    for (const [p, type] of Object.entries(types)) {
      const r = await get(base, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], type, p);
      const file = path.join(projectRoot, 'src/server', p);
      assert.equal(r.body, fs.readFileSync(file, 'utf8'), `${p} is served from the source directory`);
    }

    for (const p of ['/ui/nope.js', '/ui/%2e%2e/ui.ts', '/ui/../../package.json', '/ui/ui/app.js']) {
      const r = await get(base, p);
      assert.equal(r.status, 404, p);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'ResourceNotFound');
    }
    const post = await get(base, '/ui/', { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');

    // Everything else is the API's.
    const ping = await get(base, '/ping');
    assert.equal(ping.status, 200);
    assert.equal((JSON.parse(ping.body) as { ping: string }).ping, 'pong');
    const req = new http.IncomingMessage(new Socket());
    const res = new http.ServerResponse(req);
    for (const p of ['/images', '/ping', '/uix/app.js', '/ui.css'])
      assert.equal(await serveUi(req, res, p), false, p);
    assert.equal(res.headersSent, false);
  });

  test(`page load: ${TOTAL.toLocaleString('en')} images listed, grouped per name`, async () => {
    const t0 = performance.now();
    await page.goto(`${base}/`);
    await page.waitForSelector('#images[data-state="ready"][data-channel="dev"]', { timeout: 60_000 });
    const wall = performance.now() - t0;
    await page.waitForSelector('#images[data-paint-ms]');
    const list = page.locator('#images');
    const d = {
      fetchMs: await list.getAttribute('data-fetch-ms'),
      renderMs: await list.getAttribute('data-render-ms'),
      paintMs: await list.getAttribute('data-paint-ms'),
    };
    console.log(
      `# page load, ${TOTAL} images: ${Math.round(wall)} ms to the rendered list ` +
        `(paging the API ${d.fetchMs} ms; grouping + DOM ${d.renderMs} ms; to the next frame ${d.paintMs} ms)`,
    );
    assert.equal(page.url(), `${base}/ui/`);
    const status = await page.textContent('#status');
    const names = NAMES + 4 + 1 + 1 + (TOTAL - 1 - NAMES * VERSIONS - 5);
    assert.equal(status, `10,000 images, ${names.toLocaleString('en')} names in channel dev`);
    // Lazily rendered: the first names only, more on scroll.
    const rendered = await page.locator('tbody.group').count();
    assert.ok(rendered > 0 && rendered < names, `${rendered} names in the DOM`);
    // The newest image comes first: the uploaded one.
    assert.equal(await page.textContent('tbody.group >> nth=0 >> .twisty'), 'ui-file-test');
    await page.mouse.wheel(0, 50_000);
    // Waits through locators only: the page's CSP forbids eval, which waitForFunction uses.
    await page.locator('tbody.group').nth(rendered).waitFor();
    await page.mouse.wheel(0, -50_000);
    assert.deepEqual(problems, []);
  });

  test('the filter narrows the list instantly (name, version, uuid, tag); a name expands to its versions', async () => {
    const requests: string[] = [];
    const onRequest = (r: { url(): string }): void => {
      requests.push(r.url());
    };
    page.on('request', onRequest);
    await page.fill('#filter', 'img-0042');
    assert.equal(await page.locator('tbody.group').count(), 1);
    assert.equal(await page.textContent('tbody.group .twisty'), 'img-0042');
    assert.equal(await page.textContent('tbody.group tr.head td.num'), String(VERSIONS));
    assert.equal(await page.textContent('tbody.group tr.head td >> nth=1'), `1.${VERSIONS - 1}.0`);
    assert.match((await page.textContent('#status')) ?? '', /· 1 name matches$/);

    await page.click('tbody.group tr.head td >> nth=4');
    const versions = await page.locator('tbody.group tr.version td:nth-child(2)').allTextContents();
    assert.deepEqual(
      versions,
      Array.from({ length: VERSIONS }, (_, v) => `1.${VERSIONS - 1 - v}.0`),
    );
    await page.click('tbody.group tr.head td >> nth=4');
    assert.equal(await page.locator('tbody.group tr.version').count(), 0);

    await page.fill('#filter', seeded.probe.uuid.toUpperCase());
    assert.equal(await page.textContent('tbody.group .twisty'), seeded.probe.name);
    assert.equal(await page.textContent('tbody.group tr.head td.num'), `1 of ${VERSIONS}`);
    assert.equal(await page.textContent('tbody.group tr.head td >> nth=1'), seeded.probe.version);

    await page.fill('#filter', 'group=g3');
    const g3 = Math.ceil((NAMES - 3) / 7);
    assert.match((await page.textContent('#status')) ?? '', new RegExp(`· ${g3} names match$`));
    await page.fill('#filter', 'no such image anywhere');
    assert.equal(await page.textContent('#images tbody'), 'No image matches the filter.');
    await page.fill('#filter', '');
    assert.ok((await page.locator('tbody.group').count()) > 100);
    page.off('request', onRequest);
    assert.deepEqual(requests, [], 'filtering does not refetch');
  });

  test('origin chain: followed by clicks to the root; a missing link is marked', async () => {
    const { chain } = seeded;
    await page.fill('#filter', 'chain-c');
    await page.click('tbody.group tr.head a');
    await page.waitForSelector(`#details[data-uuid="${chain.c}"]`);
    assert.equal(await page.textContent('#details h2'), 'chain-c 4.0.0');
    const links = await page.locator('#details .chain li a').allTextContents();
    assert.deepEqual(links, ['chain-b 3.0.0', 'chain-a 2.0.0', 'chain-root 1.0.0']);
    assert.equal(await page.textContent('#details .chain li >> nth=2 >> .root'), 'root');

    for (const [uuid, title] of [
      [chain.b, 'chain-b 3.0.0'],
      [chain.a, 'chain-a 2.0.0'],
      [chain.root, 'chain-root 1.0.0'],
    ] as const) {
      await page.click('#details .chain li >> nth=0 >> a');
      await page.waitForSelector(`#details[data-uuid="${uuid}"]`);
      assert.equal(await page.textContent('#details h2'), title);
      assert.equal(await page.textContent('#details .uuid'), uuid);
      assert.ok(page.url().endsWith(`image=${uuid}`), page.url());
    }
    assert.equal(await page.locator('#details .chain').count(), 0);
    // Seeded through the store, it has a manifest file entry but no blob: the link gives way to a warning.
    await page.locator('#details .no-file').waitFor();
    assert.equal(await page.locator('#details a.download').count(), 0);
    assert.equal(await page.textContent('#details .md5'), 'unknown');
    assert.match((await page.textContent('#details')) ?? '', /origin chainnone \(this is a root image\)/);
    // The back button walks the chain back down.
    await page.goBack();
    await page.waitForSelector(`#details[data-uuid="${chain.a}"]`);

    await page.fill('#filter', 'orphan');
    await page.click('tbody.group tr.head a');
    await page.waitForSelector(`#details[data-uuid="${seeded.orphan}"]`);
    const missing = page.locator('#details .chain li.missing');
    assert.equal(await missing.count(), 1);
    await page.locator('#details .chain li.missing', { hasText: 'not in the repository' }).waitFor();
    assert.equal(await missing.textContent(), `⚠ missing: ${seeded.missingOrigin} is not in the repository`);
    await page.fill('#filter', '');
    assert.deepEqual(problems, []);
  });

  test('download: the link serves the uploaded file (sha1 and md5 as shown)', async () => {
    const sha1 = createHash('sha1').update(FILE_CONTENT).digest('hex');
    const md5 = createHash('md5').update(FILE_CONTENT).digest('hex');
    await page.fill('#filter', 'ui-file-test');
    await page.click('tbody.group tr.head a');
    await page.waitForSelector(`#details[data-uuid="${fileUuid}"]`);
    assert.equal(await page.textContent('#details .sha1'), sha1);
    await page.locator('#details .md5', { hasText: /^[0-9a-f]{32}$/ }).waitFor();
    assert.equal(await page.textContent('#details .md5'), md5);
    const link = page.locator('#details a.download');
    assert.equal(await link.getAttribute('href'), `/images/${fileUuid}/file?channel=dev`);
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const file = await download.path();
    assert.equal(createHash('sha1').update(fs.readFileSync(file)).digest('hex'), sha1);
    await page.fill('#filter', '');
  });

  test('switching channel reloads the list from that channel; * lists all', async () => {
    await page.selectOption('#channel', 'release');
    await page.waitForSelector('#images[data-state="ready"][data-channel="release"]');
    assert.ok(page.url().endsWith('#channel=release'), page.url());
    assert.equal(
      await page.textContent('#status'),
      `${RELEASE_IMAGES.toLocaleString('en')} images, ${RELEASE_IMAGES / VERSIONS} names in channel release`,
    );
    const first = await page.locator('tbody.group .twisty').allTextContents();
    assert.ok(first.every((n) => /^img-\d{3}0$/.test(n)));

    await page.selectOption('#channel', 'experimental');
    await page.waitForSelector('#images[data-state="ready"][data-channel="experimental"]');
    assert.match(
      (await page.textContent('#status')) ?? '',
      /^\d+ images, \d+ names in channel experimental$/,
    );
    assert.equal(await page.locator('tbody.group .twisty', { hasText: /^img-/ }).count(), 0);

    // An origin outside the channel is a missing link there.
    await page.goto(`${base}/ui/#channel=release&image=${seeded.chain.c}`);
    await page.waitForSelector('#images[data-state="ready"][data-channel="release"]');
    await page.waitForSelector(`#details[data-uuid="${seeded.chain.c}"]`);
    assert.match((await page.textContent('#details')) ?? '', /Not in channel release/);
    await page.locator('#details .chain li.missing', { hasText: '(only in dev)' }).waitFor();

    await page.selectOption('#channel', '*');
    await page.waitForSelector('#images[data-state="ready"][data-channel="*"]');
    assert.match((await page.textContent('#status')) ?? '', /^10,000 images, [\d,]+ names in all channels$/);

    // The screenshot: dev, one image with its origin chain open.
    await page.goto(`${base}/ui/#channel=dev&image=${seeded.chain.c}`);
    await page.waitForSelector(`#details[data-uuid="${seeded.chain.c}"]`);
    const out = path.join(projectRoot, 'test-artifacts/images-ui.png');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out });
    assert.ok(fs.statSync(out).size > 0);
    assert.deepEqual(problems, []);
  });
});
