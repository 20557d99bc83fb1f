/**
 * `slipway repo assemble`: a repository manifest → one signed TUF
 * repository zip in tufaceous' layout, plus `<zip>.sha256.txt`.
 *
 * Plan, then apply: the manifest is parsed and every input checked (files
 * exist, zones are layer images, required kinds present) before anything is
 * written. Composites are built into a private build directory (hashed as
 * they are written); plain files and fakes stream straight into the zip,
 * hashed once on the way (the zip writer names the entry after the hash).
 * Nothing appears at the output unless the whole repository was written.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ZipWriter, sha256OfFile, type ZipSource } from '../archive/zip-write.js';
import { openAtomic, writeFileAtomic } from '../core/atomic-file.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { type Reporter, silentReporter } from '../core/events.js';
import {
  ARTIFACTS_JSON,
  OPTIONAL_KINDS,
  ARTIFACT_KINDS,
  SINGLE_KINDS,
  encodeArtifactsDocument,
  encodeInstallinatorDocument,
  installinatorFileName,
  type ArtifactEntry,
  type HashedArtifact,
  type InstallinatorDocument,
} from '../formats/repo-artifacts.js';
import {
  missingKindsError,
  parseRepoManifest,
  type FileSource,
  type ManifestArtifact,
  type RepoManifest,
} from '../formats/repo-manifest.js';
import {
  buildRepositoryMetadata,
  formatExpires,
  targetPathFor,
  type Envelope,
  type RoleName,
  type RoleSigners,
  type RootMeta,
} from '../formats/tuf/index.js';
import { fakeChunks } from './fake.js';
import { fakeMember, fileMember, writeComposite, writeFakeZone, type Member } from './composite.js';
import { checkCompositeFile, isCompositeKind, readZoneIdentity } from './content.js';

export interface AssembleOptions {
  manifestFile: string;
  output: string;
  signers: RoleSigners;
  thresholds?: Partial<Record<RoleName, number>>;
  /** The clock: metadata versions (seconds since the epoch) and expiry derive from it. */
  now: Date;
  /** Validity of the metadata from `now`, in milliseconds (default one week). */
  validFor?: number;
  skipAllPresent?: boolean;
  allowNonSemver?: boolean;
  /** Generate the installinator document (default true). */
  installinatorDocument?: boolean;
  /** Use this signed root instead of making a new one from the root signers. */
  root?: Envelope<RootMeta>;
  reporter?: Reporter;
  signal?: AbortSignal;
}

export type AssembledArtifact = HashedArtifact;

export interface AssembleResult {
  output: string;
  sha256: string;
  size: number;
  systemVersion: string;
  validUntil: string;
  artifacts: AssembledArtifact[];
}

export const DEFAULT_VALIDITY_MS = 7 * 24 * 3600 * 1000;

/** What goes into the zip for one artifact. */
interface Prepared {
  artifact: ManifestArtifact;
  source: ZipSource;
  /** Known for built composites; file sources and fakes are hashed by the zip writer. */
  sha256?: string;
  /** Deployment units inside a composite: (kind, sha256) pairs that must be unique too. */
  units: { kind: string; sha256: string; what: string }[];
  hostPhase2?: string;
}

function resolveFile(manifest: RepoManifest, p: string): string {
  return path.resolve(path.dirname(manifest.file), p);
}

async function statFile(file: string, where: string): Promise<number> {
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) throw new SlipwayError('INVALID_ARGUMENT', `${file} is not a regular file`, { where });
    return st.size;
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new SlipwayError('NOT_FOUND', `no such file: ${file}`, { where });
    throw fromSystemError(err, 'cannot read', file);
  }
}

function fakeSeed(a: ManifestArtifact, part: string, s: FileSource & { kind: 'fake' }): string {
  return `slipway fake ${a.kind} ${a.name} ${s.dataVersion ?? a.version}${part === '' ? '' : ` ${part}`}`;
}

function memberOf(manifest: RepoManifest, a: ManifestArtifact, name: string, s: FileSource): Member {
  return s.kind === 'file'
    ? fileMember(name, resolveFile(manifest, s.path))
    : fakeMember(name, fakeSeed(a, name, s), s.size);
}

/** Checks every input exists (and every zone is a layer image) before anything is built. */
async function checkInputs(manifest: RepoManifest): Promise<void> {
  const where = (line: number): string => `${manifest.file}:${line}`;
  const files: { s: FileSource; line: number }[] = [];
  const composites: Promise<unknown>[] = [];
  for (const a of manifest.artifacts) {
    const src = a.source;
    if (src.kind === 'file' && isCompositeKind(a.kind)) {
      // A prebuilt composite must already pass the upload checks it will meet.
      const file = resolveFile(manifest, src.path);
      await statFile(file, where(src.line));
      const check = checkCompositeFile(file, a.kind, `${where(src.line)}: ${src.path}`);
      // Handled here too, so an earlier failure below never leaves it unhandled.
      check.catch(() => undefined);
      composites.push(check);
      continue; // stat'ed above; its content is checked by `check`
    }
    if (src.kind === 'file' || src.kind === 'fake') files.push({ s: src, line: src.line });
    else if (src.kind === 'composite-host')
      for (const i of src.images) files.push({ s: i.source, line: i.source.line });
    else if (src.kind === 'composite-rot') {
      files.push({ s: src.archiveA, line: src.archiveA.line }, { s: src.archiveB, line: src.archiveB.line });
    } else {
      for (const z of src.zones) {
        if (z.kind !== 'file') continue;
        const file = resolveFile(manifest, z.path);
        await statFile(file, where(z.line));
        await readZoneIdentity(file, where(z.line));
      }
    }
  }
  for (const { s, line } of files)
    if (s.kind === 'file') await statFile(resolveFile(manifest, s.path), where(line));
  await Promise.all(composites);
}

function checkKinds(manifest: RepoManifest, skipAllPresent: boolean): void {
  for (const kind of SINGLE_KINDS) {
    const all = manifest.artifacts.filter((a) => a.kind === kind);
    if (all.length > 1) {
      throw new SlipwayError(
        'REPO_DUPLICATE_ARTIFACT',
        `a repository holds one ${kind} artifact; found ${all.length} (${all.map((a) => a.name).join(', ')})`,
        { where: `${manifest.file}:${all[1]?.line ?? 1}` },
      );
    }
  }
  if (skipAllPresent) return;
  const present = new Set(manifest.artifacts.map((a) => a.kind));
  const missing = ARTIFACT_KINDS.filter((k) => !OPTIONAL_KINDS.includes(k) && !present.has(k));
  if (missing.length > 0) throw missingKindsError(manifest.file, missing);
}

/**
 * A `fake` source for a kind whose artifacts are composites becomes a fake
 * composite of the right shape, so a fake repository still passes every
 * upload check.
 */
export function expandFake(a: ManifestArtifact): ManifestArtifact {
  const s = a.source;
  if (s.kind !== 'fake' || !isCompositeKind(a.kind)) return a;
  const part = (size: number): FileSource => ({
    kind: 'fake',
    size,
    line: s.line,
    ...(s.dataVersion !== undefined ? { dataVersion: s.dataVersion } : {}),
  });
  const quarter = Math.floor(s.size / 4);
  if (a.kind === 'host' || a.kind === 'trampoline') {
    return {
      ...a,
      source: {
        kind: 'composite-host',
        images: [
          { file: 'image/gimlet.rom', source: part(quarter) },
          { file: 'image/cosmo.rom', source: part(quarter) },
          { file: 'image/zfs.img', source: part(s.size - 2 * quarter) },
        ],
        line: s.line,
      },
    };
  }
  if (a.kind === 'control_plane') {
    return {
      ...a,
      source: {
        kind: 'composite-control-plane',
        zones: [
          {
            kind: 'fake',
            artifactName: `${a.name}-zone`,
            fileName: `${a.name}-zone.tar.gz`,
            size: s.size,
            line: s.line,
          },
        ],
        line: s.line,
      },
    };
  }
  const half = Math.floor(s.size / 2);
  return {
    ...a,
    source: { kind: 'composite-rot', archiveA: part(half), archiveB: part(s.size - half), line: s.line },
  };
}

async function prepare(
  manifest: RepoManifest,
  original: ManifestArtifact,
  buildDir: string,
  mtime: number,
): Promise<Prepared> {
  const a = expandFake(original);
  const src = a.source;
  const out = path.join(buildDir, a.target);
  switch (src.kind) {
    case 'file': {
      const file = resolveFile(manifest, src.path);
      return { artifact: a, source: { path: file }, units: [] };
    }
    case 'fake':
      return {
        artifact: a,
        source: { stream: asAsync(fakeChunks(fakeSeed(a, '', src), src.size)), size: src.size },
        units: [],
      };
    case 'composite-host': {
      const members = src.images.map((i) => memberOf(manifest, a, i.file, i.source));
      const r = await writeComposite(out, 'os', members, { mtime });
      const units = members.map((m, i) => ({
        kind: m.name === 'image/zfs.img' ? `${a.kind}_phase_2` : `${a.kind}_phase_1`,
        sha256: r.memberSha256[i + 1] ?? '',
        what: `${a.target}:${m.name}`,
      }));
      return {
        artifact: a,
        source: { path: out },
        sha256: r.sha256,
        units,
        hostPhase2: r.memberSha256[members.length] ?? '',
      };
    }
    case 'composite-rot': {
      const members = [
        memberOf(manifest, a, 'archive-a.zip', src.archiveA),
        memberOf(manifest, a, 'archive-b.zip', src.archiveB),
      ];
      const r = await writeComposite(out, 'rot', members, { mtime });
      return {
        artifact: a,
        source: { path: out },
        sha256: r.sha256,
        units: members.map((m, i) => ({
          kind: `${a.kind}_${m.name === 'archive-a.zip' ? 'a' : 'b'}`,
          sha256: r.memberSha256[i + 1] ?? '',
          what: `${a.target}:${m.name}`,
        })),
      };
    }
    case 'composite-control-plane': {
      const zoneDir = path.join(buildDir, `${a.target}.zones`);
      await fsp.mkdir(zoneDir);
      const members: Member[] = [];
      for (const z of src.zones) {
        if (z.kind === 'file') members.push(fileMember(`zones/${z.fileName}`, resolveFile(manifest, z.path)));
        else {
          const zonePath = path.join(zoneDir, z.fileName);
          await writeFakeZone(zonePath, z.artifactName, a.version, z.size);
          members.push(fileMember(`zones/${z.fileName}`, zonePath));
        }
      }
      const r = await writeComposite(out, 'control_plane', members, { mtime });
      return {
        artifact: a,
        source: { path: out },
        sha256: r.sha256,
        units: members.map((m, i) => ({
          kind: 'zone',
          sha256: r.memberSha256[i + 1] ?? '',
          what: `${a.target}:${m.name}`,
        })),
      };
    }
  }
}

/** tufaceous' rule: no two artifacts or deployment units share (kind, hash). */
class UniqueUnits {
  readonly #seen = new Map<string, string>();

  add(kind: string, sha256: string, what: string, where: string): void {
    const key = `${kind} ${sha256}`;
    const prev = this.#seen.get(key);
    if (prev !== undefined) {
      throw new SlipwayError(
        'REPO_DUPLICATE_ARTIFACT',
        `${what} has the same kind (${kind}) and sha256 as ${prev}`,
        {
          where,
        },
      );
    }
    this.#seen.set(key, what);
  }
}

export async function assembleRepository(options: AssembleOptions): Promise<AssembleResult> {
  const reporter = options.reporter ?? silentReporter;
  let text: string;
  try {
    text = await fsp.readFile(options.manifestFile, 'utf8');
  } catch (err) {
    throw fromSystemError(err, 'cannot read manifest', options.manifestFile);
  }
  const manifest = parseRepoManifest(text, options.manifestFile, {
    allowNonSemver: options.allowNonSemver ?? false,
  });
  for (const w of manifest.warnings)
    reporter.emit({ kind: 'log', level: 'warn', message: `${w.where}: ${w.message}` });
  checkKinds(manifest, options.skipAllPresent ?? false);
  await checkInputs(manifest);
  if (!options.output.endsWith('.zip')) {
    throw new SlipwayError('INVALID_ARGUMENT', `the output must end with .zip: ${options.output}`);
  }

  const nowSeconds = Math.floor(options.now.getTime() / 1000);
  const expires = new Date(nowSeconds * 1000 + (options.validFor ?? DEFAULT_VALIDITY_MS));
  // tufaceous' mtime rule: zero when every member is fake, else the clock.
  const output = path.resolve(options.output);
  const buildDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'slipway-assemble-'));
  try {
    const task = 'build composite artifacts';
    reporter.emit({ kind: 'task-start', task });
    const prepared = await Promise.all(
      manifest.artifacts.map((a) => {
        const allFake = compositeAllFake(expandFake(a));
        return prepare(manifest, a, buildDir, allFake ? 0 : nowSeconds);
      }),
    );
    reporter.emit({ kind: 'task-end', task, ok: true });
    options.signal?.throwIfAborted();

    const zipTask = `write ${path.basename(output)}`;
    reporter.emit({ kind: 'task-start', task: zipTask });
    const file = await openAtomic(output);
    try {
      const zip = await ZipWriter.create(file);
      const units = new UniqueUnits();
      const targets: Record<string, { length: number; sha256: string }> = {};
      const assembled: AssembledArtifact[] = [];
      const installinator: InstallinatorDocument = { system_version: manifest.systemVersion, artifacts: [] };
      const addTarget = async (
        target: string,
        source: ZipSource,
      ): Promise<{ sha256: string; size: number }> => {
        const info = await zip.addEntry((sha) => `repo/targets/${targetPathFor(target, sha)}`, source);
        targets[target] = { length: info.size, sha256: info.sha256 };
        return { sha256: info.sha256, size: info.size };
      };
      for (const p of prepared) {
        options.signal?.throwIfAborted();
        const a = p.artifact;
        const info = await addTarget(a.target, p.source);
        const where = `${manifest.file}:${a.line}`;
        units.add(a.kind, info.sha256, `${a.kind} ${a.name} ${a.version}`, where);
        for (const u of p.units) units.add(u.kind, u.sha256, u.what, where);
        assembled.push({ kind: a.kind, name: a.name, version: a.version, target: a.target, ...info });
        if (p.hostPhase2 !== undefined && a.kind === 'host') {
          installinator.artifacts.push({ name: a.name, kind: 'host_phase2', hash: p.hostPhase2 });
        }
        if (a.kind === 'control_plane')
          installinator.artifacts.push({ name: a.name, kind: 'control_plane', hash: info.sha256 });
        if (a.kind === 'measurement_corpus') {
          installinator.artifacts.push({ name: a.name, kind: 'measurement_corpus', hash: info.sha256 });
        }
      }
      const entries: ArtifactEntry[] = assembled.map((a) => ({
        name: a.name,
        version: a.version,
        kind: a.kind,
        target: a.target,
      }));
      if (options.installinatorDocument ?? true) {
        const target = installinatorFileName(manifest.systemVersion);
        await addTarget(target, { data: encodeInstallinatorDocument(installinator) });
        entries.push({
          name: 'installinator_document',
          version: manifest.systemVersion,
          kind: 'installinator_document',
          target,
        });
      }
      await addTarget(ARTIFACTS_JSON, {
        data: encodeArtifactsDocument({ system_version: manifest.systemVersion, artifacts: entries }),
      });

      const metadata = await buildRepositoryMetadata({
        signers: options.signers,
        ...(options.thresholds !== undefined ? { thresholds: options.thresholds } : {}),
        ...(options.root !== undefined ? { root: options.root } : {}),
        expires,
        version: nowSeconds,
        targets,
      });
      for (const [name, bytes] of [...metadata.files].sort(
        ([x], [y]) => metadataOrder(x) - metadataOrder(y),
      )) {
        await zip.addEntry(`repo/metadata/${name}`, { data: bytes });
      }
      const { size } = await zip.finish();
      await file.commit();
      const sha256 = await sha256OfFile(output);
      await writeFileAtomic(`${output}.sha256.txt`, `${sha256}\n`);
      reporter.emit({ kind: 'task-end', task: zipTask, ok: true });
      const rootExpires = metadata.root.signed.expires;
      const validUntil = rootExpires < formatExpires(expires) ? rootExpires : formatExpires(expires);
      return {
        output,
        sha256,
        size,
        systemVersion: manifest.systemVersion,
        validUntil,
        artifacts: assembled,
      };
    } catch (err) {
      await file.abort();
      reporter.emit({ kind: 'task-end', task: zipTask, ok: false });
      throw err;
    }
  } finally {
    await fsp.rm(buildDir, { recursive: true, force: true });
  }
}

// eslint-disable-next-line @typescript-eslint/require-await -- adapts a sync generator for the zip writer
async function* asAsync<T>(it: Iterable<T>): AsyncGenerator<T> {
  yield* it;
}

function compositeAllFake(a: ManifestArtifact): boolean {
  const s = a.source;
  if (s.kind === 'composite-host') return s.images.every((i) => i.source.kind === 'fake');
  if (s.kind === 'composite-rot') return s.archiveA.kind === 'fake' && s.archiveB.kind === 'fake';
  if (s.kind === 'composite-control-plane') return s.zones.every((z) => z.kind === 'fake');
  return true;
}

/** Roots first (by version), then targets, snapshot, timestamp: the order a client reads them. */
function metadataOrder(name: string): number {
  const m = /^(\d+)\.root\.json$/.exec(name);
  if (m !== null) return Number(m[1]);
  if (name.endsWith('.targets.json')) return Number.MAX_SAFE_INTEGER - 2;
  if (name.endsWith('.snapshot.json')) return Number.MAX_SAFE_INTEGER - 1;
  return Number.MAX_SAFE_INTEGER;
}
