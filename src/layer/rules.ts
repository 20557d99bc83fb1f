/**
 * The pure core of layer archives: which entries a layer may hold and what
 * installing them does to a tree. No I/O here: the target tree is seen
 * through a `TreeView` so the same rules run against a real directory
 * (install) or an empty one (verify), and are tested without disks.
 */
import { SlipwayError } from '../core/errors.js';
import type { TarEntryInfo, TarEntryType } from '../formats/tar.js';
import { normalizeArchivePath, underRoot } from '../formats/layer-path.js';

export type NodeKind = 'none' | 'dir' | 'file' | 'symlink' | 'other';

/** How the target tree looks before anything is installed (lstat semantics: symlinks not followed). */
export interface TreeView {
  kind(path: string): NodeKind;
}

export const EMPTY_TREE: TreeView = { kind: (p) => (p === '' ? 'dir' : 'none') };

/** One entry of a layer, as it will be applied under the target root. */
export interface LayerOp {
  /** Path below the root ('' is the root itself). */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  /** symlink: the stored target (verbatim); hardlink: the target path below the root. */
  link: string;
  /** Position in the archive, to match the second pass against the plan. */
  index: number;
}

const INSTALLABLE: ReadonlySet<TarEntryType> = new Set(['file', 'directory', 'symlink', 'hardlink']);

/**
 * Classifies one tar entry of a layer/baseline archive. Returns the op to
 * apply, or undefined for entries install ignores (outside `root/`).
 * Throws for entries that are never acceptable.
 */
export function layerOpFor(entry: TarEntryInfo, where: string): LayerOp | undefined {
  const at = `${where}: ${entry.path}`;
  const norm = normalizeArchivePath(entry.path, at);
  if (!INSTALLABLE.has(entry.type)) {
    throw new SlipwayError(
      'TAR_ENTRY_UNSUPPORTED',
      `unsupported entry type '${entry.type === 'other' ? entry.typeflag : entry.type}'`,
      { where: at },
    );
  }
  const rel = underRoot(norm);
  if (rel === undefined) return undefined;
  let link = '';
  if (entry.type === 'hardlink') {
    let target;
    try {
      target = normalizeArchivePath(entry.linkname, at);
    } catch (err) {
      throw new SlipwayError('LINK_UNSAFE', `hard link to '${entry.linkname}', which is outside root/`, {
        where: at,
        cause: err,
      });
    }
    const targetRel = underRoot(target);
    if (targetRel === undefined) {
      throw new SlipwayError('LINK_UNSAFE', `hard link to '${entry.linkname}', which is outside root/`, {
        where: at,
      });
    }
    if (targetRel.path === '')
      throw new SlipwayError('LINK_UNSAFE', 'hard link to the root directory', { where: at });
    link = targetRel.path;
  } else if (entry.type === 'symlink') {
    if (entry.linkname === '')
      throw new SlipwayError('LINK_UNSAFE', 'symbolic link with an empty target', { where: at });
    link = entry.linkname;
  }
  if (rel.path === '' && entry.type !== 'directory') {
    throw new SlipwayError('INSTALL_CONFLICT', `'root' must be a directory, found a ${entry.type}`, {
      where: at,
    });
  }
  return {
    path: rel.path,
    type: entry.type as LayerOp['type'],
    mode: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    mtime: entry.mtime,
    size: entry.type === 'file' ? entry.size : 0,
    link,
    index: entry.index,
  };
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i === -1 ? '' : path.slice(0, i);
}

export interface SimulationNote {
  code: 'INSTALL_PARENT_MISSING' | 'DUPLICATE_ENTRY';
  path: string;
  message: string;
}

/**
 * Replays install semantics (specs/layers.md) over a tree view, entry by
 * entry, across every archive of an install. Throws on the first entry the
 * brand would refuse or that would write outside the root.
 *
 * `lenientParents`: record a missing parent as a note instead of failing
 * (verify of a lone layer, whose parents may come from the baseline).
 */
export class InstallSimulator {
  readonly #base: TreeView;
  readonly #overlay = new Map<string, NodeKind>();
  readonly #seenInArchive = new Set<string>();
  readonly notes: SimulationNote[] = [];
  readonly #lenientParents: boolean;

  constructor(base: TreeView, options: { lenientParents?: boolean } = {}) {
    this.#base = base;
    this.#lenientParents = options.lenientParents ?? false;
  }

  kind(path: string): NodeKind {
    return this.#overlay.get(path) ?? this.#base.kind(path);
  }

  /** Call between archives: duplicates are tracked per archive. */
  nextArchive(): void {
    this.#seenInArchive.clear();
  }

  /** Every ancestor must be a real directory: never write through a symlink. */
  #checkAncestors(path: string, where: string, what: string): void {
    if (path === '') return;
    const parts = path.split('/');
    let prefix = '';
    for (let i = 0; i < parts.length - 1; i++) {
      prefix = prefix === '' ? (parts[i] ?? '') : `${prefix}/${parts[i] ?? ''}`;
      const k = this.kind(prefix);
      if (k === 'dir') continue;
      if (k === 'symlink') {
        throw new SlipwayError(
          'PATH_UNSAFE',
          `${what} '${path}' would be written through the symbolic link '${prefix}'`,
          {
            where,
          },
        );
      }
      if (k === 'none') {
        if (this.#lenientParents) {
          this.notes.push({
            code: 'INSTALL_PARENT_MISSING',
            path,
            message: `parent directory '${prefix}' of '${path}' does not precede it (it must come from the baseline)`,
          });
          this.#overlay.set(prefix, 'dir');
          continue;
        }
        throw new SlipwayError(
          'INSTALL_PARENT_MISSING',
          `parent directory '${prefix}' of '${path}' does not exist (parents must come first)`,
          { where },
        );
      }
      throw new SlipwayError(
        'INSTALL_CONFLICT',
        `'${prefix}' is not a directory, so '${path}' cannot be created`,
        {
          where,
        },
      );
    }
  }

  apply(op: LayerOp, where: string): void {
    const at = `${where}: root/${op.path}`;
    if (this.#seenInArchive.has(op.path)) {
      this.notes.push({
        code: 'DUPLICATE_ENTRY',
        path: op.path,
        message: `'${op.path}' appears more than once; the later entry wins`,
      });
    }
    this.#seenInArchive.add(op.path);
    this.#checkAncestors(op.path, at, op.type === 'directory' ? 'directory' : 'file');
    const existing = this.kind(op.path);
    if (op.type === 'directory') {
      if (existing !== 'none' && existing !== 'dir') {
        throw new SlipwayError(
          'INSTALL_CONFLICT',
          `directory '${op.path}' conflicts with an existing ${existing}`,
          {
            where: at,
          },
        );
      }
      this.#overlay.set(op.path, 'dir');
      return;
    }
    if (existing === 'dir') {
      throw new SlipwayError('INSTALL_CONFLICT', `${op.type} '${op.path}' would replace a directory`, {
        where: at,
      });
    }
    if (op.type === 'hardlink') {
      this.#checkAncestors(op.link, at, 'hard link target');
      const target = this.kind(op.link);
      if (target !== 'file' && target !== 'symlink') {
        throw new SlipwayError(
          'LINK_UNSAFE',
          `hard link target 'root/${op.link}' is ${target === 'none' ? 'missing' : `a ${target}`}`,
          { where: at },
        );
      }
      if (op.link === op.path) throw new SlipwayError('LINK_UNSAFE', 'hard link to itself', { where: at });
      this.#overlay.set(op.path, target);
      return;
    }
    this.#overlay.set(op.path, op.type === 'symlink' ? 'symlink' : 'file');
  }
}

export { parentOf };
