/**
 * `slipway layer diff A B`: what installing B instead of A changes, by
 * content digest (mtimes are ignored: our archives fix them anyway).
 */
import type { TarLimits } from '../formats/tar.js';
import { normalizeArchivePath } from '../formats/layer-path.js';
import { scanArchive, type ArchiveScan } from './scan.js';

export interface DiffEntry {
  path: string;
  type: string;
  /** What differs, for changed entries: content, mode, owner, type, link. */
  changes?: string[];
}

export interface LayerDiff {
  a: string;
  b: string;
  added: DiffEntry[];
  removed: DiffEntry[];
  changed: DiffEntry[];
  unchanged: number;
}

interface Summary {
  type: string;
  sha256: string | undefined;
  mode: number;
  owner: string;
  link: string;
}

/** Path → final state; a later duplicate replaces an earlier one, as on install. */
function summarize(scan: ArchiveScan): Map<string, Summary> {
  const map = new Map<string, Summary>();
  for (const e of scan.entries) {
    const p = normalizeArchivePath(e.path, `${scan.file}: ${e.path}`).path;
    map.set(p, {
      type: e.type,
      sha256: e.sha256,
      mode: e.mode & 0o7777,
      owner: `${e.uid}:${e.gid}`,
      link: e.linkname,
    });
  }
  return map;
}

export function diffScans(a: ArchiveScan, b: ArchiveScan): LayerDiff {
  const ma = summarize(a);
  const mb = summarize(b);
  const out: LayerDiff = { a: a.file, b: b.file, added: [], removed: [], changed: [], unchanged: 0 };
  for (const [p, sb] of mb) {
    const sa = ma.get(p);
    if (sa === undefined) {
      out.added.push({ path: p, type: sb.type });
      continue;
    }
    const changes: string[] = [];
    if (sa.type !== sb.type) changes.push('type');
    else if (sa.sha256 !== sb.sha256) changes.push('content');
    if (sa.link !== sb.link) changes.push('link');
    if (sa.mode !== sb.mode) changes.push('mode');
    if (sa.owner !== sb.owner) changes.push('owner');
    if (changes.length > 0) out.changed.push({ path: p, type: sb.type, changes });
    else out.unchanged++;
  }
  for (const [p, sa] of ma) if (!mb.has(p)) out.removed.push({ path: p, type: sa.type });
  const byPath = (x: DiffEntry, y: DiffEntry): number => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0);
  out.added.sort(byPath);
  out.removed.sort(byPath);
  out.changed.sort(byPath);
  return out;
}

export async function diffArchives(
  a: string,
  b: string,
  options: { limits?: Partial<TarLimits> } = {},
): Promise<LayerDiff> {
  const [sa, sb] = await Promise.all([
    scanArchive(a, { digestFiles: true, limits: options.limits }),
    scanArchive(b, { digestFiles: true, limits: options.limits }),
  ]);
  return diffScans(sa, sb);
}
