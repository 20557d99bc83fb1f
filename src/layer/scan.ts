/**
 * Reads an image archive once: gzip and tar integrity, oxide.json first and
 * valid, every header kept (not the data), optional per-file digests.
 */
import { createHash, type Hash } from 'node:crypto';
import { SlipwayError } from '../core/errors.js';
import { readTarFile } from '../archive/tar-read.js';
import type { TarEntryInfo, TarLimits } from '../formats/tar.js';
import { OXIDE_JSON_MAX_BYTES, parseOxideJson, type OxideJson } from '../formats/oxide-json.js';

export interface ScannedEntry extends TarEntryInfo {
  /** sha256 of a regular file's content, when requested. */
  sha256?: string;
}

export interface ArchiveScan {
  file: string;
  oxide: OxideJson;
  oxideBytes: Buffer;
  /** Every entry after oxide.json, in archive order. */
  entries: ScannedEntry[];
  sha256: string;
  fileSize: number;
  tarSize: number;
  gzip: boolean;
}

export interface ScanOptions {
  limits?: Partial<TarLimits>;
  /** Compute each regular file's sha256 (for diff and --list). */
  digestFiles?: boolean;
  onProgress?: (bytesRead: number) => void;
}

export async function scanArchive(file: string, options: ScanOptions = {}): Promise<ArchiveScan> {
  const entries: ScannedEntry[] = [];
  let oxideChunks: Buffer[] | undefined;
  let oxideBytes: Buffer | undefined;
  let current: ScannedEntry | undefined;
  let hash: Hash | undefined;
  let first = true;
  const result = await readTarFile(
    file,
    {
      entry(e) {
        if (first) {
          first = false;
          if (e.path !== 'oxide.json' || e.type !== 'file') {
            throw new SlipwayError(
              'OXIDE_JSON_MISSING',
              `the first entry must be the regular file 'oxide.json', found ${e.type} '${e.path}'`,
              { where: file },
            );
          }
          if (e.size > OXIDE_JSON_MAX_BYTES) {
            throw new SlipwayError(
              'OXIDE_JSON_INVALID',
              `oxide.json is ${e.size} bytes, over ${OXIDE_JSON_MAX_BYTES}`,
              {
                where: file,
              },
            );
          }
          oxideChunks = [];
          return;
        }
        current = { ...e };
        entries.push(current);
        hash = options.digestFiles === true && e.type === 'file' ? createHash('sha256') : undefined;
      },
      data(chunk) {
        if (oxideChunks !== undefined) oxideChunks.push(Buffer.from(chunk));
        else hash?.update(chunk);
      },
      entryEnd() {
        if (oxideChunks !== undefined) {
          oxideBytes = Buffer.concat(oxideChunks);
          oxideChunks = undefined;
          return;
        }
        if (hash !== undefined && current !== undefined) current.sha256 = hash.digest('hex');
        hash = undefined;
      },
    },
    { limits: options.limits, onProgress: options.onProgress, requireGzip: true },
  );
  if (oxideBytes === undefined) {
    throw new SlipwayError('OXIDE_JSON_MISSING', 'the archive is empty: no oxide.json', { where: file });
  }
  const oxide = parseOxideJson(oxideBytes, `${file}: oxide.json`);
  return {
    file,
    oxide,
    oxideBytes,
    entries,
    sha256: result.sha256 ?? '',
    fileSize: result.fileSize,
    tarSize: result.tarSize,
    gzip: result.gzip,
  };
}

/** Fails unless the archive is of the expected type ("image is not a layer"). */
export function expectType(scan: ArchiveScan, type: OxideJson['t']): void {
  if (scan.oxide.t !== type) {
    throw new SlipwayError(
      'IMAGE_TYPE_MISMATCH',
      `image is not a ${type} (oxide.json says t=${scan.oxide.t})`,
      {
        where: scan.file,
      },
    );
  }
}
