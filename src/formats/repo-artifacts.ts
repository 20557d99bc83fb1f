/**
 * The artifact kinds of an Oxide update repository and the two documents
 * that describe its targets: artifacts.json and the installinator document
 * (specs/tuf-repo.md). Pure: encoders give the exact bytes, parsers take
 * untrusted bytes.
 */
import { SlipwayError } from '../core/errors.js';

/** Every kind, in the order artifacts.json lists them. */
export const ARTIFACT_KINDS = [
  'gimlet_sp',
  'gimlet_rot',
  'gimlet_rot_bootloader',
  'host',
  'trampoline',
  'installinator_document',
  'control_plane',
  'zone',
  'measurement_corpus',
  'psc_sp',
  'psc_rot',
  'psc_rot_bootloader',
  'switch_sp',
  'switch_rot',
  'switch_rot_bootloader',
] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

/** Kinds a repository may lack without `--skip-all-present`. */
export const OPTIONAL_KINDS: readonly ArtifactKind[] = [
  'zone',
  'installinator_document',
  'measurement_corpus',
];

/** Kinds of which a repository holds at most one artifact. */
export const SINGLE_KINDS: readonly ArtifactKind[] = ['host', 'trampoline', 'control_plane'];

export function isArtifactKind(v: unknown): v is ArtifactKind {
  return typeof v === 'string' && (ARTIFACT_KINDS as readonly string[]).includes(v);
}

export function kindOrder(kind: string): number {
  const i = (ARTIFACT_KINDS as readonly string[]).indexOf(kind);
  return i < 0 ? ARTIFACT_KINDS.length : i;
}

export interface ArtifactEntry {
  name: string;
  version: string;
  kind: string;
  target: string;
}

/** An artifact with its target's sha256 and size: what assemble writes, verify finds and the upload store keeps. */
export interface HashedArtifact extends ArtifactEntry {
  sha256: string;
  size: number;
}

export interface ArtifactsDocument {
  system_version: string;
  artifacts: ArtifactEntry[];
}

export const ARTIFACTS_JSON = 'artifacts.json';

/** `{kind}-{name}-{version}.tar.gz`, the target name of one artifact. */
export function targetNameOf(kind: string, name: string, version: string): string {
  return `${kind}-${name}-${version}.tar.gz`;
}

/** Sorts by kind order (stable within a kind) and writes 2-space JSON without a trailing newline. */
export function encodeArtifactsDocument(doc: ArtifactsDocument): Buffer {
  const artifacts = [...doc.artifacts]
    .map((a, i) => ({ a, i }))
    .sort((x, y) => kindOrder(x.a.kind) - kindOrder(y.a.kind) || x.i - y.i)
    .map(({ a }) => ({ name: a.name, version: a.version, kind: a.kind, target: a.target }));
  return Buffer.from(JSON.stringify({ system_version: doc.system_version, artifacts }, null, 2), 'utf8');
}

function field(obj: Record<string, unknown>, key: string, where: string, at: string): string {
  const v = obj[key];
  if (typeof v !== 'string' || v === '') {
    throw new SlipwayError('REPO_ARTIFACTS_INVALID', `${at}.${key} must be a non-empty string`, { where });
  }
  return v;
}

export function parseArtifactsDocument(bytes: Uint8Array, where = ARTIFACTS_JSON): ArtifactsDocument {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new SlipwayError('REPO_ARTIFACTS_INVALID', `not valid JSON: ${(err as Error).message}`, {
      where,
      cause: err,
    });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SlipwayError('REPO_ARTIFACTS_INVALID', 'must be a JSON object', { where });
  }
  const obj = value as Record<string, unknown>;
  const system_version = field(obj, 'system_version', where, '$');
  if (!Array.isArray(obj.artifacts)) {
    throw new SlipwayError('REPO_ARTIFACTS_INVALID', '$.artifacts must be an array', { where });
  }
  const artifacts = obj.artifacts.map((a: unknown, i): ArtifactEntry => {
    const at = `$.artifacts[${i}]`;
    if (typeof a !== 'object' || a === null || Array.isArray(a)) {
      throw new SlipwayError('REPO_ARTIFACTS_INVALID', `${at} must be an object`, { where });
    }
    const e = a as Record<string, unknown>;
    return {
      name: field(e, 'name', where, at),
      version: field(e, 'version', where, at),
      kind: field(e, 'kind', where, at),
      target: field(e, 'target', where, at),
    };
  });
  return { system_version, artifacts };
}

export type InstallinatorKind = 'host_phase2' | 'control_plane' | 'measurement_corpus';

export interface InstallinatorDocument {
  system_version: string;
  artifacts: { name: string; kind: InstallinatorKind; hash: string }[];
}

export function installinatorFileName(systemVersion: string): string {
  return `installinator_document-${systemVersion}.json`;
}

/** Pretty JSON as serde_json::to_writer_pretty writes it (2 spaces, no trailing newline). */
export function encodeInstallinatorDocument(doc: InstallinatorDocument): Buffer {
  return Buffer.from(JSON.stringify(doc, null, 2), 'utf8');
}
