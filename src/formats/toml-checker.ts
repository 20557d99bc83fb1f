/**
 * Checks a TOML document's values one key at a time, so every error names
 * file:line and the key path, and unknown keys become warnings. Shared by
 * the manifest formats; pure.
 */
import { type ErrorCode, SlipwayError } from '../core/errors.js';
import { formatKeyPath, nearestLine, type KeySegment, type Located } from './toml-located.js';

export interface ManifestWarning {
  where: string /* file:line */;
  key: string;
  message: string;
}

type Table = Record<string, unknown>;
type Path = readonly KeySegment[];

export function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** How a value reads in "must be X, found Y". */
export function describe(v: unknown): string {
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'number' || typeof v === 'bigint') return 'a number';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date-time';
  return 'a table';
}

/** Validation state for one file: where each key is, and the warnings so far. */
export class TomlChecker {
  readonly warnings: ManifestWarning[] = [];

  constructor(
    readonly file: string,
    private readonly located: Located,
    /** The code of every validation error (each file format has its own). */
    readonly code: ErrorCode = 'MANIFEST_INVALID',
  ) {}

  /** The line of `path`, or of its nearest ancestor that has one (a missing key → its table). */
  line(path: Path): number {
    return nearestLine(this.located, path);
  }

  where(path: Path): string {
    return `${this.file}:${this.line(path)}`;
  }

  fail(path: Path, message: string): never {
    throw new SlipwayError(this.code, `${formatKeyPath(path)}: ${message}`, {
      where: this.where(path),
    });
  }

  /** Warns about every key of `t` not in `known`; serde ignores them, so do we, loudly. */
  unknownKeys(t: Table, path: Path, known: readonly string[]): void {
    for (const k of Object.keys(t)) {
      if (known.includes(k)) continue;
      const key = formatKeyPath([...path, k]);
      this.warnings.push({
        where: this.where([...path, k]),
        key,
        message: `${key}: unknown key (ignored)`,
      });
    }
  }

  table(v: unknown, path: Path): Table {
    if (!isTable(v)) this.fail(path, `must be a table, found ${describe(v)}`);
    return v;
  }

  required(t: Table, key: string, path: Path): unknown {
    const v = t[key];
    if (v === undefined) this.fail([...path, key], 'required key is missing');
    return v;
  }

  string(v: unknown, path: Path): string {
    if (typeof v !== 'string') this.fail(path, `must be a string, found ${describe(v)}`);
    return v;
  }

  boolean(v: unknown, path: Path): boolean {
    if (typeof v !== 'boolean') this.fail(path, `must be a boolean, found ${describe(v)}`);
    return v;
  }

  array(v: unknown, path: Path): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `must be an array, found ${describe(v)}`);
    return v;
  }

  requiredString(t: Table, key: string, path: Path): string {
    return this.string(this.required(t, key, path), [...path, key]);
  }

  optionalString(t: Table, key: string, path: Path): string | undefined {
    const v = t[key];
    return v === undefined ? undefined : this.string(v, [...path, key]);
  }

  stringMap(v: unknown, path: Path): Record<string, string> {
    const t = this.table(v, path);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(t)) out[k] = this.string(val, [...path, k]);
    return out;
  }
}
