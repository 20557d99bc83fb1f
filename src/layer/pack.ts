/**
 * `slipway layer pack`: a directory (or an existing rootfs tarball) into a
 * reproducible layer archive, with the entry order and headers omicron-package
 * writes (specs/layers.md) and gzip from every core.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import {
  dirEntry,
  memoryEntry,
  walkEntries,
  writeTarOutput,
  type EntryCounter,
} from '../archive/tar-write.js';
import { transformTar } from '../archive/tar-read.js';
import { deterministicHeader, encodeHeader, DETERMINISTIC_MTIME } from '../formats/tar.js';
import { encodeOmicronOxideJson, type ImageType } from '../formats/oxide-json.js';
import { normalizeArchivePath } from '../formats/layer-path.js';

export interface PackOptions {
  type?: Extract<ImageType, 'layer' | 'baseline'>;
  /** Package name in oxide.json; defaults to the output's base name. */
  pkg?: string;
  /** Version in oxide.json; omicron-package writes 0.0.0 until stamped. */
  version?: string;
  /** gzip level, default 1 (omicron-package's `Compression::fast()`). */
  level?: number;
  workers?: number;
  /** Archive what symlinks point to (omicron-package's walk does) instead of the links. */
  followLinks?: boolean;
  reporter?: Reporter;
}

export interface PackResult {
  output: string;
  type: ImageType;
  pkg: string;
  version: string;
  entries: number;
  tarSize: number;
  size: number;
  sha256: string;
}

function defaultPkg(output: string): string {
  return path.basename(output).replace(/\.tar\.gz$|\.tgz$|\.tar$/, '');
}

async function writeLayer(
  output: string,
  options: PackOptions,
  body: (counter: EntryCounter, exclude: ReadonlySet<string>) => Iterable<Buffer> | AsyncIterable<Buffer>,
): Promise<PackResult> {
  const type = options.type ?? 'layer';
  const pkg = options.pkg ?? defaultPkg(output);
  const version = options.version ?? '0.0.0';
  const oxide = encodeOmicronOxideJson(type, pkg, version);
  const counter: EntryCounter = { entries: 0 };
  async function* tar(exclude: ReadonlySet<string>): AsyncGenerator<Buffer> {
    yield* memoryEntry('oxide.json', oxide, counter);
    yield* body(counter, exclude);
  }
  const r = await writeTarOutput(output, tar, {
    gzip: {
      level: options.level ?? 1,
      ...(options.workers !== undefined ? { workers: options.workers } : {}),
    },
    task: `pack ${path.basename(output)}`,
    ...(options.reporter !== undefined ? { reporter: options.reporter } : {}),
  });
  return { output, type, pkg, version, entries: counter.entries, ...r };
}

/** Packs DIR's contents under `root/`. */
export async function packDirectory(
  dir: string,
  output: string,
  options: PackOptions = {},
): Promise<PackResult> {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    throw fromSystemError(err, 'cannot read', dir);
  }
  if (!st.isDirectory())
    throw new SlipwayError('INVALID_ARGUMENT', `'${dir}' is not a directory`, { where: dir });
  const root = path.resolve(dir);
  // The layer's root directory is `root/` (trailing slash), as omicron-package's walk names it.
  return writeLayer(output, options, (counter, exclude) =>
    walkEntries(root, 'root/', { follow: options.followLinks ?? false, exclude, counter }),
  );
}

/**
 * Wraps an existing rootfs tarball (plain or gzip): every entry moves under
 * `root/`, keeping type, mode, owner and link targets; mtimes become the
 * fixed deterministic one and owner names are dropped. Missing parent
 * directories are added (0755) so the layer installs.
 */
export async function packFromTar(
  tarball: string,
  output: string,
  options: PackOptions = {},
): Promise<PackResult> {
  return writeLayer(output, options, async function* (counter) {
    yield dirEntry('root/', counter);
    yield* fromTarBody(tarball, counter);
  });
}

function fromTarBody(tarball: string, counter: EntryCounter): AsyncGenerator<Buffer> {
  const dirs = new Set<string>(['root']);
  return transformTar(tarball, (e) => {
    const at = `${tarball}: ${e.path}`;
    const norm = normalizeArchivePath(e.path.replace(/^\/+/, ''), at);
    if (norm.path === '') return null; // "./": the root, already written as root/
    if (e.type !== 'file' && e.type !== 'directory' && e.type !== 'symlink' && e.type !== 'hardlink') {
      throw new SlipwayError(
        'TAR_ENTRY_UNSUPPORTED',
        `unsupported entry type '${e.type === 'other' ? e.typeflag : e.type}': a layer holds only files, directories and links`,
        { where: at },
      );
    }
    const blocks: Buffer[] = [];
    let prefix = 'root';
    for (const part of norm.parts.slice(0, -1)) {
      prefix = `${prefix}/${part}`;
      if (!dirs.has(prefix)) {
        dirs.add(prefix);
        blocks.push(dirEntry(prefix, counter));
      }
    }
    const target = `root/${norm.path}`;
    if (e.type === 'directory') dirs.add(target);
    let linkname = e.linkname;
    if (e.type === 'hardlink') {
      const t = normalizeArchivePath(e.linkname.replace(/^\/+/, ''), `${at} (hard link target)`);
      linkname = `root/${t.path}`;
    }
    counter.entries++;
    blocks.push(
      encodeHeader({
        ...deterministicHeader(target, e.type),
        mode: e.mode & 0o7777,
        uid: e.uid,
        gid: e.gid,
        size: e.type === 'file' ? e.size : 0,
        mtime: DETERMINISTIC_MTIME,
        linkname: e.type === 'symlink' || e.type === 'hardlink' ? linkname : '',
      }),
    );
    return blocks;
  });
}
