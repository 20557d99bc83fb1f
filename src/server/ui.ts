/**
 * The image repository's web UI: four static files (index.html, app.js,
 * style.css, favicon.svg) that read the public IMGAPI like any client. `serveUi` answers
 * `/` (a redirect to `/ui/`) and `/ui/…`, and returns false for everything
 * else so the API handles it.
 *
 * The assets live in src/server/ui/. `tsc` does not copy them into dist/,
 * so both src/server/ui.ts and dist/src/server/ui.js read them from the
 * source directory.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type * as http from 'node:http';
import { fileURLToPath } from 'node:url';

/** The only files served, with their types: nothing else under /ui/ is reachable. */
const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/** Same-origin scripts, styles and API calls only; no inline code, no framing. */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: http.OutgoingHttpHeaders = {
  'Content-Security-Policy': UI_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** src/server/ui/ seen from src/server/ui.ts or from dist/src/server/ui.js. */
function findUiDir(): string {
  const candidates = [new URL('./ui/', import.meta.url), new URL('../../../src/server/ui/', import.meta.url)];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (fs.existsSync(`${dir}index.html`)) return dir;
  }
  throw new Error(
    `web UI assets not found (looked in ${candidates.map((c) => fileURLToPath(c)).join(', ')})`,
  );
}

let uiDir: string | undefined;

interface Asset {
  body: Buffer;
  etag: string;
  /** The file's identity when read: a changed file is read again (edits show without a restart). */
  stamp: string;
}

const cache = new Map<string, Asset>();

async function loadAsset(name: string): Promise<Asset> {
  uiDir ??= findUiDir();
  const file = `${uiDir}${name}`;
  const st = await fsp.stat(file);
  const stamp = `${st.size}-${st.mtimeMs}`;
  const cached = cache.get(name);
  if (cached?.stamp === stamp) return cached;
  const body = await fsp.readFile(file);
  const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
  const asset = { body, etag, stamp };
  cache.set(name, asset);
  return asset;
}

function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch.split(',').some((t) => {
    const tag = t.trim().replace(/^W\//, '');
    return tag === '*' || tag === etag;
  });
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: http.OutgoingHttpHeaders,
): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Serves the web UI: `/` → 302 to `/ui/`; `/ui/` and `/ui` (a router may
 * strip the trailing slash; the page's links are absolute) → index.html;
 * `/ui/<asset>`. GET and HEAD only (others: 405). Returns false for any
 * other path, leaving the response untouched. `pathname` is the request's
 * path without its query, already normalized (no `..` segments).
 */
export async function serveUi(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  pathname: string,
): Promise<boolean> {
  if (pathname !== '/' && pathname !== '/ui' && !pathname.startsWith('/ui/')) return false;
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    sendJson(
      res,
      405,
      { code: 'BadMethod', message: `${method} is not allowed on ${pathname}` },
      { Allow: 'GET, HEAD' },
    );
    return true;
  }
  if (pathname === '/') {
    res.writeHead(302, { Location: '/ui/', 'Content-Length': 0 });
    res.end();
    return true;
  }
  const name = pathname === '/ui/' || pathname === '/ui' ? 'index.html' : pathname.slice('/ui/'.length);
  const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (type === undefined) {
    sendJson(res, 404, { code: 'ResourceNotFound', message: `${pathname} does not exist` }, SECURITY_HEADERS);
    return true;
  }
  const asset = await loadAsset(name);
  const headers: http.OutgoingHttpHeaders = {
    ...SECURITY_HEADERS,
    'Content-Type': type,
    ETag: asset.etag,
    // Names are not content-hashed, so browsers revalidate each time (a cheap 304 via the ETag).
    'Cache-Control': 'no-cache',
  };
  if (matchesEtag(req.headers['if-none-match'], asset.etag)) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  res.writeHead(200, { ...headers, 'Content-Length': asset.body.length });
  res.end(method === 'HEAD' ? undefined : asset.body);
  return true;
}
