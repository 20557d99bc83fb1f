/**
 * Origin images as triton-origin-image builds them (specs/imgapi.md
 * "Origin images"): the definition file, the name and version stamp, the
 * channel a branch publishes to, the channels a release goes to, and the
 * compatibility table derived from a repository's manifests. Pure.
 */
import { SlipwayError } from '../core/errors.js';
import type { ImageManifest } from '../formats/imgapi-types.js';
import { TomlChecker } from '../formats/toml-checker.js';
import { parseTomlLocated } from '../formats/toml-located.js';

export interface OriginDefinition {
  file: string;
  /** e.g. triton-origin */
  family: string;
  /** e.g. x86_64 */
  arch: string;
  /** e.g. 24.4.1 */
  originVersion: string;
  /** uuid of the base image: the new image's `origin`. */
  base: string;
  /** The package set: a directory (packed as a layer) or a layer archive. */
  layer: string;
  owner: string;
  os: string;
  type: string;
  description?: string;
  homepage?: string;
  tags: Record<string, string>;
  requirements?: Record<string, unknown>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const WORD = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function parseOriginDefinition(text: string, file: string): OriginDefinition {
  const located = parseTomlLocated(text, file);
  const c: TomlChecker = new TomlChecker(file, located, 'MANIFEST_INVALID');
  const t = c.table(located.value, []);
  c.unknownKeys(
    t,
    [],
    [
      'family',
      'arch',
      'origin_version',
      'base',
      'layer',
      'owner',
      'os',
      'type',
      'description',
      'homepage',
      'tags',
      'requirements',
    ],
  );
  const word = (key: string): string => {
    const v = c.requiredString(t, key, []);
    if (!WORD.test(v)) c.fail([key], `invalid ${key} ${JSON.stringify(v)}: letters, digits, . _ -`);
    return v;
  };
  const uuid = (key: string): string => {
    const v = c.requiredString(t, key, []);
    if (!UUID.test(v)) c.fail([key], `must be a lowercase UUID, found ${JSON.stringify(v)}`);
    return v;
  };
  const description = c.optionalString(t, 'description', []);
  const homepage = c.optionalString(t, 'homepage', []);
  const requirements = t.requirements === undefined ? undefined : c.table(t.requirements, ['requirements']);
  return {
    file,
    family: word('family'),
    arch: word('arch'),
    originVersion: word('origin_version'),
    base: uuid('base'),
    layer: c.requiredString(t, 'layer', []),
    owner: uuid('owner'),
    os: c.optionalString(t, 'os', []) ?? 'smartos',
    type: c.optionalString(t, 'type', []) ?? 'zone-dataset',
    ...(description !== undefined ? { description } : {}),
    ...(homepage !== undefined ? { homepage } : {}),
    tags: t.tags === undefined ? {} : c.stringMap(t.tags, ['tags']),
    ...(requirements !== undefined ? { requirements } : {}),
  };
}

/** `<family>-<arch>-<originVer>`, e.g. triton-origin-x86_64-24.4.1. */
export function originImageName(d: Pick<OriginDefinition, 'family' | 'arch' | 'originVersion'>): string {
  return `${d.family}-${d.arch}-${d.originVersion}`;
}

export interface GitStamp {
  branch: string;
  /** The full commit hash. */
  commit: string;
  dirty: boolean;
}

/** `YYYYMMDDTHHMMSSZ` in UTC. */
export function compactTimestamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** `<branch>-<YYYYMMDDTHHMMSSZ>-g<7 hex>[-dirty]`; branch characters outside a version's alphabet become `_`. */
export function originVersionStamp(git: GitStamp, now: Date): string {
  if (!/^[0-9a-f]{7,40}$/.test(git.commit)) {
    throw new SlipwayError('INVALID_ARGUMENT', `not a git commit: ${JSON.stringify(git.commit)}`);
  }
  const branch = git.branch.replace(/[^A-Za-z0-9._+-]/g, '_');
  return `${branch}-${compactTimestamp(now)}-g${git.commit.slice(0, 7)}${git.dirty ? '-dirty' : ''}`;
}

/** Where a build of `branch` is published: release-YYYYMMDD → staging, main (or master) → dev, else experimental. */
export function channelForBranch(branch: string): 'staging' | 'dev' | 'experimental' {
  if (/^release-\d{8}$/.test(branch)) return 'staging';
  if (branch === 'main' || branch === 'master') return 'dev';
  return 'experimental';
}

/** The channels a released origin image must be in. */
export const RELEASE_CHANNELS = ['release', 'staging', 'experimental', 'support'] as const;

/**
 * The origin chain of `uuid` (itself first, root last); `missing` names the
 * first uuid not found. Stops on a cycle.
 */
export function originChain(
  uuid: string,
  lookup: (uuid: string) => ImageManifest | undefined,
): { chain: ImageManifest[]; missing?: string; cycle?: boolean } {
  const chain: ImageManifest[] = [];
  const seen = new Set<string>();
  let cur: string | undefined = uuid;
  while (cur !== undefined) {
    if (seen.has(cur)) return { chain, cycle: true };
    seen.add(cur);
    const m = lookup(cur);
    if (m === undefined) return { chain, missing: cur };
    chain.push(m);
    cur = m.origin;
  }
  return { chain };
}

export interface CompatRow {
  /** The component image (a build on top of an origin image). */
  component: string;
  componentVersion: string;
  componentUuid: string;
  origin: string;
  originVersion: string;
  originUuid: string;
  channels: string[];
}

/**
 * Which component builds are compatible with which origin images: every
 * image whose `origin` is an origin image (one tagged `origin_image` by
 * build-origin, or named `<family>-<arch>-<version>` for a known family),
 * grouped by component, newest first. Derived from manifests only.
 */
export function compatTable(
  images: readonly ImageManifest[],
  isOrigin: (m: ImageManifest) => boolean,
): CompatRow[] {
  const byUuid = new Map(images.map((m) => [m.uuid, m]));
  const rows: CompatRow[] = [];
  for (const m of images) {
    if (m.origin === undefined || isOrigin(m)) continue;
    const o = byUuid.get(m.origin);
    if (o === undefined || !isOrigin(o)) continue;
    rows.push({
      component: m.name,
      componentVersion: m.version,
      componentUuid: m.uuid,
      origin: o.name,
      originVersion: o.version,
      originUuid: o.uuid,
      channels: m.channels ?? [],
    });
  }
  return rows.sort(
    (a, b) =>
      a.component.localeCompare(b.component) ||
      b.componentVersion.localeCompare(a.componentVersion) ||
      a.origin.localeCompare(b.origin),
  );
}

/** The tag build-origin puts on every origin image it makes. */
export const ORIGIN_TAG = 'origin_image';

export function isOriginImage(m: ImageManifest): boolean {
  return m.tags?.[ORIGIN_TAG] === true || m.tags?.[ORIGIN_TAG] === 'true';
}

/** The table as Markdown (what `slipway images compat` prints). */
export function formatCompat(rows: readonly CompatRow[]): string {
  const lines = [
    '| component | version | origin image | origin version | channels |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.component} | ${r.componentVersion} | ${r.origin} | ${r.originVersion} | ${r.channels.join(', ')} |`,
    );
  }
  return lines.join('\n');
}
