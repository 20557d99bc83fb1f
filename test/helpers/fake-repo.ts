/**
 * Shared plumbing for the repository tests: tufaceous' fake manifest and
 * assembling it, reading and writing zips (raw ones too), and tuf-js as a
 * client.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import { Updater } from 'tuf-js';
import { ZipReader } from '../../src/archive/zip-read.js';
import { ZipWriter } from '../../src/archive/zip-write.js';
import { openAtomic } from '../../src/core/atomic-file.js';
import type { RoleName } from '../../src/formats/tuf/index.js';
import { assembleRepository, type AssembleResult } from '../../src/repo/assemble.js';
import { loadSigners, type KeyOptions } from '../../src/repo/keys.js';
import { tempDir } from './tmp.js';

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const vectors = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/vectors/repo');

/** A manifest under test/vectors/repo/. */
export function repoVector(name: string): string {
  return fs.readFileSync(path.join(vectors, name), 'utf8');
}

/** tufaceous' bin/manifests/fake.toml (commit 1eacfcf), verbatim. */
export const FAKE_MANIFEST = repoVector('fake.toml');

export interface AssembleFakeOptions {
  /** The manifest's system_version (default 1.0.0, as tufaceous has it). */
  systemVersion?: string;
  /** Another manifest instead of the fake one. */
  manifest?: string;
  /** The clock (default now). */
  now?: Date;
  /** loadSigners' keys; default none, so a fresh throwaway key each time. */
  key?: Pick<KeyOptions, 'keys' | 'roleKeys'>;
  thresholds?: Partial<Record<RoleName, number>>;
  skipAllPresent?: boolean;
}

/** Assembles `dir/fake.toml` (the fake manifest unless told) into `dir/repo.zip`. */
export async function assembleFake(
  dir: string,
  opts: AssembleFakeOptions = {},
): Promise<AssembleResult & { generatedKey?: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const manifestFile = path.join(dir, 'fake.toml');
  let manifest = opts.manifest ?? FAKE_MANIFEST;
  if (opts.systemVersion !== undefined) {
    manifest = manifest.replace('system_version = "1.0.0"', `system_version = "${opts.systemVersion}"`);
  }
  fs.writeFileSync(manifestFile, manifest);
  const keys = loadSigners({ ...opts.key, env: {} });
  const result = await assembleRepository({
    manifestFile,
    output: path.join(dir, 'repo.zip'),
    signers: keys.signers,
    ...(opts.thresholds !== undefined ? { thresholds: opts.thresholds } : {}),
    now: opts.now ?? new Date(),
    ...(opts.skipAllPresent !== undefined ? { skipAllPresent: opts.skipAllPresent } : {}),
  });
  return keys.generated === undefined ? result : { ...result, generatedKey: keys.generated };
}

// ---------------------------------------------------------------------------
// zips

export interface ZipFileEntry {
  name: string;
  data: Buffer;
}

/**
 * The entries of a zip whose names start with `under`, by the rest of the
 * name; others are skipped, or with `onlyUnder` fail the test.
 */
export async function readZipFiles(
  zip: string,
  under: string,
  opts: { onlyUnder?: boolean } = {},
): Promise<Map<string, Buffer>> {
  const reader = await ZipReader.open(zip);
  try {
    const out = new Map<string, Buffer>();
    for (const e of reader.entries) {
      if (!e.name.startsWith(under)) {
        assert.ok(opts.onlyUnder !== true, e.name);
        continue;
      }
      out.set(e.name.slice(under.length), await reader.readEntry(e, 64 * 1024 * 1024));
    }
    return out;
  } finally {
    await reader.close();
  }
}

/** A repository zip's metadata files, by name (`1.root.json`, …). */
export function readZipMetadata(zip: string): Promise<Map<string, Buffer>> {
  return readZipFiles(zip, 'repo/metadata/');
}

/** Writes `entries` to `file` with our ZipWriter. */
export async function writeZip(file: string, entries: Iterable<ZipFileEntry>): Promise<void> {
  const out = await openAtomic(file);
  const zip = await ZipWriter.create(out);
  for (const e of entries) await zip.addEntry(e.name, { data: e.data });
  await zip.finish();
  await out.commit();
}

/**
 * A stored zip written byte by byte (APPNOTE 4.3), names as given: for the
 * hostile names our ZipWriter refuses to write.
 */
export function rawZip(entries: readonly ZipFileEntry[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const crc = zlib.crc32(e.data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(0, 10); // time 00:00
    local.writeUInt16LE((1 << 5) | 1, 12); // date 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const dir = e.name.endsWith('/');
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix, 2.0
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0x0800, 8);
    cd.writeUInt16LE(0, 10);
    cd.writeUInt16LE(0, 12);
    cd.writeUInt16LE((1 << 5) | 1, 14);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(e.data.length, 20);
    cd.writeUInt32LE(e.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(0, 30); // extra
    cd.writeUInt16LE(0, 32); // comment
    cd.writeUInt16LE(0, 34); // disk
    cd.writeUInt16LE(0, 36); // internal attributes
    cd.writeUInt32LE(((dir ? 0o40755 : 0o100644) << 16) >>> 0, 38);
    cd.writeUInt32LE(offset, 42);
    parts.push(local, name, e.data);
    central.push(cd, name);
    offset += local.length + name.length + e.data.length;
  }
  const cdBytes = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBytes.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cdBytes, end]);
}

// ---------------------------------------------------------------------------
// tuf-js

export interface TufjsDirs {
  metadataDir: string;
  targetDir: string;
}

/** tuf-js' two directories under a fresh temp directory, `root.json` trusted out of band. */
export function tufjsDirs(trustedRoot: Buffer): TufjsDirs {
  const base = tempDir('slipway-tufjs-');
  const metadataDir = path.join(base, 'metadata');
  const targetDir = path.join(base, 'targets');
  fs.mkdirSync(metadataDir);
  fs.mkdirSync(targetDir);
  fs.writeFileSync(path.join(metadataDir, 'root.json'), trustedRoot);
  return { metadataDir, targetDir };
}

/** tuf-js over `baseUrl`/metadata and `baseUrl`/targets, no retries; fresh directories unless given. */
export function tufjsUpdater(
  opts: { baseUrl: string } & ({ trustedRoot: Buffer } | { dirs: TufjsDirs }),
): Updater {
  const dirs = 'dirs' in opts ? opts.dirs : tufjsDirs(opts.trustedRoot);
  return new Updater({
    metadataDir: dirs.metadataDir,
    metadataBaseUrl: `${opts.baseUrl}/metadata`,
    targetDir: dirs.targetDir,
    targetBaseUrl: `${opts.baseUrl}/targets`,
    config: { fetchRetry: 0 },
  });
}
