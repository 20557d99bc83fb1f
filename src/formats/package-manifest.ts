/**
 * Omicron's package-manifest.toml (specs/package-manifest.md), read the way
 * omicron-package's serde model reads it, then checked further: every error
 * names file:line and the key path, unknown keys are warnings. Pure.
 */
import { SlipwayError } from '../core/errors.js';
import { type ManifestWarning, TomlChecker } from './toml-checker.js';
import { formatKeyPath, parseTomlLocated, type KeySegment } from './toml-located.js';

export type { ManifestWarning } from './toml-checker.js';

export interface MappedPath {
  from: string;
  to: string;
  line: number;
}

export type PackageSource =
  | {
      type: 'local';
      paths: MappedPath[];
      rust?: { binaryNames: string[]; release: boolean; line: number };
      blobs: { path: string; line: number }[];
      buildomatBlobs: {
        repo: string;
        series: string;
        commit: string;
        artifact: string;
        sha256: string;
        line: number;
      }[];
    }
  | { type: 'prebuilt'; repo: string; commit: string; sha256: string }
  | { type: 'composite'; packages: { file: string; line: number }[] }
  | { type: 'manual' };

export interface PackageSpec {
  name: string;
  serviceName: string;
  line: number;
  source: PackageSource;
  output: { type: 'zone'; intermediateOnly: boolean } | { type: 'tarball' };
  onlyForTargets?: Record<string, string>;
  setupHint?: string;
}

export interface PackageManifest {
  file: string;
  packages: PackageSpec[] /* sorted by name */;
  presets: Record<string, Record<string, string>>;
  warnings: ManifestWarning[];
}

export type Target = Record<string, string>;

export const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]*$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const SOURCE_TYPES = ['local', 'prebuilt', 'composite', 'manual'] as const;
const OUTPUT_TYPES = ['zone', 'tarball'] as const;

type Table = Record<string, unknown>;
type Path = readonly KeySegment[];

/** The package manifest's checks on top of the shared ones. */
class Checker extends TomlChecker {
  name(v: string, path: Path, what: string): string {
    if (!NAME_PATTERN.test(v))
      this.fail(path, `invalid ${what} ${JSON.stringify(v)}: must match ${NAME_PATTERN.source}`);
    return v;
  }

  sha256(v: string, path: Path): string {
    if (!SHA256_HEX.test(v))
      this.fail(path, `must be 64 hexadecimal digits (a SHA-256), found ${JSON.stringify(v)}`);
    // Lowercase so later comparisons with computed digests are plain string equality.
    return v.toLowerCase();
  }

  /** A `{{key}}` template must be well formed even before a target is known. */
  template(v: string, path: Path): string {
    templateParts(v, (msg) => this.fail(path, msg));
    return v;
  }
}

type TemplatePart = { text: string } | { key: string };

/** Splits `a{{k}}b` into parts; `fail` gets the message for a malformed template. */
function templateParts(text: string, fail: (message: string) => never): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{{', i);
    if (open < 0) {
      parts.push({ text: text.slice(i) });
      break;
    }
    if (open > i) parts.push({ text: text.slice(i, open) });
    const close = text.indexOf('}}', open + 2);
    if (close < 0) fail(`unclosed "{{" in ${JSON.stringify(text)}`);
    const key = text.slice(open + 2, close);
    if (key === '' || key.includes('{{')) fail(`bad "{{key}}" in ${JSON.stringify(text)}`);
    parts.push({ key });
    i = close + 2;
  }
  return parts;
}

function parseSource(c: Checker, v: unknown, path: Path, zone: boolean): PackageSource {
  const t = c.table(v, path);
  const type = c.requiredString(t, 'type', path);
  const key = (k: string): KeySegment[] => [...path, k];
  switch (type) {
    case 'local': {
      c.unknownKeys(t, path, ['type', 'paths', 'rust', 'blobs', 'buildomat_blobs']);
      // serde(default): a local package may have no paths at all.
      const paths = (t.paths === undefined ? [] : c.array(t.paths, key('paths'))).map((el, i) => {
        const p = [...path, 'paths', i];
        const pt = c.table(el, p);
        c.unknownKeys(pt, p, ['from', 'to']);
        const from = c.template(c.requiredString(pt, 'from', p), [...p, 'from']);
        const to = c.template(c.requiredString(pt, 'to', p), [...p, 'to']);
        if (zone && !to.startsWith('/')) c.fail([...p, 'to'], 'must be an absolute path');
        return { from, to, line: c.line(p) };
      });
      const out: PackageSource = { type: 'local', paths, blobs: [], buildomatBlobs: [] };
      if (t.rust !== undefined) {
        const p = key('rust');
        const rt = c.table(t.rust, p);
        c.unknownKeys(rt, p, ['binary_names', 'release']);
        const names = c.array(c.required(rt, 'binary_names', p), [...p, 'binary_names']);
        const binaryNames = names.map((n, i) => c.string(n, [...p, 'binary_names', i]));
        const release = c.boolean(c.required(rt, 'release', p), [...p, 'release']);
        out.rust = { binaryNames, release, line: c.line(p) };
      }
      if (t.blobs !== undefined) {
        out.blobs = c.array(t.blobs, key('blobs')).map((b, i) => {
          const p = [...path, 'blobs', i];
          return { path: c.template(c.string(b, p), p), line: c.line(p) };
        });
      }
      if (t.buildomat_blobs !== undefined) {
        out.buildomatBlobs = c.array(t.buildomat_blobs, key('buildomat_blobs')).map((b, i) => {
          const p = [...path, 'buildomat_blobs', i];
          const bt = c.table(b, p);
          c.unknownKeys(bt, p, ['repo', 'series', 'commit', 'artifact', 'sha256']);
          return {
            repo: c.requiredString(bt, 'repo', p),
            series: c.requiredString(bt, 'series', p),
            commit: c.requiredString(bt, 'commit', p),
            artifact: c.requiredString(bt, 'artifact', p),
            sha256: c.sha256(c.requiredString(bt, 'sha256', p), [...p, 'sha256']),
            line: c.line(p),
          };
        });
      }
      return out;
    }
    case 'prebuilt':
      c.unknownKeys(t, path, ['type', 'repo', 'commit', 'sha256']);
      return {
        type: 'prebuilt',
        repo: c.requiredString(t, 'repo', path),
        commit: c.requiredString(t, 'commit', path),
        sha256: c.sha256(c.requiredString(t, 'sha256', path), key('sha256')),
      };
    case 'composite': {
      c.unknownKeys(t, path, ['type', 'packages']);
      const list = c.array(c.required(t, 'packages', path), key('packages'));
      const packages = list.map((el, i) => {
        const p = [...path, 'packages', i];
        const file = c.string(el, p);
        if (!file.endsWith('.tar.gz') && !file.endsWith('.tar'))
          c.fail(
            p,
            `must be a package output file name ending in .tar.gz or .tar, found ${JSON.stringify(file)}`,
          );
        return { file, line: c.line(p) };
      });
      return { type: 'composite', packages };
    }
    case 'manual':
      c.unknownKeys(t, path, ['type']);
      return { type: 'manual' };
    default:
      return c.fail(
        key('type'),
        `unknown source type ${JSON.stringify(type)} (expected one of ${SOURCE_TYPES.join(', ')})`,
      );
  }
}

function parseOutput(c: Checker, v: unknown, path: Path): PackageSpec['output'] {
  const t = c.table(v, path);
  const type = c.requiredString(t, 'type', path);
  if (type === 'zone') {
    c.unknownKeys(t, path, ['type', 'intermediate_only']);
    const io = t.intermediate_only;
    return {
      type: 'zone',
      intermediateOnly: io === undefined ? false : c.boolean(io, [...path, 'intermediate_only']),
    };
  }
  if (type === 'tarball') {
    c.unknownKeys(t, path, ['type']);
    return { type: 'tarball' };
  }
  return c.fail(
    [...path, 'type'],
    `unknown output type ${JSON.stringify(type)} (expected one of ${OUTPUT_TYPES.join(', ')})`,
  );
}

function parsePackage(c: Checker, name: string, v: unknown): PackageSpec {
  const path = ['package', name];
  c.name(name, path, 'package name');
  const t = c.table(v, path);
  c.unknownKeys(t, path, ['service_name', 'source', 'output', 'only_for_targets', 'setup_hint']);
  const serviceName = c.name(
    c.requiredString(t, 'service_name', path),
    [...path, 'service_name'],
    'service name',
  );
  // Output first: whether `to` paths must be absolute depends on it.
  const output = parseOutput(c, c.required(t, 'output', path), [...path, 'output']);
  const source = parseSource(c, c.required(t, 'source', path), [...path, 'source'], output.type === 'zone');
  const spec: PackageSpec = { name, serviceName, line: c.line(path), source, output };
  if (t.only_for_targets !== undefined)
    spec.onlyForTargets = c.stringMap(t.only_for_targets, [...path, 'only_for_targets']);
  const hint = c.optionalString(t, 'setup_hint', path);
  if (hint !== undefined) spec.setupHint = hint;
  return spec;
}

/** Composite references: existing outputs, no self-inclusion, no cycles. */
function checkComposites(c: Checker, packages: PackageSpec[]): void {
  const byOutput = new Map<string, PackageSpec>();
  const folded = new Map<string, PackageSpec>();
  for (const p of packages) {
    const out = outputFileName(p);
    // Names differing only in case collide on case-insensitive file systems (macOS).
    const other = folded.get(out.toLowerCase());
    if (other !== undefined)
      c.fail(
        ['package', p.name],
        `output file ${out} collides with ${outputFileName(other)} of package.${other.name} (output names must differ by more than case)`,
      );
    folded.set(out.toLowerCase(), p);
    byOutput.set(out, p);
  }
  const edges = new Map<string, { to: string; index: number }[]>();
  for (const p of packages) {
    if (p.source.type !== 'composite') continue;
    const list: { to: string; index: number }[] = [];
    p.source.packages.forEach(({ file }, index) => {
      const at = ['package', p.name, 'source', 'packages', index];
      const target = byOutput.get(file);
      if (target === undefined)
        c.fail(at, `no package in this manifest has output file ${JSON.stringify(file)}`);
      if (target === p) c.fail(at, `composite package ${p.name} includes itself`);
      list.push({ to: target.name, index });
    });
    edges.set(p.name, list);
  }
  // Depth-first search in name order so the reported cycle is deterministic.
  const state = new Map<string, 'active' | 'done'>();
  const stack: { name: string; index: number }[] = [];
  const visit = (name: string): void => {
    state.set(name, 'active');
    for (const e of edges.get(name) ?? []) {
      stack.push({ name, index: e.index });
      const s = state.get(e.to);
      if (s === 'active') {
        const start = stack.findIndex((f) => f.name === e.to);
        const cycle = [...stack.slice(start).map((f) => f.name), e.to];
        const first = stack[start] as { name: string; index: number };
        c.fail(
          ['package', first.name, 'source', 'packages', first.index],
          `composite packages form a cycle: ${cycle.join(' → ')}`,
        );
      }
      if (s === undefined) visit(e.to);
      stack.pop();
    }
    state.set(name, 'done');
  };
  for (const name of [...edges.keys()].sort()) if (!state.has(name)) visit(name);
}

export function parsePackageManifest(text: string, file: string): PackageManifest {
  const located = parseTomlLocated(text, file);
  const c = new Checker(file, located);
  const root = located.value as Table;
  c.unknownKeys(root, [], ['package', 'target']);

  const packages: PackageSpec[] = [];
  if (root.package !== undefined) {
    const pt = c.table(root.package, ['package']);
    for (const name of Object.keys(pt).sort(byCodePoint)) packages.push(parsePackage(c, name, pt[name]));
  }

  const presets: Record<string, Record<string, string>> = {};
  if (root.target !== undefined) {
    const tt = c.table(root.target, ['target']);
    c.unknownKeys(tt, ['target'], ['preset']);
    if (tt.preset !== undefined) {
      const pt = c.table(tt.preset, ['target', 'preset']);
      for (const name of Object.keys(pt).sort(byCodePoint))
        presets[name] = c.stringMap(pt[name], ['target', 'preset', name]);
    }
  }

  checkComposites(c, packages);
  return { file, packages, presets, warnings: c.warnings };
}

/** BTreeMap order (omicron-package's), independent of locale. */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Target words → target map: `key=value`, or a preset name (bare, as the CLI's
 * `--target dev` passes it, or as `--target NAME` / `--target=NAME`). Applied
 * left to right, so later words override earlier ones.
 */
export function resolveTarget(manifest: PackageManifest, words: string[]): Target {
  const target: Target = {};
  const bad = (message: string): never => {
    throw new SlipwayError('INVALID_ARGUMENT', message, { where: manifest.file });
  };
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    let preset: string | undefined;
    if (word === '--target') {
      preset = words[++i];
      if (preset === undefined) bad('--target needs a preset name');
    } else if (word.startsWith('--target=')) {
      preset = word.slice('--target='.length);
    } else if (!word.includes('=')) {
      preset = word;
    }
    if (preset !== undefined) {
      const values = Object.hasOwn(manifest.presets, preset) ? manifest.presets[preset] : undefined;
      if (values === undefined) {
        const known = Object.keys(manifest.presets);
        bad(
          `unknown target preset ${JSON.stringify(preset)} (presets: ${known.length > 0 ? known.join(', ') : 'none defined'})`,
        );
      }
      Object.assign(target, values);
      continue;
    }
    const eq = word.indexOf('=');
    if (eq === 0) bad(`target word ${JSON.stringify(word)} has an empty key (expected key=value)`);
    target[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return target;
}

/** Packages whose only_for_targets all match the target (every key/value must equal the target's). */
export function packagesForTarget(manifest: PackageManifest, target: Target): PackageSpec[] {
  return manifest.packages.filter((p) =>
    Object.entries(p.onlyForTargets ?? {}).every(([k, v]) => Object.hasOwn(target, k) && target[k] === v),
  );
}

/** `{{key}}` substitution; a missing key or an unclosed `{{` is an error naming file:line and the key path. */
export function interpolate(text: string, target: Target, where: string, keyPath: string): string {
  const fail = (message: string): never => {
    throw new SlipwayError('MANIFEST_INVALID', `${keyPath}: ${message}`, { where });
  };
  return templateParts(text, fail)
    .map((part) => {
      if ('text' in part) return part.text;
      const value = Object.hasOwn(target, part.key) ? target[part.key] : undefined;
      if (value === undefined) {
        const keys = Object.keys(target);
        return fail(
          `target has no key ${JSON.stringify(part.key)} (used in ${JSON.stringify(text)}; target has: ${keys.length > 0 ? keys.join(', ') : 'no keys'})`,
        );
      }
      return value;
    })
    .join('');
}

/** A local package's paths with `{{key}}` replaced from the target. */
export function interpolatePaths(manifest: PackageManifest, pkg: PackageSpec, target: Target): MappedPath[] {
  if (pkg.source.type !== 'local') return [];
  return pkg.source.paths.map((p, i) => {
    const where = `${manifest.file}:${p.line}`;
    const key = formatKeyPath(['package', pkg.name, 'source', 'paths', i]);
    return {
      from: interpolate(p.from, target, where, `${key}.from`),
      to: interpolate(p.to, target, where, `${key}.to`),
      line: p.line,
    };
  });
}

export function outputFileName(pkg: PackageSpec): string {
  return pkg.output.type === 'zone' ? `${pkg.name}.tar.gz` : `${pkg.name}.tar`;
}
