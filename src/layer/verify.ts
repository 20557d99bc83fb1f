/**
 * `slipway layer verify` and `inspect`: every rule of specs/layers.md,
 * reported per archive (problems are errors; notes are warnings).
 */
import { SlipwayError, isSlipwayError, type ErrorCode } from '../core/errors.js';
import type { TarLimits } from '../formats/tar.js';
import type { OxideJson } from '../formats/oxide-json.js';
import { normalizeArchivePath } from '../formats/layer-path.js';
import { EMPTY_TREE, InstallSimulator, layerOpFor } from './rules.js';
import { scanArchive, type ArchiveScan, type ScannedEntry } from './scan.js';

export interface Problem {
  code: ErrorCode;
  message: string;
  where?: string;
}

export interface VerifyReport {
  file: string;
  ok: boolean;
  oxide?: OxideJson;
  entries?: number;
  sha256?: string;
  problems: Problem[];
  warnings: Problem[];
}

/** Problems past this many are summarized: a hostile archive can have millions. */
const MAX_PROBLEMS = 50;

function problemOf(err: unknown): Problem {
  if (isSlipwayError(err))
    return { code: err.code, message: err.message, ...(err.where !== undefined ? { where: err.where } : {}) };
  throw err;
}

/** The rules that apply to a scanned archive's entries (pure over the scan). */
export function checkEntries(scan: ArchiveScan): { problems: Problem[]; warnings: Problem[] } {
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  const zoneImage = scan.oxide.t === 'layer' || scan.oxide.t === 'baseline';
  const sim = new InstallSimulator(EMPTY_TREE, { lenientParents: scan.oxide.t === 'layer' });
  for (const e of scan.entries) {
    if (problems.length >= MAX_PROBLEMS) {
      problems.push({ code: problems[0]?.code ?? 'INTERNAL', message: 'more problems not shown' });
      break;
    }
    try {
      if (!zoneImage) {
        normalizeArchivePath(e.path, `${scan.file}: ${e.path}`);
        continue;
      }
      const op = layerOpFor(e, scan.file);
      if (op === undefined) {
        throw new SlipwayError(
          'PATH_OUTSIDE_ROOT',
          `entry '${e.path}' is outside root/ (install would ignore it)`,
          {
            where: `${scan.file}: ${e.path}`,
          },
        );
      }
      sim.apply(op, scan.file);
    } catch (err) {
      problems.push(problemOf(err));
    }
  }
  for (const n of sim.notes) {
    warnings.push({
      code: n.code,
      message: n.message,
      where: `${scan.file}: root/${n.path}`,
    });
  }
  return { problems, warnings };
}

export async function verifyArchive(
  file: string,
  options: { limits?: Partial<TarLimits> } = {},
): Promise<VerifyReport> {
  let scan: ArchiveScan;
  try {
    scan = await scanArchive(file, { limits: options.limits });
  } catch (err) {
    return { file, ok: false, problems: [problemOf(err)], warnings: [] };
  }
  const { problems, warnings } = checkEntries(scan);
  return {
    file,
    ok: problems.length === 0,
    oxide: scan.oxide,
    entries: scan.entries.length + 1,
    sha256: scan.sha256,
    problems,
    warnings,
  };
}

export interface InspectReport {
  file: string;
  type: OxideJson['t'];
  pkg?: string;
  version?: string;
  oxide: OxideJson;
  sha256: string;
  size: number;
  uncompressedSize: number;
  gzip: boolean;
  entries: number;
  counts: { files: number; directories: number; symlinks: number; hardlinks: number; other: number };
  contentBytes: number;
  list?: {
    path: string;
    type: string;
    mode: string;
    uid: number;
    gid: number;
    size: number;
    link?: string;
    sha256?: string;
  }[];
}

export async function inspectArchive(
  file: string,
  options: { list?: boolean; limits?: Partial<TarLimits> } = {},
): Promise<InspectReport> {
  const scan = await scanArchive(file, { limits: options.limits, digestFiles: options.list ?? false });
  const counts = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, other: 0 };
  let contentBytes = 0;
  for (const e of scan.entries) {
    if (e.type === 'file') {
      counts.files++;
      contentBytes += e.size;
    } else if (e.type === 'directory') counts.directories++;
    else if (e.type === 'symlink') counts.symlinks++;
    else if (e.type === 'hardlink') counts.hardlinks++;
    else counts.other++;
  }
  const report: InspectReport = {
    file,
    type: scan.oxide.t,
    ...(scan.oxide.pkg !== undefined ? { pkg: scan.oxide.pkg } : {}),
    ...(scan.oxide.version !== undefined ? { version: scan.oxide.version } : {}),
    oxide: scan.oxide,
    sha256: scan.sha256,
    size: scan.fileSize,
    uncompressedSize: scan.tarSize,
    gzip: scan.gzip,
    entries: scan.entries.length + 1,
    counts,
    contentBytes,
  };
  if (options.list === true) report.list = scan.entries.map(listItem);
  return report;
}

function listItem(e: ScannedEntry): NonNullable<InspectReport['list']>[number] {
  return {
    path: e.path,
    type: e.type === 'other' ? `other(${e.typeflag})` : e.type,
    mode: (e.mode & 0o7777).toString(8).padStart(4, '0'),
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    ...(e.linkname !== '' ? { link: e.linkname } : {}),
    ...(e.sha256 !== undefined ? { sha256: e.sha256 } : {}),
  };
}
