/**
 * The image repository server's configuration: embedded defaults, then a
 * TOML file (`--config`), then `SLIPWAY_IMAGES_*` environment variables,
 * then command-line flags, each layer overriding the one before.
 *
 * Defaults: SQLite + files under the data directory, the standard channels
 * (dev the default), no auth, 127.0.0.1:8080, a 20 GiB file cap, strict
 * origin chains.
 *
 * ```toml
 * data = "/var/lib/slipway-images"   # default home of the SQLite file and blobs
 * host = "0.0.0.0"
 * port = 8080
 * max_file_size = "20GiB"           # or a number of bytes
 * max_icon_size = "128KiB"
 * strict_origins = true
 * close_grace_seconds = 30         # how long a shutdown waits for in-flight uploads
 * allow_private_file_urls = false  # AddImageFileFromUrl may fetch from loopback/private addresses
 *
 * [metadata]                        # kind = "sqlite" (file = …) or "postgres" (url = …)
 * kind = "postgres"
 * url = "postgres://imgapi@db/imgapi"
 *
 * [blobs]                           # kind = "fs" (dir = …) or "s3" (bucket, prefix, endpoint, region)
 * kind = "s3"
 * bucket = "images"
 *
 * [auth]                            # type = "none" or "signature" (keys = DIR, reads = false)
 * type = "signature"
 * keys = "/etc/slipway/keys"
 *
 * [[channels]]                      # `channels = []` turns channels off
 * name = "dev"
 * description = "development builds"
 * default = true
 * ```
 *
 * Paths in the file are relative to the file's directory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { parseSize } from '../core/size.js';
import type { ChannelConfig } from '../formats/imgapi-types.js';
import { DEFAULT_CHANNELS, parseChannels } from '../formats/imgapi.js';
import { TomlChecker, describe, type ManifestWarning } from '../formats/toml-checker.js';
import { parseTomlLocated, type KeySegment } from '../formats/toml-located.js';

export type MetadataConfig = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };
export type BlobsConfig =
  | { kind: 'fs'; dir: string }
  | { kind: 's3'; bucket: string; prefix?: string; endpoint?: string; region?: string };
export type AuthConfig =
  | { type: 'none' }
  | {
      type: 'signature';
      /** DIR/<user>/*.pub or DIR/<user>.keys (OpenSSH public key lines). */
      keysDir: string;
      /** Whether reads need a signature too (default: reads are anonymous). */
      reads: boolean;
    };

export interface ImagesConfig {
  host: string;
  port: number;
  /** The data directory: home of the default SQLite file and blob directory. */
  dataDir: string;
  metadata: MetadataConfig;
  blobs: BlobsConfig;
  /** Empty: the server has no channel support (and no /channels). */
  channels: ChannelConfig[];
  auth: AuthConfig;
  /** Largest image file accepted, in bytes. */
  maxFileSize: number;
  /** Largest icon accepted, in bytes. */
  maxIconSize: number;
  /** Slipway's stricter origin rule (specs/imgapi.md): the whole origin chain active in the channel. */
  strictOrigins: boolean;
  /** How long a shutdown waits for in-flight requests (uploads) before cutting them. */
  closeGraceMs: number;
  /** AddImageFileFromUrl may fetch from loopback, private and link-local addresses (off: no proxying into the server's network). */
  allowPrivateFileUrls: boolean;
}

export const DEFAULT_PORT = 8080;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_DATA_DIR = 'slipway-images';
export const DEFAULT_MAX_FILE_SIZE = 20 * 1024 ** 3;
export const DEFAULT_MAX_ICON_SIZE = 128 * 1024;
export const DEFAULT_CLOSE_GRACE_MS = 30_000;

/** The embedded defaults, with the data directory `dataDir`. */
export function defaultImagesConfig(dataDir = DEFAULT_DATA_DIR): ImagesConfig {
  return {
    host: DEFAULT_HOST,
    port: DEFAULT_PORT,
    dataDir,
    metadata: { kind: 'sqlite', file: path.join(dataDir, 'images.sqlite') },
    blobs: { kind: 'fs', dir: path.join(dataDir, 'blobs') },
    channels: DEFAULT_CHANNELS.map((c) => ({ ...c })),
    auth: { type: 'none' },
    maxFileSize: DEFAULT_MAX_FILE_SIZE,
    maxIconSize: DEFAULT_MAX_ICON_SIZE,
    strictOrigins: true,
    closeGraceMs: DEFAULT_CLOSE_GRACE_MS,
    allowPrivateFileUrls: false,
  };
}

/**
 * One layer of settings (file, env or flags): only what it sets. `metadata`
 * and `blobs` left unset follow the data directory.
 */
export interface ImagesConfigLayer {
  host?: string;
  port?: number;
  dataDir?: string;
  metadata?: MetadataConfig;
  blobs?: BlobsConfig;
  /** Partial S3 settings (endpoint, region, prefix) that apply to s3 blobs from any layer. */
  s3?: { prefix?: string; endpoint?: string; region?: string };
  channels?: ChannelConfig[];
  auth?: { type?: 'none' | 'signature'; keysDir?: string; reads?: boolean };
  maxFileSize?: number;
  maxIconSize?: number;
  strictOrigins?: boolean;
  closeGraceMs?: number;
  allowPrivateFileUrls?: boolean;
}

type Table = Record<string, unknown>;
type Path = readonly KeySegment[];

function sizeValue(c: TomlChecker, v: unknown, p: Path): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
  if (typeof v === 'string') {
    try {
      const n = parseSize(v, String(p[p.length - 1]));
      if (n > 0) return n;
    } catch (err) {
      return c.fail(p, (err as Error).message);
    }
  }
  return c.fail(p, `must be a positive size (bytes, or a string like "20GiB"), found ${describe(v)}`);
}

function intValue(c: TomlChecker, v: unknown, p: Path, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    return c.fail(p, `must be a whole number from ${min} to ${max}`);
  return v;
}

/** Parses the TOML file's text; relative paths resolve against `baseDir`. Pure. */
export function parseImagesConfig(
  text: string,
  file: string,
  baseDir = path.dirname(file),
): { layer: ImagesConfigLayer; warnings: ManifestWarning[] } {
  const located = parseTomlLocated(text, file);
  const c = new TomlChecker(file, located, 'MANIFEST_INVALID');
  const root = c.table(located.value, []);
  c.unknownKeys(
    root,
    [],
    [
      'data',
      'host',
      'port',
      'max_file_size',
      'max_icon_size',
      'strict_origins',
      'close_grace_seconds',
      'allow_private_file_urls',
      'metadata',
      'blobs',
      'auth',
      'channels',
    ],
  );
  const rel = (p: string): string => path.resolve(baseDir, p);
  const layer: ImagesConfigLayer = {};
  const data = c.optionalString(root, 'data', []);
  if (data !== undefined) layer.dataDir = rel(data);
  const host = c.optionalString(root, 'host', []);
  if (host !== undefined) layer.host = host;
  if (root.port !== undefined) layer.port = intValue(c, root.port, ['port'], 0, 65535);
  if (root.max_file_size !== undefined)
    layer.maxFileSize = sizeValue(c, root.max_file_size, ['max_file_size']);
  if (root.max_icon_size !== undefined)
    layer.maxIconSize = sizeValue(c, root.max_icon_size, ['max_icon_size']);
  if (root.strict_origins !== undefined)
    layer.strictOrigins = c.boolean(root.strict_origins, ['strict_origins']);
  if (root.allow_private_file_urls !== undefined)
    layer.allowPrivateFileUrls = c.boolean(root.allow_private_file_urls, ['allow_private_file_urls']);
  if (root.close_grace_seconds !== undefined)
    layer.closeGraceMs = intValue(c, root.close_grace_seconds, ['close_grace_seconds'], 0, 86_400) * 1000;

  if (root.metadata !== undefined) {
    const p = ['metadata'];
    const t = c.table(root.metadata, p);
    const kind = c.requiredString(t, 'kind', p);
    if (kind === 'sqlite') {
      c.unknownKeys(t, p, ['kind', 'file']);
      const f = c.optionalString(t, 'file', p);
      // Without a file, the SQLite database follows the data directory.
      if (f !== undefined) layer.metadata = { kind: 'sqlite', file: rel(f) };
    } else if (kind === 'postgres') {
      c.unknownKeys(t, p, ['kind', 'url']);
      layer.metadata = { kind: 'postgres', url: c.requiredString(t, 'url', p) };
    } else c.fail([...p, 'kind'], `must be "sqlite" or "postgres", found ${JSON.stringify(kind)}`);
  }

  if (root.blobs !== undefined) {
    const p = ['blobs'];
    const t = c.table(root.blobs, p);
    const kind = c.requiredString(t, 'kind', p);
    if (kind === 'fs') {
      c.unknownKeys(t, p, ['kind', 'dir']);
      const d = c.optionalString(t, 'dir', p);
      if (d !== undefined) layer.blobs = { kind: 'fs', dir: rel(d) };
    } else if (kind === 's3') {
      c.unknownKeys(t, p, ['kind', 'bucket', 'prefix', 'endpoint', 'region']);
      const prefix = c.optionalString(t, 'prefix', p);
      const endpoint = c.optionalString(t, 'endpoint', p);
      const region = c.optionalString(t, 'region', p);
      layer.blobs = {
        kind: 's3',
        bucket: c.requiredString(t, 'bucket', p),
        ...(prefix !== undefined ? { prefix } : {}),
        ...(endpoint !== undefined ? { endpoint } : {}),
        ...(region !== undefined ? { region } : {}),
      };
    } else c.fail([...p, 'kind'], `must be "fs" or "s3", found ${JSON.stringify(kind)}`);
  }

  if (root.auth !== undefined) {
    const p = ['auth'];
    const t = c.table(root.auth, p);
    c.unknownKeys(t, p, ['type', 'keys', 'reads']);
    const type = c.optionalString(t, 'type', p);
    if (type !== undefined && type !== 'none' && type !== 'signature')
      c.fail([...p, 'type'], `must be "none" or "signature", found ${JSON.stringify(type)}`);
    const keys = c.optionalString(t, 'keys', p);
    const reads = t.reads === undefined ? undefined : c.boolean(t.reads, [...p, 'reads']);
    layer.auth = {
      ...(type === 'none' || type === 'signature' ? { type } : {}),
      ...(keys !== undefined ? { keysDir: rel(keys) } : {}),
      ...(reads !== undefined ? { reads } : {}),
    };
  }

  if (root.channels !== undefined) {
    const list = c.array(root.channels, ['channels']).map((v, i): ChannelConfig => {
      const p = ['channels', i];
      const t: Table = c.table(v, p);
      c.unknownKeys(t, p, ['name', 'description', 'default']);
      const name = c.requiredString(t, 'name', p);
      const description = c.optionalString(t, 'description', p) ?? '';
      const def = t.default === undefined ? undefined : c.boolean(t.default, [...p, 'default']);
      return { name, description, ...(def === true ? { default: true } : {}) };
    });
    // `channels = []` turns channels off; any other list must be a valid channel set.
    if (list.length === 0) layer.channels = [];
    else {
      try {
        layer.channels = parseChannels(list, c.where(['channels']));
      } catch (err) {
        c.fail(['channels'], (err as Error).message);
      }
    }
  }
  return { layer, warnings: c.warnings };
}

function bad(name: string, message: string): never {
  throw new SlipwayError('INVALID_ARGUMENT', `${name}: ${message}`, { where: name });
}

function envBool(name: string, v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  return bad(name, `takes true or false, got ${JSON.stringify(v)}`);
}

function envPort(name: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) bad(name, `takes a port from 0 to 65535, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * The `SLIPWAY_IMAGES_*` variables: HOST, PORT, DATA, POSTGRES (url),
 * SQLITE (file), BLOB_DIR, S3_BUCKET, S3_PREFIX, S3_ENDPOINT, S3_REGION,
 * AUTH (none|signature), KEYS (dir), AUTH_READS, MAX_FILE_SIZE,
 * STRICT_ORIGINS, CHANNELS (`none` turns channels off).
 */
export function imagesConfigFromEnv(env: NodeJS.ProcessEnv): ImagesConfigLayer {
  const get = (k: string): string | undefined => {
    const v = env[`SLIPWAY_IMAGES_${k}`];
    return v === undefined || v === '' ? undefined : v;
  };
  const layer: ImagesConfigLayer = {};
  const host = get('HOST');
  if (host !== undefined) layer.host = host;
  const port = get('PORT');
  if (port !== undefined) layer.port = envPort('SLIPWAY_IMAGES_PORT', port);
  const data = get('DATA');
  if (data !== undefined) layer.dataDir = path.resolve(data);
  const sqlite = get('SQLITE');
  if (sqlite !== undefined) layer.metadata = { kind: 'sqlite', file: path.resolve(sqlite) };
  const pg = get('POSTGRES');
  if (pg !== undefined) layer.metadata = { kind: 'postgres', url: pg };
  const blobDir = get('BLOB_DIR');
  if (blobDir !== undefined) layer.blobs = { kind: 'fs', dir: path.resolve(blobDir) };
  const bucket = get('S3_BUCKET');
  if (bucket !== undefined) layer.blobs = { kind: 's3', bucket };
  const s3: NonNullable<ImagesConfigLayer['s3']> = {};
  const prefix = get('S3_PREFIX');
  const endpoint = get('S3_ENDPOINT');
  const region = get('S3_REGION');
  if (prefix !== undefined) s3.prefix = prefix;
  if (endpoint !== undefined) s3.endpoint = endpoint;
  if (region !== undefined) s3.region = region;
  if (Object.keys(s3).length > 0) layer.s3 = s3;
  const auth = get('AUTH');
  const keys = get('KEYS');
  const reads = get('AUTH_READS');
  if (auth !== undefined && auth !== 'none' && auth !== 'signature')
    bad('SLIPWAY_IMAGES_AUTH', `takes none or signature, got ${JSON.stringify(auth)}`);
  if (auth !== undefined || keys !== undefined || reads !== undefined) {
    layer.auth = {
      ...(auth !== undefined ? { type: auth } : {}),
      ...(keys !== undefined ? { keysDir: path.resolve(keys) } : {}),
      ...(reads !== undefined ? { reads: envBool('SLIPWAY_IMAGES_AUTH_READS', reads) } : {}),
    };
  }
  const max = get('MAX_FILE_SIZE');
  if (max !== undefined) layer.maxFileSize = parseSize(max, 'SLIPWAY_IMAGES_MAX_FILE_SIZE');
  const strict = get('STRICT_ORIGINS');
  if (strict !== undefined) layer.strictOrigins = envBool('SLIPWAY_IMAGES_STRICT_ORIGINS', strict);
  const channels = get('CHANNELS');
  if (channels !== undefined) {
    if (channels !== 'none') bad('SLIPWAY_IMAGES_CHANNELS', `only "none" (no channels) is understood here`);
    layer.channels = [];
  }
  return layer;
}

/** Applies `layers` in order over the defaults, then checks the result. */
export function resolveImagesConfig(layers: readonly ImagesConfigLayer[]): ImagesConfig {
  let dataDir = DEFAULT_DATA_DIR;
  for (const l of layers) if (l.dataDir !== undefined) dataDir = l.dataDir;
  const config = defaultImagesConfig(path.resolve(dataDir));
  let auth: { type: 'none' | 'signature'; keysDir?: string; reads: boolean } = { type: 'none', reads: false };
  const s3: NonNullable<ImagesConfigLayer['s3']> = {};
  for (const l of layers) {
    if (l.host !== undefined) config.host = l.host;
    if (l.port !== undefined) config.port = l.port;
    if (l.metadata !== undefined) config.metadata = l.metadata;
    if (l.blobs !== undefined) config.blobs = l.blobs;
    if (l.s3 !== undefined) Object.assign(s3, l.s3);
    if (l.channels !== undefined) config.channels = l.channels;
    if (l.auth !== undefined) auth = { ...auth, ...l.auth };
    if (l.maxFileSize !== undefined) config.maxFileSize = l.maxFileSize;
    if (l.maxIconSize !== undefined) config.maxIconSize = l.maxIconSize;
    if (l.strictOrigins !== undefined) config.strictOrigins = l.strictOrigins;
    if (l.closeGraceMs !== undefined) config.closeGraceMs = l.closeGraceMs;
    if (l.allowPrivateFileUrls !== undefined) config.allowPrivateFileUrls = l.allowPrivateFileUrls;
  }
  if (config.blobs.kind === 's3') config.blobs = { ...config.blobs, ...s3 };
  else if (Object.keys(s3).length > 0)
    throw new SlipwayError('USAGE', 'S3 settings (endpoint, region, prefix) need an S3 bucket (--s3-bucket)');
  if (auth.type === 'signature') {
    if (auth.keysDir === undefined)
      throw new SlipwayError(
        'USAGE',
        'auth "signature" needs a keys directory (--keys DIR, or keys = "DIR" in [auth])',
      );
    config.auth = { type: 'signature', keysDir: auth.keysDir, reads: auth.reads };
  } else config.auth = { type: 'none' };
  return config;
}

/**
 * The whole configuration: defaults, then `configFile` (when given), then
 * the environment, then `flags`. Reads the file; warnings are unknown keys.
 */
export function loadImagesConfig(options: {
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  flags?: ImagesConfigLayer;
}): { config: ImagesConfig; warnings: ManifestWarning[] } {
  const layers: ImagesConfigLayer[] = [];
  let warnings: ManifestWarning[] = [];
  if (options.configFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(options.configFile, 'utf8');
    } catch (err) {
      throw new SlipwayError(
        'NOT_FOUND',
        `cannot read the config file ${options.configFile}: ${(err as Error).message}`,
        {
          cause: err,
          where: options.configFile,
        },
      );
    }
    const parsed = parseImagesConfig(
      text,
      options.configFile,
      path.dirname(path.resolve(options.configFile)),
    );
    layers.push(parsed.layer);
    warnings = parsed.warnings;
  }
  layers.push(imagesConfigFromEnv(options.env ?? {}));
  if (options.flags !== undefined) layers.push(options.flags);
  return { config: resolveImagesConfig(layers), warnings };
}
