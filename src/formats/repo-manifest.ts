/**
 * The repository manifest (tufaceous-compatible TOML, specs/tuf-repo.md):
 * the system version and, per artifact kind, the artifacts with their
 * sources. Pure: paths stay as written (relative to the manifest's
 * directory); every error names file:line and the key path.
 */
import { SlipwayError } from '../core/errors.js';
import { parseSize } from '../core/size.js';
import {
  ARTIFACT_KINDS,
  type ArtifactKind,
  isArtifactKind,
  kindOrder,
  targetNameOf,
} from './repo-artifacts.js';
import { type ManifestWarning, isTable, TomlChecker } from './toml-checker.js';
import { parseTomlLocated, type KeySegment } from './toml-located.js';

/** A single file: one on disk, or deterministic filler bytes. */
export type FileSource =
  | { kind: 'file'; path: string; line: number }
  | { kind: 'fake'; size: number; dataVersion?: string; line: number };

export type ZoneSource =
  | { kind: 'file'; path: string; fileName: string; line: number }
  | { kind: 'fake'; artifactName: string; fileName: string; size: number; line: number };

export type ArtifactSource =
  | FileSource
  | {
      kind: 'composite-host';
      /** Archive path → source: `image/gimlet.rom`, `image/cosmo.rom` (or `image/rom`), `image/zfs.img`. */
      images: { file: string; source: FileSource }[];
      line: number;
    }
  | { kind: 'composite-rot'; archiveA: FileSource; archiveB: FileSource; line: number }
  | { kind: 'composite-control-plane'; zones: ZoneSource[]; line: number };

export interface ManifestArtifact {
  kind: ArtifactKind;
  name: string;
  version: string;
  source: ArtifactSource;
  target: string;
  line: number;
}

export interface RepoManifest {
  file: string;
  systemVersion: string;
  /** In artifacts.json order: by kind, then as written. */
  artifacts: ManifestArtifact[];
  warnings: ManifestWarning[];
}

export interface RepoManifestOptions {
  /** tufaceous' --allow-non-semver: artifact versions need not be semver (the character rule still holds). */
  allowNonSemver?: boolean;
}

// semver.org's regular expression (2.0.0), anchored.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const VERSION_CHARS = /^[0-9A-Za-z.+_-]{1,63}$/;
/** Names end up in target file names: no separators, no leading dot. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const ZONE_FILE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\.tar\.gz$/;

export function isSemver(v: string): boolean {
  return SEMVER.test(v);
}

type Path = readonly KeySegment[];
type Table = Record<string, unknown>;

class Checker extends TomlChecker {
  size(t: Table, path: Path): number {
    const v = this.required(t, 'size', path);
    const p = [...path, 'size'];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
    if (typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    if (typeof v !== 'string') return this.fail(p, 'must be a size like "1MiB" or a number of bytes');
    try {
      return parseSize(v, 'size');
    } catch (err) {
      return this.fail(p, (err as Error).message);
    }
  }

  named(v: string, path: Path, re: RegExp, what: string): string {
    if (!re.test(v)) this.fail(path, `invalid ${what} ${JSON.stringify(v)}: must match ${re.source}`);
    return v;
  }

  version(v: string, path: Path, allowNonSemver: boolean): string {
    if (!VERSION_CHARS.test(v)) {
      this.fail(path, `invalid version ${JSON.stringify(v)}: 1 to 63 characters of 0-9 A-Z a-z . + _ -`);
    }
    if (!allowNonSemver && !isSemver(v)) {
      this.fail(path, `${JSON.stringify(v)} is not a semantic version (use --allow-non-semver to allow it)`);
    }
    return v;
  }
}

function fileSource(c: Checker, v: unknown, path: Path): FileSource {
  const line = c.line(path);
  // The short form: a path string.
  if (typeof v === 'string') return { kind: 'file', path: c.named(v, path, /./, 'path'), line };
  const t = c.table(v, path);
  const kind = c.requiredString(t, 'kind', path);
  if (kind === 'file') {
    c.unknownKeys(t, path, ['kind', 'path']);
    const p = c.requiredString(t, 'path', path);
    if (p === '') c.fail([...path, 'path'], 'must not be empty');
    return { kind: 'file', path: p, line };
  }
  if (kind === 'fake') {
    c.unknownKeys(t, path, ['kind', 'size', 'data_version']);
    const dataVersion = c.optionalString(t, 'data_version', path);
    return {
      kind: 'fake',
      size: c.size(t, path),
      ...(dataVersion === undefined ? {} : { dataVersion }),
      line,
    };
  }
  return c.fail([...path, 'kind'], `must be "file" or "fake", found ${JSON.stringify(kind)}`);
}

const HOST_IMAGES: [key: string, file: string][] = [
  ['gimlet_phase_1', 'image/gimlet.rom'],
  ['cosmo_phase_1', 'image/cosmo.rom'],
  ['phase_1', 'image/rom'],
  ['phase_2', 'image/zfs.img'],
];

function zoneSource(c: Checker, v: unknown, path: Path): ZoneSource {
  const t = c.table(v, path);
  const line = c.line(path);
  const kind = c.requiredString(t, 'kind', path);
  if (kind === 'file') {
    c.unknownKeys(t, path, ['kind', 'path', 'file_name']);
    const p = c.requiredString(t, 'path', path);
    const base = p.split('/').pop() ?? p;
    const fileName = c.optionalString(t, 'file_name', path) ?? base;
    c.named(
      fileName,
      [...path, t.file_name === undefined ? 'path' : 'file_name'],
      ZONE_FILE,
      'zone file name',
    );
    return { kind: 'file', path: p, fileName, line };
  }
  if (kind === 'fake') {
    c.unknownKeys(t, path, ['kind', 'artifact_name', 'file_name', 'size']);
    const artifactName = c.named(
      c.requiredString(t, 'artifact_name', path),
      [...path, 'artifact_name'],
      NAME,
      'name',
    );
    const fileName = c.named(
      c.requiredString(t, 'file_name', path),
      [...path, 'file_name'],
      ZONE_FILE,
      'zone file name',
    );
    return { kind: 'fake', artifactName, fileName, size: c.size(t, path), line };
  }
  return c.fail([...path, 'kind'], `must be "file" or "fake", found ${JSON.stringify(kind)}`);
}

function artifactSource(c: Checker, kind: ArtifactKind, v: unknown, path: Path): ArtifactSource {
  const t = c.table(v, path);
  const line = c.line(path);
  const sourceKind = c.requiredString(t, 'kind', path);
  switch (sourceKind) {
    case 'file':
    case 'fake':
      return fileSource(c, t, path);
    case 'composite-host': {
      if (kind !== 'host' && kind !== 'trampoline') {
        c.fail([...path, 'kind'], `a composite-host source is only for host and trampoline, not ${kind}`);
      }
      c.unknownKeys(t, path, ['kind', ...HOST_IMAGES.map(([k]) => k)]);
      const images: { file: string; source: FileSource }[] = [];
      for (const [key, file] of HOST_IMAGES) {
        if (t[key] !== undefined) images.push({ file, source: fileSource(c, t[key], [...path, key]) });
      }
      if (t.phase_1 !== undefined && (t.gimlet_phase_1 !== undefined || t.cosmo_phase_1 !== undefined)) {
        c.fail([...path, 'phase_1'], 'give either phase_1 or gimlet_phase_1/cosmo_phase_1, not both');
      }
      if (images.length === 0 || images[images.length - 1]?.file !== 'image/zfs.img') {
        c.fail([...path, 'phase_2'], 'required key is missing');
      }
      if (images.length < 2)
        c.fail(
          [...path, 'phase_1'],
          'a phase-1 image is required (gimlet_phase_1, cosmo_phase_1 or phase_1)',
        );
      return { kind: 'composite-host', images, line };
    }
    case 'composite-rot': {
      if (!['gimlet_rot', 'psc_rot', 'switch_rot'].includes(kind)) {
        c.fail([...path, 'kind'], `a composite-rot source is only for the *_rot kinds, not ${kind}`);
      }
      c.unknownKeys(t, path, ['kind', 'archive_a', 'archive_b']);
      return {
        kind: 'composite-rot',
        archiveA: fileSource(c, c.required(t, 'archive_a', path), [...path, 'archive_a']),
        archiveB: fileSource(c, c.required(t, 'archive_b', path), [...path, 'archive_b']),
        line,
      };
    }
    case 'composite-control-plane': {
      if (kind !== 'control_plane') {
        c.fail([...path, 'kind'], `a composite-control-plane source is only for control_plane, not ${kind}`);
      }
      c.unknownKeys(t, path, ['kind', 'zones']);
      const zones = c
        .array(c.required(t, 'zones', path), [...path, 'zones'])
        .map((z, i) => zoneSource(c, z, [...path, 'zones', i]));
      const files = new Map<string, number>();
      const names = new Map<string, number>();
      zones.forEach((z, i) => {
        const prev = files.get(z.fileName);
        if (prev !== undefined)
          c.fail(
            [...path, 'zones', i],
            `zone file name ${JSON.stringify(z.fileName)} is also used by zones[${prev}]`,
          );
        files.set(z.fileName, i);
        if (z.kind === 'fake') {
          const p = names.get(z.artifactName);
          if (p !== undefined)
            c.fail(
              [...path, 'zones', i, 'artifact_name'],
              `artifact name ${JSON.stringify(z.artifactName)} is also used by zones[${p}]`,
            );
          names.set(z.artifactName, i);
        }
      });
      return { kind: 'composite-control-plane', zones, line };
    }
    default:
      return c.fail(
        [...path, 'kind'],
        `unknown source kind ${JSON.stringify(sourceKind)} (file, fake, composite-host, composite-rot, composite-control-plane)`,
      );
  }
}

export function parseRepoManifest(
  text: string,
  file: string,
  options: RepoManifestOptions = {},
): RepoManifest {
  const located = parseTomlLocated(text, file);
  const c: Checker = new Checker(file, located, 'REPO_MANIFEST_INVALID');
  const root = c.table(located.value, []);
  c.unknownKeys(root, [], ['system_version', 'artifact']);
  const systemVersion = c.requiredString(root, 'system_version', []);
  if (!isSemver(systemVersion))
    c.fail(['system_version'], `${JSON.stringify(systemVersion)} is not a semantic version`);
  const artifacts: ManifestArtifact[] = [];
  const byTarget = new Map<string, string>();
  const artifactTable = root.artifact === undefined ? {} : c.table(root.artifact, ['artifact']);
  for (const [kind, list] of Object.entries(artifactTable)) {
    const kpath = ['artifact', kind];
    if (!isArtifactKind(kind)) {
      c.fail(kpath, `unknown artifact kind ${JSON.stringify(kind)} (one of ${ARTIFACT_KINDS.join(', ')})`);
    }
    if (kind === 'installinator_document') {
      c.fail(kpath, 'the installinator document is generated by assembly; it cannot be given');
    }
    const entries = c.array(list, kpath);
    for (const [i, entry] of entries.entries()) {
      const path = [...kpath, i];
      if (!isTable(entry)) c.fail(path, 'must be a table ([[artifact.KIND]])');
      c.unknownKeys(entry, path, ['name', 'version', 'source']);
      const name = c.named(c.requiredString(entry, 'name', path), [...path, 'name'], NAME, 'artifact name');
      const version = c.version(
        c.requiredString(entry, 'version', path),
        [...path, 'version'],
        options.allowNonSemver ?? false,
      );
      const source = artifactSource(c, kind, c.required(entry, 'source', path), [...path, 'source']);
      const target = targetNameOf(kind, name, version);
      const prev = byTarget.get(target);
      if (prev !== undefined) {
        c.fail(path, `${kind} ${JSON.stringify(name)} version ${version} is given twice (also at ${prev})`);
      }
      byTarget.set(target, c.where(path));
      artifacts.push({ kind, name, version, source, target, line: c.line(path) });
    }
  }
  artifacts.sort((a, b) => kindOrder(a.kind) - kindOrder(b.kind));
  return { file, systemVersion, artifacts, warnings: c.warnings };
}

/** Raised by assembly (not parsing) when a required kind is absent. */
export function missingKindsError(file: string, missing: readonly string[]): SlipwayError {
  return new SlipwayError(
    'REPO_MISSING_KIND',
    `no artifact of kind ${missing.join(', ')} (every kind but zone, installinator_document and measurement_corpus is required; --skip-all-present skips this check)`,
    { where: file },
  );
}
