/**
 * `slipway layer pack`: a directory (or an existing rootfs tarball) into a
 * reproducible layer archive, with the entry order and headers omicron-package
 * writes (specs/layers.md) and gzip from every core.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { DigestStream } from '../core/digest.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { openAtomic } from '../core/atomic-file.js';
import { silentReporter, type Reporter } from '../core/events.js';
import { createParallelGzip } from '../archive/pgzip.js';
import { readTarFile } from '../archive/tar-read.js';
import {
  deterministicHeader,
  encodeHeader,
  endOfArchive,
  paddingFor,
  DETERMINISTIC_MTIME,
} from '../formats/tar.js';
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

/** Byte order of file names, as walkdir's sort_by_file_name (not locale order). */
function byName(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function defaultPkg(output: string): string {
  return path.basename(output).replace(/\.tar\.gz$|\.tgz$|\.tar$/, '');
}

const SMALL_FILE = 1 << 20;

/** Reads exactly `size` bytes of a file, in pieces; fails if the file changed size under us. */
function* fileChunks(fullPath: string, size: number): Generator<Buffer> {
  if (size <= SMALL_FILE) {
    const data = fs.readFileSync(fullPath);
    if (data.length !== size) throw changed(fullPath);
    if (size > 0) yield data;
    return;
  }
  const fd = fs.openSync(fullPath, 'r');
  try {
    let off = 0;
    while (off < size) {
      const buf = Buffer.allocUnsafe(Math.min(SMALL_FILE * 4, size - off));
      const n = fs.readSync(fd, buf, 0, buf.length, off);
      if (n === 0) throw changed(fullPath);
      off += n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function changed(p: string): SlipwayError {
  return new SlipwayError('IO', `'${p}' changed size while it was being packed`, { where: p });
}

interface Counter {
  entries: number;
}

/** The walked tree, depth first, each directory's children sorted by name. */
function* walk(
  dir: string,
  archivePrefix: string,
  follow: boolean,
  exclude: ReadonlySet<string>,
  counter: Counter,
  ancestors: ReadonlySet<string> = new Set(),
): Generator<Buffer> {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort(byName);
  } catch (err) {
    throw fromSystemError(err, 'cannot read directory', dir);
  }
  for (const name of names) {
    const full = path.join(dir, name);
    if (exclude.has(full)) continue;
    const archivePath = `${archivePrefix}/${name}`;
    let st: fs.Stats;
    try {
      st = follow ? fs.statSync(full) : fs.lstatSync(full);
    } catch (err) {
      throw fromSystemError(err, 'cannot read', full);
    }
    counter.entries++;
    if (st.isDirectory()) {
      // Following links can loop (a link to an ancestor); walkdir refuses those too.
      const id = `${st.dev}:${st.ino}`;
      if (follow && ancestors.has(id)) {
        throw new SlipwayError(
          'WALK_CYCLE',
          `'${full}' leads back to one of its ancestors (symbolic link loop)`,
          {
            where: full,
          },
        );
      }
      yield encodeHeader(deterministicHeader(archivePath, 'directory'));
      yield* walk(
        full,
        archivePath,
        follow,
        exclude,
        counter,
        follow ? new Set([...ancestors, id]) : ancestors,
      );
    } else if (st.isFile()) {
      // The Rust tar crate's deterministic mode: 0755 if the owner may execute, else 0644.
      const mode = st.mode & 0o100 ? 0o755 : 0o644;
      yield encodeHeader(deterministicHeader(archivePath, 'file', { mode, size: st.size }));
      yield* fileChunks(full, st.size);
      const pad = paddingFor(st.size);
      if (pad.length > 0) yield pad;
    } else if (st.isSymbolicLink()) {
      const target = fs.readlinkSync(full);
      yield encodeHeader(deterministicHeader(archivePath, 'symlink', { mode: 0o755, linkname: target }));
    } else {
      throw new SlipwayError(
        'TAR_ENTRY_UNSUPPORTED',
        `cannot pack '${full}': not a file, directory or symbolic link`,
        {
          where: full,
        },
      );
    }
  }
}

async function writeArchive(
  output: string,
  options: PackOptions,
  body: (counter: Counter, exclude: Set<string>) => AsyncIterable<Buffer> | Iterable<Buffer>,
): Promise<PackResult> {
  const type = options.type ?? 'layer';
  const pkg = options.pkg ?? defaultPkg(output);
  const version = options.version ?? '0.0.0';
  const level = options.level ?? 1;
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new SlipwayError('INVALID_ARGUMENT', `gzip level must be 0..9, got ${level}`);
  }
  const reporter = options.reporter ?? silentReporter;
  const oxide = encodeOmicronOxideJson(type, pkg, version);
  const counter: Counter = { entries: 0 };
  const out = await openAtomic(path.resolve(output));
  const exclude = new Set([out.tempPath, path.resolve(output)]);
  let tarSize = 0;
  const task = `pack ${path.basename(output)}`;
  reporter.emit({ kind: 'task-start', task, unit: 'bytes' });
  async function* tar(): AsyncGenerator<Buffer> {
    yield encodeHeader(deterministicHeader('oxide.json', 'file', { size: oxide.length }));
    yield oxide;
    yield paddingFor(oxide.length);
    // The root of the layer: omicron-package's walk names it with a trailing slash.
    yield encodeHeader(deterministicHeader('root/', 'directory'));
    yield* body(counter, exclude);
    yield endOfArchive();
  }
  async function* counted(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let last = 0;
    for await (const chunk of source) {
      tarSize += chunk.length;
      if (tarSize - last > 8 << 20) {
        last = tarSize;
        reporter.emit({ kind: 'task-progress', task, done: tarSize });
      }
      yield chunk;
    }
  }
  const digest = new DigestStream(['sha256']);
  try {
    // Written by hand rather than through Readable.from(): the generator does
    // synchronous reads, and feeding the compressor directly keeps the worker
    // threads busy (Readable.from's per-chunk promise hops starved them).
    const gz = createParallelGzip({
      level,
      ...(options.workers !== undefined ? { workers: options.workers } : {}),
    });
    const sink = pipeline(gz, digest, out.writable());
    try {
      for await (const chunk of counted(tar())) {
        if (!gz.write(chunk)) await once(gz, 'drain');
      }
      gz.end();
    } catch (err) {
      gz.destroy(err instanceof Error ? err : new Error(String(err)));
      await sink.catch(() => undefined);
      throw err;
    }
    await sink;
    await out.commit();
  } catch (err) {
    await out.abort();
    reporter.emit({ kind: 'task-end', task, ok: false });
    throw err;
  }
  reporter.emit({ kind: 'task-end', task, ok: true });
  return {
    output,
    type,
    pkg,
    version,
    entries: counter.entries + 2,
    tarSize,
    size: digest.length,
    sha256: digest.digests.sha256 ?? '',
  };
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
  return writeArchive(output, options, (counter, exclude) =>
    walk(root, 'root', options.followLinks ?? false, exclude, counter),
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
  return writeArchive(output, options, (counter) => fromTarBody(tarball, counter));
}

async function* fromTarBody(tarball: string, counter: Counter): AsyncGenerator<Buffer> {
  const dirs = new Set<string>(['root']);
  let queue: Buffer[] = [];
  let pendingPad = 0;
  // The parser is synchronous; it fills `queue`, and we yield the queue after each input chunk.
  let wake: (() => void) | undefined;
  const outcome: { done: boolean; failure?: SlipwayError } = { done: false };
  let resumeReader: (() => void) | undefined;
  const reading = readTarFile(
    tarball,
    {
      entry(e) {
        const at = `${tarball}: ${e.path}`;
        const norm = normalizeArchivePath(e.path.replace(/^\/+/, ''), at);
        if (norm.path === '') return; // "./": the root, already written as root/
        if (e.type !== 'file' && e.type !== 'directory' && e.type !== 'symlink' && e.type !== 'hardlink') {
          throw new SlipwayError(
            'TAR_ENTRY_UNSUPPORTED',
            `unsupported entry type '${e.type === 'other' ? e.typeflag : e.type}': a layer holds only files, directories and links`,
            { where: at },
          );
        }
        let prefix = 'root';
        for (const part of norm.parts.slice(0, -1)) {
          prefix = `${prefix}/${part}`;
          if (!dirs.has(prefix)) {
            dirs.add(prefix);
            counter.entries++;
            queue.push(encodeHeader(deterministicHeader(prefix, 'directory')));
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
        const size = e.type === 'file' ? e.size : 0;
        queue.push(
          encodeHeader({
            ...deterministicHeader(target, e.type),
            mode: e.mode & 0o7777,
            uid: e.uid,
            gid: e.gid,
            size,
            mtime: DETERMINISTIC_MTIME,
            linkname: e.type === 'symlink' || e.type === 'hardlink' ? linkname : '',
          }),
        );
        pendingPad = e.type === 'file' ? size : -1;
      },
      data(chunk) {
        if (pendingPad >= 0) queue.push(chunk);
      },
      entryEnd() {
        if (pendingPad > 0) {
          const pad = paddingFor(pendingPad);
          if (pad.length > 0) queue.push(pad);
        }
        pendingPad = 0;
      },
    },
    {
      hash: false,
      afterChunk: () => {
        if (queue.length === 0) return undefined;
        wake?.();
        return new Promise<void>((resolve) => {
          resumeReader = resolve;
        });
      },
    },
  ).then(
    () => {
      outcome.done = true;
      wake?.();
    },
    (err: unknown) => {
      outcome.failure = err instanceof SlipwayError ? err : fromSystemError(err, 'cannot read', tarball);
      outcome.done = true;
      wake?.();
    },
  );
  for (;;) {
    if (queue.length > 0) {
      const batch = queue;
      queue = [];
      yield* batch;
      const r = resumeReader;
      resumeReader = undefined;
      r?.();
      continue;
    }
    if (outcome.done) break;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
    wake = undefined;
  }
  await reading;
  if (outcome.failure !== undefined) throw outcome.failure;
}
