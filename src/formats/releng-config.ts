/**
 * releng.toml: what `slipway releng DIR` builds into the update repository —
 * the package manifest and the zones of the control plane, the host and
 * trampoline OS images, the firmware, and the repository's settings. Pure;
 * paths stay relative to the file's directory; errors name file:line.
 */
import { parseSize } from '../core/size.js';
import { type ArtifactKind, isArtifactKind } from './repo-artifacts.js';
import { TomlChecker, type ManifestWarning } from './toml-checker.js';
import { parseTomlLocated, type KeySegment } from './toml-located.js';

/** A phase-2 ramdisk: a raw image file, or a directory packed into a deterministic tar. */
export type RamdiskSource = { kind: 'image'; path: string } | { kind: 'dir'; path: string };

export interface OsImageConfig {
  /** `host` or `trampoline`. */
  kind: 'host' | 'trampoline';
  name: string;
  ramdisk: RamdiskSource;
  /** Phase-1 ROM files (archive name → path), e.g. image/gimlet.rom. */
  phase1: { file: string; path: string }[];
  /** mkimage -N / -D / -s. */
  imageName: string;
  dataset: string;
  targetMiB?: number;
  line: number;
}

export type FirmwareSource =
  { kind: 'fake'; size: number } | { kind: 'prereq'; name: string } | { kind: 'file'; path: string };

export interface FirmwareConfig {
  kind: ArtifactKind;
  name: string;
  version: string;
  source: FirmwareSource;
  line: number;
}

export interface RelengConfig {
  file: string;
  major: number;
  packageManifest: string;
  target: string[];
  /** Zone packages (by name) in the control-plane composite, in order. */
  zones: string[];
  os: OsImageConfig[];
  firmware: FirmwareConfig[];
  prereqs?: string;
  prereqVars: Record<string, string>;
  repo: { output: string; expiry?: string; systemVersion?: string };
  warnings: ManifestWarning[];
}

type Path = readonly KeySegment[];
type Table = Record<string, unknown>;

const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

function ramdisk(c: TomlChecker, t: Table, path: Path): RamdiskSource {
  const v = c.table(c.required(t, 'ramdisk', path), [...path, 'ramdisk']);
  const p = [...path, 'ramdisk'];
  c.unknownKeys(v, p, ['image', 'dir']);
  const image = c.optionalString(v, 'image', p);
  const dir = c.optionalString(v, 'dir', p);
  if ((image === undefined) === (dir === undefined))
    c.fail(p, 'give exactly one of image = "RAW" or dir = "DIR"');
  return image !== undefined ? { kind: 'image', path: image } : { kind: 'dir', path: dir ?? '' };
}

function osImage(c: TomlChecker, kind: 'host' | 'trampoline', v: unknown): OsImageConfig {
  const path = ['os', kind];
  const t = c.table(v, path);
  c.unknownKeys(t, path, ['name', 'ramdisk', 'phase_1', 'image_name', 'dataset', 'size_mib']);
  const phase1Table = c.table(c.required(t, 'phase_1', path), [...path, 'phase_1']);
  const phase1: { file: string; path: string }[] = [];
  for (const [board, p] of Object.entries(phase1Table)) {
    if (!['gimlet', 'cosmo'].includes(board))
      c.fail([...path, 'phase_1', board], 'phase-1 ROMs are for gimlet or cosmo');
    phase1.push({ file: `image/${board}.rom`, path: c.string(p, [...path, 'phase_1', board]) });
  }
  if (phase1.length === 0)
    c.fail([...path, 'phase_1'], 'at least one phase-1 ROM (gimlet = "…" or cosmo = "…")');
  const size = t.size_mib;
  if (size !== undefined && (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0)) {
    c.fail([...path, 'size_mib'], 'must be a positive integer');
  }
  return {
    kind,
    name: c.optionalString(t, 'name', path) ?? kind,
    ramdisk: ramdisk(c, t, path),
    phase1,
    imageName: c.optionalString(t, 'image_name', path) ?? kind,
    dataset: c.optionalString(t, 'dataset', path) ?? `rpool/ROOT/${kind}`,
    ...(typeof size === 'number' ? { targetMiB: size } : {}),
    line: c.line(path),
  };
}

function firmware(c: TomlChecker, v: unknown, i: number): FirmwareConfig {
  const path = ['firmware', i];
  const t = c.table(v, path);
  c.unknownKeys(t, path, ['kind', 'name', 'version', 'source']);
  const kind = c.requiredString(t, 'kind', path);
  if (
    !isArtifactKind(kind) ||
    ['host', 'trampoline', 'control_plane', 'installinator_document', 'zone'].includes(kind)
  ) {
    c.fail([...path, 'kind'], `${JSON.stringify(kind)} is not a firmware artifact kind`);
  }
  const name = c.requiredString(t, 'name', path);
  if (!NAME.test(name)) c.fail([...path, 'name'], `invalid name ${JSON.stringify(name)}`);
  const version = c.requiredString(t, 'version', path);
  const sp = [...path, 'source'];
  const s = c.table(c.required(t, 'source', path), sp);
  const sk = c.requiredString(s, 'kind', sp);
  let source: FirmwareSource;
  if (sk === 'fake') {
    c.unknownKeys(s, sp, ['kind', 'size']);
    const size = c.requiredString(s, 'size', sp);
    try {
      source = { kind: 'fake', size: parseSize(size, 'size') };
    } catch (err) {
      return c.fail([...sp, 'size'], (err as Error).message);
    }
  } else if (sk === 'prereq') {
    c.unknownKeys(s, sp, ['kind', 'name']);
    source = { kind: 'prereq', name: c.requiredString(s, 'name', sp) };
  } else if (sk === 'file') {
    c.unknownKeys(s, sp, ['kind', 'path']);
    source = { kind: 'file', path: c.requiredString(s, 'path', sp) };
  } else {
    return c.fail([...sp, 'kind'], `must be "fake", "prereq" or "file", found ${JSON.stringify(sk)}`);
  }
  return { kind, name, version, source, line: c.line(path) };
}

export function parseRelengConfig(text: string, file: string): RelengConfig {
  const located = parseTomlLocated(text, file);
  const c: TomlChecker = new TomlChecker(file, located, 'MANIFEST_INVALID');
  const root = c.table(located.value, []);
  c.unknownKeys(root, [], ['release', 'packages', 'os', 'firmware', 'prereqs', 'repo']);
  const release = c.table(c.required(root, 'release', []), ['release']);
  c.unknownKeys(release, ['release'], ['major', 'system_version']);
  const major = release.major;
  if (typeof major !== 'number' || !Number.isSafeInteger(major) || major < 0) {
    c.fail(['release', 'major'], 'must be a non-negative integer');
  }
  const packages = c.table(c.required(root, 'packages', []), ['packages']);
  c.unknownKeys(packages, ['packages'], ['manifest', 'target', 'zones']);
  const target =
    packages.target === undefined
      ? []
      : c
          .array(packages.target, ['packages', 'target'])
          .map((v, i) => c.string(v, ['packages', 'target', i]));
  const zones = c
    .array(c.required(packages, 'zones', ['packages']), ['packages', 'zones'])
    .map((v, i) => c.string(v, ['packages', 'zones', i]));
  if (zones.length === 0) c.fail(['packages', 'zones'], 'the control plane needs at least one zone');
  const osTable = c.table(c.required(root, 'os', []), ['os']);
  c.unknownKeys(osTable, ['os'], ['host', 'trampoline']);
  const os = (['host', 'trampoline'] as const).map((k) => osImage(c, k, c.required(osTable, k, ['os'])));
  const fw =
    root.firmware === undefined ? [] : c.array(root.firmware, ['firmware']).map((v, i) => firmware(c, v, i));
  const prereqs = root.prereqs === undefined ? undefined : c.table(root.prereqs, ['prereqs']);
  if (prereqs !== undefined) c.unknownKeys(prereqs, ['prereqs'], ['file', 'vars']);
  const repo = root.repo === undefined ? {} : c.table(root.repo, ['repo']);
  c.unknownKeys(repo, ['repo'], ['output', 'expiry']);
  const systemVersion = c.optionalString(release, 'system_version', ['release']);
  const expiry = c.optionalString(repo, 'expiry', ['repo']);
  const prereqFile = prereqs === undefined ? undefined : c.optionalString(prereqs, 'file', ['prereqs']);
  return {
    file,
    major,
    packageManifest: c.requiredString(packages, 'manifest', ['packages']),
    target,
    zones,
    os,
    firmware: fw,
    ...(prereqFile !== undefined ? { prereqs: prereqFile } : {}),
    prereqVars: prereqs?.vars === undefined ? {} : c.stringMap(prereqs.vars, ['prereqs', 'vars']),
    repo: {
      output: c.optionalString(repo, 'output', ['repo']) ?? 'repo.zip',
      ...(expiry !== undefined ? { expiry } : {}),
      ...(systemVersion !== undefined ? { systemVersion } : {}),
    },
    warnings: c.warnings,
  };
}
