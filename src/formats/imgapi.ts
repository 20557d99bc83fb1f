/**
 * The pure rules of the image repository (specs/imgapi.md): channels, API
 * version negotiation, ListImages queries and their reference filter
 * semantics, manifest validation and serialization, origin chains, actions
 * and error bodies. No fs, no network, no clock: the service and the HTTP
 * server (src/images/, src/server/) do the I/O around these.
 *
 * Where the spec is silent we follow what the reference server (Triton's
 * IMGAPI and its manifest validator) sends, so that its clients work
 * unchanged.
 */
import { SlipwayError } from '../core/errors.js';
import {
  ImgapiError,
  type ChannelConfig,
  type Compression,
  type ImageFile,
  type ImageManifest,
  type ImageState,
  type ImgapiErrorBody,
  type ListFilter,
  type ListState,
  type TextMatch,
} from './imgapi-types.js';

/** One entry of an error body's `errors`. */
export type FieldError = NonNullable<ImgapiErrorBody['errors']>[number];

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CHANNEL_NAME_RE = /^[a-z][a-z0-9_-]*$/;
const NAME_RE = /^[A-Za-z0-9._/ -]+$/;
const VERSION_RE = /^[A-Za-z0-9._/+-]+$/;
const PUBLISHED_AT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;
const SHA1_RE = /^[0-9a-fA-F]{40}$/;
const PLATFORM_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export const MAX_NAME_LENGTH = 512;
export const MAX_VERSION_LENGTH = 128;
const MAX_DESCRIPTION_LENGTH = 10 * 1024;
const MAX_URL_LENGTH = 1024;
const MAX_BILLING_TAG_LENGTH = 128;
const MAX_TAGS_LENGTH = 100 * 1024;
/** A tag value longer than this is not searchable (it matches `tag.KEY=` only), as in the reference. */
const MAX_TAG_SEARCH_VALUE_LENGTH = 100;
/** The default and largest page of ListImages. */
export const MAX_LIST_LIMIT = 1000;
/** Origin chains longer than this are refused (a cycle, or nonsense). */
export const MAX_ORIGIN_DEPTH = 100;

export const IMAGE_TYPES = ['zone-dataset', 'zvol', 'lx-dataset', 'lxd', 'docker', 'other'] as const;
export const IMAGE_OSES = ['smartos', 'linux', 'windows', 'bsd', 'illumos', 'other'] as const;
export const COMPRESSIONS: readonly Compression[] = ['gzip', 'bzip2', 'xz', 'none'];
const IMAGE_STATES: readonly ImageState[] = ['active', 'unactivated', 'disabled', 'creating', 'failed'];
const LIST_STATES: readonly ListState[] = ['active', 'disabled', 'unactivated', 'all', 'creating', 'failed'];
/** Fields that only make sense (and are then required) for `type: zvol` images. */
const ZVOL_FIELDS = ['nic_driver', 'disk_driver', 'cpu_type', 'image_size'] as const;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A canonical lowercase UUID (8-4-4-4-12 hex digits). */
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

// ---- channels

/** The standard channel set of an update repository. */
export const DEFAULT_CHANNELS: ChannelConfig[] = [
  { name: 'experimental', description: "feature-branch builds (warning: 'latest' isn't meaningful)" },
  { name: 'dev', description: 'main development branch builds', default: true },
  { name: 'staging', description: 'staging for release branch builds before a full release' },
  { name: 'release', description: 'release bits' },
  { name: 'support', description: 'supported release bits' },
];

/**
 * Validates a configured channel list: a non-empty list of `{name,
 * description[, default]}`, names unique and matching `^[a-z][a-z0-9_-]*$`,
 * at most one default. The result carries `default: true` only on the
 * default channel (as ListChannels shows it).
 */
export function parseChannels(value: unknown, where = 'channels'): ChannelConfig[] {
  const bad = (message: string): SlipwayError => new SlipwayError('MANIFEST_INVALID', message, { where });
  if (!Array.isArray(value))
    throw bad(`channels: expected a list of {name, description[, default]}, found ${typeName(value)}`);
  if (value.length === 0) throw bad('channels: the list is empty (leave it out to serve without channels)');
  const out: ChannelConfig[] = [];
  let defaultName: string | undefined;
  value.forEach((item: unknown, i) => {
    const at = `channels[${i}]`;
    if (!isRecord(item)) throw bad(`${at}: expected {name, description[, default]}, found ${typeName(item)}`);
    for (const key of Object.keys(item)) {
      if (key !== 'name' && key !== 'description' && key !== 'default')
        throw bad(`${at}: unknown key "${key}" (allowed: name, description, default)`);
    }
    const { name, description } = item;
    if (typeof name !== 'string' || !CHANNEL_NAME_RE.test(name))
      throw bad(
        `${at}.name: invalid channel name ${JSON.stringify(name)}, must match ${CHANNEL_NAME_RE.source}`,
      );
    if (out.some((c) => c.name === name)) throw bad(`${at}.name: duplicate channel name "${name}"`);
    if (typeof description !== 'string')
      throw bad(`${at}.description: expected a string, found ${typeName(description)}`);
    const isDefault = item.default;
    if (isDefault !== undefined && typeof isDefault !== 'boolean')
      throw bad(`${at}.default: expected true or false, found ${typeName(isDefault)}`);
    if (isDefault === true) {
      if (defaultName !== undefined)
        throw bad(`${at}: cannot have more than one default channel ("${defaultName}" and "${name}")`);
      defaultName = name;
      out.push({ name, description, default: true });
    } else {
      out.push({ name, description });
    }
  });
  return out;
}

/**
 * The channel a request works in, from its `?channel=`: undefined when the
 * server has no channels (the parameter is then ignored); missing or empty →
 * the default channel; `*` (reads only) → '*' meaning all channels.
 */
export function resolveChannel(
  param: string | null,
  channels: ChannelConfig[] | undefined,
  mode: 'read' | 'write',
): string | undefined {
  if (channels === undefined) return undefined;
  if (param === null || param === '') {
    const def = channels.find((c) => c.default === true);
    if (def === undefined)
      throw new ImgapiError(
        422,
        'ValidationFailed',
        'channel not specified and the server has no default channel',
        [{ field: 'channel', code: 'MissingParameter' }],
      );
    return def.name;
  }
  if (param === '*' && mode === 'read') return '*';
  if (!channels.some((c) => c.name === param))
    throw new ImgapiError(422, 'ValidationFailed', `unknown channel: ${param}`, [
      { field: 'channel', code: 'Invalid' },
    ]);
  return param;
}

// ---- API versions (Accept-Version)

/** [major, minor, patch, release] where release is 0 for a prerelease (x.y.z-pre < x.y.z), else 1. */
type Semver = [number, number, number, number];
interface Comparator {
  op: '<' | '<=' | '>' | '>=' | '=';
  v: Semver;
}

const SUPPORTED_API_VERSIONS: readonly (readonly [1 | 2, Semver])[] = [
  [2, [2, 0, 0, 1]],
  [1, [1, 0, 0, 1]],
];
const MAX_VERSION_HEADER_LENGTH = 256;
const PARTIAL_RE =
  /^(<=|>=|<|>|=|~>|~|\^)?v?(x|X|\*|\d+)(?:\.(x|X|\*|\d+)(?:\.(x|X|\*|\d+)(-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)?)?$/;
const NEVER: Comparator = { op: '<', v: [0, 0, 0, 0] };

function cmpSemver(a: Semver, b: Semver): number {
  for (let i = 0; i < 4; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function num(part: string | undefined): number | undefined {
  return part === undefined || part === 'x' || part === 'X' || part === '*' ? undefined : Number(part);
}

/** One comparator token (`~2`, `>=1.0`, `2.x`, `^1.2.3`, …) desugared as node-semver does; undefined if malformed. */
function parseComparator(token: string): Comparator[] | undefined {
  const m = PARTIAL_RE.exec(token);
  if (m === null) return undefined;
  const op = m[1] ?? '=';
  const major = num(m[2]);
  // A wildcard makes the parts after it wildcards too (`1.x.3` is `1.x`).
  const minor = major === undefined ? undefined : num(m[3]);
  const patch = minor === undefined ? undefined : num(m[4]);
  const rel = patch !== undefined && m[5] !== undefined ? 0 : 1;
  if (major === undefined) return op === '<' || op === '>' ? [NEVER] : [];
  const lo: Semver = [major, minor ?? 0, patch ?? 0, rel];
  const ge = (v: Semver): Comparator => ({ op: '>=', v });
  const lt = (v: Semver): Comparator => ({ op: '<', v });
  const nextMajor: Semver = [major + 1, 0, 0, 1];
  const nextMinor: Semver = [major, (minor ?? 0) + 1, 0, 1];
  switch (op) {
    case '=':
      if (minor === undefined) return [ge(lo), lt(nextMajor)];
      if (patch === undefined) return [ge(lo), lt(nextMinor)];
      return [{ op: '=', v: lo }];
    case '~':
    case '~>':
      return [ge(lo), lt(minor === undefined ? nextMajor : nextMinor)];
    case '^':
      if (major > 0 || minor === undefined) return [ge(lo), lt(nextMajor)];
      if (minor > 0 || patch === undefined) return [ge(lo), lt(nextMinor)];
      return [ge(lo), lt([0, 0, patch + 1, 1])];
    case '>=':
      return [ge(lo)];
    case '>':
      if (minor === undefined) return [ge(nextMajor)];
      if (patch === undefined) return [ge(nextMinor)];
      return [{ op: '>', v: lo }];
    case '<':
      return [lt(lo)];
    default: // '<='
      if (minor === undefined) return [lt(nextMajor)];
      if (patch === undefined) return [lt(nextMinor)];
      return [{ op: '<=', v: lo }];
  }
}

/** A range (`a b || c - d`) as alternatives of comparator sets; undefined if malformed. */
function parseRange(range: string): Comparator[][] | undefined {
  const alternatives: Comparator[][] = [];
  for (const raw of range.split('||')) {
    // node-semver allows a space between an operator and its version (`>= 1`).
    const alt = raw.trim().replace(/(<=|>=|<|>|=|~>|~|\^)\s+/g, '$1');
    const set: Comparator[] = [];
    const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(alt);
    const tokens = hyphen !== null ? [`>=${hyphen[1] ?? ''}`, `<=${hyphen[2] ?? ''}`] : alt.split(/\s+/);
    for (const token of tokens) {
      if (token === '') continue;
      const cs = parseComparator(token);
      if (cs === undefined) return undefined;
      set.push(...cs);
    }
    alternatives.push(set);
  }
  return alternatives;
}

function satisfies(v: Semver, range: Comparator[][]): boolean {
  return range.some((set) =>
    set.every(({ op, v: bound }) => {
      const c = cmpSemver(v, bound);
      switch (op) {
        case '<':
          return c < 0;
        case '<=':
          return c <= 0;
        case '>':
          return c > 0;
        case '>=':
          return c >= 0;
        default:
          return c === 0;
      }
    }),
  );
}

/**
 * The API version of a request from its `Accept-Version` header: the highest
 * of 1.0.0 and 2.0.0 the range allows. No header means `~1` (clients of the
 * 1.x vintage); an empty one means `*`. `route` (e.g. `GET /images`) only
 * words the error as the reference does.
 */
export function negotiateApiVersion(header: string | undefined, route?: string): 1 | 2 {
  const range = header === undefined ? '~1' : header.trim() === '' ? '*' : header.trim();
  const parsed = range.length <= MAX_VERSION_HEADER_LENGTH ? parseRange(range) : undefined;
  if (parsed !== undefined) {
    for (const [major, version] of SUPPORTED_API_VERSIONS) if (satisfies(version, parsed)) return major;
  }
  const shown = range.length <= 80 ? range : `${range.slice(0, 80)}…`;
  throw new ImgapiError(
    400,
    'InvalidVersion',
    route !== undefined
      ? `${shown} is not supported by ${route}`
      : `${shown} is not supported by this server (supported versions: 1.0.0, 2.0.0)`,
  );
}

// ---- ListImages

function invalidParam(field: string, message: string): ImgapiError {
  return new ImgapiError(422, 'InvalidParameter', message, [{ field, code: 'Invalid', message }]);
}

function textMatch(value: string): TextMatch {
  return value.startsWith('~') ? { substring: value.slice(1) } : { exact: value };
}

/** A marker date: `YYYY-MM-DD` (UTC) or an ISO date-time with `Z` or an offset; normalized by toISOString. */
function parseMarkerDate(s: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.exec(s);
  if (m === null) return undefined;
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return undefined;
  // Date() rolls 02-30 over to March; a marker with an impossible day is a typo, not a date.
  const ymd = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (ymd.toISOString().slice(0, 10) !== `${m[1] ?? ''}-${m[2] ?? ''}-${m[3] ?? ''}`) return undefined;
  return d.toISOString();
}

/**
 * The ListImages query as a filter. Unknown parameters are ignored, as the
 * reference does (`account` among them). Empty `name=`, `version=`,
 * `owner=`, `os=`, `type=`, `limit=`, `marker=`, `sort=` count as absent.
 */
export function parseListQuery(q: URLSearchParams, channels: ChannelConfig[] | undefined): ListFilter {
  const get = (k: string): string | undefined => {
    const v = q.get(k);
    return v === null || v === '' ? undefined : v;
  };

  const stateParam = get('state') ?? 'active';
  const state = LIST_STATES.find((s) => s === stateParam);
  if (state === undefined) throw invalidParam('state', `invalid state: "${stateParam}"`);

  const filter: ListFilter = { state, tags: [], limit: MAX_LIST_LIMIT, sort: 'asc' };

  const name = get('name');
  if (name !== undefined) filter.name = textMatch(name);
  const version = get('version');
  if (version !== undefined) filter.version = textMatch(version);
  const owner = get('owner');
  if (owner !== undefined) {
    if (!isUuid(owner)) throw invalidParam('owner', `invalid "owner": not a UUID: "${owner}"`);
    filter.owner = owner;
  }
  const os = get('os');
  if (os !== undefined) filter.os = os;
  const type = get('type');
  if (type !== undefined)
    filter.type = type.startsWith('!')
      ? { value: type.slice(1), negate: true }
      : { value: type, negate: false };
  const pub = q.get('public');
  if (pub !== null) {
    if (pub !== 'true' && pub !== 'false')
      throw invalidParam(
        'public',
        `invalid value for "public" param: ${JSON.stringify(pub)} is not a boolean`,
      );
    filter.public = pub === 'true';
  }
  for (const [key, value] of q) {
    if (key.startsWith('tag.') && key.length > 4) filter.tags.push([key.slice(4), value]);
  }

  const channel = resolveChannel(q.get('channel'), channels, 'read');
  if (channel !== undefined) filter.channel = channel;

  const limit = get('limit');
  if (limit !== undefined) {
    const n = Number(limit);
    if (!/^\d+$/.test(limit) || n < 1) throw invalidParam('limit', `invalid limit: "${limit}"`);
    // The reference never returns more than a page of 1000; a larger limit asks for that page.
    filter.limit = Math.min(n, MAX_LIST_LIMIT);
  }

  const marker = get('marker');
  if (marker !== undefined) {
    if (isUuid(marker)) {
      filter.markerUuid = marker;
    } else {
      const date = parseMarkerDate(marker);
      if (date === undefined)
        throw invalidParam(
          'marker',
          `invalid value for "marker" param: ${JSON.stringify(marker)} is not a UUID or date string`,
        );
      filter.markerPublishedAt = date;
    }
  }

  const sort = get('sort');
  if (sort !== undefined) {
    const dot = sort.indexOf('.');
    const attribute = dot < 0 ? sort : sort.slice(0, dot);
    const order = dot < 0 ? 'asc' : sort.slice(dot + 1).toLowerCase();
    if (attribute !== 'published_at')
      throw invalidParam('sort', `invalid 'sort': not a valid sorting attribute: '${attribute}'`);
    if (order !== 'asc' && order !== 'desc')
      throw invalidParam('sort', `invalid 'sort': not a valid sorting order: '${sort.slice(dot + 1)}'`);
    filter.sort = order;
  }
  return filter;
}

/** An image is activated once it is active or disabled (creating/failed/unactivated are not). */
function isActivated(m: Pick<ImageManifest, 'state'>): boolean {
  return m.state === 'active' || m.state === 'disabled';
}

/**
 * A tag value as the reference indexes it for `tag.KEY=VALUE`: strings (up to
 * 100 characters), numbers and booleans as strings; anything else as ''.
 */
function tagSearchValue(v: unknown): string {
  if (typeof v === 'string') return v.length > MAX_TAG_SEARCH_VALUE_LENGTH ? '' : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return '';
}

function textMatches(value: string, match: TextMatch): boolean {
  return 'exact' in match ? value === match.exact : value.includes(match.substring);
}

/**
 * The reference semantics of a ListImages filter, apart from limit, marker
 * and sort. States: active = activated and not disabled; disabled =
 * activated and disabled; unactivated = not activated (creating and failed
 * images included, as the reference's `activated=false`); creating/failed =
 * that state; all = any. `tag.KEY=` (an empty value) matches any image that
 * has the tag KEY, as the reference's database does; otherwise the tag's
 * value as a string must equal VALUE.
 */
export function matchesFilter(m: ImageManifest, f: ListFilter): boolean {
  const activated = isActivated(m);
  switch (f.state) {
    case 'active':
      if (!activated || m.disabled) return false;
      break;
    case 'disabled':
      if (!activated || !m.disabled) return false;
      break;
    case 'unactivated':
      if (activated) return false;
      break;
    case 'creating':
    case 'failed':
      if (m.state !== f.state) return false;
      break;
    case 'all':
      break;
  }
  if (f.name !== undefined && !textMatches(m.name, f.name)) return false;
  if (f.version !== undefined && !textMatches(m.version, f.version)) return false;
  if (f.owner !== undefined && m.owner !== f.owner) return false;
  if (f.os !== undefined && m.os !== f.os) return false;
  if (f.type !== undefined && (m.type === f.type.value) === f.type.negate) return false;
  if (f.public !== undefined && m.public !== f.public) return false;
  for (const [key, value] of f.tags) {
    const tags = m.tags;
    if (tags === undefined || !Object.prototype.hasOwnProperty.call(tags, key)) return false;
    if (value !== '' && tagSearchValue(tags[key]) !== value) return false;
  }
  if (f.channel !== undefined && f.channel !== '*' && !(m.channels ?? []).includes(f.channel)) return false;
  return true;
}

/**
 * The state of an image from its flags: 'creating' and 'failed' are kept;
 * otherwise activated → 'disabled' or 'active' by `disabled`, else
 * 'unactivated'. Without `activated`, an image whose state is active or
 * disabled counts as activated (so enable/disable only flip `disabled`).
 */
export function deriveState(m: { activated?: boolean; disabled: boolean; state?: string }): ImageState {
  if (m.state === 'creating' || m.state === 'failed') return m.state;
  const activated = m.activated ?? (m.state === 'active' || m.state === 'disabled');
  if (!activated) return 'unactivated';
  return m.disabled ? 'disabled' : 'active';
}

// ---- manifests

export interface ValidateOptions {
  /** Whether the server has channels (`channels` then belongs to the server, never to the body). */
  channelsEnabled: boolean;
  /** Reserved: validation needs no clock today. */
  now?: Date;
  /** Create mode: the fresh uuid the caller made for the image (else ''). */
  uuid?: string;
  /** Create/import: the request's channel; the result's `channels` is then `[channel]`. */
  channel?: string;
  /** Update mode: the image as stored, to check type-dependent fields (zvol, zone-dataset) on the result. */
  current?: ImageManifest;
}

/**
 * The optional fields an image's author sets when creating it and may change
 * or remove with UpdateImage (the zvol fields besides, on a zvol image).
 */
const AUTHORED_FIELDS = [
  'description',
  'homepage',
  'eula',
  'acl',
  'requirements',
  'users',
  'billing_tags',
  'traits',
  'tags',
  'generate_passwords',
  'inherited_directories',
] as const;

/** Keys CreateImage takes (the reference's Image.create); zvol fields only with `type: zvol`. */
const CREATE_KEYS = [
  'v',
  'owner',
  'name',
  'version',
  'icon',
  'type',
  'os',
  'origin',
  'public',
  'disabled',
  'error',
  ...AUTHORED_FIELDS,
  // Replaced by the request's channel, and tolerated because clients resend what the server sent.
  'channels',
  'files',
];
/** AdminImport also takes what a published manifest carries. */
const IMPORT_KEYS = [...CREATE_KEYS, 'uuid', 'published_at', 'state', 'activated', 'urn'];

/** What UpdateImage may change (the reference's mutable fields, less owner and channels). */
export const UPDATABLE_FIELDS = [
  'name',
  'version',
  'public',
  'os',
  ...AUTHORED_FIELDS,
  ...ZVOL_FIELDS,
] as const;
/** Fields an update may remove by sending `null`. */
const REMOVABLE_FIELDS: readonly string[] = [...AUTHORED_FIELDS, ...ZVOL_FIELDS];

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (v === undefined) return 'nothing';
  const shown = JSON.stringify(v);
  return `${typeof v} ${shown.length > 60 ? `${shown.slice(0, 60)}…` : shown}`;
}

/** Collects field errors; each check returns the normalized value or undefined. */
class Checker {
  readonly errors: FieldError[] = [];

  /** Records an error; returns undefined typed as the caller's result (T is inferred from where it is returned). */
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- T comes from the caller's return type
  fail<T = unknown>(field: string, message: string, code = 'Invalid'): T | undefined {
    this.errors.push({ field, code, message });
    return undefined;
  }

  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- as for fail
  missing<T = unknown>(field: string): T | undefined {
    return this.fail<T>(field, `"${field}" is required`, 'MissingParameter');
  }

  uuid(field: string, v: unknown): string | undefined {
    if (typeof v === 'string' && isUuid(v)) return v;
    return this.fail(field, `"${field}" must be a lowercase UUID, found ${typeName(v)}`);
  }

  string(field: string, v: unknown, max?: number): string | undefined {
    if (typeof v !== 'string') return this.fail(field, `"${field}" must be a string, found ${typeName(v)}`);
    if (max !== undefined && v.length > max)
      return this.fail(field, `"${field}" is too long, max ${max} characters`);
    return v;
  }

  /** true/false, or the strings "true"/"false" (as the reference's boolFromString). */
  bool(field: string, v: unknown): boolean | undefined {
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    return this.fail(field, `"${field}" must be a boolean, found ${typeName(v)}`);
  }

  url(field: string, v: unknown): string | undefined {
    const s = this.string(field, v);
    if (s === undefined) return undefined;
    let protocol: string;
    try {
      protocol = new URL(s).protocol;
    } catch {
      protocol = '';
    }
    if (protocol !== 'http:' && protocol !== 'https:')
      return this.fail(field, `invalid image ${field} URL: must be an http or https URL`);
    if (s.length > MAX_URL_LENGTH)
      return this.fail(field, `image ${field} URL is too long (max ${MAX_URL_LENGTH} characters)`);
    return s;
  }

  oneOf<T extends string>(field: string, v: unknown, values: readonly T[]): T | undefined {
    const found = values.find((x) => x === v);
    if (found !== undefined) return found;
    return this.fail(
      field,
      `invalid image ${field}, ${JSON.stringify(v)}, must be one of: ${values.join(', ')}`,
    );
  }

  positiveInt(field: string, v: unknown): number | undefined {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
    return this.fail(field, `"${field}" must be a positive integer, found ${typeName(v)}`);
  }

  object(field: string, v: unknown): Record<string, unknown> | undefined {
    if (isRecord(v)) return v;
    return this.fail(field, `"${field}" must be an object, found ${typeName(v)}`);
  }

  /** An image's name or version: a string of at most `max` characters from `re`'s set (`allowed` besides alphanumerics). */
  #label(
    field: 'name' | 'version',
    v: unknown,
    max: number,
    re: RegExp,
    allowed: string,
  ): string | undefined {
    const s = this.string(field, v);
    if (s === undefined) return undefined;
    if (s.length > max) return this.fail(field, `image ${field} is too long, max ${max} characters`);
    if (!re.test(s))
      return this.fail(
        field,
        `image ${field} has invalid characters (only alpha-numeric characters and ${allowed} are allowed)`,
      );
    return s;
  }

  name(v: unknown): string | undefined {
    return this.#label('name', v, MAX_NAME_LENGTH, NAME_RE, '" ", ".", "-", "_" and "/"');
  }

  version(v: unknown): string | undefined {
    return this.#label('version', v, MAX_VERSION_LENGTH, VERSION_RE, '".", "-", "_", "/" and "+"');
  }

  publishedAt(v: unknown): string | undefined {
    if (typeof v !== 'string' || !PUBLISHED_AT_RE.test(v) || !validTimestamp(v))
      return this.fail('published_at', 'published_at date not in "YYYY-MM-DDTHH:MM:SS(.SSS)Z" format');
    return v;
  }

  files(v: unknown): ImageFile[] | undefined {
    if (!Array.isArray(v)) return this.fail('files', `invalid image "files" (not an array): ${typeName(v)}`);
    if (v.length > 1) return this.fail('files', 'invalid image "files": too many files');
    const out: ImageFile[] = [];
    for (const f of v as unknown[]) {
      if (!isRecord(f)) return this.fail('files', `invalid image "files" entry: ${typeName(f)}`);
      const { sha1, size, compression } = f;
      if (typeof sha1 !== 'string' || !SHA1_RE.test(sha1))
        return this.fail('files', 'invalid image "files": "sha1" must be 40 hex digits');
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1)
        return this.fail('files', 'invalid image "files": "size" must be a positive integer');
      const c = COMPRESSIONS.find((x) => x === compression);
      if (c === undefined)
        return this.fail(
          'files',
          `invalid image "files": invalid compression ${JSON.stringify(compression)} (must be one of ${COMPRESSIONS.join(', ')})`,
        );
      out.push({ sha1: sha1.toLowerCase(), size, compression: c });
    }
    return out;
  }

  /** An array of UUIDs; a single string is taken as a one-element list (as the reference does). */
  acl(v: unknown): string[] | undefined {
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list)) return this.fail('acl', `invalid image "acl" (not an array): ${typeName(v)}`);
    const items = list as unknown[];
    const i = items.findIndex((x) => typeof x !== 'string' || !isUuid(x));
    if (i >= 0)
      return this.fail('acl', `invalid image "acl" (item ${i} is not a UUID): ${typeName(items[i])}`);
    return items as string[];
  }

  billingTags(v: unknown): string[] | undefined {
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list))
      return this.fail('billing_tags', `invalid image "billing_tags" (not an array): ${typeName(v)}`);
    for (const t of list as unknown[]) {
      if (typeof t !== 'string' || t.length > MAX_BILLING_TAG_LENGTH)
        return this.fail('billing_tags', `invalid image "billing_tags" entry: ${typeName(t)}`);
    }
    return list as string[];
  }

  users(v: unknown): unknown[] | undefined {
    if (!Array.isArray(v)) return this.fail('users', `invalid image "users" (not an array): ${typeName(v)}`);
    for (const u of v as unknown[]) {
      if (!isRecord(u) || typeof u.name !== 'string' || Object.keys(u).length !== 1)
        return this.fail('users', `invalid image "users" entry (expected {name}): ${typeName(u)}`);
    }
    return v as unknown[];
  }

  traits(v: unknown): Record<string, unknown> | undefined {
    const o = this.object('traits', v);
    if (o === undefined) return undefined;
    for (const [k, x] of Object.entries(o)) {
      if (typeof x !== 'string' && typeof x !== 'boolean' && !Array.isArray(x))
        return this.fail('traits', `invalid image "traits" entry: (${k}, ${typeName(x)})`);
    }
    return o;
  }

  tags(v: unknown): Record<string, unknown> | undefined {
    const o = this.object('tags', v);
    if (o === undefined) return undefined;
    const length = JSON.stringify(o).length;
    if (length > MAX_TAGS_LENGTH)
      return this.fail(
        'tags',
        `image "tags" object is too big: ${length} characters (max ${MAX_TAGS_LENGTH})`,
      );
    return o;
  }

  inheritedDirectories(v: unknown): string[] | undefined {
    if (!Array.isArray(v) || !(v as unknown[]).every((x) => typeof x === 'string'))
      return this.fail('inherited_directories', `invalid image "inherited_directories": ${typeName(v)}`);
    return v as string[];
  }

  requirements(v: unknown): Record<string, unknown> | undefined {
    const reqs = this.object('requirements', v);
    if (reqs === undefined) return undefined;
    const before = this.errors.length;
    const field = (k: string): string => `requirements.${k}`;
    for (const [k, x] of Object.entries(reqs)) {
      switch (k) {
        case 'networks':
          if (!Array.isArray(x)) this.fail(field(k), `invalid image "requirements.networks" (not an array)`);
          else
            for (const n of x as unknown[]) {
              if (
                !isRecord(n) ||
                n.name === undefined ||
                n.description === undefined ||
                Object.keys(n).length !== 2
              )
                this.fail(field(k), `invalid image "requirements.networks" entry: ${typeName(n)}`);
            }
          break;
        case 'brand':
          if (typeof x !== 'string') this.fail(field(k), `invalid image "requirements.brand" (not a string)`);
          break;
        case 'ssh_key':
          if (typeof x !== 'boolean')
            this.fail(field(k), `invalid image "requirements.ssh_key" (not a boolean)`);
          break;
        case 'min_ram':
        case 'max_ram':
          this.positiveInt(field(k), x);
          break;
        case 'min_platform':
        case 'max_platform':
          if (!isRecord(x) || Object.keys(x).length === 0)
            this.fail(field(k), `invalid image "requirements.${k}" (not an object)`);
          else
            for (const [sdcVersion, platform] of Object.entries(x)) {
              if (typeof platform !== 'string' || !validPlatformVersion(platform))
                this.fail(
                  field(k),
                  `invalid image "requirements.${k}" entry: "${sdcVersion}: ${String(platform)}" not a valid platform version`,
                );
            }
          break;
        case 'bootrom':
          if (reqs.brand !== 'bhyve')
            this.fail(field(k), '"requirements.bootrom" requires "requirements.brand" to be "bhyve"');
          else if (x !== 'bios' && x !== 'uefi')
            this.fail(field(k), `invalid "requirements.bootrom" ${typeName(x)}; must be one of: bios, uefi`);
          break;
        default:
          this.fail(field(k), `unsupported requirement "${k}"`);
      }
    }
    const { min_ram: minRam, max_ram: maxRam } = reqs;
    if (typeof minRam === 'number' && typeof maxRam === 'number' && maxRam < minRam)
      this.fail(
        'requirements.max_ram',
        `min_ram must be <= max_ram, but: min_ram=${minRam}, max_ram=${maxRam}`,
      );
    return this.errors.length === before ? reqs : undefined;
  }
}

function validTimestamp(s: string): boolean {
  const d = new Date(s);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 19) === s.slice(0, 19);
}

/** `YYYYMMDDTHHMMSSZ`, year ≥ 2012, as the reference checks platform stamps. */
function validPlatformVersion(s: string): boolean {
  const m = PLATFORM_RE.exec(s);
  if (m === null) return false;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return y >= 2012 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && se <= 59;
}

/** The optional fields every mode validates the same way; returns the normalized value to keep. */
function checkOptional(c: Checker, key: string, v: unknown): unknown {
  switch (key) {
    case 'description':
      return c.string(key, v, MAX_DESCRIPTION_LENGTH);
    case 'homepage':
    case 'eula':
      return c.url(key, v);
    case 'origin':
      return c.uuid(key, v);
    case 'acl':
      return c.acl(v);
    case 'requirements':
      return c.requirements(v);
    case 'users':
      return c.users(v);
    case 'billing_tags':
      return c.billingTags(v);
    case 'traits':
      return c.traits(v);
    case 'tags':
      return c.tags(v);
    case 'generate_passwords':
      return c.bool(key, v);
    case 'inherited_directories':
      return c.inheritedDirectories(v);
    case 'nic_driver':
    case 'disk_driver':
    case 'cpu_type':
      return c.string(key, v);
    case 'image_size':
      return c.positiveInt(key, v);
    case 'error':
      return c.object(key, v);
    default:
      return undefined;
  }
}

/** Type-dependent rules: zvol images need the zvol fields (and only they may have them); inherited_directories is for zone-dataset. */
function checkTypeRules(c: Checker, m: Partial<ImageManifest>): void {
  for (const f of ZVOL_FIELDS) {
    if (m.type === 'zvol' && m[f] === undefined) c.missing(f);
    if (m.type !== 'zvol' && m[f] !== undefined)
      c.fail(f, `invalid image ${f}: only an image of type zvol may have one`);
  }
  if (m.inherited_directories !== undefined && m.type !== 'zone-dataset')
    c.fail(
      'inherited_directories',
      'invalid image "inherited_directories" (only valid for a type:zone-dataset image)',
    );
}

function validationFailed(prefix: string, errors: FieldError[]): ImgapiError {
  const fields = [...new Set(errors.map((e) => e.field))];
  return new ImgapiError(422, 'ValidationFailed', `${prefix}: ${fields.join(', ')}`, errors);
}

function requireObject(input: unknown): Record<string, unknown> {
  if (!isRecord(input))
    throw new ImgapiError(422, 'ValidationFailed', 'missing request body', [
      { field: 'body', code: 'MissingParameter', message: 'the body must be a JSON object' },
    ]);
  return input;
}

/**
 * Validates a manifest from a request.
 *
 * - `create` (CreateImage): no uuid/state/published_at; `state` present →
 *   422 ValidationFailed; unknown keys → 422 InvalidParameter `invalid extra
 *   parameters: "k"`; `v` defaults to 2; `files` and `channels` are
 *   tolerated and dropped. The result is unactivated, with no files, uuid
 *   `opts.uuid ?? ''` and channels `[opts.channel]` when given.
 * - `import` (AdminImport): a published manifest with its uuid (the caller
 *   checks it equals the path's). `files`, `state`, `activated`, `icon`,
 *   `urn` and `channels` are checked and dropped (the client uploads the file
 *   and activates next); `published_at` is kept; state is unactivated.
 * - `update` (UpdateImage): see validateUpdate.
 */
export function validateManifest(
  input: unknown,
  mode: 'create' | 'import',
  opts: ValidateOptions,
): ImageManifest;
export function validateManifest(
  input: unknown,
  mode: 'update',
  opts: ValidateOptions,
): Partial<ImageManifest>;
export function validateManifest(
  input: unknown,
  mode: 'create' | 'import' | 'update',
  opts: ValidateOptions,
): ImageManifest | Partial<ImageManifest>;
export function validateManifest(
  input: unknown,
  mode: 'create' | 'import' | 'update',
  opts: ValidateOptions,
): ImageManifest | Partial<ImageManifest> {
  if (mode === 'update') return validateUpdate(input, opts);
  const data = requireObject(input);

  if (mode === 'create' && data.state !== undefined)
    throw new ImgapiError(422, 'ValidationFailed', 'invalid image data: "state"', [
      { field: 'state', code: 'NotAllowed', message: 'Parameter cannot be set' },
    ]);
  if (mode === 'import' && data.uuid === undefined)
    throw new ImgapiError(422, 'InvalidParameter', 'missing "uuid"', [
      { field: 'uuid', code: 'MissingParameter', message: '"uuid" is required' },
    ]);

  // The zvol fields are known keys only for a zvol image; for others they are extra (as in the reference).
  const allowed = new Set<string>(mode === 'create' ? CREATE_KEYS : IMPORT_KEYS);
  if (data.type === 'zvol') for (const f of ZVOL_FIELDS) allowed.add(f);
  const extra = Object.keys(data).filter((k) => !allowed.has(k));
  if (extra.length > 0)
    throw new ImgapiError(
      422,
      'InvalidParameter',
      `invalid extra parameters: "${extra.join('", "')}"`,
      extra.map((field) => ({ field, code: 'Invalid', message: `unknown parameter "${field}"` })),
    );

  const c = new Checker();
  const req = <T>(key: string, check: (v: unknown) => T | undefined): T | undefined =>
    data[key] === undefined ? c.missing<T>(key) : check(data[key]);

  let v: number | undefined = 2;
  if (data.v !== undefined || mode === 'import') {
    v = req('v', (x) =>
      x === 2 ? 2 : c.fail<number>('v', `"v" must be 2 (the manifest version served here)`),
    );
  }
  const uuid = mode === 'import' ? c.uuid('uuid', data.uuid) : (opts.uuid ?? '');
  const owner = req('owner', (x) => c.uuid('owner', x));
  const name = req('name', (x) => c.name(x));
  const version = req('version', (x) => c.version(x));
  const type = req('type', (x) => c.oneOf('type', x, IMAGE_TYPES));
  const os = req('os', (x) => c.oneOf('os', x, IMAGE_OSES));
  const pub = data.public === undefined ? false : c.bool('public', data.public);
  const disabled = data.disabled === undefined ? false : c.bool('disabled', data.disabled);

  const out: ImageManifest = {
    v: v ?? 2,
    uuid: uuid ?? '',
    owner: owner ?? '',
    name: name ?? '',
    version: version ?? '',
    state: 'unactivated',
    disabled: disabled ?? false,
    public: pub ?? false,
    type: type ?? '',
    os: os ?? '',
    files: [],
  };
  if (mode === 'import') {
    if (data.published_at !== undefined) {
      const at = c.publishedAt(data.published_at);
      if (at !== undefined) out.published_at = at;
    }
    if (data.state !== undefined) c.oneOf('state', data.state, IMAGE_STATES);
    if (data.activated !== undefined) c.bool('activated', data.activated);
    if (data.urn !== undefined) c.string('urn', data.urn);
  }
  if (data.files !== undefined) c.files(data.files);
  if (data.icon !== undefined) c.bool('icon', data.icon);
  if (data.channels !== undefined && !(Array.isArray(data.channels) && data.channels.every(isString)))
    c.fail('channels', `invalid image "channels" (not an array of names): ${typeName(data.channels)}`);

  const optional = out as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(data)) {
    const checked = checkOptional(c, key, value);
    if (checked !== undefined) optional[key] = checked;
  }
  if (type !== undefined) checkTypeRules(c, out);
  if (c.errors.length > 0) throw validationFailed('invalid image data', c.errors);
  if (opts.channel !== undefined) out.channels = [opts.channel];
  return out;
}

function isString(x: unknown): x is string {
  return typeof x === 'string';
}

/**
 * Validates an UpdateImage body: at least one field, each one of
 * UPDATABLE_FIELDS (anything else, e.g. uuid, owner, state, files, channels,
 * published_at, type, origin, disabled → 422 ValidationFailed, code
 * NotAllowed). `null` removes an optional field: the result then has the key
 * with the value undefined, so `{...current, ...patch}` drops it. With
 * `opts.current` the merged image is checked against the type rules.
 */
export function validateUpdate(input: unknown, opts: ValidateOptions): Partial<ImageManifest> {
  const data = requireObject(input);
  const keys = Object.keys(data);
  if (keys.length === 0)
    throw new ImgapiError(422, 'ValidationFailed', 'invalid image update data: no parameters provided', []);
  const updatable: readonly string[] = UPDATABLE_FIELDS;
  const refused = keys.filter((k) => !updatable.includes(k));
  if (refused.length > 0)
    throw validationFailed(
      'invalid image update data',
      refused.map((field) => ({
        field,
        code: 'NotAllowed',
        message:
          field === 'channels' && opts.channelsEnabled
            ? 'Parameter cannot be updated (use ?action=channel-add)'
            : field === 'disabled'
              ? 'Parameter cannot be updated (use ?action=disable or ?action=enable)'
              : 'Parameter cannot be updated',
      })),
    );

  const c = new Checker();
  const patch: Record<string, unknown> = {};
  for (const key of keys) {
    const value = data[key];
    if (value === null) {
      if (REMOVABLE_FIELDS.includes(key)) patch[key] = undefined;
      else c.fail(key, `"${key}" cannot be removed`);
      continue;
    }
    switch (key) {
      case 'name':
        patch[key] = c.name(value);
        break;
      case 'version':
        patch[key] = c.version(value);
        break;
      case 'public':
        patch[key] = c.bool(key, value);
        break;
      case 'os':
        patch[key] = c.oneOf(key, value, IMAGE_OSES);
        break;
      default:
        patch[key] = checkOptional(c, key, value);
    }
  }
  if (c.errors.length === 0 && opts.current !== undefined) checkTypeRules(c, { ...opts.current, ...patch });
  if (c.errors.length > 0) throw validationFailed('invalid image data', c.errors);
  return patch;
}

/** The optional fields in the order they are served, after the required ones; `channels` comes last. */
const OPTIONAL_ORDER = [
  'description',
  'homepage',
  'eula',
  'icon',
  'requirements',
  'users',
  'generate_passwords',
  'inherited_directories',
  'origin',
  'nic_driver',
  'disk_driver',
  'cpu_type',
  'image_size',
  'tags',
  'acl',
  'billing_tags',
  'traits',
  'error',
] as const satisfies readonly (keyof ImageManifest)[];

/**
 * An image as served: v, uuid, owner, name, version, state, disabled,
 * public, published_at, type, os, files, then the optional fields in a fixed
 * order, channels last (API version 2 only). Undefined fields are left out,
 * and so are an empty acl/billing_tags/traits, `icon` unless true and
 * `error` unless the state is failed (as the reference serializes).
 */
export function serializeManifest(m: ImageManifest, apiVersion: 1 | 2): Record<string, unknown> {
  const out: Record<string, unknown> = {
    v: m.v,
    uuid: m.uuid,
    owner: m.owner,
    name: m.name,
    version: m.version,
    state: m.state,
    disabled: m.disabled,
    public: m.public,
  };
  if (m.published_at !== undefined) out.published_at = m.published_at;
  out.type = m.type;
  out.os = m.os;
  out.files = m.files.map((f) => ({ sha1: f.sha1, size: f.size, compression: f.compression }));
  for (const key of OPTIONAL_ORDER) {
    const value = m[key];
    if (value === undefined) continue;
    if ((key === 'acl' || key === 'billing_tags') && Array.isArray(value) && value.length === 0) continue;
    if (key === 'traits' && isRecord(value) && Object.keys(value).length === 0) continue;
    if (key === 'icon' && value !== true) continue;
    if (key === 'error' && m.state !== 'failed') continue;
    out[key] = value;
  }
  if (apiVersion >= 2 && m.channels !== undefined) out.channels = m.channels;
  return out;
}

/** A response body as the reference's JSON formatter writes it: 2-space indent, no trailing newline. */
export function prettyJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

// ---- origin chains

/** CreateImage/AdminImport with an `origin` that is not there. */
export function originDoesNotExist(uuid: string): ImgapiError {
  return new ImgapiError(422, 'OriginDoesNotExist', `origin image "${uuid}" does not exist`);
}

/**
 * Slipway's stricter rule: every image in the origin chain of `image` must
 * exist, be active (activated and not disabled) and, when `channel` is a
 * channel name, be in that channel. Else 422 OriginNotInChannel naming the
 * first image that breaks it. Cycles and chains deeper than 100 are refused
 * the same way.
 */
export function checkOriginChain(
  image: ImageManifest,
  channel: string | undefined,
  lookup: (uuid: string) => ImageManifest | undefined,
): void {
  const ch = channel !== undefined && channel !== '*' ? channel : undefined;
  const inChannel = ch !== undefined ? ` in channel "${ch}"` : '';
  const fail = (why: string): never => {
    throw new ImgapiError(
      422,
      'OriginNotInChannel',
      `the origin chain of image "${image.uuid}" is not complete${inChannel}: ${why}`,
    );
  };
  const seen = new Set<string>([image.uuid]);
  let next = image.origin;
  let depth = 0;
  while (next !== undefined) {
    if (seen.has(next)) fail(`origin image "${next}" is reached twice (a cycle)`);
    if (++depth > MAX_ORIGIN_DEPTH)
      fail(`the chain is deeper than ${MAX_ORIGIN_DEPTH} images (a cycle?) at origin image "${next}"`);
    seen.add(next);
    const origin = lookup(next);
    if (origin === undefined) return fail(`origin image "${next}" does not exist`);
    if (ch !== undefined && !(origin.channels ?? []).includes(ch))
      fail(`origin image "${next}" is not in channel "${ch}"`);
    if (origin.state !== 'active' || origin.disabled)
      fail(`origin image "${next}" is not active (state: ${origin.disabled ? 'disabled' : origin.state})`);
    next = origin.origin;
  }
}

// ---- errors and actions

/** The status and body of an error response; errors that are not ImgapiErrors never show their message. */
export function errorBody(err: unknown): { status: number; body: ImgapiErrorBody } {
  if (err instanceof ImgapiError) return { status: err.statusCode, body: err.body() };
  return { status: 500, body: { code: 'InternalError', message: 'internal error' } };
}

/** The `?action=` values of POST /images/:uuid. */
export const ACTIONS = ['activate', 'disable', 'enable', 'update', 'channel-add', 'import'] as const;
export type ImageAction = (typeof ACTIONS)[number];

function parseActionIn<T extends string>(q: URLSearchParams, actions: readonly T[]): T {
  const action = q.get('action');
  if (action === null || action === '')
    throw new ImgapiError(422, 'MissingParameter', 'no image "action" was specified', [
      { field: 'action', code: 'MissingParameter' },
    ]);
  const found = actions.find((a) => a === action);
  if (found === undefined)
    throw new ImgapiError(422, 'InvalidParameter', `"${action}" is not a valid action`, [
      { field: 'action', code: 'Invalid' },
    ]);
  return found;
}

/** The action of POST /images/:uuid: none → 422 MissingParameter, unknown → 422 InvalidParameter. */
export function parseAction(q: URLSearchParams): ImageAction {
  return parseActionIn(q, ACTIONS);
}

/** The `?action=` values of POST /images/:uuid/acl. */
export const ACL_ACTIONS = ['add', 'remove'] as const;
export type AclAction = (typeof ACL_ACTIONS)[number];

/** The action of POST /images/:uuid/acl, with the same errors as parseAction. */
export function parseAclAction(q: URLSearchParams): AclAction {
  return parseActionIn(q, ACL_ACTIONS);
}
