/**
 * TOML with source lines: the plain value of a TOML document plus, for every
 * key path, the line where it is defined, so validators can say `file:line`.
 * Pure; parsing is toml-eslint-parser's (it keeps an AST with locations).
 */
import { parseTOML, type AST } from 'toml-eslint-parser';
import { SlipwayError } from '../core/errors.js';

export interface Located {
  value: unknown;
  /** key path → 1-based line where that key (or array element / table header) is defined */
  lineOf(path: string): number | undefined;
}

export type KeySegment = string | number;

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

/** `['package', 'a.b', 'paths', 1, 'to']` → `package."a.b".paths[1].to` */
export function formatKeyPath(segments: readonly KeySegment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += (out === '' ? '' : '.') + (BARE_KEY.test(s) ? s : JSON.stringify(s));
  }
  return out;
}

type Table = Record<string, unknown>;

/**
 * The parser reports some errors where it noticed them, at the start of the
 * next line (`b =` then a newline, or end of file inside an array); the
 * mistake is on the last non-blank line before, so point there.
 */
function syntaxErrorLine(text: string, line: unknown, column: unknown, index: unknown): number {
  if (typeof line !== 'number') return 1;
  if (column !== 0 || line <= 1) return line;
  const lines = text.split(/\r?\n/);
  let prev = line - 2;
  while (prev > 0 && (lines[prev] ?? '').trim() === '') prev--;
  const atEnd = typeof index === 'number' && text.slice(index).trim() === '';
  const dangling = (lines[prev] ?? '').trim().endsWith('=');
  return atEnd || dangling ? prev + 1 : line;
}

/**
 * The line where `segments` is defined, or where its nearest defined
 * ancestor is (a missing key is reported at its table); 1 when none is.
 */
export function nearestLine(located: Located, segments: readonly KeySegment[]): number {
  for (let n = segments.length; n > 0; n--) {
    const l = located.lineOf(formatKeyPath(segments.slice(0, n)));
    if (l !== undefined) return l;
  }
  return 1;
}

export function parseTomlLocated(text: string, file: string): Located {
  let ast: AST.TOMLProgram;
  try {
    ast = parseTOML(text, { tomlVersion: '1.0' });
  } catch (err) {
    const e = err as { message?: string; lineNumber?: unknown; column?: unknown; index?: unknown };
    const line = syntaxErrorLine(text, e.lineNumber, e.column, e.index);
    throw new SlipwayError('MANIFEST_SYNTAX', `invalid TOML: ${e.message ?? String(err)}`, {
      cause: err,
      where: `${file}:${line}`,
    });
  }

  const root: Table = {};
  const lines = new Map<string, number>();
  // Implicit definitions (a prefix of a dotted key or header) keep the first line;
  // an explicit header or key takes its own line.
  const implicit = (path: readonly KeySegment[], line: number): void => {
    const k = formatKeyPath(path);
    if (!lines.has(k)) lines.set(k, line);
  };
  const explicit = (path: readonly KeySegment[], line: number): void => {
    lines.set(formatKeyPath(path), line);
  };

  const keyNames = (key: AST.TOMLKey): string[] =>
    key.keys.map((k) => (k.type === 'TOMLBare' ? k.name : k.value));

  /** Walks (creating tables as needed) to the table at `path` below `from`; the parser already rejected conflicts. */
  const descend = (from: Table, segments: readonly KeySegment[], base: KeySegment[], line: number): Table => {
    let cur: unknown = from;
    const path = [...base];
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i] as KeySegment;
      const next = segments[i + 1];
      path.push(seg);
      if (typeof seg === 'number') {
        const arr = cur as unknown[];
        arr[seg] ??= {};
        cur = arr[seg];
      } else {
        const t = cur as Table;
        t[seg] ??= typeof next === 'number' ? [] : {};
        cur = t[seg];
      }
      // Every prefix but the full path is implied here; the caller records the full path.
      if (i < segments.length - 1) implicit(path, line);
    }
    return cur as Table;
  };

  const convert = (node: AST.TOMLContentNode, path: KeySegment[]): unknown => {
    switch (node.type) {
      case 'TOMLValue':
        // Integers past 2^53 would silently lose digits as numbers.
        if (node.kind === 'integer') return Number.isSafeInteger(node.value) ? node.value : node.bigint;
        return node.value; // strings, floats, booleans; dates as a Date, like other TOML parsers
      case 'TOMLArray':
        return node.elements.map((el, i) => {
          explicit([...path, i], el.loc.start.line);
          return convert(el, [...path, i]);
        });
      case 'TOMLInlineTable': {
        const t: Table = {};
        for (const kv of node.body) keyValue(t, kv, path);
        return t;
      }
    }
  };

  function keyValue(container: Table, kv: AST.TOMLKeyValue, base: KeySegment[]): void {
    const names = keyNames(kv.key);
    const line = kv.key.loc.start.line;
    const parentNames = names.slice(0, -1);
    const parent = descend(container, parentNames, base, line);
    if (parentNames.length > 0) implicit([...base, ...parentNames], line);
    const path = [...base, ...names];
    explicit(path, line);
    parent[names[names.length - 1] as string] = convert(kv.value, path);
  }

  const top = ast.body[0];
  for (const item of top.body) {
    if (item.type === 'TOMLKeyValue') {
      keyValue(root, item, []);
      continue;
    }
    const line = item.loc.start.line;
    const path = item.resolvedKey;
    const table = descend(root, path, [], line);
    // For `[[a.b]]`, descend() recorded `a.b` (the array, first header); `a.b[i]` is this element.
    explicit(path, line);
    for (const kv of item.body) keyValue(table, kv, [...path]);
  }

  return { value: root, lineOf: (p: string) => lines.get(p) };
}
