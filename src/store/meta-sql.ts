/**
 * What the SQLite and PostgreSQL metadata stores share: the columns derived
 * from a manifest, and ListFilter → SQL (one query, filtered, sorted and
 * limited by the database; no scan + filter in JS). Pure: no database here.
 *
 * Schema (both databases; types differ only where they must):
 *   images(uuid PK, revision, published_at, name, version, owner, os, type,
 *          public, state, activated, disabled, origin, manifest, file_key,
 *          file_md5, icon_key, icon_content_type)
 *   image_channels(uuid, channel, + a copy of images' list columns) PK (uuid, channel)
 *   image_tags(uuid, key, value) PK (uuid, key)
 *   image_tags index (key, value, uuid)
 * The list columns (activated, disabled, state, public, type, os, owner, name,
 * version) are copied into image_channels, so that a channel's page is one
 * ordered range scan of the covering index (channel, published_at, uuid, …)
 * that never visits images; images' own covering index (published_at, uuid,
 * …) serves lists over all channels. Only the page's rows are then joined to
 * images for their manifests. published_at is kept normalized
 * (`YYYY-MM-DDTHH:MM:SS.sssZ`), so text order is time order; NULL when the
 * image has none (first in ascending order, last in descending). `activated`
 * is derived: state active or disabled (as matchesFilter in formats/imgapi.ts).
 */
import type { ImageManifest, ListFilter, StoredImage } from '../formats/imgapi-types.js';

/** The columns a list filters on, in both images and image_channels (and their indexes), in index order. */
export const LIST_COLUMNS = [
  'activated',
  'disabled',
  'state',
  'public',
  'type',
  'os',
  'owner',
  'name',
  'version',
] as const;

/** What images stores per image, derived from a StoredImage. */
export interface ImageColumns {
  uuid: string;
  published_at: string | null;
  name: string;
  version: string;
  owner: string;
  os: string;
  type: string;
  public: boolean;
  state: string;
  /** Activated at some point: state active or disabled (IMGAPI's `activated`). */
  activated: boolean;
  disabled: boolean;
  origin: string | null;
  /** The manifest as JSON text. */
  manifest: string;
  file_key: string | null;
  file_md5: string | null;
  icon_key: string | null;
  icon_content_type: string | null;
}

/**
 * `published_at` in one fixed form (milliseconds always present), so that
 * text comparison is time comparison: `…:00Z` and `…:00.500Z` otherwise
 * compare the wrong way round. Text that is not a date is kept as it is.
 */
export function normalizeTimestamp(value: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t)) return value;
  const d = new Date(t);
  const year = d.getUTCFullYear();
  if (year < 0 || year > 9999) return value;
  return d.toISOString();
}

/** Longer string tag values are not searchable (the reference indexes up to 100 characters). */
export const MAX_TAG_SEARCH_VALUE_LENGTH = 100;

/**
 * A tag value as `tag.KEY=VALUE` compares it (the same rule as matchesFilter
 * in formats/imgapi.ts): strings up to 100 characters as they are, numbers
 * and booleans as strings, anything else as '' (only `tag.KEY=` finds it).
 */
export function tagValueString(value: unknown): string {
  if (typeof value === 'string') return value.length > MAX_TAG_SEARCH_VALUE_LENGTH ? '' : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return '';
}

/** The manifest's channels, once each. */
export function channelsOf(manifest: ImageManifest): string[] {
  return [...new Set(manifest.channels ?? [])];
}

/** The manifest's tags as (key, value-as-string) pairs. */
export function tagsOf(manifest: ImageManifest): [key: string, value: string][] {
  const tags = manifest.tags;
  if (tags === undefined) return [];
  return Object.entries(tags).map(([k, v]) => [k, tagValueString(v)]);
}

export function isActivated(manifest: ImageManifest): boolean {
  return manifest.state === 'active' || manifest.state === 'disabled';
}

export function imageColumns(image: StoredImage): ImageColumns {
  const m = image.manifest;
  return {
    uuid: m.uuid,
    published_at: m.published_at === undefined ? null : normalizeTimestamp(m.published_at),
    name: m.name,
    version: m.version,
    owner: m.owner,
    os: m.os,
    type: m.type,
    public: m.public,
    state: m.state,
    activated: isActivated(m),
    disabled: m.disabled,
    origin: m.origin ?? null,
    manifest: JSON.stringify(m),
    file_key: image.fileKey ?? null,
    file_md5: image.fileMd5 ?? null,
    icon_key: image.iconKey ?? null,
    icon_content_type: image.iconContentType ?? null,
  };
}

/** A row as the list and get queries select it. */
export interface SelectedRow {
  uuid: string;
  revision: number;
  /** JSON text (SQLite) or the parsed value (PostgreSQL jsonb). */
  manifest: string | ImageManifest;
  file_key: string | null;
  file_md5: string | null;
  icon_key: string | null;
  icon_content_type: string | null;
}

export const SELECT_COLUMNS =
  'i.uuid, i.revision, i.manifest, i.file_key, i.file_md5, i.icon_key, i.icon_content_type';

export function storedImageFromRow(row: SelectedRow): StoredImage {
  const manifest =
    typeof row.manifest === 'string' ? (JSON.parse(row.manifest) as ImageManifest) : row.manifest;
  const image: StoredImage = { manifest, revision: row.revision };
  if (row.file_key !== null) image.fileKey = row.file_key;
  if (row.file_md5 !== null) image.fileMd5 = row.file_md5;
  if (row.icon_key !== null) image.iconKey = row.icon_key;
  if (row.icon_content_type !== null) image.iconContentType = row.icon_content_type;
  return image;
}

/** The differences between the two SQL dialects that a list query meets. */
export interface Dialect {
  /** The placeholder of the n-th parameter (1-based). */
  param(n: number): string;
  /** A boolean parameter's value. */
  bool(value: boolean): unknown;
  /** A case-sensitive substring test of `column` for the text in `param`. */
  contains(column: string, param: string): string;
  /** ORDER BY over (published_at, uuid) of alias `a`, NULL published_at first in ascending order. */
  orderBy(a: string, sort: 'asc' | 'desc'): string;
}

export const sqliteDialect: Dialect = {
  param: () => '?',
  bool: (v) => (v ? 1 : 0),
  // instr() is case-sensitive (LIKE is not, for ASCII).
  contains: (column, param) => `instr(${column}, ${param}) > 0`,
  // SQLite sorts NULL first in ascending order and last in descending: what we need.
  orderBy: (a, sort) => `${a}.published_at ${sort.toUpperCase()}, ${a}.uuid ${sort.toUpperCase()}`,
};

export const postgresDialect: Dialect = {
  param: (n) => `$${n}`,
  bool: (v) => v,
  contains: (column, param) => `strpos(${column}, ${param}) > 0`,
  // The indexes are built (… published_at NULLS FIRST, uuid …), scanned forward or backward.
  orderBy: (a, sort) =>
    sort === 'asc'
      ? `${a}.published_at ASC NULLS FIRST, ${a}.uuid ASC`
      : `${a}.published_at DESC NULLS LAST, ${a}.uuid DESC`,
};

/**
 * The query for `list(filter)`. An inner query picks the page's uuids from
 * the list index alone — image_channels' when the filter names a channel
 * (not '*'), else images' — with every condition, ORDER BY and LIMIT; only
 * then are those rows' manifests read from images (a "deferred join": a
 * filter that rejects most rows never touches a manifest).
 */
export function listQuery(filter: ListFilter, dialect: Dialect): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const p = (value: unknown): string => {
    params.push(value);
    return dialect.param(params.length);
  };
  const byChannel = filter.channel !== undefined && filter.channel !== '*';
  const where: string[] = [];
  if (byChannel) where.push(`x.channel = ${p(filter.channel)}`);
  switch (filter.state) {
    case 'active':
      where.push(`x.activated = ${p(dialect.bool(true))}`, `x.disabled = ${p(dialect.bool(false))}`);
      break;
    case 'disabled':
      where.push(`x.activated = ${p(dialect.bool(true))}`, `x.disabled = ${p(dialect.bool(true))}`);
      break;
    case 'unactivated':
      where.push(`x.activated = ${p(dialect.bool(false))}`);
      break;
    case 'creating':
    case 'failed':
      where.push(`x.state = ${p(filter.state)}`);
      break;
    case 'all':
      break;
  }
  for (const field of ['name', 'version'] as const) {
    const match = filter[field];
    if (match === undefined) continue;
    if ('exact' in match) where.push(`x.${field} = ${p(match.exact)}`);
    else where.push(dialect.contains(`x.${field}`, p(match.substring)));
  }
  if (filter.owner !== undefined) where.push(`x.owner = ${p(filter.owner)}`);
  if (filter.os !== undefined) where.push(`x.os = ${p(filter.os)}`);
  if (filter.type !== undefined)
    where.push(`x.type ${filter.type.negate ? '<>' : '='} ${p(filter.type.value)}`);
  if (filter.public !== undefined) where.push(`x.public = ${p(dialect.bool(filter.public))}`);
  for (const [key, value] of filter.tags) {
    // `tag.KEY=` (empty): any image that has the tag, whatever its value.
    where.push(
      value === ''
        ? `x.uuid IN (SELECT t.uuid FROM image_tags t WHERE t.key = ${p(key)})`
        : `x.uuid IN (SELECT t.uuid FROM image_tags t WHERE t.key = ${p(key)} AND t.value = ${p(value)})`,
    );
  }
  if (filter.markerPublishedAt !== undefined) {
    const marker = normalizeTimestamp(filter.markerPublishedAt);
    where.push(`x.published_at >= ${p(marker)}`);
    if (filter.markerUuid !== undefined && filter.sort === 'asc') {
      // Among images published at the marker's instant, start at the marker itself: the client
      // drops a first element equal to the marker, so a run of equal published_at that spans two
      // pages comes out once, neither repeated nor skipped.
      where.push(`(x.published_at, x.uuid) >= (${p(marker)}, ${p(filter.markerUuid)})`);
    }
  }
  const inner =
    `SELECT x.uuid, x.published_at FROM ${byChannel ? 'image_channels' : 'images'} x` +
    (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${dialect.orderBy('x', filter.sort)} LIMIT ${p(Math.max(0, Math.floor(filter.limit)))}`;
  const sql =
    `SELECT ${SELECT_COLUMNS} FROM (${inner}) f JOIN images i ON i.uuid = f.uuid` +
    ` ORDER BY ${dialect.orderBy('f', filter.sort)}`;
  return { sql, params };
}

/** The query for `dependents(uuid, channel?)`. */
export function dependentsQuery(
  uuid: string,
  channel: string | undefined,
  dialect: Dialect,
): { sql: string; params: unknown[] } {
  if (channel === undefined || channel === '*') {
    return {
      sql: `SELECT i.uuid FROM images i WHERE i.origin = ${dialect.param(1)} ORDER BY i.uuid`,
      params: [uuid],
    };
  }
  return {
    sql:
      `SELECT i.uuid FROM images i WHERE i.origin = ${dialect.param(1)} AND EXISTS ` +
      `(SELECT 1 FROM image_channels c WHERE c.uuid = i.uuid AND c.channel = ${dialect.param(2)}) ORDER BY i.uuid`,
    params: [uuid, channel],
  };
}
