/**
 * TUF 1.0 metadata models, parsed from untrusted bytes with guards. Parsers
 * check every field they use and return the parsed object itself, so unknown
 * fields survive and signatures verify over exactly what was signed.
 */
import { canonicalJsonBytes, type CanonicalValue } from '../../core/canonical-json.js';
import { SlipwayError } from '../../core/errors.js';
import type { TufKey } from './keys.js';

export type RoleName = 'root' | 'targets' | 'snapshot' | 'timestamp';
export const TOP_LEVEL_ROLES: readonly RoleName[] = ['root', 'targets', 'snapshot', 'timestamp'];

export interface Signature {
  keyid: string;
  sig: string;
}

export interface Envelope<T> {
  signed: T;
  signatures: Signature[];
}

export interface RoleKeys {
  keyids: string[];
  threshold: number;
}

interface Common {
  spec_version: string;
  version: number;
  expires: string;
}

export interface RootMeta extends Common {
  _type: 'root';
  consistent_snapshot: boolean;
  keys: Record<string, TufKey>;
  roles: Record<RoleName, RoleKeys>;
}

export interface MetaFile {
  version: number;
  length?: number;
  hashes?: Record<string, string>;
}

export interface TimestampMeta extends Common {
  _type: 'timestamp';
  meta: Record<string, MetaFile>;
}

export interface SnapshotMeta extends Common {
  _type: 'snapshot';
  meta: Record<string, MetaFile>;
}

export interface TargetFile {
  length: number;
  hashes: Record<string, string>;
  custom?: Record<string, unknown>;
}

export interface DelegatedRole {
  name: string;
  keyids: string[];
  threshold: number;
  terminating: boolean;
  paths?: string[];
  path_hash_prefixes?: string[];
}

export interface Delegations {
  keys: Record<string, TufKey>;
  roles: DelegatedRole[];
}

export interface TargetsMeta extends Common {
  _type: 'targets';
  targets: Record<string, TargetFile>;
  delegations?: Delegations;
}

export const SPEC_VERSION = '1.0.0';
/** Metadata larger than this is refused before parsing. */
export const DEFAULT_MAX_METADATA_BYTES = 16 * 1024 * 1024;

/** Own-property lookup: names like `__proto__` or `constructor` must not reach Object.prototype. */
export function own<T>(rec: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

// ---------------------------------------------------------------------------
// Guards

type Obj = Record<string, unknown>;

function child(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

class Guard {
  constructor(readonly file: string) {}

  fail(path: string, message: string): never {
    throw new SlipwayError('TUF_METADATA_INVALID', `${path}: ${message}`, { where: `${this.file}:${path}` });
  }

  object(v: unknown, path: string): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'must be an object');
    return v as Obj;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, 'must be a string');
    return v;
  }

  boolean(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, 'must be a boolean');
    return v;
  }

  int(v: unknown, path: string, min: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      this.fail(path, `must be an integer >= ${min}`);
    }
    return v;
  }

  stringArray(v: unknown, path: string, unique: boolean): string[] {
    if (!Array.isArray(v)) this.fail(path, 'must be an array of strings');
    const arr = v as unknown[];
    arr.forEach((s, i) => this.string(s, child(path, i)));
    if (unique && new Set(arr).size !== arr.length) this.fail(path, 'has duplicate entries');
    return arr as string[];
  }

  record<T>(v: unknown, path: string, each: (value: unknown, path: string) => T): Record<string, T> {
    const o = this.object(v, path);
    for (const k of Object.keys(o)) each(o[k], child(path, k));
    return o as Record<string, T>;
  }
}

function guardKey(g: Guard, v: unknown, path: string): TufKey {
  const o = g.object(v, path);
  // Any key type parses (roots may list keys we cannot use); only ed25519 ever verifies.
  g.string(o.keytype, child(path, 'keytype'));
  g.string(o.scheme, child(path, 'scheme'));
  const keyval = g.object(o.keyval, child(path, 'keyval'));
  g.string(keyval.public, child(child(path, 'keyval'), 'public'));
  return o as unknown as TufKey;
}

function guardRoleKeys(g: Guard, v: unknown, path: string): RoleKeys {
  const o = g.object(v, path);
  g.stringArray(o.keyids, child(path, 'keyids'), true);
  g.int(o.threshold, child(path, 'threshold'), 1);
  return o as unknown as RoleKeys;
}

function guardHashes(g: Guard, v: unknown, path: string): Record<string, string> {
  const hashes = g.record(v, path, (h, p) => g.string(h, p));
  if (Object.keys(hashes).length === 0) g.fail(path, 'must list at least one hash');
  return hashes;
}

function guardMetaFile(g: Guard, v: unknown, path: string): MetaFile {
  const o = g.object(v, path);
  g.int(o.version, child(path, 'version'), 1);
  if (o.length !== undefined) g.int(o.length, child(path, 'length'), 0);
  if (o.hashes !== undefined) guardHashes(g, o.hashes, child(path, 'hashes'));
  return o as unknown as MetaFile;
}

function guardTargetFile(g: Guard, v: unknown, path: string): TargetFile {
  const o = g.object(v, path);
  g.int(o.length, child(path, 'length'), 0);
  guardHashes(g, o.hashes, child(path, 'hashes'));
  if (o.custom !== undefined) g.object(o.custom, child(path, 'custom'));
  return o as unknown as TargetFile;
}

function guardDelegatedRole(g: Guard, v: unknown, path: string): DelegatedRole {
  const o = g.object(v, path);
  const name = g.string(o.name, child(path, 'name'));
  if (name === '' || (TOP_LEVEL_ROLES as readonly string[]).includes(name)) {
    g.fail(child(path, 'name'), `'${name}' cannot be a delegated role's name`);
  }
  g.stringArray(o.keyids, child(path, 'keyids'), true);
  g.int(o.threshold, child(path, 'threshold'), 1);
  g.boolean(o.terminating, child(path, 'terminating'));
  if (o.paths !== undefined) g.stringArray(o.paths, child(path, 'paths'), false);
  if (o.path_hash_prefixes !== undefined) {
    g.stringArray(o.path_hash_prefixes, child(path, 'path_hash_prefixes'), false);
  }
  if (o.paths !== undefined && o.path_hash_prefixes !== undefined) {
    g.fail(path, 'paths and path_hash_prefixes are mutually exclusive');
  }
  return o as unknown as DelegatedRole;
}

function guardDelegations(g: Guard, v: unknown, path: string): Delegations {
  const o = g.object(v, path);
  g.record(o.keys, child(path, 'keys'), (k, p) => guardKey(g, k, p));
  const rolesPath = child(path, 'roles');
  if (!Array.isArray(o.roles)) g.fail(rolesPath, 'must be an array');
  const roles = o.roles as unknown[];
  const names = new Set<string>();
  roles.forEach((r, i) => {
    const role = guardDelegatedRole(g, r, child(rolesPath, i));
    if (names.has(role.name)) g.fail(child(rolesPath, i), `role '${role.name}' is delegated twice`);
    names.add(role.name);
  });
  return o as unknown as Delegations;
}

const EXPIRES = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/;

/** `YYYY-MM-DDTHH:MM:SSZ`: strict clients reject fractional seconds. */
export function formatExpires(d: Date): string {
  const t = d.getTime();
  if (!Number.isFinite(t)) throw new SlipwayError('INVALID_ARGUMENT', 'expiry is not a valid date');
  return new Date(Math.floor(t / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Reads `YYYY-MM-DDTHH:MM:SSZ`, with an optional fraction (others' metadata may carry one). */
export function parseExpires(s: string, where: string): Date {
  const m = EXPIRES.exec(s);
  const fail = (): never => {
    throw new SlipwayError(
      'TUF_METADATA_INVALID',
      `expires: '${s}' is not a time like 2030-01-01T00:00:00Z`,
      {
        where,
      },
    );
  };
  if (m === null) return fail();
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Date.UTC(y, mo - 1, d, h, mi, sec);
  const back = new Date(ms);
  // Date.UTC rolls over (Feb 30 → Mar 2); a round trip catches impossible dates.
  if (
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    back.getUTCHours() !== h ||
    back.getUTCMinutes() !== mi ||
    back.getUTCSeconds() !== sec
  ) {
    fail();
  }
  const frac = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000);
  return new Date(ms + frac);
}

// ---------------------------------------------------------------------------
// Parsers

/** Parses the outer `{signed, signatures}` of any metadata file. */
export function parseEnvelope(
  bytes: Uint8Array,
  where: string,
  maxBytes = DEFAULT_MAX_METADATA_BYTES,
): Envelope<Record<string, unknown>> {
  const g = new Guard(where);
  if (bytes.length > maxBytes) {
    throw new SlipwayError('TUF_METADATA_INVALID', `metadata is ${bytes.length} bytes, over ${maxBytes}`, {
      where,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new SlipwayError('TUF_METADATA_INVALID', `not valid UTF-8 JSON: ${(err as Error).message}`, {
      where,
      cause: err,
    });
  }
  const env = g.object(value, '$');
  const signed = g.object(env.signed, 'signed');
  if (!Array.isArray(env.signatures)) g.fail('signatures', 'must be an array');
  (env.signatures as unknown[]).forEach((s, i) => {
    const p = child('signatures', i);
    const o = g.object(s, p);
    g.string(o.keyid, child(p, 'keyid'));
    g.string(o.sig, child(p, 'sig'));
  });
  try {
    // Signatures are over canonical JSON, which has no floats: refuse them here, not mid-verification.
    canonicalJsonBytes(signed as CanonicalValue);
  } catch (err) {
    throw new SlipwayError('TUF_METADATA_INVALID', `signed: ${(err as Error).message}`, {
      where,
      cause: err,
    });
  }
  return env as unknown as Envelope<Record<string, unknown>>;
}

function guardCommon(g: Guard, signed: Obj, type: RoleName): void {
  if (signed._type !== type) {
    throw new SlipwayError(
      'TUF_WRONG_TYPE',
      `expected _type '${type}', found ${signed._type === undefined ? 'none' : JSON.stringify(signed._type)}`,
      { where: g.file },
    );
  }
  const spec = g.string(signed.spec_version, 'signed.spec_version');
  const parts = spec.split('.');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => /^\d+$/.test(p)) || parts[0] !== '1') {
    g.fail('signed.spec_version', `unsupported spec_version '${spec}' (need 1.x)`);
  }
  g.int(signed.version, 'signed.version', 1);
  parseExpires(g.string(signed.expires, 'signed.expires'), `${g.file}:signed.expires`);
}

function parseRole<T>(
  bytes: Uint8Array,
  where: string,
  type: RoleName,
  body: (g: Guard, signed: Obj) => void,
  maxBytes?: number,
): Envelope<T> {
  const env = parseEnvelope(bytes, where, maxBytes);
  const g = new Guard(where);
  guardCommon(g, env.signed, type);
  body(g, env.signed);
  return env as unknown as Envelope<T>;
}

export function parseRoot(bytes: Uint8Array, where: string, maxBytes?: number): Envelope<RootMeta> {
  return parseRole<RootMeta>(
    bytes,
    where,
    'root',
    (g, s) => {
      g.boolean(s.consistent_snapshot, 'signed.consistent_snapshot');
      g.record(s.keys, 'signed.keys', (k, p) => guardKey(g, k, p));
      const roles = g.object(s.roles, 'signed.roles');
      for (const role of TOP_LEVEL_ROLES) {
        const p = child('signed.roles', role);
        if (!Object.hasOwn(roles, role)) g.fail(p, 'is missing');
        guardRoleKeys(g, roles[role], p);
      }
    },
    maxBytes,
  );
}

export function parseTimestamp(bytes: Uint8Array, where: string, maxBytes?: number): Envelope<TimestampMeta> {
  return parseRole<TimestampMeta>(
    bytes,
    where,
    'timestamp',
    (g, s) => {
      const meta = g.record(s.meta, 'signed.meta', (m, p) => guardMetaFile(g, m, p));
      if (!Object.hasOwn(meta, 'snapshot.json')) g.fail('signed.meta', "must list 'snapshot.json'");
    },
    maxBytes,
  );
}

export function parseSnapshot(bytes: Uint8Array, where: string, maxBytes?: number): Envelope<SnapshotMeta> {
  return parseRole<SnapshotMeta>(
    bytes,
    where,
    'snapshot',
    (g, s) => {
      g.record(s.meta, 'signed.meta', (m, p) => guardMetaFile(g, m, p));
    },
    maxBytes,
  );
}

export function parseTargets(bytes: Uint8Array, where: string, maxBytes?: number): Envelope<TargetsMeta> {
  return parseRole<TargetsMeta>(
    bytes,
    where,
    'targets',
    (g, s) => {
      g.record(s.targets, 'signed.targets', (t, p) => guardTargetFile(g, t, p));
      if (s.delegations !== undefined) guardDelegations(g, s.delegations, 'signed.delegations');
    },
    maxBytes,
  );
}

/** The bytes of a metadata file: 2-space pretty JSON and a newline. */
export function serializeMetadata(env: Envelope<unknown>): Buffer {
  return Buffer.from(`${JSON.stringify(env, null, 2)}\n`, 'utf8');
}

/**
 * Where a target is stored under consistent snapshots: the hash goes in
 * front of the basename (`dir/<sha256>.<basename>`).
 */
export function targetPathFor(name: string, sha256: string): string {
  const slash = name.lastIndexOf('/');
  return `${name.slice(0, slash + 1)}${sha256}.${name.slice(slash + 1)}`;
}
