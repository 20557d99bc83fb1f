/**
 * A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a
 * free loopback port in a temp directory, configured as specs/services.md says,
 * in one of three auth modes (none, htpasswd Basic, Bearer tokens from a token
 * server written here), stopped by its pid. Plus a fault-injecting proxy that
 * sits in front of it, counts requests, fails some with 500 and can hold some
 * (to kill a client mid-push).
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, createSign, randomUUID, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isSlipwayError } from '../../src/core/errors.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

/** Awaits `p`, asserts it rejected with a SlipwayError of `code`, and returns that error. */
export async function rejectsCode(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(isSlipwayError(err), `expected a SlipwayError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

// ---------------------------------------------------------------------------
// Token server

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** Decides what a user gets for what they asked; default: everything asked. */
export type GrantPolicy = (user: string | undefined, requested: Access[]) => Access[];

export const grantAll: GrantPolicy = (_user, requested) => requested;
export const grantPullOnly: GrantPolicy = (_user, requested) =>
  requested.map((a) => ({ ...a, actions: a.actions.filter((x) => x === 'pull') }));

export interface TokenRequestLog {
  user: string | undefined;
  scopes: string[];
  status: number;
}

export interface TokenServer {
  url: string;
  requests: TokenRequestLog[];
  grant: GrantPolicy;
  /** Answer with `access_token` instead of `token`. */
  field: 'token' | 'access_token';
  stop(): Promise<void>;
}

/** libtrust's key id: base32 of the first 240 bits of sha256(DER SPKI), in 12 groups of 4, joined by ':'. */
export function libtrustKeyId(spkiDer: Buffer): string {
  const sum = createHash('sha256').update(spkiDer).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of sum) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet.charAt((value >>> (bits - 5)) & 31);
      bits -= 5;
    }
  }
  return (out.match(/.{4}/g) ?? []).join(':');
}

function b64url(v: unknown): string {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
}

export async function startTokenServer(o: {
  keyPem: string;
  certPem: string;
  service: string;
  issuer: string;
  users: Record<string, string>;
  grant?: GrantPolicy;
}): Promise<TokenServer> {
  const kid = libtrustKeyId(new X509Certificate(o.certPem).publicKey.export({ type: 'spki', format: 'der' }));
  const state: TokenServer = {
    url: '',
    requests: [],
    grant: o.grant ?? grantAll,
    field: 'token',
    stop: () => Promise.resolve(),
  };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const scopes = u.searchParams.getAll('scope');
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const [u0, ...p] = Buffer.from(auth.replace(/^Basic /, ''), 'base64')
        .toString('utf8')
        .split(':');
      if (u0 === undefined || o.users[u0] !== p.join(':')) {
        state.requests.push({ user: u0, scopes, status: 401 });
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      user = u0;
    }
    const requested: Access[] = scopes.flatMap((s) => {
      const m = /^(\w+):(.+):([^:]+)$/.exec(s);
      return m === null
        ? []
        : [{ type: m[1] as string, name: m[2] as string, actions: (m[3] as string).split(',') }];
    });
    const access = user === undefined ? [] : state.grant(user, requested);
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', kid };
    const claims = {
      iss: o.issuer,
      sub: user ?? '',
      aud: o.service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${b64url(header)}.${b64url(claims)}`;
    const sig = createSign('RSA-SHA256').update(input).sign(o.keyPem).toString('base64url');
    state.requests.push({ user, scopes, status: 200 });
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(
      JSON.stringify({
        [state.field]: `${input}.${sig}`,
        expires_in: 300,
        issued_at: new Date().toISOString(),
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`;
  state.stop = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => {
        resolve();
      });
    });
  return state;
}

// ---------------------------------------------------------------------------
// Registry

export type RegistryMode = 'none' | 'htpasswd' | 'token';

export interface Registry {
  /** `127.0.0.1:PORT` */
  host: string;
  dir: string;
  pid: number;
  mode: RegistryMode;
  token?: TokenServer;
  stop(): Promise<void>;
}

async function waitReady(host: string, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode}): ${fs.readFileSync(logFile, 'utf8')}`);
    }
    const status = await new Promise<number>((resolve) => {
      const r = http.get(`http://${host}/v2/`, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      r.on('error', () => {
        resolve(0);
      });
    });
    if (status === 200 || status === 401) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer on ${host}: ${fs.readFileSync(logFile, 'utf8')}`);
}

export async function startRegistry(
  o: { mode?: RegistryMode; users?: Record<string, string>; grant?: GrantPolicy } = {},
): Promise<Registry> {
  const mode = o.mode ?? 'none';
  const users = o.users ?? { alice: 'wonderland' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slipway-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let auth = '';
  let token: TokenServer | undefined;
  if (mode === 'htpasswd') {
    const lines = Object.entries(users).map(([u, p]) =>
      execFileSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' }).trim(),
    );
    fs.writeFileSync(path.join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
    auth = `auth:\n  htpasswd:\n    realm: ci\n    path: ${path.join(dir, 'htpasswd')}\n`;
  } else if (mode === 'token') {
    const keyFile = path.join(dir, 'token.key');
    const certFile = path.join(dir, 'token.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=token',
        '-days',
        '2',
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ],
      { stdio: 'ignore' },
    );
    token = await startTokenServer({
      keyPem: fs.readFileSync(keyFile, 'utf8'),
      certPem: fs.readFileSync(certFile, 'utf8'),
      service: 'slipway-test',
      issuer: 'slipway-test-issuer',
      users,
      ...(o.grant !== undefined ? { grant: o.grant } : {}),
    });
    auth =
      `auth:\n  token:\n    realm: ${token.url}\n    service: slipway-test\n` +
      `    issuer: slipway-test-issuer\n    rootcertbundle: ${certFile}\n`;
  }
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, 'data')}\n` +
      `  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n  secret: slipway-test-secret\n${auth}`,
  );
  const logFile = path.join(dir, 'registry.log');
  const log = fs.openSync(logFile, 'a');
  const child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error('docker-registry did not start');
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, 'SIGTERM');
      const t = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
      }, 5000);
      await exited;
      clearTimeout(t);
    }
    await token?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(host, child, logFile);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, dir, pid, mode, ...(token !== undefined ? { token } : {}), stop };
}

// ---------------------------------------------------------------------------
// Fault-injecting proxy

export interface ProxyLogEntry {
  method: string;
  path: string;
  status: number;
  injected: boolean;
}

export interface FaultProxy {
  host: string;
  log: ProxyLogEntry[];
  /** Return 500 for the next `count` requests matching `match`. */
  failNext(count: number, match: (method: string, path: string) => boolean): void;
  /** Hold (never answer, until released or the client goes away) requests matching `match`. */
  hold(match: ((method: string, path: string) => boolean) | undefined): void;
  /** Resolves when a request matching `match` is seen (already seen ones count). */
  waitFor(match: (e: ProxyLogEntry) => boolean, count?: number): Promise<void>;
  /** Blob-upload requests (POST/PATCH/PUT under /blobs/uploads/) since `from` (a log index). */
  blobUploads(from?: number): ProxyLogEntry[];
  stop(): Promise<void>;
}

export const isBlobUpload = (e: { method: string; path: string }): boolean =>
  e.path.includes('/blobs/uploads/') && ['POST', 'PATCH', 'PUT'].includes(e.method);

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const log: ProxyLogEntry[] = [];
  let fail: { count: number; match: (m: string, p: string) => boolean } | undefined;
  let holdMatch: ((m: string, p: string) => boolean) | undefined;
  const waiters: { match: (e: ProxyLogEntry) => boolean; count: number; resolve: () => void }[] = [];
  const held: http.ServerResponse[] = [];
  const record = (e: ProxyLogEntry): void => {
    log.push(e);
    for (const w of [...waiters]) {
      if (log.filter(w.match).length >= w.count) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const p = (req.url ?? '/').split('?')[0] ?? '/';
    if (fail !== undefined && fail.count > 0 && fail.match(method, p)) {
      fail.count--;
      req.resume();
      req.on('end', () => {
        res
          .writeHead(500, { 'Content-Type': 'application/json' })
          .end('{"errors":[{"code":"UNKNOWN","message":"injected"}]}');
        record({ method, path: p, status: 500, injected: true });
      });
      return;
    }
    if (holdMatch?.(method, p) === true) {
      held.push(res);
      record({ method, path: p, status: 0, injected: true });
      return;
    }
    const up = http.request(
      {
        host: '127.0.0.1',
        port: Number(target.split(':')[1]),
        method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
        r.on('end', () => {
          record({ method, path: p, status: r.statusCode ?? 0, injected: false });
        });
      },
    );
    up.on('error', () => {
      res.destroy();
    });
    req.on('aborted', () => {
      up.destroy();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    host,
    log,
    failNext: (count, match) => {
      fail = { count, match };
    },
    hold: (match) => {
      holdMatch = match;
    },
    waitFor: (match, count = 1) =>
      new Promise((resolve) => {
        if (log.filter(match).length >= count) resolve();
        else waiters.push({ match, count, resolve });
      }),
    blobUploads: (from = 0) => log.slice(from).filter(isBlobUpload),
    stop: () =>
      new Promise((resolve) => {
        for (const r of held) r.destroy();
        agent.destroy();
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
