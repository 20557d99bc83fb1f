/**
 * Registry authentication (distribution's token auth and Basic), as a pure
 * decision (nextAuthStep: what to do about a 401) and a small stateful
 * Authenticator that does the token requests and caches tokens per
 * (registry, scope).
 *
 * Rules: Basic credentials are sent once the registry asked for them; a
 * second 401 with them is OCI_AUTH_FAILED. For Bearer, a token is fetched
 * from the challenge's realm (case kept, any host) for the scopes the request
 * needs; a 401 with a token gets one re-request (the cached token may be stale
 * or narrower), and a 401 after that is OCI_AUTH_FAILED, or
 * OCI_INSUFFICIENT_SCOPE when the registry says `insufficient_scope`. A request
 * goes through at most MAX_AUTH_ROUNDS 401s: never a loop. Credentials go to
 * a token realm only where they cannot be read on the way
 * (realmMayReceiveCredentials).
 */
import { SlipwayError } from '../../core/errors.js';
import { parseWwwAuthenticate, tokenCacheKey, type AuthChallenge } from '../../formats/oci.js';
import type { Credentials } from './credentials.js';
import { header, readBody, type Transport } from './transport.js';

/** 401s one request may meet before giving up (challenge → token → one re-request). */
export const MAX_AUTH_ROUNDS = 3;
/** A token without expires_in lives 60 s (distribution spec). */
export const DEFAULT_TOKEN_SECONDS = 60;
/** Tokens are renewed this long before they expire. */
const EXPIRY_MARGIN_MS = 5_000;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;

// ---------------------------------------------------------------------------
// Pure decisions

/** What was sent with the request that got the 401. */
export type SentAuth = 'none' | 'basic' | 'bearer';

export type AuthStep =
  | { kind: 'basic' }
  | { kind: 'token'; challenge: AuthChallenge; scopes: string[]; invalidate: boolean }
  | { kind: 'fail'; code: 'OCI_AUTH_FAILED' | 'OCI_INSUFFICIENT_SCOPE'; message: string };

export interface AuthStepInput {
  registry: string;
  challenges: AuthChallenge[];
  sent: SentAuth;
  /** The scopes the request needs (`repository:NAME:ACTIONS`). */
  scopes: string[];
  username?: string;
  /** A token was already re-requested after a 401 during this request. */
  refetched: boolean;
  /** 401s already met by this request. */
  rounds: number;
  /** Actions the token that was sent granted on each repository, when it could be read (a JWT). */
  granted?: Map<string, string[]>;
}

/** The actions a `repository:NAME:a,b` scope asks for, or undefined for another kind of scope. */
export function scopeActions(scope: string): { repository: string; actions: string[] } | undefined {
  const m = /^repository(?:\([^)]*\))?:(.+):([^:]+)$/.exec(scope);
  if (m === null) return undefined;
  return { repository: m[1] as string, actions: (m[2] as string).split(',').filter((a) => a !== '') };
}

/** Actions a scope asks for that a grant lacks, per repository, as `push on 'foo'` phrases. */
export function missingActions(scopes: string[], granted: Map<string, string[]> | undefined): string[] {
  const out: string[] = [];
  for (const s of scopes) {
    const a = scopeActions(s);
    if (a === undefined) continue;
    const have = granted?.get(a.repository);
    const missing =
      have === undefined ? a.actions : a.actions.filter((x) => !have.includes(x) && !have.includes('*'));
    if (missing.length > 0) out.push(`${missing.join(',')} on '${a.repository}'`);
  }
  return out;
}

/** Bearer before Basic (a registry offering both prefers tokens); undefined when neither is offered. */
export function chooseChallenge(challenges: AuthChallenge[]): AuthChallenge | undefined {
  return challenges.find((c) => c.scheme === 'Bearer') ?? challenges.find((c) => c.scheme === 'Basic');
}

/** Decides what to do about a 401 (pure: the tests drive it with vectors). */
export function nextAuthStep(i: AuthStepInput): AuthStep {
  const who = i.username === undefined ? 'anonymous access' : `the credentials of user '${i.username}'`;
  const scopeText = i.scopes.length > 0 ? ` (scope ${i.scopes.join(' ')})` : '';
  const fail = (code: 'OCI_AUTH_FAILED' | 'OCI_INSUFFICIENT_SCOPE', message: string): AuthStep => ({
    kind: 'fail',
    code,
    message,
  });
  if (i.rounds >= MAX_AUTH_ROUNDS) {
    return fail('OCI_AUTH_FAILED', `registry ${i.registry} kept answering 401 for ${who}${scopeText}`);
  }
  const c = chooseChallenge(i.challenges);
  if (c === undefined) {
    return fail('OCI_AUTH_FAILED', `registry ${i.registry} answered 401 without a Basic or Bearer challenge`);
  }
  if (c.scheme === 'Basic') {
    if (i.username === undefined) {
      return fail(
        'OCI_AUTH_FAILED',
        `registry ${i.registry} requires credentials: pass --creds USER:PASS or --authfile FILE, or set SLIPWAY_REGISTRY_USER and SLIPWAY_REGISTRY_PASSWORD`,
      );
    }
    if (i.sent === 'basic') {
      return fail('OCI_AUTH_FAILED', `registry ${i.registry} rejected ${who} (HTTP 401)`);
    }
    return { kind: 'basic' };
  }
  const challengeScope = c.params['scope'];
  const scopes =
    i.scopes.length > 0 ? i.scopes : challengeScope !== undefined ? challengeScope.split(' ') : [];
  if (i.sent === 'bearer' && i.refetched) {
    if (c.params['error'] === 'insufficient_scope') {
      const required = challengeScope !== undefined ? challengeScope.split(' ') : scopes;
      const missing = missingActions(required, i.granted);
      const what = missing.length > 0 ? missing.join('; ') : `scope ${required.join(' ')}`;
      return fail(
        'OCI_INSUFFICIENT_SCOPE',
        `registry ${i.registry}: the token server did not grant ${what} to ${who} (asked for ${scopes.join(' ')})`,
      );
    }
    return fail(
      'OCI_AUTH_FAILED',
      `registry ${i.registry} rejected a fresh token for ${who}${scopeText}${c.params['error'] !== undefined ? `: ${c.params['error']}` : ''}`,
    );
  }
  return { kind: 'token', challenge: c, scopes, invalidate: i.sent === 'bearer' };
}

/** `GET realm?service=…&scope=…` (one `scope` per scope; `account` with credentials, as docker sends). */
export function tokenRequestUrl(challenge: AuthChallenge, scopes: string[], username?: string): URL {
  const realm = challenge.params['realm'] ?? '';
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new SlipwayError('OCI_AUTH_CHALLENGE_INVALID', `the Bearer realm '${realm}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SlipwayError('OCI_AUTH_CHALLENGE_INVALID', `the Bearer realm '${realm}' is not http(s)`);
  }
  const service = challenge.params['service'];
  if (service !== undefined) url.searchParams.append('service', service);
  for (const s of scopes) url.searchParams.append('scope', s);
  if (username !== undefined) url.searchParams.append('account', username);
  return url;
}

/**
 * Whether Basic credentials may go to a token realm: over https (a verified
 * server; docker.io's realm is on another host, auth.docker.io), or to the
 * registry's own hostname when the registry itself is plain http (the user
 * chose --insecure for that host). Never plain http to another host, nor a
 * downgrade from an https registry. A registry could ask for Basic directly,
 * so the realm's host is not a secret boundary; the transport is.
 */
export function realmMayReceiveCredentials(realm: URL, registry: URL): boolean {
  if (realm.protocol === 'https:') return true;
  return registry.protocol === 'http:' && realm.hostname === registry.hostname;
}

export interface Token {
  token: string;
  expiresAt: number;
}

/** A token server's answer: `token` or `access_token`, `expires_in` (default 60 s). */
export function parseTokenResponse(bytes: Uint8Array, now: number, realm: string): Token {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new SlipwayError('OCI_REGISTRY_ERROR', `token server ${realm} answered with something not JSON`);
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const token = typeof o['token'] === 'string' && o['token'] !== '' ? o['token'] : o['access_token'];
  if (typeof token !== 'string' || token === '') {
    throw new SlipwayError('OCI_REGISTRY_ERROR', `token server ${realm} answered without a token`);
  }
  const e = o['expires_in'];
  const seconds = typeof e === 'number' && Number.isFinite(e) && e > 0 ? e : DEFAULT_TOKEN_SECONDS;
  return { token, expiresAt: now + seconds * 1000 };
}

/** The repository → actions a JWT-shaped token grants (distribution's `access` claim); undefined when opaque. */
export function jwtGrants(token: string): Map<string, string[]> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as {
      access?: { type?: unknown; name?: unknown; actions?: unknown }[];
    };
    const out = new Map<string, string[]>();
    for (const a of claims.access ?? []) {
      if (a.type !== 'repository' || typeof a.name !== 'string' || !Array.isArray(a.actions)) continue;
      out.set(a.name, [...(out.get(a.name) ?? []), ...a.actions.filter((x) => typeof x === 'string')]);
    }
    return out;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// State and token requests

/** The Authorization a request was sent with. */
export interface Sent {
  kind: SentAuth;
  header?: string;
  token?: Token;
}

/** Per-request bookkeeping for nextAuthStep. */
export interface AuthRound {
  rounds: number;
  refetched: boolean;
}

export class Authenticator {
  readonly registry: string;
  readonly #transport: Transport;
  readonly #credentials: Credentials | undefined;
  readonly #registryUrl: URL;
  #mode: 'none' | 'basic' | AuthChallenge = 'none';
  readonly #tokens = new Map<string, Promise<Token>>();
  readonly #denied = new Map<string, SlipwayError>();
  #tokenRequests = 0;

  constructor(registry: string, transport: Transport, credentials?: Credentials, registryUrl?: URL) {
    this.registry = registry;
    this.#transport = transport;
    this.#credentials = credentials;
    this.#registryUrl = registryUrl ?? new URL(`https://${registry}/`);
  }

  get tokenRequests(): number {
    return this.#tokenRequests;
  }

  /**
   * Learns the registry's scheme from a probe's 401 (GET /v2/) without fetching
   * anything, so a burst of parallel requests starts authenticated instead of
   * each meeting its own 401. Basic without credentials fails here, early.
   */
  learn(wwwAuthenticate: string | undefined): void {
    const c = chooseChallenge(wwwAuthenticate === undefined ? [] : parseWwwAuthenticate(wwwAuthenticate));
    if (c === undefined) return;
    if (c.scheme === 'Bearer') this.#mode = c;
    else if (this.#credentials !== undefined) this.#mode = 'basic';
    else {
      const step = nextAuthStep({
        registry: this.registry,
        challenges: [c],
        sent: 'none',
        scopes: [],
        refetched: false,
        rounds: 0,
      });
      if (step.kind === 'fail') throw new SlipwayError(step.code, step.message, { where: this.registry });
    }
  }

  /** What to send before any 401: nothing until the registry has told us its scheme. */
  async authorize(scopes: string[]): Promise<Sent> {
    const mode = this.#mode;
    if (mode === 'none') return { kind: 'none' };
    if (mode === 'basic') return { kind: 'basic', header: this.#basic() };
    const token = await this.#token(mode, scopes);
    return { kind: 'bearer', header: `Bearer ${token.token}`, token };
  }

  /** Handles a 401: prepares the next attempt, or throws OCI_AUTH_FAILED / OCI_INSUFFICIENT_SCOPE. */
  async challenge(
    wwwAuthenticate: string | undefined,
    scopes: string[],
    sent: Sent,
    round: AuthRound,
  ): Promise<void> {
    const challenges = wwwAuthenticate === undefined ? [] : parseWwwAuthenticate(wwwAuthenticate);
    const key = tokenCacheKey(this.registry, scopes.join(' '));
    const insufficient = challenges.some(
      (c) => c.scheme === 'Bearer' && c.params['error'] === 'insufficient_scope',
    );
    const denied = this.#denied.get(key);
    if (insufficient && denied !== undefined && sent.kind === 'bearer') throw denied;
    const step = nextAuthStep({
      registry: this.registry,
      challenges,
      sent: sent.kind,
      scopes,
      ...(this.#credentials !== undefined ? { username: this.#credentials.username } : {}),
      refetched: round.refetched,
      rounds: round.rounds,
      ...(sent.token !== undefined ? { granted: jwtGrants(sent.token.token) } : {}),
    });
    round.rounds++;
    if (step.kind === 'fail') {
      const err = new SlipwayError(step.code, step.message, { where: this.registry });
      if (step.code === 'OCI_INSUFFICIENT_SCOPE') this.#denied.set(key, err);
      throw err;
    }
    if (step.kind === 'basic') {
      this.#mode = 'basic';
      return;
    }
    this.#mode = step.challenge;
    if (step.invalidate) {
      round.refetched = true;
      await this.#token(step.challenge, scopes, sent.token);
    }
  }

  #basic(): string {
    const c = this.#credentials;
    return `Basic ${Buffer.from(`${c?.username ?? ''}:${c?.password ?? ''}`).toString('base64')}`;
  }

  /**
   * A token for these scopes: the cached one unless it is `stale` or expiring.
   * Concurrent callers share one token request (single flight), so a burst of
   * parallel uploads meeting the same 401 costs one token request.
   */
  async #token(challenge: AuthChallenge, scopes: string[], stale?: Token): Promise<Token> {
    const key = tokenCacheKey(this.registry, scopes.join(' '));
    const cached = this.#tokens.get(key);
    if (cached !== undefined) {
      const t = await cached;
      if (t !== stale && t.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return t;
      // Someone else may have replaced it while we waited: use theirs.
      const now = this.#tokens.get(key);
      if (now !== undefined && now !== cached) return this.#token(challenge, scopes, stale);
    }
    const p = this.#fetchToken(challenge, scopes);
    this.#tokens.set(key, p);
    p.catch(() => {
      if (this.#tokens.get(key) === p) this.#tokens.delete(key);
    });
    return p;
  }

  async #fetchToken(challenge: AuthChallenge, scopes: string[]): Promise<Token> {
    const c = this.#credentials;
    const url = tokenRequestUrl(challenge, scopes, c?.username);
    const realm = challenge.params['realm'] ?? '';
    if (c !== undefined && !realmMayReceiveCredentials(url, this.#registryUrl)) {
      throw new SlipwayError(
        'OCI_AUTH_CHALLENGE_INVALID',
        `registry ${this.registry} names the token server ${url.origin}, plain http on another host: credentials are only sent to a token server over https or on the registry's own host`,
        { where: this.registry },
      );
    }
    this.#tokenRequests++;
    const res = await this.#transport.request({
      method: 'GET',
      url,
      headers: { Accept: 'application/json', ...(c !== undefined ? { Authorization: this.#basic() } : {}) },
    });
    const body = await readBody(res, MAX_TOKEN_RESPONSE_BYTES);
    const scopeText = scopes.length > 0 ? `scope ${scopes.join(' ')}` : 'no scope';
    if (res.status === 401 || res.status === 403) {
      const who = c === undefined ? 'anonymous access' : `the credentials of user '${c.username}'`;
      throw new SlipwayError(
        'OCI_AUTH_FAILED',
        `token server ${realm} refused ${who} for registry ${this.registry} (${scopeText}; HTTP ${res.status})`,
        { where: this.registry },
      );
    }
    if (res.status !== 200) {
      throw new SlipwayError(
        'OCI_REGISTRY_ERROR',
        `token server ${realm} answered HTTP ${res.status} for registry ${this.registry} (${scopeText}): ${body.toString('utf8').slice(0, 200)}`,
        { where: this.registry },
      );
    }
    return parseTokenResponse(body, Date.now(), realm);
  }
}

/** The WWW-Authenticate header of a response. */
export function wwwAuthenticate(headers: Parameters<typeof header>[0]): string | undefined {
  return header(headers, 'www-authenticate');
}
