/**
 * The registry client's pure parts, driven with vectors: the 401 decision,
 * token requests and answers, credentials and auth files, retry policy,
 * upload plans, push tags and plans, reference and summary helpers.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import { MEDIA_TYPE_INDEX, parseWwwAuthenticate, type Descriptor } from '../../src/formats/oci.js';
import { parseLayoutRef, selectPlatform, summarize } from '../../src/oci/inspect.js';
import { parseTarget, planPush, pushTags, runPool } from '../../src/oci/push.js';
import {
  MAX_AUTH_ROUNDS,
  jwtGrants,
  missingActions,
  nextAuthStep,
  parseTokenResponse,
  realmMayReceiveCredentials,
  scopeActions,
  tokenRequestUrl,
  type AuthStepInput,
} from '../../src/oci/registry/auth.js';
import { RegistryClient, planUpload, registryErrorText, withDigest } from '../../src/oci/registry/client.js';
import {
  defaultAuthFiles,
  lookupAuth,
  normalizeAuthKey,
  parseAuthFile,
  parseCredsFlag,
  resolveCredentials,
} from '../../src/oci/registry/credentials.js';
import {
  backoffDelay,
  isRetryableError,
  isRetryableStatus,
  parseRetryAfter,
} from '../../src/oci/registry/transport.js';
import { tempDir } from '../helpers/tmp.js';

const REG = 'registry.example:5000';
const BEARER = parseWwwAuthenticate(
  'Bearer realm="https://Auth.Example/Token",service="registry.example",scope="repository:app:pull,push"',
);
const INSUFFICIENT = parseWwwAuthenticate(
  'Bearer realm="https://Auth.Example/Token",service="registry.example",scope="repository:app:pull,push",error="insufficient_scope"',
);
const BASIC = parseWwwAuthenticate('Basic realm="ci"');
const PUSH = ['repository:app:pull,push'];

function step(o: Partial<AuthStepInput>): ReturnType<typeof nextAuthStep> {
  return nextAuthStep({
    registry: REG,
    challenges: BEARER,
    sent: 'none',
    scopes: PUSH,
    refetched: false,
    rounds: 0,
    ...o,
  });
}

function throwsCode(fn: () => unknown, code: string): Error {
  try {
    fn();
  } catch (err) {
    assert.ok(isSlipwayError(err), String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

test('nextAuthStep: Basic asks once, fails with a message naming the registry and user', () => {
  assert.deepEqual(step({ challenges: BASIC, username: 'alice' }), { kind: 'basic' });
  const again = step({ challenges: BASIC, username: 'alice', sent: 'basic', rounds: 1 });
  assert.equal(again.kind, 'fail');
  assert.ok(again.kind === 'fail' && again.code === 'OCI_AUTH_FAILED' && again.message.includes(REG));
  assert.ok(again.kind === 'fail' && again.message.includes("user 'alice'"));
  const none = step({ challenges: BASIC });
  assert.ok(none.kind === 'fail' && /requires credentials/.test(none.message));
});

test('nextAuthStep: Bearer fetches, re-requests once, then insufficient_scope or auth failure; never loops', () => {
  const first = step({});
  assert.equal(first.kind, 'token');
  assert.ok(first.kind === 'token' && !first.invalidate);
  assert.deepEqual(first.kind === 'token' ? first.scopes : [], PUSH);
  // The realm keeps its case.
  assert.equal(first.kind === 'token' ? first.challenge.params['realm'] : '', 'https://Auth.Example/Token');
  const stale = step({ sent: 'bearer', rounds: 1, challenges: INSUFFICIENT });
  assert.ok(stale.kind === 'token' && stale.invalidate);
  const denied = step({
    sent: 'bearer',
    rounds: 2,
    refetched: true,
    challenges: INSUFFICIENT,
    username: 'alice',
    granted: new Map([['app', ['pull']]]),
  });
  assert.equal(denied.kind, 'fail');
  assert.ok(denied.kind === 'fail' && denied.code === 'OCI_INSUFFICIENT_SCOPE');
  assert.ok(
    denied.kind === 'fail' && denied.message.includes("push on 'app'") && denied.message.includes(REG),
  );
  const rejected = step({ sent: 'bearer', rounds: 2, refetched: true });
  assert.ok(rejected.kind === 'fail' && rejected.code === 'OCI_AUTH_FAILED');
  const capped = step({ rounds: MAX_AUTH_ROUNDS });
  assert.ok(capped.kind === 'fail' && capped.code === 'OCI_AUTH_FAILED');
  const noChallenge = step({ challenges: [] });
  assert.ok(noChallenge.kind === 'fail' && /without a Basic or Bearer/.test(noChallenge.message));
  // Bearer is preferred when both are offered; the challenge's scope is used when the request names none.
  const both = nextAuthStep({
    registry: REG,
    challenges: [...BASIC, ...BEARER],
    sent: 'none',
    scopes: [],
    refetched: false,
    rounds: 0,
  });
  assert.ok(both.kind === 'token' && both.scopes[0] === 'repository:app:pull,push');
});

test('scopes: actions, missing actions, mount scopes, JWT grants', () => {
  assert.deepEqual(scopeActions('repository:a/b:pull,push'), {
    repository: 'a/b',
    actions: ['pull', 'push'],
  });
  assert.equal(scopeActions('registry:catalog:*')?.repository, undefined);
  assert.deepEqual(missingActions(PUSH, new Map([['app', ['pull']]])), ["push on 'app'"]);
  assert.deepEqual(missingActions(PUSH, new Map([['app', ['*']]])), []);
  assert.deepEqual(missingActions(PUSH, undefined), ["pull,push on 'app'"]);
  assert.deepEqual(RegistryClient.scopes('dst', 'push', 'src'), [
    'repository:dst:pull,push',
    'repository:src:pull',
  ]);
  assert.deepEqual(RegistryClient.scopes('dst', 'pull'), ['repository:dst:pull']);
  const claims = Buffer.from(
    JSON.stringify({ access: [{ type: 'repository', name: 'app', actions: ['pull'] }] }),
  ).toString('base64url');
  assert.deepEqual(jwtGrants(`e30.${claims}.sig`), new Map([['app', ['pull']]]));
  assert.equal(jwtGrants('opaque-token'), undefined);
});

test('token requests and answers', () => {
  const url = tokenRequestUrl(
    BEARER[0] as never,
    ['repository:app:pull,push', 'repository:base:pull'],
    'alice',
  );
  assert.equal(url.origin, 'https://auth.example');
  assert.equal(url.pathname, '/Token');
  assert.deepEqual(url.searchParams.getAll('scope'), ['repository:app:pull,push', 'repository:base:pull']);
  assert.equal(url.searchParams.get('service'), 'registry.example');
  assert.equal(url.searchParams.get('account'), 'alice');
  throwsCode(
    () => tokenRequestUrl({ scheme: 'Bearer', params: { realm: 'ftp://x/' } }, []),
    'OCI_AUTH_CHALLENGE_INVALID',
  );
  // Credentials go to a realm only over https, or to the registry's own host when that is already plain http.
  const may = (realm: string, registry: string): boolean =>
    realmMayReceiveCredentials(new URL(realm), new URL(registry));
  assert.ok(may('https://auth.docker.io/token', 'https://registry-1.docker.io/'));
  assert.ok(may('http://127.0.0.1:5001/token', 'http://127.0.0.1:5000/'));
  assert.ok(!may('http://127.0.0.2:5001/token', 'http://127.0.0.1:5000/'));
  assert.ok(!may('http://evil.example/token', 'https://registry.example/'));
  assert.ok(!may('http://registry.example/token', 'https://registry.example/'), 'no downgrade');
  const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
  assert.deepEqual(parseTokenResponse(enc({ token: 't', expires_in: 300 }), 1000, 'r'), {
    token: 't',
    expiresAt: 301_000,
  });
  assert.deepEqual(parseTokenResponse(enc({ access_token: 'a' }), 0, 'r'), { token: 'a', expiresAt: 60_000 });
  assert.deepEqual(parseTokenResponse(enc({ token: '', access_token: 'a', expires_in: -1 }), 0, 'r'), {
    token: 'a',
    expiresAt: 60_000,
  });
  throwsCode(() => parseTokenResponse(enc({}), 0, 'r'), 'OCI_REGISTRY_ERROR');
  throwsCode(() => parseTokenResponse(new TextEncoder().encode('<html>'), 0, 'r'), 'OCI_REGISTRY_ERROR');
});

test('credentials: --creds, auth files (keys with schemes, namespaces), precedence and errors', () => {
  assert.deepEqual(parseCredsFlag('u:p:q'), { username: 'u', password: 'p:q' });
  throwsCode(() => parseCredsFlag('nocolon'), 'OCI_CREDENTIALS_INVALID');
  assert.equal(normalizeAuthKey('https://index.docker.io/v1/'), 'index.docker.io');
  assert.equal(normalizeAuthKey('http://127.0.0.1:5000'), '127.0.0.1:5000');
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const file = parseAuthFile(
    JSON.stringify({
      auths: {
        'https://reg.example': { auth: b64('top:1') },
        'reg.example/team': { auth: b64('team:2') },
        'other.example': { username: 'u', password: 'p' },
        'helper.example': { identitytoken: 'x' },
        'bad.example': { auth: b64('nocolon') },
        'index.docker.io': { auth: b64('hub:3') },
      },
      credHelpers: {},
    }),
    '/a/auth.json',
  );
  assert.deepEqual(lookupAuth(file, 'reg.example', 'app'), { username: 'top', password: '1' });
  assert.deepEqual(lookupAuth(file, 'reg.example', 'team/app'), { username: 'team', password: '2' });
  assert.deepEqual(lookupAuth(file, 'other.example'), { username: 'u', password: 'p' });
  assert.equal(lookupAuth(file, 'helper.example'), undefined);
  assert.equal(lookupAuth(file, 'nowhere.example'), undefined);
  assert.deepEqual(lookupAuth(file, 'docker.io', 'library/x'), { username: 'hub', password: '3' });
  const err = throwsCode(() => lookupAuth(file, 'bad.example'), 'OCI_CREDENTIALS_INVALID');
  assert.match(err.message, /\/a\/auth\.json/);
  assert.match(err.message, /bad\.example/);
  throwsCode(() => parseAuthFile('{', '/a/auth.json'), 'OCI_CREDENTIALS_INVALID');
  throwsCode(() => parseAuthFile('{"auths":[]}', '/a/auth.json'), 'OCI_CREDENTIALS_INVALID');
  throwsCode(() => parseAuthFile('{"auths":{"x":"y"}}', '/a/auth.json'), 'OCI_CREDENTIALS_INVALID');
  throwsCode(
    () => lookupAuth(parseAuthFile('{"auths":{"x":{"auth":"!!"}}}', '/f'), 'x'),
    'OCI_CREDENTIALS_INVALID',
  );

  assert.deepEqual(
    defaultAuthFiles({ REGISTRY_AUTH_FILE: '/r.json', XDG_RUNTIME_DIR: '/run/u' }, '/home/u'),
    [
      '/r.json',
      '/run/u/containers/auth.json',
      '/home/u/.config/containers/auth.json',
      '/home/u/.docker/config.json',
    ],
  );
  // Precedence: flag, env, then the first file with an entry.
  const home = tempDir();
  fs.mkdirSync(path.join(home, '.docker'));
  fs.writeFileSync(
    path.join(home, '.docker', 'config.json'),
    JSON.stringify({ auths: { 'r.example': { auth: b64('d:1') } } }),
  );
  fs.mkdirSync(path.join(home, '.config', 'containers'), { recursive: true });
  fs.writeFileSync(path.join(home, '.config', 'containers', 'auth.json'), JSON.stringify({ auths: {} }));
  const env = { HOME: home };
  assert.deepEqual(resolveCredentials({ registry: 'r.example', env, home }), {
    credentials: { username: 'd', password: '1' },
    source: path.join(home, '.docker', 'config.json'),
  });
  assert.equal(
    resolveCredentials({
      registry: 'r.example',
      env: { ...env, SLIPWAY_REGISTRY_USER: 'e', SLIPWAY_REGISTRY_PASSWORD: '2' },
      home,
    }).source,
    'env',
  );
  assert.equal(resolveCredentials({ registry: 'r.example', creds: 'f:3', env, home }).source, '--creds');
  assert.deepEqual(resolveCredentials({ registry: 'none.example', env, home }), {});
  throwsCode(
    () => resolveCredentials({ registry: 'r.example', authFile: path.join(home, 'missing.json'), env, home }),
    'NOT_FOUND',
  );
});

test('retry policy: statuses, connection errors, Retry-After, backoff with jitter', () => {
  for (const s of [408, 429, 500, 502, 503, 504]) assert.ok(isRetryableStatus(s));
  for (const s of [400, 401, 403, 404, 416]) assert.ok(!isRetryableStatus(s));
  const e = (code: string): Error => Object.assign(new Error('x'), { code });
  assert.ok(isRetryableError(e('ECONNRESET')));
  assert.ok(isRetryableError(e('ECONNREFUSED')));
  assert.ok(isRetryableError(e('EPIPE')));
  assert.ok(isRetryableError(new Error('socket hang up')));
  assert.ok(!isRetryableError(e('ENOTFOUND')));
  assert.equal(parseRetryAfter('3', 0), 3000);
  assert.equal(parseRetryAfter('Thu, 01 Jan 1970 00:00:05 GMT', 1000), 4000);
  assert.equal(parseRetryAfter('9999', 0), 30_000);
  assert.equal(parseRetryAfter('soon', 0), undefined);
  assert.equal(parseRetryAfter(undefined, 0), undefined);
  assert.equal(
    backoffDelay(1, 100, undefined, () => 0.5),
    100,
  );
  assert.equal(
    backoffDelay(3, 100, undefined, () => 0.5),
    400,
  );
  assert.equal(
    backoffDelay(3, 100, undefined, () => 0),
    200,
  );
  assert.equal(
    backoffDelay(30, 100, undefined, () => 0.5),
    10_000,
  );
  assert.equal(backoffDelay(1, 100, 2500), 2500);
});

test('upload plans, Location with digest, registry error bodies', () => {
  assert.deepEqual(planUpload(10, 16), { kind: 'monolithic' });
  assert.deepEqual(planUpload(16, 16), { kind: 'monolithic' });
  assert.deepEqual(planUpload(40, 16), {
    kind: 'chunked',
    chunks: [
      [0, 16],
      [16, 32],
      [32, 40],
    ],
  });
  const d = `sha256:${'a'.repeat(64)}`;
  const loc = new URL(
    '/v2/app/blobs/uploads/u1?_state=ab%2Bc%3D%3D',
    'http://r.example/v2/app/blobs/uploads/',
  );
  assert.equal(
    withDigest(loc, d).href,
    `http://r.example/v2/app/blobs/uploads/u1?_state=ab%2Bc%3D%3D&digest=sha256%3A${'a'.repeat(64)}`,
  );
  assert.equal(withDigest(new URL('http://r/x'), d).search, `?digest=sha256%3A${'a'.repeat(64)}`);
  const body = new TextEncoder().encode(
    '{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:x"}]}',
  );
  assert.equal(registryErrorText(body), 'MANIFEST_BLOB_UNKNOWN: blob unknown to registry');
  assert.equal(registryErrorText(new TextEncoder().encode('  oops  ')), 'oops');
});

test('push tags, targets and plans; pool stops after the first failure', async () => {
  assert.deepEqual(pushTags([], undefined, undefined), ['latest']);
  assert.deepEqual(pushTags([], undefined, 'v1'), ['v1']);
  assert.deepEqual(pushTags([], 'x', 'v1'), ['x']);
  assert.deepEqual(pushTags(['1.0.0', '1', '1'], 'latest', 'v1'), ['1.0.0', '1', 'latest']);
  throwsCode(() => pushTags(['no/slash'], undefined, undefined), 'OCI_INVALID');
  assert.deepEqual(parseTarget('127.0.0.1:5000/a/b:t'), {
    registry: '127.0.0.1:5000',
    repository: 'a/b',
    tag: 't',
  });
  throwsCode(() => parseTarget(`r.example/a@sha256:${'a'.repeat(64)}`), 'OCI_INVALID');

  const desc = (c: string, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Descriptor => ({
    mediaType,
    digest: `sha256:${c.repeat(64)}`,
    size: 1,
  });
  const root = desc('f', MEDIA_TYPE_INDEX);
  const graph = {
    manifests: [
      { descriptor: desc('1'), bytes: new Uint8Array([1]) },
      { descriptor: desc('2'), bytes: new Uint8Array([2]) },
      { descriptor: root, bytes: new Uint8Array([3]) },
    ],
    blobs: [desc('a', 'x/y'), desc('b', 'x/y')],
  };
  const plan = planPush({ registry: 'r', repository: 'app' }, root, graph, ['latest'], 'app');
  assert.deepEqual(
    plan.manifests.map((m) => m.descriptor.digest),
    [desc('1').digest, desc('2').digest],
  );
  assert.deepEqual(plan.rootBytes, new Uint8Array([3]));
  assert.equal(plan.from, undefined, 'mounting from the target itself is pointless');
  assert.equal(planPush({ registry: 'r', repository: 'app' }, root, graph, ['latest'], 'base').from, 'base');

  const started: number[] = [];
  await assert.rejects(
    runPool([1, 2, 3, 4, 5, 6], 2, async (n) => {
      started.push(n);
      await new Promise((r) => setTimeout(r, 5));
      if (n === 2) throw new Error('boom');
    }),
    /boom/,
  );
  assert.ok(started.length < 6, `started ${started.join(',')}`);
});

test('inspect helpers: oci: references, summaries of OCI and Docker types, platform selection', () => {
  assert.deepEqual(parseLayoutRef('oci:/a/b:v1'), { dir: '/a/b', ref: 'v1' });
  assert.deepEqual(parseLayoutRef('oci:/a/b'), { dir: '/a/b' });
  assert.deepEqual(parseLayoutRef('oci:./x:y/z'), { dir: './x:y/z' });
  const d = `sha256:${'c'.repeat(64)}`;
  const list = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      manifests: [
        {
          mediaType: 'm/x',
          digest: d,
          size: 3,
          platform: { os: 'linux', architecture: 'arm', variant: 'v7' },
        },
      ],
    }),
  );
  const s = summarize(list, 'x');
  assert.equal(s.kind, 'index');
  const hit = selectPlatform(s.manifests ?? [], { os: 'linux', architecture: 'arm' }, 'r');
  assert.equal(hit.digest, d);
  const err = throwsCode(
    () => selectPlatform(s.manifests ?? [], { os: 'linux', architecture: 'arm', variant: 'v6' }, 'r'),
    'OCI_NOT_FOUND',
  );
  assert.match(err.message, /linux\/arm\/v7/);
  const m = summarize(
    new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, config: { mediaType: 'a/b', digest: d, size: 1 }, layers: [] }),
    ),
    'application/vnd.oci.image.manifest.v1+json',
  );
  assert.equal(m.kind, 'manifest');
  throwsCode(() => summarize(new TextEncoder().encode('{"schemaVersion":2}'), 'x'), 'OCI_INVALID');
  throwsCode(() => summarize(new TextEncoder().encode('nope'), 'x'), 'OCI_INVALID');
});
