/**
 * Release notes from fragments (specs/release-process.md, "prepare"), the
 * way Lix's build-release-notes does it. Pure: the caller reads the files.
 *
 * A fragment is `rl-next/<anything>.md`:
 *
 *   ---
 *   synopsis: Faster uploads          # required, one line
 *   issues: [12, 40]                  # optional, each: a number, "#12" or an http(s) URL
 *   prs: 57                           # optional, a scalar or a list, same forms
 *   cls: [1234]                       # optional (code-review changes), same forms
 *   category: Improvements            # optional; default Miscellany
 *   significance: significant         # optional: significant | normal (the default)
 *   credits: [alice, bob]             # optional: keys of the authors file
 *   ---
 *
 *   Body in Markdown.
 *
 * The authors file (YAML, like Lix's change-authors.yml) maps the names
 * used in `credits` to how the notes show them:
 *
 *   alice:
 *     display_name: Alice Liddell     # default: the key
 *     github: aliddell                # → [Alice Liddell](https://github.com/aliddell)
 *   bob:
 *     url: https://bob.example.org    # → [bob](https://bob.example.org); wins over github
 *
 * Rendering of rl-<MAJOR>.md (exactly):
 *
 *   # <Product> <MAJOR> "<NAME>" (<date>)      ← kept as is when the file exists already
 *
 *   # <Product> <VERSION> (<date>)
 *
 *   ## <Category>                               ← the seven categories in order; empty ones left out
 *
 *   - <synopsis> (<links>)                      ← " (…)" only with links: issues, then prs, then cls
 *
 *     <body, indented by two spaces; blank lines stay empty>
 *
 *     Many thanks to <A>, <B>, and <C> for this.   ← only with credits ("A", "A and B", "A, B, and C")
 *
 *   - <next entry>
 *
 *   <the earlier releases of this MAJOR, as they were>
 *
 * Blocks are separated by one blank line and the file ends with one newline.
 * A link is `[#N](template)` (`[cl/N](template)` for cls) with a
 * `[notes.links]` template, `#N` / `cl/N` without; a URL is shown as `<url>`.
 * Within a category, significant entries come first, then by file name.
 */
import { parseDocument } from 'yaml';
import { SlipwayError } from '../core/errors.js';
import type { NotesConfig, VersionInfo } from './config.js';

export const CATEGORIES = [
  'Breaking Changes',
  'Features',
  'Improvements',
  'Fixes',
  'Packaging',
  'Development',
  'Miscellany',
] as const;
export type Category = (typeof CATEGORIES)[number];

const KEYS = ['synopsis', 'cls', 'issues', 'prs', 'significance', 'category', 'credits'] as const;
const SIGNIFICANCE = ['significant', 'normal'];
/** Fragments and the authors file are small text; a bigger one is a mistake, not a note. */
export const MAX_FRAGMENT_BYTES = 256 * 1024;
export const MAX_AUTHORS_BYTES = 4 * 1024 * 1024;

export interface Author {
  displayName: string;
  github?: string;
  url?: string;
}

export interface Fragment {
  /** The file name (sort key) and what errors name: e.g. `doc/manual/rl-next/foo.md`. */
  file: string;
  text: string;
}

export interface NoteEntry {
  file: string;
  synopsis: string;
  body: string;
  category: Category;
  significant: boolean;
  issues: string[];
  prs: string[];
  cls: string[];
  credits: string[];
}

function invalid(message: string, where: string, cause?: unknown): SlipwayError {
  return new SlipwayError('RELEASE_NOTES_INVALID', message, {
    where,
    ...(cause !== undefined ? { cause } : {}),
  });
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** YAML text → plain value; syntax errors name file:line (`firstLine`: the line the YAML starts on). */
function parseYaml(
  text: string,
  file: string,
  firstLine: number,
  code: 'RELEASE_NOTES_INVALID' | 'RELEASE_CONFIG_INVALID',
): unknown {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err !== undefined) {
    const line = text.slice(0, err.pos[0]).split('\n').length + firstLine - 1;
    throw new SlipwayError(code, `invalid YAML: ${err.message.split('\n')[0] ?? err.code}`, {
      cause: err,
      where: `${file}:${line}`,
    });
  }
  return doc.toJS() as unknown;
}

/** Parses the authors file (see the top of this file). */
export function parseAuthors(text: string, file: string): Map<string, Author> {
  if (text.length > MAX_AUTHORS_BYTES) {
    throw new SlipwayError('RELEASE_CONFIG_INVALID', `larger than ${MAX_AUTHORS_BYTES} bytes`, {
      where: file,
    });
  }
  const v = parseYaml(text, file, 1, 'RELEASE_CONFIG_INVALID');
  const out = new Map<string, Author>();
  if (v === null || v === undefined) return out;
  const lineOf = (key: string): number => {
    const i = text.split('\n').findIndex((l) => l.startsWith(`${key}:`) || l.startsWith(`"${key}":`));
    return i < 0 ? 1 : i + 1;
  };
  if (!isMap(v))
    throw new SlipwayError('RELEASE_CONFIG_INVALID', 'must map author names to {display_name, github, url}', {
      where: `${file}:1`,
    });
  for (const [name, info] of Object.entries(v)) {
    const fail = (message: string): never => {
      throw new SlipwayError('RELEASE_CONFIG_INVALID', `${name}: ${message}`, {
        where: `${file}:${lineOf(name)}`,
      });
    };
    if (info !== null && !isMap(info)) fail('must be a map with display_name, github or url');
    const m: Record<string, unknown> = isMap(info) ? info : {};
    for (const k of Object.keys(m))
      if (!['display_name', 'github', 'url'].includes(k))
        fail(`unknown key ${k} (known: display_name, github, url)`);
    const str = (k: string): string | undefined => {
      const s = m[k];
      if (s === undefined) return undefined;
      if (typeof s !== 'string' || s.trim() === '' || /[\n\r]/.test(s))
        fail(`${k} must be a one-line string`);
      return s as string;
    };
    const github = str('github');
    if (github !== undefined && !/^[A-Za-z0-9-]+$/.test(github)) fail(`github must be a GitHub user name`);
    const url = str('url');
    if (url !== undefined && !/^https?:\/\/\S+$/.test(url)) fail('url must be an http(s) URL');
    out.set(name, {
      displayName: str('display_name') ?? name,
      ...(github !== undefined ? { github } : {}),
      ...(url !== undefined ? { url } : {}),
    });
  }
  return out;
}

/** Splits `---\n<yaml>\n---\n<body>`; the body loses leading/trailing blank lines and trailing spaces. */
function splitFrontMatter(text: string, file: string): { yaml: string; body: string } {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines[0]?.trimEnd() !== '---')
    throw invalid('a fragment starts with a YAML front matter block (a line ---)', `${file}:1`);
  const end = lines.findIndex((l, i) => i > 0 && l.trimEnd() === '---');
  if (end < 0) throw invalid('the front matter is not closed (no second --- line)', `${file}:1`);
  const body = lines.slice(end + 1).map((l) => l.trimEnd());
  while (body.length > 0 && body[0] === '') body.shift();
  while (body.length > 0 && body[body.length - 1] === '') body.pop();
  return { yaml: lines.slice(1, end).join('\n'), body: body.join('\n') };
}

/** A scalar or a list of references (issues, prs, cls), each a number, `#N` or an http(s) URL. */
function references(v: unknown, key: string, file: string): string[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? (v as unknown[]) : [v];
  return list.map((x) => {
    if (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0) return String(x);
    if (typeof x === 'string' && /^#?\d+$/.test(x)) return x.replace(/^#/, '');
    if (typeof x === 'string' && /^https?:\/\/\S+$/.test(x)) return x;
    throw invalid(`${key}: each entry is a number, "#N" or an http(s) URL, found ${JSON.stringify(x)}`, file);
  });
}

/** Parses and validates one fragment; credits are checked against `authors`. */
export function parseFragment(f: Fragment, authors: ReadonlyMap<string, Author>): NoteEntry {
  if (f.text.length > MAX_FRAGMENT_BYTES) throw invalid(`larger than ${MAX_FRAGMENT_BYTES} bytes`, f.file);
  const { yaml, body } = splitFrontMatter(f.text, f.file);
  const meta = parseYaml(yaml, f.file, 2, 'RELEASE_NOTES_INVALID');
  if (!isMap(meta)) throw invalid('the front matter must be a YAML map with at least synopsis', f.file);
  for (const k of Object.keys(meta)) {
    if (!(KEYS as readonly string[]).includes(k))
      throw invalid(`unknown key ${k} (known: ${KEYS.join(', ')})`, f.file);
  }
  const synopsis = meta.synopsis;
  if (synopsis === undefined) throw invalid('synopsis is required', f.file);
  if (typeof synopsis !== 'string' || synopsis.trim() === '' || /[\n\r]/.test(synopsis.trim())) {
    throw invalid('synopsis must be a one-line string', f.file);
  }
  const category = meta.category ?? 'Miscellany';
  if (typeof category !== 'string' || !(CATEGORIES as readonly string[]).includes(category)) {
    throw invalid(
      `category must be one of ${CATEGORIES.join(', ')}; found ${JSON.stringify(category)}`,
      f.file,
    );
  }
  const significance = meta.significance ?? 'normal';
  if (typeof significance !== 'string' || !SIGNIFICANCE.includes(significance)) {
    throw invalid(
      `significance must be significant or normal; found ${JSON.stringify(significance)}`,
      f.file,
    );
  }
  const rawCredits = meta.credits ?? [];
  const credits = Array.isArray(rawCredits) ? (rawCredits as unknown[]) : [rawCredits];
  for (const c of credits) {
    if (typeof c !== 'string' || c === '')
      throw invalid(`credits: each entry is an author's name, found ${JSON.stringify(c)}`, f.file);
    if (!authors.has(c)) {
      throw new SlipwayError(
        'RELEASE_UNKNOWN_AUTHOR',
        `credits: unknown author ${JSON.stringify(c)}: add them to the authors file`,
        {
          where: f.file,
        },
      );
    }
  }
  return {
    file: f.file,
    synopsis: synopsis.trim(),
    body,
    category: category as Category,
    significant: significance === 'significant',
    issues: references(meta.issues, 'issues', f.file),
    prs: references(meta.prs, 'prs', f.file),
    cls: references(meta.cls, 'cls', f.file),
    credits: credits as string[],
  };
}

function link(kind: 'issues' | 'prs' | 'cls', ref: string, links: NotesConfig['links']): string {
  if (/^https?:/.test(ref)) return `<${ref}>`;
  const text = kind === 'cls' ? `cl/${ref}` : `#${ref}`;
  const template = links[kind];
  return template === undefined ? text : `[${text}](${template.replace(/\{id\}/g, ref)})`;
}

function authorName(a: Author): string {
  if (a.url !== undefined) return `[${a.displayName}](${a.url})`;
  if (a.github !== undefined) return `[${a.displayName}](https://github.com/${a.github})`;
  return a.displayName;
}

/** "A", "A and B", "A, B, and C". */
export function pluralList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  if (items.length === 2) return `${items[0] ?? ''} and ${items[1] ?? ''}`;
  return `${items.slice(0, -1).join(', ')}, and ${items[items.length - 1] ?? ''}`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => (l === '' ? '' : `  ${l}`))
    .join('\n');
}

function renderEntry(
  e: NoteEntry,
  authors: ReadonlyMap<string, Author>,
  links: NotesConfig['links'],
): string {
  const refs = [
    ...e.issues.map((r) => link('issues', r, links)),
    ...e.prs.map((r) => link('prs', r, links)),
    ...e.cls.map((r) => link('cls', r, links)),
  ];
  const blocks = [`- ${e.synopsis}${refs.length > 0 ? ` (${refs.join(', ')})` : ''}`];
  if (e.body !== '') blocks.push(indent(e.body));
  if (e.credits.length > 0) {
    const names = e.credits.map((c) => {
      const a = authors.get(c);
      return a === undefined ? c : authorName(a);
    });
    blocks.push(`  Many thanks to ${pluralList(names)} for this.`);
  }
  return blocks.join('\n\n');
}

/** The categories in order, each `## Category` and its entries (significant first, then by file name). */
export function renderEntries(
  entries: readonly NoteEntry[],
  authors: ReadonlyMap<string, Author>,
  links: NotesConfig['links'],
): string {
  const sections: string[] = [];
  for (const cat of CATEGORIES) {
    const es = entries
      .filter((e) => e.category === cat)
      .sort(
        (a, b) =>
          Number(b.significant) - Number(a.significant) || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0),
      );
    if (es.length === 0) continue;
    sections.push(`## ${cat}`, ...es.map((e) => renderEntry(e, authors, links)));
  }
  return sections.join('\n\n');
}

export interface RenderNotesInput {
  /** The product's display name. */
  product: string;
  version: VersionInfo;
  /** `YYYY-MM-DD` */
  date: string;
  fragments: readonly Fragment[];
  authors: ReadonlyMap<string, Author>;
  links: NotesConfig['links'];
  /** The current rl-<MAJOR>.md, when it exists. */
  existing?: string;
  /** How errors about `existing` name it. */
  notesFile: string;
}

/** `YYYY-MM-DD` of a date, in UTC (so every machine writes the same notes for one SOURCE_DATE_EPOCH). */
export function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** The new rl-<MAJOR>.md: this release's section on top of the earlier ones of the same MAJOR. */
export function renderReleaseNotes(input: RenderNotesInput): string {
  const { product, version: v, date } = input;
  const entries = input.fragments.map((f) => parseFragment(f, input.authors));
  const minor = `# ${product} ${v.version} (${date})`;
  const existing = (input.existing ?? '').replace(/\r\n/g, '\n');
  const existingLines = existing.split('\n');
  if (existingLines.some((l) => l.startsWith(`# ${product} ${v.version} (`))) {
    throw invalid(
      `${input.notesFile} has a section for ${v.version} already: this release was prepared before`,
      input.notesFile,
    );
  }
  let header = `# ${product} ${v.major} "${v.name}" (${date})`;
  let rest = existing;
  // A later release of the same MAJOR keeps the page's first header (and its date).
  if ((existingLines[0] ?? '').startsWith(`# ${product} ${v.major} `)) {
    header = existingLines[0] ?? header;
    rest = existingLines.slice(1).join('\n');
  }
  const blocks = [header, minor];
  const body = renderEntries(entries, input.authors, input.links);
  if (body !== '') blocks.push(body);
  if (rest.trim() !== '') blocks.push(rest.trim());
  return `${blocks.join('\n\n')}\n`;
}

/**
 * The docs summary with `entry` on the line after `marker` (the first
 * release of a MAJOR). Unchanged when the entry is there already.
 */
export function insertSummaryEntry(text: string, marker: string, entry: string, file: string): string {
  const lines = text.split('\n');
  if (lines.some((l) => l.trimEnd() === entry.trimEnd())) return text;
  const i = lines.findIndex((l) => l.trim() === marker.trim());
  if (i < 0) {
    throw new SlipwayError(
      'RELEASE_CONFIG_INVALID',
      `notes.summary_marker: no line ${JSON.stringify(marker)} in ${file}`,
      {
        where: file,
      },
    );
  }
  lines.splice(i + 1, 0, entry);
  return lines.join('\n');
}
