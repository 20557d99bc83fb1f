/**
 * Registry credentials, first match wins:
 *  1. `--creds user:pass`;
 *  2. `$SLIPWAY_REGISTRY_USER` + `$SLIPWAY_REGISTRY_PASSWORD` (both set);
 *  3. `--authfile FILE` (must exist), else the first of `$REGISTRY_AUTH_FILE`,
 *     `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`,
 *     `~/.docker/config.json` that exists and has an entry for the registry.
 * Auth files are containers-auth.json / docker config.json: `auths[key].auth`
 * = base64 `user:pass` (or `username` + `password`), where key is `host[:port]`,
 * optionally with a scheme and `/v1/`, or `host/namespace…` for narrower entries
 * (the longest prefix of `registry/repository` wins). Anonymous otherwise.
 *
 * Parsing is pure (parseCredsFlag, parseAuthFile, lookupAuth); only
 * resolveCredentials reads files and the environment.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SlipwayError, fromSystemError } from '../../core/errors.js';

export interface Credentials {
  username: string;
  password: string;
}

export const ENV_USER = 'SLIPWAY_REGISTRY_USER';
export const ENV_PASSWORD = 'SLIPWAY_REGISTRY_PASSWORD';

/** Largest auth file read (real ones are a few KiB). */
const MAX_AUTH_FILE_BYTES = 1024 * 1024;

function bad(where: string, message: string): SlipwayError {
  return new SlipwayError('OCI_CREDENTIALS_INVALID', `${where}: ${message}`, { where });
}

/** `user:pass` (the password may contain ':'); throws OCI_CREDENTIALS_INVALID. */
export function parseCredsFlag(s: string, where = '--creds'): Credentials {
  const colon = s.indexOf(':');
  if (colon <= 0) throw bad(where, "expected 'user:password'");
  return { username: s.slice(0, colon), password: s.slice(colon + 1) };
}

/** An auth file's `auths` entries, keys normalised (no scheme, no `/v1/`), values still undecoded. */
export interface AuthFile {
  file: string;
  entries: Map<string, { key: string; value: Record<string, unknown> }>;
}

/** `https://host/v1/` → `host`; `host/ns` stays. */
export function normalizeAuthKey(key: string): string {
  return key
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/\/v[12]\/?$/, '')
    .replace(/\/+$/, '');
}

/** Parses an auth file's text; throws OCI_CREDENTIALS_INVALID naming the file (and key). */
export function parseAuthFile(text: string, file: string): AuthFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw bad(file, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad(file, 'expected a JSON object');
  }
  const auths = (value as Record<string, unknown>)['auths'];
  const entries: AuthFile['entries'] = new Map();
  if (auths === undefined) return { file, entries };
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) {
    throw bad(`${file}: auths`, 'expected an object of registry → {auth}');
  }
  for (const [key, v] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw bad(`${file}: auths[${JSON.stringify(key)}]`, 'expected an object with "auth"');
    }
    entries.set(normalizeAuthKey(key), { key, value: v as Record<string, unknown> });
  }
  return { file, entries };
}

function decodeEntry(file: string, key: string, v: Record<string, unknown>): Credentials | undefined {
  const where = `${file}: auths[${JSON.stringify(key)}]`;
  const auth = v['auth'];
  if (typeof auth === 'string' && auth !== '') {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(auth)) throw bad(where, '"auth" is not base64');
    const text = Buffer.from(auth, 'base64').toString('utf8');
    return parseCredsFlag(text, `${where}.auth (decoded)`);
  }
  if (auth !== undefined && typeof auth !== 'string') throw bad(where, '"auth" must be a string');
  const username = v['username'];
  const password = v['password'];
  if (typeof username === 'string' && typeof password === 'string' && username !== '') {
    return { username, password };
  }
  // An entry without a usable secret (e.g. only a credential helper's identitytoken): not ours to use.
  return undefined;
}

/**
 * The credentials for `registry` (and optionally `repository`) in a parsed auth
 * file: the entry whose key is the longest prefix of `registry/repository`.
 */
export function lookupAuth(auth: AuthFile, registry: string, repository?: string): Credentials | undefined {
  const target = repository === undefined ? registry : `${registry}/${repository}`;
  const parts = target.split('/');
  for (let n = parts.length; n >= 1; n--) {
    const candidate = parts.slice(0, n).join('/');
    const hit = auth.entries.get(candidate) ?? auth.entries.get(candidate.toLowerCase());
    if (hit !== undefined) return decodeEntry(auth.file, hit.key, hit.value);
  }
  // docker.io is stored under the legacy index host by docker login.
  if (registry === 'docker.io') {
    const hit = auth.entries.get('index.docker.io');
    if (hit !== undefined) return decodeEntry(auth.file, hit.key, hit.value);
  }
  return undefined;
}

/** The default auth files, in the order containers tools look at them. */
export function defaultAuthFiles(env: NodeJS.ProcessEnv, home: string): string[] {
  const out: string[] = [];
  if (env.REGISTRY_AUTH_FILE !== undefined && env.REGISTRY_AUTH_FILE !== '') out.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== '') {
    out.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  }
  out.push(path.join(home, '.config', 'containers', 'auth.json'));
  out.push(path.join(home, '.docker', 'config.json'));
  return out;
}

export interface CredentialOptions {
  creds?: Credentials | string;
  authFile?: string;
  registry: string;
  repository?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
}

export interface ResolvedCredentials {
  credentials?: Credentials;
  /** Where they came from: '--creds', 'env', or a file path. */
  source?: string;
}

function readAuthFile(file: string, required: boolean): AuthFile | undefined {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (st.size > MAX_AUTH_FILE_BYTES) throw bad(file, `larger than ${MAX_AUTH_FILE_BYTES} bytes`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(err, 'cannot read the auth file', file);
  }
  return parseAuthFile(text, file);
}

export function resolveCredentials(o: CredentialOptions): ResolvedCredentials {
  if (o.creds !== undefined) {
    return {
      credentials: typeof o.creds === 'string' ? parseCredsFlag(o.creds) : o.creds,
      source: '--creds',
    };
  }
  const env = o.env ?? process.env;
  const user = env[ENV_USER];
  const password = env[ENV_PASSWORD];
  if (user !== undefined && user !== '' && password !== undefined) {
    return { credentials: { username: user, password }, source: 'env' };
  }
  const files =
    o.authFile !== undefined ? [o.authFile] : defaultAuthFiles(env, o.home ?? env.HOME ?? os.homedir());
  for (const file of files) {
    const auth = readAuthFile(file, o.authFile !== undefined);
    if (auth === undefined) continue;
    const credentials = lookupAuth(auth, o.registry, o.repository);
    if (credentials !== undefined) return { credentials, source: file };
  }
  return {};
}
