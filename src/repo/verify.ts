/**
 * `slipway repo verify`: the checks a rack's control plane makes when a
 * repository is uploaded (specs/tuf-repo.md §"What a consumer checks"):
 * zip path rules, the TUF workflow from a trusted root, artifacts.json,
 * every target streamed once (length, sha256 and, for composites, their
 * content rules), duplicate and missing kinds. Reads only; writes nothing.
 */
import { createHash } from 'node:crypto';
import { ZipReader, checkEntryPath, type ZipEntry } from '../archive/zip-read.js';
import { hashFileInBackground } from '../archive/hash-file.js';
import { SlipwayError } from '../core/errors.js';
import { type Reporter, silentReporter } from '../core/events.js';
import {
  ARTIFACTS_JSON,
  ARTIFACT_KINDS,
  OPTIONAL_KINDS,
  SINGLE_KINDS,
  isArtifactKind,
  parseArtifactsDocument,
  type HashedArtifact,
} from '../formats/repo-artifacts.js';
import {
  earliestExpiry,
  formatExpires,
  resolveTarget,
  targetPathFor,
  verifyRepositoryMetadata,
  type MetadataReader,
  type TrustedMetadata,
} from '../formats/tuf/index.js';
import { checkCompositeStream, isCompositeKind } from './content.js';

export interface VerifyOptions {
  /** Bytes of the trusted root.json; default: the repository's own 1.root.json (development). */
  trustedRoot?: Uint8Array;
  now: Date;
  ignoreExpiry?: boolean;
  /** Accept a repository that lacks required kinds (fake or partial repositories). */
  skipAllPresent?: boolean;
  reporter?: Reporter;
  signal?: AbortSignal;
  /** Already known (an upload server hashes while receiving). */
  sha256?: string;
}

export interface VerifiedArtifact extends HashedArtifact {
  /** Zones of a control-plane artifact: pkg and version of each. */
  zones?: { file: string; pkg: string; version: string }[];
}

export interface VerifyResult {
  file: string;
  sha256: string;
  systemVersion: string;
  /** The earliest expiry of the four roles. */
  validUntil: string;
  /** `system-update-v<system_version>.zip`. */
  canonicalName: string;
  rootVersion: number;
  targetsVersion: number;
  trustedRootFromRepo: boolean;
  artifacts: VerifiedArtifact[];
}

const MAX_METADATA_BYTES = 16 * 1024 * 1024;
const MAX_ARTIFACTS_JSON_BYTES = 4 * 1024 * 1024;
const METADATA_PREFIX = 'repo/metadata/';
const TARGETS_PREFIX = 'repo/targets/';

/** Omicron's path rule: files only, each under `repo/`, no `..`, nothing else. */
export function checkRepoZipPaths(entries: readonly ZipEntry[], where: string): void {
  for (const e of entries) {
    checkEntryPath(e.name, where);
    if (!e.name.startsWith('repo/')) {
      throw new SlipwayError('ZIP_PATH_UNSAFE', `zip entry ${JSON.stringify(e.name)} is outside repo/`, {
        where,
      });
    }
  }
}

/** A target's bytes: read in place when stored (its signed sha256 is checked, so no CRC-32 pass). */
function streamEntry(reader: ZipReader, entry: ZipEntry): AsyncIterable<Buffer> {
  if (entry.method === 0 && entry.compressedSize === entry.size) return reader.readStored(entry);
  return {
    async *[Symbol.asyncIterator]() {
      const s = await reader.openEntry(entry);
      for await (const c of s) yield c as Buffer;
    },
  };
}

async function hashEntry(reader: ZipReader, entry: ZipEntry): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of streamEntry(reader, entry)) {
    h.update(c);
    size += c.length;
  }
  return { sha256: h.digest('hex'), size };
}

async function verifyTargetEntry(
  reader: ZipReader,
  tm: TrustedMetadata,
  read: MetadataReader,
  target: string,
  kind: string | undefined,
): Promise<{ sha256: string; size: number; zones?: VerifiedArtifact['zones'] }> {
  const info = await resolveTarget(tm, read, target);
  const sha = info.hashes.sha256;
  if (sha === undefined) {
    throw new SlipwayError('TUF_METADATA_INVALID', `target ${target} lists no sha256`, {
      where: 'targets.json',
    });
  }
  const stored = `${TARGETS_PREFIX}${targetPathFor(target, sha)}`;
  const entry = reader.get(stored);
  if (entry === undefined) {
    throw new SlipwayError(
      'REPO_LAYOUT_INVALID',
      `target ${target} is not stored under its hash name ${stored}`,
      { where: reader.path },
    );
  }
  const where = `${reader.path}: ${stored}`;
  if (kind !== undefined && isCompositeKind(kind)) {
    const parsed = checkCompositeStream(streamEntry(reader, entry), kind, where);
    const r = await parsed.catch(async (err: unknown) => {
      // Bytes that are not the signed ones are a hash problem first, whatever they fail to parse as.
      const h = await hashEntry(reader, entry);
      tm.verifyTarget(target, { length: h.size, sha256: h.sha256 });
      throw err;
    });
    tm.verifyTarget(target, { length: r.size, sha256: r.sha256 });
    return {
      sha256: r.sha256,
      size: r.size,
      ...(kind === 'control_plane' ? { zones: r.content.zones } : {}),
    };
  }
  const r = await hashEntry(reader, entry);
  tm.verifyTarget(target, { length: r.size, sha256: r.sha256 });
  return r;
}

export async function verifyRepositoryZip(file: string, options: VerifyOptions): Promise<VerifyResult> {
  const reporter = options.reporter ?? silentReporter;
  const reader = await ZipReader.open(file);
  // The zip's own sha256 (its identity) on another core while the targets are checked here.
  const zipHash = options.sha256 === undefined ? hashFileInBackground(file) : undefined;
  try {
    checkRepoZipPaths(reader.entries, file);
    const readMeta: MetadataReader = async (name) => {
      const e = reader.get(`${METADATA_PREFIX}${name}`);
      return e === undefined ? undefined : reader.readEntry(e, MAX_METADATA_BYTES);
    };
    const ownRoot = await readMeta('1.root.json');
    const trustedRoot = options.trustedRoot ?? ownRoot;
    if (trustedRoot === undefined) {
      throw new SlipwayError('TUF_METADATA_INVALID', 'repo/metadata/1.root.json is missing', { where: file });
    }
    const tm = await verifyRepositoryMetadata(readMeta, {
      trustedRoot,
      now: options.now,
      ignoreExpiry: options.ignoreExpiry ?? false,
      trustedRootName: options.trustedRoot !== undefined ? 'trusted root.json' : '1.root.json',
    });
    options.signal?.throwIfAborted();

    // artifacts.json is itself a target: verified like any other before it is believed.
    const artifactsInfo = await resolveTarget(tm, readMeta, ARTIFACTS_JSON).catch((err: unknown) => {
      throw new SlipwayError('REPO_ARTIFACTS_INVALID', 'the repository has no artifacts.json target', {
        where: file,
        cause: err,
      });
    });
    const artifactsEntry = reader.get(
      `${TARGETS_PREFIX}${targetPathFor(ARTIFACTS_JSON, artifactsInfo.hashes.sha256 ?? '')}`,
    );
    if (artifactsEntry === undefined) {
      throw new SlipwayError('REPO_LAYOUT_INVALID', 'artifacts.json is not stored under its hash name', {
        where: file,
      });
    }
    const artifactsBytes = await reader.readEntry(artifactsEntry, MAX_ARTIFACTS_JSON_BYTES);
    tm.verifyTarget(ARTIFACTS_JSON, {
      length: artifactsBytes.length,
      sha256: createHash('sha256').update(artifactsBytes).digest('hex'),
    });
    const doc = parseArtifactsDocument(artifactsBytes, `${file}: artifacts.json`);

    const seen = new Map<string, string>();
    const counts = new Map<string, number>();
    const artifacts: VerifiedArtifact[] = [];
    const task = 'verify targets';
    reporter.emit({ kind: 'task-start', task, total: doc.artifacts.length });
    for (const a of doc.artifacts) {
      options.signal?.throwIfAborted();
      const where = `${file}: artifacts.json ${a.kind} ${a.name}`;
      if (!isArtifactKind(a.kind)) {
        reporter.emit({
          kind: 'log',
          level: 'warn',
          message: `${where}: unknown kind ${a.kind} (kept, not checked)`,
        });
      }
      const r = await verifyTargetEntry(reader, tm, readMeta, a.target, a.kind).catch((err: unknown) => {
        if (err instanceof SlipwayError && err.code === 'TUF_TARGET_UNKNOWN') {
          throw new SlipwayError(
            'REPO_ARTIFACTS_INVALID',
            `artifacts.json names ${a.target}, which the repository does not sign`,
            {
              where,
              cause: err,
            },
          );
        }
        throw err;
      });
      const key = `${a.kind} ${r.sha256}`;
      const prev = seen.get(key);
      if (prev !== undefined) {
        throw new SlipwayError(
          'REPO_DUPLICATE_ARTIFACT',
          `${a.kind} ${a.name} has the same hash as ${prev}`,
          { where },
        );
      }
      seen.set(key, `${a.kind} ${a.name} ${a.version}`);
      counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
      if ((SINGLE_KINDS as readonly string[]).includes(a.kind) && (counts.get(a.kind) ?? 0) > 1) {
        throw new SlipwayError('REPO_DUPLICATE_ARTIFACT', `a second ${a.kind} artifact (${a.name})`, {
          where,
        });
      }
      artifacts.push({ kind: a.kind, name: a.name, version: a.version, target: a.target, ...r });
      reporter.emit({ kind: 'task-progress', task, done: artifacts.length });
    }
    reporter.emit({ kind: 'task-end', task, ok: true });
    if (!(options.skipAllPresent ?? false)) {
      const missing = ARTIFACT_KINDS.filter((k) => !OPTIONAL_KINDS.includes(k) && !counts.has(k));
      if (missing.length > 0) {
        throw new SlipwayError('REPO_MISSING_KIND', `no artifact of kind ${missing.join(', ')}`, {
          where: file,
        });
      }
    }
    const sha256 = options.sha256 ?? (await zipHash?.result) ?? '';
    return {
      file,
      sha256,
      systemVersion: doc.system_version,
      validUntil: formatExpires(earliestExpiry(tm)),
      canonicalName: `system-update-v${doc.system_version}.zip`,
      rootVersion: tm.root.version,
      targetsVersion: tm.targets.version,
      trustedRootFromRepo: options.trustedRoot === undefined,
      artifacts,
    };
  } finally {
    await zipHash?.cancel();
    await reader.close();
  }
}
