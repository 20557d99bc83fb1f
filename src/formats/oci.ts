/**
 * The OCI image vocabulary (image-spec v1.1, distribution-spec v1.1): media
 * types, the image layout marker, descriptors, manifests, indexes, configs,
 * digests, platforms, image references and registry auth challenges.
 *
 * Pure: no fs, no network, no clock (hashing with node:crypto only).
 *
 * Encoders write deterministic bytes: JSON without whitespace, keys in this
 * fixed order (absent optional fields omitted, empty string maps omitted,
 * map keys sorted by code unit):
 * - descriptor: mediaType, digest, size, annotations, platform
 *   (platform: architecture, os, variant)
 * - manifest: schemaVersion, mediaType, config, layers, annotations
 * - index: schemaVersion, mediaType, manifests, annotations
 * - config: created, architecture, os, variant, config, rootfs, history
 *   (config: Env, Entrypoint, Cmd, WorkingDir, Labels; rootfs: type,
 *   diff_ids; history entries: created, created_by, author, comment,
 *   empty_layer)
 *
 * Parsers take untrusted bytes, cap their size, and throw OCI_INVALID with the
 * JSON path of the first problem (`$.layers[1].digest: …`).
 */

import { createHash } from 'node:crypto';
import { sha256Hex } from '../core/digest.js';
import { SlipwayError } from '../core/errors.js';

// ---------------------------------------------------------------------------
// Constants

export const MEDIA_TYPE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
export const MEDIA_TYPE_LAYER_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MEDIA_TYPE_LAYER_TAR_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

/** Name of the image layout marker file and its exact contents. */
export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_VERSION = '1.0.0';
export const OCI_LAYOUT_BYTES: Uint8Array = new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}');

export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
export const ANNOTATION_AUTHORS = 'org.opencontainers.image.authors';
export const ANNOTATION_URL = 'org.opencontainers.image.url';
export const ANNOTATION_DOCUMENTATION = 'org.opencontainers.image.documentation';
export const ANNOTATION_SOURCE = 'org.opencontainers.image.source';
export const ANNOTATION_VERSION = 'org.opencontainers.image.version';
export const ANNOTATION_REVISION = 'org.opencontainers.image.revision';
export const ANNOTATION_VENDOR = 'org.opencontainers.image.vendor';
export const ANNOTATION_LICENSES = 'org.opencontainers.image.licenses';
export const ANNOTATION_TITLE = 'org.opencontainers.image.title';
export const ANNOTATION_DESCRIPTION = 'org.opencontainers.image.description';
export const ANNOTATION_BASE_DIGEST = 'org.opencontainers.image.base.digest';
export const ANNOTATION_BASE_NAME = 'org.opencontainers.image.base.name';

/** Largest manifest or index accepted (registries must accept at least 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Largest image config accepted (history can be long). */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export const DEFAULT_REGISTRY = 'docker.io';

// ---------------------------------------------------------------------------
// Types

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof MEDIA_TYPE_MANIFEST;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: typeof MEDIA_TYPE_INDEX;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config: {
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    Labels?: Record<string, string>;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
}

export interface Encoded {
  bytes: Uint8Array;
  descriptor: Descriptor;
}

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export interface AuthChallenge {
  scheme: 'Basic' | 'Bearer';
  /** Parameter names lower-cased; values as sent (realm's case preserved). */
  params: Record<string, string>;
}

// ---------------------------------------------------------------------------
// Helpers

function invalid(path: string, message: string): SlipwayError {
  return new SlipwayError('OCI_INVALID', `${path}: ${message}`, { where: path });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `'${v.length > 80 ? `${v.slice(0, 80)}…` : v}'` : `a ${typeof v}`;
}

function expectObject(v: unknown, path: string): Record<string, unknown> {
  if (!isObject(v)) throw invalid(path, `expected an object, got ${describe(v)}`);
  return v;
}

function expectString(v: unknown, path: string): string {
  if (typeof v !== 'string') throw invalid(path, `expected a string, got ${describe(v)}`);
  return v;
}

function optString(v: unknown, path: string): string | undefined {
  return v === undefined ? undefined : expectString(v, path);
}

function expectArray(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw invalid(path, `expected an array, got ${describe(v)}`);
  return v;
}

/** Docker writes `null` for absent lists; treat it as absent. */
function optStringArray(v: unknown, path: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  return expectArray(v, path).map((x, i) => expectString(x, `${path}[${i}]`));
}

function optStringMap(v: unknown, path: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  const o = expectObject(v, path);
  const out: Record<string, string> = {};
  for (const k of Object.keys(o).sort()) out[k] = expectString(o[k], `${path}[${JSON.stringify(k)}]`);
  return out;
}

function sortedMap(m: Record<string, string> | undefined): Record<string, string> | undefined {
  if (m === undefined) return undefined;
  const keys = Object.keys(m).sort();
  if (keys.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const k of keys) out[k] = m[k] as string;
  return out;
}

function decodeJson(bytes: Uint8Array, maxBytes: number, what: string): unknown {
  if (bytes.byteLength > maxBytes) {
    throw invalid('$', `${what} is ${bytes.byteLength} bytes, more than the limit of ${maxBytes}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw invalid('$', `${what} is not valid UTF-8`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw invalid('$', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

// ---------------------------------------------------------------------------
// Digests

const DIGEST_HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

/** Parses `sha256:<64 lower hex>` or `sha512:<128 lower hex>`; throws OCI_INVALID. */
export function parseDigest(s: string, path = 'digest'): ParsedDigest {
  const m = /^([a-z0-9]+):([0-9a-f]+)$/.exec(s);
  if (!m) throw invalid(path, `not a digest (algorithm:lowercase-hex): ${describe(s)}`);
  const algorithm = m[1] as string;
  const hex = m[2] as string;
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw invalid(path, `unsupported digest algorithm '${algorithm}' (expected sha256 or sha512)`);
  }
  if (hex.length !== DIGEST_HEX_LENGTH[algorithm]) {
    throw invalid(
      path,
      `${algorithm} digest must have ${DIGEST_HEX_LENGTH[algorithm]} hex digits, got ${hex.length}`,
    );
  }
  return { algorithm, hex };
}

/** The sha256 digest (`sha256:<hex>`) of some bytes. */
export function digestOf(bytes: Uint8Array): string {
  return `sha256:${sha256Hex(bytes)}`;
}

/** True when `bytes` hash to `digest` (sha256 or sha512); throws OCI_INVALID on a malformed digest. */
export function verifyDigest(bytes: Uint8Array, digest: string): boolean {
  const { algorithm, hex } = parseDigest(digest);
  return createHash(algorithm).update(bytes).digest('hex') === hex;
}

// ---------------------------------------------------------------------------
// Descriptors, manifests, indexes, configs (validation of parsed JSON)

const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

function checkPlatformValue(v: unknown, path: string): Platform {
  const o = expectObject(v, path);
  const architecture = expectString(o['architecture'], `${path}.architecture`);
  const os = expectString(o['os'], `${path}.os`);
  if (architecture === '') throw invalid(`${path}.architecture`, 'must not be empty');
  if (os === '') throw invalid(`${path}.os`, 'must not be empty');
  const variant = optString(o['variant'], `${path}.variant`);
  return variant === undefined ? { architecture, os } : { architecture, os, variant };
}

/** Validates an already-decoded descriptor value; `path` names it in errors. */
export function checkDescriptor(v: unknown, path = '$'): Descriptor {
  const o = expectObject(v, path);
  const mediaType = expectString(o['mediaType'], `${path}.mediaType`);
  if (!MEDIA_TYPE_RE.test(mediaType))
    throw invalid(`${path}.mediaType`, `not a media type: ${describe(mediaType)}`);
  const digest = expectString(o['digest'], `${path}.digest`);
  parseDigest(digest, `${path}.digest`);
  const size = o['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${path}.size`, `expected a non-negative integer, got ${describe(size)}`);
  }
  const d: Descriptor = { mediaType, digest, size };
  const annotations = optStringMap(o['annotations'], `${path}.annotations`);
  if (annotations !== undefined) d.annotations = annotations;
  if (o['platform'] !== undefined) d.platform = checkPlatformValue(o['platform'], `${path}.platform`);
  return d;
}

function checkSchema(o: Record<string, unknown>, mediaType: string): void {
  if (o['schemaVersion'] !== 2) {
    throw invalid('$.schemaVersion', `expected 2, got ${describe(o['schemaVersion'])}`);
  }
  const mt = o['mediaType'];
  if (mt !== undefined && mt !== mediaType) {
    throw invalid('$.mediaType', `expected '${mediaType}', got ${describe(mt)}`);
  }
}

function checkManifest(v: unknown): ImageManifest {
  const o = expectObject(v, '$');
  checkSchema(o, MEDIA_TYPE_MANIFEST);
  if (o['manifests'] !== undefined)
    throw invalid('$.manifests', 'an image manifest has no manifests (is it an index?)');
  const config = checkDescriptor(o['config'], '$.config');
  const layers = expectArray(o['layers'], '$.layers').map((l, i) => checkDescriptor(l, `$.layers[${i}]`));
  const m: ImageManifest = { schemaVersion: 2, mediaType: MEDIA_TYPE_MANIFEST, config, layers };
  const annotations = optStringMap(o['annotations'], '$.annotations');
  if (annotations !== undefined) m.annotations = annotations;
  return m;
}

function checkIndex(v: unknown): ImageIndex {
  const o = expectObject(v, '$');
  checkSchema(o, MEDIA_TYPE_INDEX);
  if (o['layers'] !== undefined)
    throw invalid('$.layers', 'an image index has no layers (is it a manifest?)');
  const manifests = expectArray(o['manifests'], '$.manifests').map((d, i) =>
    checkDescriptor(d, `$.manifests[${i}]`),
  );
  const ix: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE_INDEX, manifests };
  const annotations = optStringMap(o['annotations'], '$.annotations');
  if (annotations !== undefined) ix.annotations = annotations;
  return ix;
}

function checkConfig(v: unknown): ImageConfig {
  const o = expectObject(v, '$');
  const architecture = expectString(o['architecture'], '$.architecture');
  const os = expectString(o['os'], '$.os');
  if (architecture === '') throw invalid('$.architecture', 'must not be empty');
  if (os === '') throw invalid('$.os', 'must not be empty');
  const c: ImageConfig = {
    architecture,
    os,
    config: {},
    rootfs: { type: 'layers', diff_ids: [] },
  };
  const created = optString(o['created'], '$.created');
  if (created !== undefined) c.created = created;
  const variant = optString(o['variant'], '$.variant');
  if (variant !== undefined) c.variant = variant;
  if (o['config'] !== undefined && o['config'] !== null) {
    const x = expectObject(o['config'], '$.config');
    const env = optStringArray(x['Env'], '$.config.Env');
    if (env !== undefined) c.config.Env = env;
    const entrypoint = optStringArray(x['Entrypoint'], '$.config.Entrypoint');
    if (entrypoint !== undefined) c.config.Entrypoint = entrypoint;
    const cmd = optStringArray(x['Cmd'], '$.config.Cmd');
    if (cmd !== undefined) c.config.Cmd = cmd;
    const wd = optString(x['WorkingDir'], '$.config.WorkingDir');
    if (wd !== undefined) c.config.WorkingDir = wd;
    const labels = optStringMap(x['Labels'], '$.config.Labels');
    if (labels !== undefined) c.config.Labels = labels;
  }
  const rootfs = expectObject(o['rootfs'], '$.rootfs');
  if (rootfs['type'] !== 'layers')
    throw invalid('$.rootfs.type', `expected 'layers', got ${describe(rootfs['type'])}`);
  c.rootfs.diff_ids = expectArray(rootfs['diff_ids'], '$.rootfs.diff_ids').map((d, i) => {
    const p = `$.rootfs.diff_ids[${i}]`;
    const s = expectString(d, p);
    parseDigest(s, p);
    return s;
  });
  if (o['history'] !== undefined && o['history'] !== null) {
    c.history = expectArray(o['history'], '$.history').map((h, i) => {
      const p = `$.history[${i}]`;
      const x = expectObject(h, p);
      const e: HistoryEntry = {};
      for (const k of ['created', 'created_by', 'author', 'comment'] as const) {
        const s = optString(x[k], `${p}.${k}`);
        if (s !== undefined) e[k] = s;
      }
      if (x['empty_layer'] !== undefined) {
        if (typeof x['empty_layer'] !== 'boolean') {
          throw invalid(`${p}.empty_layer`, `expected a boolean, got ${describe(x['empty_layer'])}`);
        }
        e.empty_layer = x['empty_layer'];
      }
      return e;
    });
  }
  return c;
}

// ---------------------------------------------------------------------------
// Parsers (untrusted bytes)

export interface ParseOptions {
  /** Override the size cap (bytes). */
  maxBytes?: number;
}

export function parseDescriptor(bytes: Uint8Array, options: ParseOptions = {}): Descriptor {
  return checkDescriptor(decodeJson(bytes, options.maxBytes ?? MAX_MANIFEST_BYTES, 'descriptor'), '$');
}

export function parseManifest(bytes: Uint8Array, options: ParseOptions = {}): ImageManifest {
  return checkManifest(decodeJson(bytes, options.maxBytes ?? MAX_MANIFEST_BYTES, 'image manifest'));
}

export function parseIndex(bytes: Uint8Array, options: ParseOptions = {}): ImageIndex {
  return checkIndex(decodeJson(bytes, options.maxBytes ?? MAX_MANIFEST_BYTES, 'image index'));
}

export function parseConfig(bytes: Uint8Array, options: ParseOptions = {}): ImageConfig {
  return checkConfig(decodeJson(bytes, options.maxBytes ?? MAX_CONFIG_BYTES, 'image config'));
}

// ---------------------------------------------------------------------------
// Encoders (deterministic bytes)

function canonicalDescriptor(d: Descriptor): Record<string, unknown> {
  const out: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  const annotations = sortedMap(d.annotations);
  if (annotations !== undefined) out['annotations'] = annotations;
  if (d.platform !== undefined) {
    const p: Record<string, unknown> = { architecture: d.platform.architecture, os: d.platform.os };
    if (d.platform.variant !== undefined) p['variant'] = d.platform.variant;
    out['platform'] = p;
  }
  return out;
}

/** Extra fields for the returned descriptor (e.g. the platform of an index entry). */
export interface DescriptorExtras {
  annotations?: Record<string, string>;
  platform?: Platform;
}

function finish(value: Record<string, unknown>, mediaType: string, extras: DescriptorExtras): Encoded {
  const bytes = encodeJson(value);
  const descriptor: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.byteLength };
  const annotations = sortedMap(extras.annotations);
  if (annotations !== undefined) descriptor.annotations = annotations;
  if (extras.platform !== undefined) descriptor.platform = checkPlatformValue(extras.platform, 'platform');
  return { bytes, descriptor };
}

export function encodeManifest(
  m: Pick<ImageManifest, 'config' | 'layers' | 'annotations'>,
  extras: DescriptorExtras = {},
): Encoded {
  const value: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: canonicalDescriptor(m.config),
    layers: m.layers.map(canonicalDescriptor),
  };
  const annotations = sortedMap(m.annotations);
  if (annotations !== undefined) value['annotations'] = annotations;
  checkManifest(value);
  return finish(value, MEDIA_TYPE_MANIFEST, extras);
}

export function encodeIndex(
  ix: Pick<ImageIndex, 'manifests' | 'annotations'>,
  extras: DescriptorExtras = {},
): Encoded {
  const value: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_INDEX,
    manifests: ix.manifests.map(canonicalDescriptor),
  };
  const annotations = sortedMap(ix.annotations);
  if (annotations !== undefined) value['annotations'] = annotations;
  checkIndex(value);
  return finish(value, MEDIA_TYPE_INDEX, extras);
}

export function encodeConfig(c: ImageConfig): Encoded {
  const value: Record<string, unknown> = {};
  if (c.created !== undefined) value['created'] = c.created;
  value['architecture'] = c.architecture;
  value['os'] = c.os;
  if (c.variant !== undefined) value['variant'] = c.variant;
  const inner: Record<string, unknown> = {};
  const x = c.config;
  if (x.Env !== undefined) inner['Env'] = [...x.Env];
  if (x.Entrypoint !== undefined) inner['Entrypoint'] = [...x.Entrypoint];
  if (x.Cmd !== undefined) inner['Cmd'] = [...x.Cmd];
  if (x.WorkingDir !== undefined) inner['WorkingDir'] = x.WorkingDir;
  const labels = sortedMap(x.Labels);
  if (labels !== undefined) inner['Labels'] = labels;
  value['config'] = inner;
  value['rootfs'] = { type: 'layers', diff_ids: [...c.rootfs.diff_ids] };
  if (c.history !== undefined) {
    value['history'] = c.history.map((h) => {
      const e: Record<string, unknown> = {};
      for (const k of ['created', 'created_by', 'author', 'comment', 'empty_layer'] as const) {
        if (h[k] !== undefined) e[k] = h[k];
      }
      return e;
    });
  }
  checkConfig(value);
  return finish(value, MEDIA_TYPE_CONFIG, {});
}

// ---------------------------------------------------------------------------
// Platforms

export const KNOWN_OS: readonly string[] = [
  'aix',
  'android',
  'darwin',
  'dragonfly',
  'freebsd',
  'illumos',
  'ios',
  'js',
  'linux',
  'netbsd',
  'openbsd',
  'plan9',
  'solaris',
  'wasip1',
  'windows',
];

export const KNOWN_ARCHITECTURES: readonly string[] = [
  '386',
  'amd64',
  'arm',
  'arm64',
  'loong64',
  'mips',
  'mipsle',
  'mips64',
  'mips64le',
  'ppc64',
  'ppc64le',
  'riscv64',
  's390x',
  'wasm',
];

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  i386: '386',
  i686: '386',
  armhf: 'arm',
  armel: 'arm',
};

/** Parses `os/arch[/variant]` (GOOS/GOARCH names); throws OCI_INVALID. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw invalid('platform', `expected os/arch[/variant], got ${describe(s)}`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  if (!KNOWN_OS.includes(os)) throw invalid('platform', `unknown os '${os}' (expected a GOOS such as linux)`);
  if (!KNOWN_ARCHITECTURES.includes(architecture)) {
    const alias = ARCH_ALIASES[architecture.toLowerCase()];
    throw invalid(
      'platform',
      `unknown architecture '${architecture}'${alias === undefined ? ' (expected a GOARCH such as amd64 or arm64)' : ` (did you mean ${alias}?)`}`,
    );
  }
  if (variant === undefined) return { os, architecture };
  if (!/^[a-z0-9][a-z0-9.]*$/.test(variant)) throw invalid('platform', `bad variant '${variant}'`);
  return { os, architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return p.variant === undefined ? `${p.os}/${p.architecture}` : `${p.os}/${p.architecture}/${p.variant}`;
}

// ---------------------------------------------------------------------------
// References

const TAG_RE = /^\w[\w.-]{0,127}$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const REGISTRY_RE = new RegExp(
  `^(?:${HOST_COMPONENT}(?:\\.${HOST_COMPONENT})*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?$`,
);
const MAX_NAME_LENGTH = 255;

function badRef(s: string, why: string): SlipwayError {
  return new SlipwayError('OCI_INVALID', `invalid image reference '${s}': ${why}`, { where: 'reference' });
}

/**
 * Parses `[registry/]repository[:tag][@digest]` with docker's rules: the first
 * component is a registry when it has a '.' or ':' or is `localhost`; else the
 * registry is docker.io and a one-component repository gets `library/`.
 * No tag and no digest leaves both absent (callers default to `latest`).
 */
export function parseReference(s: string): ImageReference {
  if (s === '') throw badRef(s, 'empty');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(digest);
    } catch (err) {
      throw badRef(s, (err as Error).message.replace(/^digest: /, ''));
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw badRef(s, `bad tag '${tag}' (letters, digits, '_', '.', '-'; at most 128)`);
  }
  let registry = DEFAULT_REGISTRY;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      if (!REGISTRY_RE.test(first)) throw badRef(s, `bad registry '${first}'`);
      registry = first === 'index.docker.io' ? DEFAULT_REGISTRY : first;
      repository = rest.slice(slash + 1);
    }
  }
  if (repository === '') throw badRef(s, 'no repository');
  const components = repository.split('/');
  for (const c of components) {
    if (!PATH_COMPONENT_RE.test(c)) {
      const why =
        c.toLowerCase() !== c && PATH_COMPONENT_RE.test(c.toLowerCase()) ? ' (must be lower-case)' : '';
      throw badRef(s, `bad repository component '${c}'${why}`);
    }
  }
  if (registry === DEFAULT_REGISTRY && components.length === 1) repository = `library/${repository}`;
  if (repository.length > MAX_NAME_LENGTH)
    throw badRef(s, `repository longer than ${MAX_NAME_LENGTH} characters`);
  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `registry/repository[:tag][@digest]`, always with the registry (parses back to the same value). */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag === undefined ? '' : `:${r.tag}`}${r.digest === undefined ? '' : `@${r.digest}`}`;
}

/** What to ask the registry for: the digest if any, else the tag, else `latest`. */
export function referenceTarget(r: ImageReference): string {
  return r.digest ?? r.tag ?? 'latest';
}

// ---------------------------------------------------------------------------
// Registry auth (WWW-Authenticate, token scopes)

function badChallenge(header: string, offset: number, why: string): SlipwayError {
  return new SlipwayError(
    'OCI_AUTH_CHALLENGE_INVALID',
    `malformed WWW-Authenticate header at offset ${offset}: ${why}: ${JSON.stringify(header.slice(0, 200))}`,
    { where: 'WWW-Authenticate' },
  );
}

const TCHAR_RE = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Parses a WWW-Authenticate header (RFC 7235 auth-params; token68 forms are
 * not supported). Returns the Basic and Bearer challenges in order; other
 * schemes are skipped. A Bearer challenge must have a realm.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const h = header;
  const n = h.length;
  let i = 0;
  const ws = (): void => {
    while (i < n && (h[i] === ' ' || h[i] === '\t')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && TCHAR_RE.test(h[i] as string)) i++;
    return h.slice(start, i);
  };
  const quoted = (): string => {
    const start = i;
    i++; // opening quote
    let out = '';
    while (i < n) {
      const c = h[i] as string;
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        if (i + 1 >= n) break;
        out += h[i + 1] as string;
        i += 2;
        continue;
      }
      if (c.charCodeAt(0) < 0x20 && c !== '\t')
        throw badChallenge(h, i, 'control character in quoted string');
      out += c;
      i++;
    }
    throw badChallenge(h, start, 'unterminated quoted string');
  };

  const all: { scheme: string; params: Record<string, string>; at: number }[] = [];
  let cur: (typeof all)[number] | undefined;
  let needParam = false;
  ws();
  while (i < n) {
    if (h[i] === ',') {
      if (needParam) throw badChallenge(h, i, 'expected a parameter after the scheme');
      i++;
      ws();
      continue;
    }
    const at = i;
    const tok = token();
    if (tok === '') throw badChallenge(h, i, `unexpected character ${JSON.stringify(h[i])}`);
    ws();
    if (h[i] === '=') {
      if (cur === undefined) throw badChallenge(h, at, `parameter '${tok}' before any scheme`);
      i++;
      ws();
      let value: string;
      if (h[i] === '"') value = quoted();
      else {
        value = token();
        if (value === '') throw badChallenge(h, i, `parameter '${tok}' has no value`);
      }
      const name = tok.toLowerCase();
      if (Object.hasOwn(cur.params, name)) throw badChallenge(h, at, `duplicate parameter '${name}'`);
      cur.params[name] = value;
      needParam = false;
      ws();
      if (i < n && h[i] !== ',') throw badChallenge(h, i, "expected ',' after a parameter");
    } else {
      if (needParam) throw badChallenge(h, at, `expected a parameter, got '${tok}'`);
      cur = { scheme: tok, params: {}, at };
      all.push(cur);
      // A scheme followed by anything but ',' or the end must be followed by a parameter.
      needParam = i < n && h[i] !== ',';
    }
  }
  if (needParam) throw badChallenge(h, n, 'expected a parameter after the scheme');
  if (all.length === 0) throw badChallenge(h, 0, 'no challenge');

  const out: AuthChallenge[] = [];
  for (const c of all) {
    const lower = c.scheme.toLowerCase();
    if (lower === 'basic') out.push({ scheme: 'Basic', params: c.params });
    else if (lower === 'bearer') {
      if (c.params['realm'] === undefined || c.params['realm'] === '') {
        throw badChallenge(h, c.at, 'Bearer challenge without a realm');
      }
      out.push({ scheme: 'Bearer', params: c.params });
    }
  }
  return out;
}

const ACTION_RE = /^(?:[a-z]+|\*)$/;

/** `repository:<repo>:<actions joined by ,>` (duplicates dropped, order kept). */
export function tokenScope(repository: string, actions: readonly string[]): string {
  if (repository === '' || repository.includes(' ')) throw invalid('scope', `bad repository '${repository}'`);
  const unique = [...new Set(actions)];
  if (unique.length === 0) throw invalid('scope', 'no actions');
  for (const a of unique) if (!ACTION_RE.test(a)) throw invalid('scope', `bad action '${a}'`);
  return `repository:${repository}:${unique.join(',')}`;
}

/** Key for caching bearer tokens per (registry, scope); the host part is case-insensitive. */
export function tokenCacheKey(registry: string, scope: string): string {
  return JSON.stringify([registry.toLowerCase(), scope]);
}
