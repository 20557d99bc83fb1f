/**
 * A rootfs source for `oci build` (a directory, a tar or gzip'd tar, or one of
 * our layer archives whose `root/` becomes `/`) turned into one canonical,
 * uncompressed tar stream: the same files give the same bytes whichever kind
 * of source holds them.
 *
 * Two steps, so bad input never reaches the layout:
 * 1. plan: read every header (a tarball is parsed once, a gzip'd one is
 *    inflated once into a temp spool file), check every name, and build the
 *    tree in memory (metadata only, never file data);
 * 2. stream: write the tree in canonical order, reading file data from the
 *    directory or the (spooled) tar as it goes: memory stays flat.
 *
 * The canonical tar (GNU headers, so long names and links need no pax):
 * - order: depth first, parents before children, siblings by byte order;
 *   the root itself is not an entry; directories are named `dir/`;
 * - mtime: one fixed value for every entry (the build's `created` time), so
 *   neither the checkout time nor the tool that made a tarball leaks in;
 * - owner: a directory source gives 0:0 (the files belong to whoever ran the
 *   build, not to the image); a tarball or layer archive keeps its numeric
 *   uid/gid (a rootfs tarball's owners are deliberate); names are dropped;
 * - modes: permission bits kept (0o7777); symlinks are 0777;
 * - symlinks kept as links (targets untouched: absolute targets are normal
 *   inside a rootfs); hard links kept, the first path in canonical order
 *   carries the data; char/block devices and fifos kept (the image spec
 *   allows them); sockets in a directory are skipped, as tar skips them;
 * - no atime/ctime/xattr pax records.
 *
 * Refused (OCI_ROOTFS_INVALID, naming the source and the entry): absolute
 * names, `..`, entries below a symlink or file (an escape when unpacked),
 * duplicate names (but a directory listed twice is accepted, the last entry's
 * metadata winning, as layer archives repeat ancestors), hard links to nothing or to a non-file, whiteout names
 * (`.wh.*`: a runtime would delete instead of create), names that are not
 * UTF-8.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { silentReporter, warn, type Reporter } from '../core/events.js';
import { byName, fileChunks } from '../archive/tar-write.js';
import { gzipError } from '../archive/tar-read.js';
import {
  deterministicHeader,
  encodeHeader,
  endOfArchive,
  paddingFor,
  TarParser,
  type TarEntryType,
} from '../formats/tar.js';
import { OXIDE_JSON_MAX_BYTES, parseOxideJson } from '../formats/oxide-json.js';

export type RootfsKind = 'directory' | 'tar' | 'tar+gzip' | 'layer-archive';

/** The entry kinds a rootfs may hold. */
export type RootfsEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** Where a regular file's bytes are: `size` bytes at `offset` of `file`. */
export interface DataRef {
  file: string;
  offset: number;
}

/** One entry of the canonical stream, in order. */
export interface RootfsEntry {
  /** Path below the root, no leading or trailing slash. */
  path: string;
  type: RootfsEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Symlink target as written, or a hard link's target components joined by '/'. */
  linkname: string;
  devmajor: number;
  devminor: number;
  data?: DataRef;
}

/** One entry as a source presents it (names not yet checked): an entry with its name still raw. */
export interface RootfsInput extends Omit<RootfsEntry, 'path'> {
  /** The name as the source spells it (for errors). */
  raw: string;
  /** Normalized components below the rootfs root ([] is the root itself). */
  parts: string[];
}

/** Most entries a tarball may hold (the tree is kept in memory: about 300 bytes each). */
export const MAX_ROOTFS_ENTRIES = 2_000_000;

function invalid(source: string, entry: string | undefined, message: string): SlipwayError {
  return new SlipwayError(
    'OCI_ROOTFS_INVALID',
    entry === undefined ? `${source}: ${message}` : `${source}: entry '${entry}': ${message}`,
    { where: entry === undefined ? source : `${source}: ${entry}` },
  );
}

// ---------------------------------------------------------------- pure: names and the tree

/**
 * Splits a name from a tar header into components: a leading `./`, `.`
 * components and doubled or trailing slashes go; absolute names, `..` and
 * whiteout names are refused.
 */
export function rootfsNameParts(raw: string, source: string): string[] {
  if (raw.startsWith('/')) throw invalid(source, raw, 'absolute name (a rootfs holds relative names)');
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw invalid(source, raw, "name contains '..'");
    if (part.startsWith('.wh.')) {
      throw invalid(source, raw, "'.wh.' names are OCI whiteouts: a runtime would delete, not create, them");
    }
    parts.push(part);
  }
  return parts;
}

interface Node {
  raw: string;
  type: RootfsEntryType;
  /** A directory created only because entries are inside it (0755, 0:0). */
  implicit: boolean;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  data?: DataRef;
  children?: Map<string, Node>;
  /** For a hard link: the regular file it ends at, once resolved. */
  target?: Node;
}

function describeType(t: RootfsEntryType): string {
  return t === 'char' || t === 'block' ? `${t} device` : t === 'hardlink' ? 'hard link' : t;
}

/**
 * The rootfs as a tree of entries, checked as they are added (pure: no fs).
 * `entries()` gives the canonical order.
 */
export class RootfsTree {
  readonly source: string;
  readonly #root: Node;
  #count = 0;

  constructor(source: string) {
    this.source = source;
    this.#root = RootfsTree.#dir('', true);
  }

  static #dir(raw: string, implicit: boolean): Node {
    return {
      raw,
      type: 'directory',
      implicit,
      mode: 0o755,
      uid: 0,
      gid: 0,
      size: 0,
      linkname: '',
      devmajor: 0,
      devminor: 0,
      children: new Map(),
    };
  }

  get count(): number {
    return this.#count;
  }

  add(e: RootfsInput): void {
    if (e.parts.length === 0) {
      // The root itself ("./"): nothing to write, but it must be a directory.
      if (e.type !== 'directory') throw invalid(this.source, e.raw, `the root is a ${describeType(e.type)}`);
      return;
    }
    let dir = this.#root;
    for (let i = 0; i < e.parts.length - 1; i++) {
      const part = e.parts[i] as string;
      let next = dir.children?.get(part);
      if (next === undefined) {
        next = RootfsTree.#dir(e.raw, true);
        dir.children?.set(part, next);
      } else if (next.type !== 'directory') {
        // A name below a symlink would be written through it when unpacked: an escape.
        throw invalid(
          this.source,
          e.raw,
          `it is inside '${e.parts.slice(0, i + 1).join('/')}', which is a ${describeType(next.type)}`,
        );
      }
      dir = next;
    }
    const leaf = e.parts[e.parts.length - 1] as string;
    const existing = dir.children?.get(leaf);
    if (existing !== undefined) {
      if (!existing.implicit) {
        // A directory listed again is normal in archives (omicron-package writes every ancestor
        // before each mapped path): the last entry's metadata wins, as when tar extracts it.
        // Any other repeated name is ambiguous content and refused.
        if (existing.type !== 'directory' || e.type !== 'directory') {
          throw invalid(this.source, e.raw, 'duplicate name');
        }
        existing.raw = e.raw;
        existing.mode = e.mode & 0o7777;
        existing.uid = e.uid;
        existing.gid = e.gid;
        return;
      }
      if (e.type !== 'directory') {
        throw invalid(
          this.source,
          e.raw,
          `it is a ${describeType(e.type)} but other entries are inside it (e.g. '${existing.raw}')`,
        );
      }
      existing.implicit = false;
      existing.raw = e.raw;
      existing.mode = e.mode & 0o7777;
      existing.uid = e.uid;
      existing.gid = e.gid;
      this.#count++;
      return;
    }
    const node: Node = {
      raw: e.raw,
      type: e.type,
      implicit: false,
      mode: e.type === 'symlink' ? 0o777 : e.mode & 0o7777,
      uid: e.uid,
      gid: e.gid,
      size: e.type === 'file' ? e.size : 0,
      linkname: e.type === 'symlink' || e.type === 'hardlink' ? e.linkname : '',
      devmajor: e.type === 'char' || e.type === 'block' ? e.devmajor : 0,
      devminor: e.type === 'char' || e.type === 'block' ? e.devminor : 0,
    };
    if (e.type === 'directory') node.children = new Map();
    if (e.type === 'file' && e.data !== undefined) node.data = e.data;
    dir.children?.set(leaf, node);
    this.#count++;
  }

  #lookup(parts: readonly string[]): Node | undefined {
    let n: Node | undefined = this.#root;
    for (const p of parts) {
      n = n.children?.get(p);
      if (n === undefined) return undefined;
    }
    return n;
  }

  /** The regular file a hard link ends at (links to links followed). */
  #resolve(link: Node): Node {
    if (link.target !== undefined) return link.target;
    const seen = new Set<Node>([link]);
    let n = link;
    while (n.type === 'hardlink') {
      const next = this.#lookup(n.linkname === '' ? [] : n.linkname.split('/'));
      if (next === undefined) {
        throw invalid(this.source, link.raw, `hard link to '${n.linkname}', which is not in the rootfs`);
      }
      if (seen.has(next)) throw invalid(this.source, link.raw, 'hard links form a loop');
      if (next.type !== 'file' && next.type !== 'hardlink') {
        throw invalid(
          this.source,
          link.raw,
          `hard link to '${n.linkname}', which is a ${describeType(next.type)} (only regular files can be hard-linked)`,
        );
      }
      seen.add(next);
      n = next;
    }
    link.target = n;
    return n;
  }

  /** Every entry in canonical order; the first path of a set of hard links carries the data. */
  entries(): RootfsEntry[] {
    const out: RootfsEntry[] = [];
    const firstPath = new Map<Node, string>();
    const visit = (dir: Node, prefix: string): void => {
      const names = [...(dir.children?.keys() ?? [])].sort(byName);
      for (const name of names) {
        const n = dir.children?.get(name) as Node;
        const p = prefix === '' ? name : `${prefix}/${name}`;
        if (n.type === 'file' || n.type === 'hardlink') {
          const file = n.type === 'file' ? n : this.#resolve(n);
          const first = firstPath.get(file);
          const common = {
            path: p,
            mode: file.mode,
            uid: file.uid,
            gid: file.gid,
            devmajor: 0,
            devminor: 0,
          };
          if (first === undefined) {
            firstPath.set(file, p);
            const e: RootfsEntry = { ...common, type: 'file', size: file.size, linkname: '' };
            if (file.data !== undefined) e.data = file.data;
            out.push(e);
          } else {
            out.push({ ...common, type: 'hardlink', size: 0, linkname: first });
          }
          continue;
        }
        out.push({
          path: p,
          type: n.type,
          mode: n.mode,
          uid: n.uid,
          gid: n.gid,
          size: 0,
          linkname: n.linkname,
          devmajor: n.devmajor,
          devminor: n.devminor,
        });
        if (n.type === 'directory') visit(n, p);
      }
    };
    visit(this.#root, '');
    return out;
  }
}

/** The header of one canonical entry (GNU format: long names and links need no pax). */
export function rootfsHeader(e: RootfsEntry, mtime: number): Buffer {
  const type: TarEntryType = e.type;
  return encodeHeader(
    deterministicHeader(e.type === 'directory' ? `${e.path}/` : e.path, type, {
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.type === 'file' ? e.size : 0,
      mtime,
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
    }),
  );
}

/** The canonical tar: headers, data from `read`, padding, and the end-of-archive marker. */
export function* rootfsTarStream(
  entries: readonly RootfsEntry[],
  mtime: number,
  read: (e: RootfsEntry) => Iterable<Buffer>,
): Generator<Buffer> {
  for (const e of entries) {
    yield rootfsHeader(e, mtime);
    if (e.type === 'file' && e.size > 0) {
      yield* read(e);
      const pad = paddingFor(e.size);
      if (pad.length > 0) yield pad;
    }
  }
  yield endOfArchive();
}

// ---------------------------------------------------------------- I/O: reading sources

export interface RootfsPlanOptions {
  /** Where a gzip'd tarball is inflated to (default: the OS temp directory). */
  tmpDir?: string;
  /**
   * false: only check the source (no spool file is kept for a gzip'd tarball;
   * `tar()` then cannot be called). Default true.
   */
  spool?: boolean;
  reporter?: Reporter;
  signal?: AbortSignal;
}

export interface RootfsPlan {
  /** The source as given. */
  source: string;
  kind: RootfsKind;
  /** Entries of the canonical tar. */
  entries: readonly RootfsEntry[];
  /** Bytes of regular-file data (hard links counted once). */
  contentBytes: number;
  /** The canonical tar stream with every entry's mtime set to `mtime` (seconds). */
  tar(mtime: number): Generator<Buffer>;
  /** Removes the spool file, if any. Safe to call more than once. */
  dispose(): Promise<void>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new SlipwayError('INTERRUPTED', 'interrupted');
}

/** Linux's dev_t split (glibc's gnu_dev_major/minor). */
function devMajor(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}
function devMinor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}

/** Walks a directory tree into `tree` (lstat: symlinks stay links); sockets are skipped with a warning. */
function walkDirectory(root: string, tree: RootfsTree, reporter: Reporter, signal?: AbortSignal): void {
  const inodes = new Map<string, string>(); // dev:ino of multiply-linked files → first path
  const walk = (dir: string, prefix: string[]): void => {
    checkAbort(signal);
    let names: Buffer[];
    try {
      names = fs.readdirSync(dir, { encoding: 'buffer' });
    } catch (err) {
      throw fromSystemError(err, 'cannot read directory', dir);
    }
    names.sort((a, b) => Buffer.compare(a, b));
    for (const raw of names) {
      let name: string;
      try {
        name = utf8.decode(raw);
      } catch {
        throw invalid(tree.source, path.join(...prefix, raw.toString('latin1')), 'name is not valid UTF-8');
      }
      const parts = [...prefix, name];
      const rel = parts.join('/');
      if (name.startsWith('.wh.')) rootfsNameParts(rel, tree.source); // throws: a whiteout name
      const full = path.join(dir, name);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(full);
      } catch (err) {
        throw fromSystemError(err, 'cannot read', full);
      }
      const base = {
        raw: rel,
        parts,
        mode: st.mode,
        uid: 0,
        gid: 0,
        size: 0,
        linkname: '',
        devmajor: 0,
        devminor: 0,
      };
      if (st.isDirectory()) {
        tree.add({ ...base, type: 'directory' });
        walk(full, parts);
      } else if (st.isFile()) {
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          const first = inodes.get(key);
          if (first !== undefined) {
            tree.add({ ...base, type: 'hardlink', linkname: first });
            continue;
          }
          inodes.set(key, rel);
        }
        try {
          fs.accessSync(full, fs.constants.R_OK);
        } catch (err) {
          throw fromSystemError(err, 'cannot read', full);
        }
        tree.add({ ...base, type: 'file', size: st.size, data: { file: full, offset: 0 } });
      } else if (st.isSymbolicLink()) {
        let link: string;
        try {
          link = fs.readlinkSync(full);
        } catch (err) {
          throw fromSystemError(err, 'cannot read link', full);
        }
        tree.add({ ...base, type: 'symlink', linkname: link });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        tree.add({
          ...base,
          type: st.isCharacterDevice() ? 'char' : 'block',
          devmajor: devMajor(st.rdev),
          devminor: devMinor(st.rdev),
        });
      } else if (st.isFIFO()) {
        tree.add({ ...base, type: 'fifo' });
      } else {
        warn(reporter, `${full}: socket skipped (a layer cannot hold sockets)`);
      }
    }
  };
  walk(root, []);
}

const TYPES: Partial<Record<TarEntryType, RootfsEntryType>> = {
  file: 'file',
  directory: 'directory',
  symlink: 'symlink',
  hardlink: 'hardlink',
  char: 'char',
  block: 'block',
  fifo: 'fifo',
};

type Magic = 'gzip' | 'tar' | { unsupported: string } | 'unknown';

function sniff(head: Buffer): Magic {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 263) {
    const m = head.toString('latin1', 257, 263);
    if (m === 'ustar\0' || m === 'ustar ') return 'tar';
  }
  if (head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return { unsupported: 'zstd' };
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    return { unsupported: 'xz' };
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return { unsupported: 'bzip2' };
  return 'unknown';
}

function readHead(file: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw fromSystemError(err, 'cannot open', file);
  }
  try {
    const b = Buffer.alloc(512);
    return b.subarray(0, fs.readSync(fd, b, 0, 512, 0));
  } catch (err) {
    throw fromSystemError(err, 'cannot read', file);
  } finally {
    fs.closeSync(fd);
  }
}

interface TarScan {
  kind: 'tar' | 'tar+gzip' | 'layer-archive';
  /** The plain tar the data offsets point into (the source itself, or the spool). */
  dataFile: string;
}

/**
 * Parses a (gzip'd) tar once, adding every entry to `tree`. A gzip'd one is
 * inflated into `spool` on the way (when given) so the data can be read
 * back in canonical order. Our layer archives (oxide.json first) are
 * re-rooted at `root/`.
 */
async function scanTarball(
  source: string,
  gzip: boolean,
  tree: RootfsTree,
  spool: string | undefined,
  signal: AbortSignal | undefined,
): Promise<TarScan> {
  // An object, not `let`s: the parser's callbacks set these (flow analysis does not see that).
  const seen: { layer: boolean | undefined; layerRoot: boolean } = { layer: undefined, layerRoot: false };
  let oxide: Buffer[] | undefined;
  const dataFile = spool ?? source;
  // The handler runs inside parser.push(): what it throws comes out of push().
  const parser = new TarParser(
    {
      entry(e) {
        if (seen.layer === undefined) {
          seen.layer = e.path === 'oxide.json' && e.type === 'file';
          if (seen.layer) {
            if (e.size > OXIDE_JSON_MAX_BYTES) {
              throw invalid(source, e.path, `oxide.json is ${e.size} bytes, over ${OXIDE_JSON_MAX_BYTES}`);
            }
            oxide = [];
            return;
          }
        }
        let parts = rootfsNameParts(e.path, source);
        if (seen.layer) {
          // Only root/ is the filesystem; oxide.json and anything else beside it is metadata.
          if (parts[0] !== 'root') return;
          seen.layerRoot = true;
          parts = parts.slice(1);
        }
        const type = TYPES[e.type];
        if (type === undefined) {
          throw invalid(source, e.path, `unsupported entry type '${e.typeflag}'`);
        }
        let linkname = e.linkname;
        if (type === 'hardlink') {
          let target = rootfsNameParts(e.linkname, source);
          if (seen.layer) {
            if (target[0] !== 'root')
              throw invalid(source, e.path, `hard link to '${e.linkname}', outside root/`);
            target = target.slice(1);
          }
          linkname = target.join('/');
        }
        const input: RootfsInput = {
          raw: e.path,
          parts,
          type,
          mode: e.mode,
          uid: e.uid,
          gid: e.gid,
          size: e.size,
          linkname,
          devmajor: e.devmajor,
          devminor: e.devminor,
        };
        // The parser has consumed the header: its position is where the data starts.
        if (type === 'file') input.data = { file: dataFile, offset: parser.bytesConsumed };
        tree.add(input);
      },
      data(chunk) {
        oxide?.push(Buffer.from(chunk));
      },
      entryEnd() {
        if (oxide !== undefined) {
          const o = parseOxideJson(Buffer.concat(oxide), `${source}: oxide.json`);
          oxide = undefined;
          if (o.t !== 'layer' && o.t !== 'baseline') {
            throw invalid(source, undefined, `a t=${o.t} archive holds no root/ filesystem`);
          }
        }
      },
    },
    { maxEntries: MAX_ROOTFS_ENTRIES },
  );

  let input: fs.ReadStream;
  try {
    input = fs.createReadStream(source, { highWaterMark: 1 << 20 });
  } catch (err) {
    throw fromSystemError(err, 'cannot open', source);
  }
  const gunzip = gzip ? zlib.createGunzip({ chunkSize: 256 * 1024 }) : undefined;
  const stream: AsyncIterable<Buffer> = gunzip !== undefined ? input.pipe(gunzip) : input;
  // Forward a read error (the source vanished) into the stream we iterate.
  if (gunzip !== undefined) input.on('error', (err) => gunzip.destroy(err));
  const out = spool === undefined ? undefined : await fsp.open(spool, 'w');
  try {
    for await (const chunk of stream) {
      checkAbort(signal);
      parser.push(chunk);
      if (out !== undefined) await out.write(chunk);
    }
    parser.end();
  } catch (err) {
    input.destroy();
    gunzip?.destroy();
    if (err instanceof SlipwayError) {
      if (err.where !== undefined && err.where.startsWith(source)) throw err;
      throw new SlipwayError(err.code, `${source}: ${err.message}`, {
        where: err.where === undefined ? source : `${source}: ${err.where}`,
        cause: err.cause,
      });
    }
    throw gzip ? gzipError(err, source) : fromSystemError(err, 'cannot read', source);
  } finally {
    await out?.close();
  }
  if (seen.layer === true && !seen.layerRoot)
    throw invalid(source, undefined, 'layer archive without a root/ directory');
  return { kind: seen.layer === true ? 'layer-archive' : gzip ? 'tar+gzip' : 'tar', dataFile };
}

/** Reads `size` bytes at `offset` of an open file, in pieces. */
function* rangeChunks(fd: number, file: string, offset: number, size: number): Generator<Buffer> {
  let done = 0;
  while (done < size) {
    const buf = Buffer.allocUnsafe(Math.min(4 << 20, size - done));
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, offset + done);
    } catch (err) {
      throw fromSystemError(err, 'cannot read', file);
    }
    if (n === 0)
      throw new SlipwayError('IO', `'${file}' is shorter than its tar headers say`, { where: file });
    done += n;
    yield n === buf.length ? buf : buf.subarray(0, n);
  }
}

/**
 * Checks a rootfs source and plans its canonical tar. Throws
 * OCI_ROOTFS_INVALID (or a TAR_/GZIP_ code for a damaged archive) having
 * written nothing but the temp spool, which is removed on error.
 */
export async function planRootfs(source: string, options: RootfsPlanOptions = {}): Promise<RootfsPlan> {
  const reporter = options.reporter ?? silentReporter;
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SlipwayError('OCI_ROOTFS_INVALID', `rootfs '${source}' does not exist`, {
        where: source,
        cause: err,
      });
    }
    throw fromSystemError(err, 'cannot read rootfs', source);
  }
  const tree = new RootfsTree(source);

  if (st.isDirectory()) {
    walkDirectory(path.resolve(source), tree, reporter, options.signal);
    return finishPlan(source, 'directory', tree, undefined, undefined);
  }
  if (!st.isFile()) {
    throw invalid(source, undefined, 'not a directory, a tar archive or a gzip-compressed tar archive');
  }
  const magic = sniff(readHead(source));
  if (typeof magic === 'object') {
    throw invalid(
      source,
      undefined,
      `${magic.unsupported}-compressed archives are not supported (use gzip or plain tar)`,
    );
  }
  if (magic === 'unknown') {
    throw invalid(source, undefined, 'not a directory, a tar archive or a gzip-compressed tar archive');
  }
  const gzip = magic === 'gzip';
  let spoolDir: string | undefined;
  if (gzip && options.spool !== false) {
    try {
      spoolDir = await fsp.mkdtemp(path.join(options.tmpDir ?? os.tmpdir(), 'slipway-rootfs-'));
    } catch (err) {
      throw fromSystemError(err, 'cannot create a temp directory in', options.tmpDir ?? os.tmpdir());
    }
  }
  const removeSpool = async (): Promise<void> => {
    if (spoolDir !== undefined) await fsp.rm(spoolDir, { recursive: true, force: true });
  };
  try {
    const scan = await scanTarball(
      source,
      gzip,
      tree,
      spoolDir === undefined ? undefined : path.join(spoolDir, 'rootfs.tar'),
      options.signal,
    );
    const dataFile = gzip && options.spool === false ? undefined : scan.dataFile;
    return finishPlan(source, scan.kind, tree, dataFile, removeSpool);
  } catch (err) {
    await removeSpool();
    throw err;
  }
}

function finishPlan(
  source: string,
  kind: RootfsKind,
  tree: RootfsTree,
  dataFile: string | undefined,
  dispose: (() => Promise<void>) | undefined,
): RootfsPlan {
  const entries = tree.entries();
  let contentBytes = 0;
  for (const e of entries) if (e.type === 'file') contentBytes += e.size;
  const fromTar = kind !== 'directory';
  let disposed = false;
  return {
    source,
    kind,
    entries,
    contentBytes,
    *tar(mtime: number): Generator<Buffer> {
      if (disposed || (fromTar && dataFile === undefined)) {
        throw new SlipwayError('INTERNAL', `rootfs plan for '${source}' has no data to stream`);
      }
      if (!fromTar) {
        yield* rootfsTarStream(entries, mtime, (e) => fileChunks((e.data as DataRef).file, e.size));
        return;
      }
      const file = dataFile as string;
      let fd: number;
      try {
        fd = fs.openSync(file, 'r');
      } catch (err) {
        throw fromSystemError(err, 'cannot open', file);
      }
      try {
        yield* rootfsTarStream(entries, mtime, (e) =>
          rangeChunks(fd, file, (e.data as DataRef).offset, e.size),
        );
      } finally {
        fs.closeSync(fd);
      }
    },
    async dispose(): Promise<void> {
      disposed = true;
      await dispose?.();
    },
  };
}
