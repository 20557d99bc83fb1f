/** Image manifests for the image repository's tests (formats, API, client). */
import type { Client } from 'pg';
import type { ImageManifest, ImageState, ListFilter } from '../../src/formats/imgapi-types.js';
import { matchesFilter } from '../../src/formats/imgapi.js';
import { normalizeTimestamp } from '../../src/store/meta-sql.js';

export const OWNER = '930896af-bf8c-48d4-885c-6573a94b1853';

/** The keys every served manifest starts with, in IMGAPI's order (then published_at when set, type, os, files, …). */
export const SERVED_HEAD = ['v', 'uuid', 'owner', 'name', 'version', 'state', 'disabled', 'public'];

/** An active, public image as published (what `import -m` reads), with `fields` over the defaults. */
export function publishedImage(uuid: string, fields: Partial<ImageManifest> = {}): ImageManifest {
  return {
    v: 2,
    uuid,
    owner: OWNER,
    name: 'base-64',
    version: '1.0.0',
    state: 'active',
    disabled: false,
    public: true,
    published_at: '2024-01-02T03:04:05Z',
    type: 'zone-dataset',
    os: 'smartos',
    files: [],
    ...fields,
  };
}

/** A state drawn like a real repository's mix (85 % active, then disabled, unactivated, creating, failed); r in [0, 1). */
export function stateFor(r: number): ImageState {
  if (r < 0.85) return 'active';
  if (r < 0.9) return 'disabled';
  if (r < 0.97) return 'unactivated';
  return r < 0.99 ? 'creating' : 'failed';
}

/** What a metadata store's list(f) must return, computed in JS: matchesFilter, the marker, the sort, the limit. */
export function expectedList(all: ImageManifest[], f: ListFilter): string[] {
  const key = (m: ImageManifest): string | undefined =>
    m.published_at === undefined ? undefined : normalizeTimestamp(m.published_at);
  const mp = f.markerPublishedAt === undefined ? undefined : normalizeTimestamp(f.markerPublishedAt);
  const xs = all.filter((m) => {
    if (!matchesFilter(m, f)) return false;
    if (mp === undefined) return true;
    const k = key(m);
    if (k === undefined || k < mp) return false;
    if (f.markerUuid !== undefined && f.sort === 'asc' && k === mp && m.uuid < f.markerUuid) return false;
    return true;
  });
  const cmp = (a: string | undefined, b: string | undefined): number => {
    if (a === b) return 0;
    if (a === undefined) return -1;
    if (b === undefined) return 1;
    return a < b ? -1 : 1;
  };
  xs.sort((a, b) => cmp(key(a), key(b)) || cmp(a.uuid, b.uuid));
  if (f.sort === 'desc') xs.reverse();
  return xs.slice(0, f.limit).map((m) => m.uuid);
}

/**
 * What autovacuum does soon after a bulk load into PostgreSQL: `analyze()`
 * (VACUUM ANALYZE) until at least 99 % of the image tables' pages are
 * all-visible (index-only scans), checked through `probe`, 20 tries at most.
 * A VACUUM that runs while another session holds an older snapshot cannot
 * mark new rows all-visible, hence the repeats. Returns the fraction reached.
 */
export async function vacuumUntilAllVisible(analyze: () => Promise<void>, probe: Client): Promise<number> {
  let visible = 0;
  for (let i = 0; i < 20; i++) {
    await analyze();
    const res = await probe.query<{ pages: string; visible: string }>(
      "SELECT sum(relpages) AS pages, sum(relallvisible) AS visible FROM pg_class WHERE relname IN ('images', 'image_channels', 'image_tags')",
    );
    visible = Number(res.rows[0]?.visible) / Math.max(1, Number(res.rows[0]?.pages));
    if (visible >= 0.99) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return visible;
}
