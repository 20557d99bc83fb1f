/**
 * `slipway repo extract ZIP DIR`: the repository's `repo/` tree into DIR
 * (`metadata/`, `targets/`), verified first unless told otherwise. Every
 * entry's path is checked before anything is written; DIR appears only
 * when complete.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ZipReader, extractZip } from '../archive/zip-read.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { checkRepoZipPaths, verifyRepositoryZip } from './verify.js';

export interface ExtractOptions {
  verify: boolean;
  now: Date;
  trustedRoot?: Uint8Array;
  reporter?: Reporter;
  signal?: AbortSignal;
}

export async function extractRepository(
  file: string,
  dir: string,
  options: ExtractOptions,
): Promise<{ dir: string; files: number }> {
  const dest = path.resolve(dir);
  if (
    await fsp.stat(dest).then(
      () => true,
      () => false,
    )
  ) {
    throw new SlipwayError('INVALID_ARGUMENT', `${dest} already exists`, { where: dest });
  }
  if (options.verify) {
    await verifyRepositoryZip(file, {
      now: options.now,
      ignoreExpiry: true,
      skipAllPresent: true,
      ...(options.trustedRoot !== undefined ? { trustedRoot: options.trustedRoot } : {}),
      ...(options.reporter !== undefined ? { reporter: options.reporter } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  }
  const reader = await ZipReader.open(file);
  const staging = `${dest}.extracting-${process.pid}`;
  try {
    checkRepoZipPaths(reader.entries, file);
    await extractZip(reader, staging);
    try {
      await fsp.rename(path.join(staging, 'repo'), dest);
    } catch (err) {
      throw fromSystemError(err, 'cannot move into place', dest);
    }
    return { dir: dest, files: reader.entries.length };
  } finally {
    await reader.close();
    await fsp.rm(staging, { recursive: true, force: true });
  }
}
