/**
 * Paths inside image archives: the pure rules that keep extraction inside
 * the target root. Every archive path goes through `normalizeArchivePath`.
 */
import { SlipwayError } from '../core/errors.js';

export interface NormalizedPath {
  /** Components with `.` and empty parts removed; never contains `..`. */
  parts: string[];
  /** The normalized path ('' for the archive root). */
  path: string;
}

/**
 * Normalizes an archive path: strips a leading `./`, trailing and doubled
 * slashes and `.` components. Rejects absolute paths, `..` anywhere, NUL
 * and backslash-free Windows drive prefixes are not a concern here (POSIX).
 */
export function normalizeArchivePath(raw: string, where: string): NormalizedPath {
  if (raw.startsWith('/')) {
    throw new SlipwayError('PATH_UNSAFE', `absolute path '${raw}' in archive`, { where });
  }
  if (raw.includes('\0')) throw new SlipwayError('PATH_UNSAFE', 'path contains a NUL byte', { where });
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new SlipwayError('PATH_UNSAFE', `path '${raw}' contains '..'`, { where });
    parts.push(part);
  }
  return { parts, path: parts.join('/') };
}

/** For a layer or baseline: the path below `root/`, or undefined when outside it. */
export function underRoot(p: NormalizedPath): NormalizedPath | undefined {
  if (p.parts[0] !== 'root') return undefined;
  const parts = p.parts.slice(1);
  return { parts, path: parts.join('/') };
}
