/**
 * A tiny static file server on 127.0.0.1 (a free port) for clients that
 * only speak HTTP, like tuf-js. It serves a Map of path → bytes (read at
 * request time, so a test may swap files between requests) or a directory,
 * answers 404 for anything else, and records every request it gets.
 */
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

export interface ServedRequest {
  method: string;
  /** The decoded path without its leading `/` (`metadata/1.root.json`). */
  path: string;
  status: number;
}

export interface TufServer {
  /** `http://127.0.0.1:<port>`, without a trailing slash. */
  readonly url: string;
  /** Every request so far, in order. */
  readonly requests: readonly ServedRequest[];
  /** How many requests asked for `file` (or for anything, without an argument). */
  count(file?: string): number;
  close(): Promise<void>;
}

/** Files by path relative to the server's root (`metadata/timestamp.json`), or a directory. */
export type ServedFiles = Map<string, Buffer> | string;

/** Path segments of a URL path, decoded; undefined for anything that could leave the root. */
function segmentsOf(urlPath: string): string[] | undefined {
  const segments: string[] = [];
  for (const raw of urlPath.split('/')) {
    if (raw === '') continue;
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (seg === '.' || seg === '..' || seg.includes('/') || seg.includes('\\') || seg.includes('\0')) {
      return undefined;
    }
    segments.push(seg);
  }
  return segments;
}

async function lookup(files: ServedFiles, rel: string): Promise<Buffer | undefined> {
  if (typeof files !== 'string') return files.get(rel);
  try {
    const full = path.join(files, ...rel.split('/'));
    const st = await fsp.stat(full);
    return st.isFile() ? await fsp.readFile(full) : undefined;
  } catch {
    return undefined;
  }
}

export async function serveFiles(files: ServedFiles): Promise<TufServer> {
  const requests: ServedRequest[] = [];
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const urlPath = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const segments = segmentsOf(urlPath);
    const rel = segments?.join('/') ?? urlPath;
    const reply = (status: number, body?: Buffer): void => {
      requests.push({ method, path: rel, status });
      res.writeHead(status, {
        'content-type': status === 200 ? 'application/octet-stream' : 'text/plain',
        'content-length': body?.length ?? 0,
      });
      res.end(method === 'HEAD' ? undefined : body);
    };
    if (method !== 'GET' && method !== 'HEAD') {
      reply(405);
      return;
    }
    if (segments === undefined || segments.length === 0) {
      reply(404);
      return;
    }
    lookup(files, rel).then(
      (body) => {
        if (body === undefined) reply(404);
        else reply(200, body);
      },
      () => {
        reply(500);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    count: (file) => (file === undefined ? requests.length : requests.filter((r) => r.path === file).length),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => {
          if (err) reject(err);
          else resolve();
        });
        server.closeAllConnections();
      }),
  };
}

/** Serves `files` while `fn` runs, then closes the server. */
export async function withServer<T>(files: ServedFiles, fn: (server: TufServer) => Promise<T>): Promise<T> {
  const server = await serveFiles(files);
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}
