/**
 * Version and checksum files that pin prerequisites (tools/*_version,
 * tools/*_checksums, permslip lists; specs/package-manifest.md). Pure.
 */
import { SlipwayError } from '../core/errors.js';

export interface ShellVar {
  value: string;
  line: number;
}

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

function invalid(message: string, where: string): SlipwayError {
  return new SlipwayError('VERSION_FILE_INVALID', message, { where });
}

function lines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r?\n/);
}

/**
 * `KEY="value"` lines, quotes optional, split on the first `=`. Blank lines
 * and `#` comments are skipped; a later assignment wins, as in a shell.
 */
export function parseShellVars(text: string, file: string): Map<string, ShellVar> {
  const vars = new Map<string, ShellVar>();
  lines(text).forEach((raw, i) => {
    const line = i + 1;
    const where = `${file}:${line}`;
    // These files are sourced by shell scripts, so `export KEY=…` is fair game.
    const s = raw.trim().replace(/^export\s+/, '');
    if (s === '' || s.startsWith('#')) return;
    const eq = s.indexOf('=');
    if (eq < 0) throw invalid(`expected KEY="value", found ${JSON.stringify(raw)}`, where);
    const key = s.slice(0, eq);
    if (!VAR_NAME.test(key)) throw invalid(`${JSON.stringify(key)} is not a variable name`, where);
    vars.set(key, { value: unquote(s.slice(eq + 1), key, where), line });
  });
  return vars;
}

/** Strips one pair of single or double quotes; a trailing `# comment` is allowed. */
function unquote(v: string, key: string, where: string): string {
  const q = v[0];
  if (q === '"' || q === "'") {
    const end = v.indexOf(q, 1);
    if (end < 0) throw invalid(`${key}: unterminated ${q === '"' ? 'double' : 'single'} quote`, where);
    const rest = v.slice(end + 1).trim();
    if (rest !== '' && !rest.startsWith('#'))
      throw invalid(`${key}: unexpected text after the closing quote: ${JSON.stringify(rest)}`, where);
    return v.slice(1, end);
  }
  const comment = v.search(/\s#/);
  const value = (comment < 0 ? v : v.slice(0, comment)).trim();
  if (/\s/.test(value)) throw invalid(`${key}: a value with spaces must be quoted`, where);
  return value;
}

export function requireVar(vars: Map<string, ShellVar>, key: string, file: string): string {
  const v = vars.get(key);
  if (v === undefined) {
    const has = [...vars.keys()];
    throw invalid(`${file}: no key ${key} (has: ${has.length > 0 ? has.join(', ') : 'nothing'})`, file);
  }
  return v.value;
}

/** A file holding only a version string (one non-empty line, trailing newline optional). */
export function parseBareVersion(text: string, file: string): string {
  let version: string | undefined;
  lines(text).forEach((raw, i) => {
    const s = raw.trim();
    if (s === '') return;
    const where = `${file}:${i + 1}`;
    if (version !== undefined)
      throw invalid(`expected a single version line, found another: ${JSON.stringify(s)}`, where);
    if (/\s/.test(s)) throw invalid(`a version has no spaces, found ${JSON.stringify(s)}`, where);
    version = s;
  });
  if (version === undefined) throw invalid(`${file}: empty, expected a version string`, file);
  return version;
}

/**
 * `<sha256> <name>` lines (a permslip list, or `sha256sum` output) → name → sha256 (lowercase).
 * A name listed twice is an error: which digest would be pinned is ambiguous.
 */
export function parseChecksumList(text: string, file: string): Map<string, string> {
  const out = new Map<string, string>();
  lines(text).forEach((raw, i) => {
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) return;
    const where = `${file}:${i + 1}`;
    const m = /^(\S+)[ \t]+(.+)$/.exec(s);
    if (m === null) throw invalid(`expected "<sha256> <name>", found ${JSON.stringify(raw)}`, where);
    const [, digest = '', rawName = ''] = m;
    if (!SHA256_HEX.test(digest))
      throw invalid(`not a SHA-256 (64 hex digits): ${JSON.stringify(digest)}`, where);
    // sha256sum marks binary mode with a leading `*` on the name.
    const name = rawName.startsWith('*') ? rawName.slice(1) : rawName;
    if (out.has(name)) throw invalid(`${name} is listed twice`, where);
    out.set(name, digest.toLowerCase());
  });
  return out;
}
