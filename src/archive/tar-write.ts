/**
 * Writing deterministic tar streams (the Rust tar crate's deterministic
 * mode, as omicron-package uses it) from directories, files and memory, and
 * writing them out atomically, gzip'd on every core or plain.
 */
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { openAtomic } from '../core/atomic-file.js';
import { DigestStream } from '../core/digest.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { silentReporter, type Reporter } from '../core/events.js';
import { deterministicHeader, encodeHeader, endOfArchive, paddingFor } from '../formats/tar.js';
import { createParallelGzip } from './pgzip.js';

/** Byte order of file names, as walkdir's sort_by_file_name (not locale order). */
export function byName(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

const SMALL_FILE = 1 << 20;

function changed(p: string): SlipwayError {
  return new SlipwayError('IO', `'${p}' changed size while it was being archived`, { where: p });
}

/** Reads exactly `size` bytes of a file, in pieces; fails if the file changed size under us. */
export function* fileChunks(fullPath: string, size: number): Generator<Buffer> {
  if (size <= SMALL_FILE) {
    let data: Buffer;
    try {
      data = fs.readFileSync(fullPath);
    } catch (err) {
      throw fromSystemError(err, 'cannot read', fullPath);
    }
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

export interface EntryCounter {
  entries: number;
}

/** A directory entry (0755). */
export function dirEntry(archivePath: string, counter?: EntryCounter): Buffer {
  if (counter !== undefined) counter.entries++;
  return encodeHeader(deterministicHeader(archivePath, 'directory'));
}

/** A file whose content is in memory (omicron-package's in-memory files: 0644). */
export function* memoryEntry(archivePath: string, data: Buffer, counter?: EntryCounter): Generator<Buffer> {
  if (counter !== undefined) counter.entries++;
  yield encodeHeader(deterministicHeader(archivePath, 'file', { size: data.length }));
  if (data.length > 0) yield data;
  const pad = paddingFor(data.length);
  if (pad.length > 0) yield pad;
}

/** One entry to write, decided before any byte is written (so it can be fingerprinted first). */
export type PlannedEntry =
  | { kind: 'dir'; path: string }
  | {
      kind: 'file';
      path: string;
      from: string;
      size: number;
      mode: number;
      mtimeMs: number;
      ino: number;
      dev: number;
    }
  | { kind: 'symlink'; path: string; link: string }
  | { kind: 'memory'; path: string; data: Buffer };

/** Encodes planned entries: headers as the Rust tar crate writes them in deterministic mode, data read as it goes. */
export function* entriesFromPlan(plan: Iterable<PlannedEntry>, counter?: EntryCounter): Generator<Buffer> {
  for (const e of plan) {
    if (counter !== undefined) counter.entries++;
    switch (e.kind) {
      case 'dir':
        yield encodeHeader(deterministicHeader(e.path, 'directory'));
        break;
      case 'symlink':
        yield encodeHeader(deterministicHeader(e.path, 'symlink', { mode: 0o755, linkname: e.link }));
        break;
      case 'memory':
        yield* memoryEntry(e.path, e.data);
        break;
      case 'file': {
        yield encodeHeader(deterministicHeader(e.path, 'file', { mode: e.mode, size: e.size }));
        yield* fileChunks(e.from, e.size);
        const pad = paddingFor(e.size);
        if (pad.length > 0) yield pad;
        break;
      }
    }
  }
}

function planOne(full: string, archivePath: string, st: fs.Stats): PlannedEntry {
  if (st.isDirectory()) return { kind: 'dir', path: archivePath };
  if (st.isFile()) {
    // The Rust tar crate's deterministic mode: 0755 if the owner may execute, else 0644.
    const mode = st.mode & 0o100 ? 0o755 : 0o644;
    return {
      kind: 'file',
      path: archivePath,
      from: full,
      size: st.size,
      mode,
      mtimeMs: st.mtimeMs,
      ino: st.ino,
      dev: st.dev,
    };
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', path: archivePath, link: fs.readlinkSync(full) };
  throw new SlipwayError(
    'TAR_ENTRY_UNSUPPORTED',
    `cannot archive '${full}': not a file, directory or symbolic link`,
    {
      where: full,
    },
  );
}

export interface WalkOptions {
  /** Archive what symlinks point to (omicron-package's walk does) instead of the links. */
  follow: boolean;
  exclude?: ReadonlySet<string>;
}

function statOf(full: string, follow: boolean): fs.Stats {
  try {
    return follow ? fs.statSync(full) : fs.lstatSync(full);
  } catch (err) {
    throw fromSystemError(err, 'cannot read', full);
  }
}

/**
 * `from` (a file or a directory tree) as entries under `archivePath`, the way
 * omicron-package walks a mapped path: the path itself first (a directory
 * root gets a trailing slash, as `to.join("")` gives it), then the tree depth
 * first with each directory's children sorted by name.
 */
export function* planTree(from: string, archivePath: string, options: WalkOptions): Generator<PlannedEntry> {
  const st = statOf(from, options.follow);
  if (!st.isDirectory()) {
    yield planOne(from, archivePath, st);
    return;
  }
  yield planOne(from, archivePath.endsWith('/') ? archivePath : `${archivePath}/`, st);
  yield* planChildren(from, archivePath.replace(/\/+$/, ''), options, new Set([`${st.dev}:${st.ino}`]));
}

function* planChildren(
  dir: string,
  prefix: string,
  options: WalkOptions,
  ancestors: ReadonlySet<string>,
): Generator<PlannedEntry> {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort(byName);
  } catch (err) {
    throw fromSystemError(err, 'cannot read directory', dir);
  }
  for (const name of names) {
    const full = path.join(dir, name);
    if (options.exclude?.has(full) === true) continue;
    const archivePath = `${prefix}/${name}`;
    const st = statOf(full, options.follow);
    yield planOne(full, archivePath, st);
    if (st.isDirectory()) {
      // Following links can loop (a link to an ancestor); walkdir refuses those too.
      const id = `${st.dev}:${st.ino}`;
      if (options.follow && ancestors.has(id)) {
        throw new SlipwayError(
          'WALK_CYCLE',
          `'${full}' leads back to one of its ancestors (symbolic link loop)`,
          {
            where: full,
          },
        );
      }
      yield* planChildren(
        full,
        archivePath,
        options,
        options.follow ? new Set([...ancestors, id]) : ancestors,
      );
    }
  }
}

/** planTree, encoded as it goes (streaming: the plan is never held in memory). */
export function walkEntries(
  from: string,
  archivePath: string,
  options: WalkOptions & { counter?: EntryCounter },
): Generator<Buffer> {
  return entriesFromPlan(planTree(from, archivePath, options), options.counter);
}

export interface WriteTarOptions {
  /** gzip level (default 1); `false` writes a plain tar. */
  gzip?: { level?: number; workers?: number } | false;
  reporter?: Reporter;
  /** Task name for progress events. */
  task?: string;
  /** Paths the source must not read (the output's own temp file); filled in before the source starts. */
  exclude?: Set<string>;
}

export interface WriteTarResult {
  tarSize: number;
  size: number;
  sha256: string;
}

/**
 * Writes a tar stream (the end-of-archive marker is appended here) to
 * `output` atomically: nothing appears at `output` unless every entry was
 * written; on any error the temp file is removed.
 */
export async function writeTarOutput(
  output: string,
  source: (exclude: ReadonlySet<string>) => Iterable<Buffer> | AsyncIterable<Buffer>,
  options: WriteTarOptions = {},
): Promise<WriteTarResult> {
  const reporter = options.reporter ?? silentReporter;
  const task = options.task ?? `write ${path.basename(output)}`;
  const gzip = options.gzip ?? {};
  if (
    gzip !== false &&
    gzip.level !== undefined &&
    (!Number.isInteger(gzip.level) || gzip.level < 0 || gzip.level > 9)
  ) {
    throw new SlipwayError('INVALID_ARGUMENT', `gzip level must be 0..9, got ${gzip.level}`);
  }
  const out = await openAtomic(path.resolve(output));
  const exclude = new Set([out.tempPath, path.resolve(output), ...(options.exclude ?? [])]);
  let tarSize = 0;
  reporter.emit({ kind: 'task-start', task, unit: 'bytes' });
  const digest = new DigestStream(['sha256']);
  try {
    // Fed by hand rather than through Readable.from(): sources read files
    // synchronously, and writing straight into the compressor keeps its
    // worker threads busy (Readable.from's per-chunk promise hops starved them).
    const head =
      gzip === false
        ? digest
        : createParallelGzip({
            level: gzip.level ?? 1,
            ...(gzip.workers !== undefined ? { workers: gzip.workers } : {}),
          });
    const sink = gzip === false ? pipeline(digest, out.writable()) : pipeline(head, digest, out.writable());
    try {
      let last = 0;
      const write = async (chunk: Buffer): Promise<void> => {
        tarSize += chunk.length;
        if (tarSize - last > 8 << 20) {
          last = tarSize;
          reporter.emit({ kind: 'task-progress', task, done: tarSize });
        }
        if (!head.write(chunk)) await once(head, 'drain');
      };
      for await (const chunk of source(exclude)) await write(chunk);
      await write(endOfArchive());
      head.end();
    } catch (err) {
      head.destroy(err instanceof Error ? err : new Error(String(err)));
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
  return { tarSize, size: digest.length, sha256: digest.digests.sha256 ?? '' };
}
