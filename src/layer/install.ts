/**
 * `slipway layer install`: the brand's install semantics onto a directory.
 *
 * Two passes. Pass 1 reads every archive completely (gzip CRC, every tar
 * header, oxide.json, types) and replays the install over a view of the
 * target root (InstallSimulator); any problem stops us before a single byte
 * is written. Pass 2 re-reads the archives and applies the plan, checking
 * that each entry is the one pass 1 approved. Writes never follow a symlink.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { silentReporter, type Reporter } from '../core/events.js';
import { readTarFile } from '../archive/tar-read.js';
import type { TarLimits } from '../formats/tar.js';
import { underRoot, normalizeArchivePath } from '../formats/layer-path.js';
import { InstallSimulator, layerOpFor, type LayerOp, type NodeKind, type TreeView } from './rules.js';
import { expectType, scanArchive } from './scan.js';

export interface InstallOptions {
  baseline?: string;
  limits?: Partial<TarLimits>;
  reporter?: Reporter;
}

export interface InstallResult {
  root: string;
  archives: { file: string; type: string; pkg?: string; version?: string; entries: number; sha256: string }[];
  files: number;
  directories: number;
  links: number;
  bytes: number;
}

/** lstat-based view of the real target root. */
function realTree(root: string): TreeView {
  return {
    kind(p: string): NodeKind {
      try {
        const st = fs.lstatSync(p === '' ? root : path.join(root, p));
        if (st.isDirectory()) return 'dir';
        if (st.isFile()) return 'file';
        if (st.isSymbolicLink()) return 'symlink';
        return 'other';
      } catch {
        return 'none';
      }
    },
  };
}

interface PlannedArchive {
  file: string;
  ops: LayerOp[];
  stat: fs.Stats;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export async function installLayers(
  root: string,
  layers: readonly string[],
  options: InstallOptions = {},
): Promise<InstallResult> {
  const reporter = options.reporter ?? silentReporter;
  let rootStat: fs.Stats;
  try {
    rootStat = fs.lstatSync(root);
  } catch (err) {
    throw new SlipwayError('INSTALL_ROOT_INVALID', `install root '${root}' does not exist`, {
      where: root,
      cause: err,
    });
  }
  if (!rootStat.isDirectory()) {
    throw new SlipwayError('INSTALL_ROOT_INVALID', `install root '${root}' is not a directory`, {
      where: root,
    });
  }
  const absRoot = fs.realpathSync(root);
  const sources: { file: string; type: 'baseline' | 'layer' }[] = [
    ...(options.baseline !== undefined ? [{ file: options.baseline, type: 'baseline' as const }] : []),
    ...layers.map((file) => ({ file, type: 'layer' as const })),
  ];
  if (sources.length === 0)
    throw new SlipwayError('USAGE', 'nothing to install: give a baseline and/or layers');

  // Pass 1: check everything, write nothing.
  const sim = new InstallSimulator(realTree(absRoot));
  const planned: PlannedArchive[] = [];
  const result: InstallResult = { root: absRoot, archives: [], files: 0, directories: 0, links: 0, bytes: 0 };
  for (const src of sources) {
    const task = `check ${path.basename(src.file)}`;
    reporter.emit({ kind: 'task-start', task, unit: 'bytes' });
    let stat: fs.Stats;
    try {
      stat = fs.statSync(src.file);
    } catch (err) {
      throw fromSystemError(err, 'cannot read archive', src.file);
    }
    const scan = await scanArchive(src.file, {
      limits: options.limits,
      onProgress: (n) => {
        reporter.emit({ kind: 'task-progress', task, done: n, total: stat.size });
      },
    });
    expectType(scan, src.type);
    sim.nextArchive();
    const ops: LayerOp[] = [];
    for (const e of scan.entries) {
      const op = layerOpFor(e, src.file);
      if (op === undefined) continue;
      sim.apply(op, src.file);
      ops.push(op);
    }
    planned.push({ file: src.file, ops, stat });
    result.archives.push({
      file: src.file,
      type: scan.oxide.t,
      ...(scan.oxide.pkg !== undefined ? { pkg: scan.oxide.pkg } : {}),
      ...(scan.oxide.version !== undefined ? { version: scan.oxide.version } : {}),
      entries: scan.entries.length,
      sha256: scan.sha256,
    });
    reporter.emit({ kind: 'task-end', task, ok: true });
  }

  // Pass 2: apply.
  const dirModes: [string, number, number, number][] = [];
  for (const plan of planned) {
    await applyArchive(absRoot, plan, result, dirModes, options, reporter);
  }
  // Directory modes last (deepest first), so a read-only directory does not stop its own children.
  for (let i = dirModes.length - 1; i >= 0; i--) {
    const [p, mode, uid, gid] = dirModes[i] ?? ['', 0, 0, 0];
    if (isRoot) fs.lchownSync(p, uid, gid);
    fs.chmodSync(p, mode);
  }
  return result;
}

function removeExisting(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

const O_NOFOLLOW = fs.constants.O_NOFOLLOW;
const CREATE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW;

async function applyArchive(
  root: string,
  plan: PlannedArchive,
  result: InstallResult,
  dirModes: [string, number, number, number][],
  options: InstallOptions,
  reporter: Reporter,
): Promise<void> {
  const task = `install ${path.basename(plan.file)}`;
  reporter.emit({ kind: 'task-start', task, unit: 'bytes' });
  let next = 0; // index into plan.ops
  let fd: number | undefined;
  let current: LayerOp | undefined;
  let written = 0;
  const where = plan.file;
  const changed = (what: string): SlipwayError =>
    new SlipwayError('ARCHIVE_CHANGED', `the archive changed between the check and the install (${what})`, {
      where,
    });
  try {
    await readTarFile(
      plan.file,
      {
        entry(e) {
          if (e.index === 0) return; // oxide.json
          const norm = normalizeArchivePath(e.path, `${where}: ${e.path}`);
          if (underRoot(norm) === undefined) return;
          const op = plan.ops[next++];
          const again = layerOpFor(e, where);
          if (
            op === undefined ||
            again === undefined ||
            again.index !== op.index ||
            again.path !== op.path ||
            again.type !== op.type ||
            again.size !== op.size ||
            again.link !== op.link
          ) {
            throw changed(`entry ${e.index} '${e.path}'`);
          }
          current = op;
          const abs = op.path === '' ? root : path.join(root, op.path);
          switch (op.type) {
            case 'directory': {
              let st: fs.Stats | undefined;
              try {
                st = fs.lstatSync(abs);
              } catch {
                st = undefined;
              }
              if (st === undefined) fs.mkdirSync(abs, { mode: 0o700 });
              else if (!st.isDirectory()) throw changed(`'${op.path}' is no longer a directory`);
              dirModes.push([abs, op.mode, op.uid, op.gid]);
              result.directories++;
              break;
            }
            case 'file': {
              removeExisting(abs);
              fd = fs.openSync(abs, CREATE_FLAGS, 0o600);
              written = 0;
              result.files++;
              break;
            }
            case 'symlink': {
              removeExisting(abs);
              fs.symlinkSync(op.link, abs);
              if (isRoot) fs.lchownSync(abs, op.uid, op.gid);
              result.links++;
              break;
            }
            case 'hardlink': {
              removeExisting(abs);
              fs.linkSync(path.join(root, op.link), abs);
              result.links++;
              break;
            }
          }
        },
        data(chunk) {
          if (fd === undefined) return;
          let off = 0;
          while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
          written += chunk.length;
        },
        entryEnd() {
          if (fd === undefined || current === undefined) return;
          const f = fd;
          fd = undefined;
          if (isRoot) fs.fchownSync(f, current.uid, current.gid);
          fs.fchmodSync(f, current.mode);
          fs.futimesSync(f, current.mtime, current.mtime);
          fs.closeSync(f);
          result.bytes += written;
        },
      },
      {
        hash: false,
        limits: options.limits,
        onProgress: (n) => {
          reporter.emit({ kind: 'task-progress', task, done: n, total: plan.stat.size });
        },
      },
    );
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    reporter.emit({ kind: 'task-end', task, ok: false });
    if (err instanceof SlipwayError) throw err;
    throw fromSystemError(err, 'cannot install into', root);
  }
  if (next !== plan.ops.length) throw changed('entries are missing');
  reporter.emit({ kind: 'task-end', task, ok: true });
}
