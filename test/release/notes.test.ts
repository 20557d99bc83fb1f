// Release notes from fragments, against vectors written by hand from the spec's rules
// (specs/release-process.md, "prepare") and the rendering documented in src/release/notes.ts:
// the renderings are in test/vectors/release-notes/ (see its README); the error cases stay here.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ErrorCode } from '../../src/core/errors.js';
import type { NotesConfig, VersionInfo } from '../../src/release/config.js';
import {
  insertSummaryEntry,
  parseAuthors,
  parseFragment,
  pluralList,
  renderReleaseNotes,
  type Author,
  type Fragment,
  type RenderNotesInput,
} from '../../src/release/notes.js';
import { rejects } from './helpers.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const vectors = path.join(repo, 'test/vectors/release-notes');

interface NotesCase {
  input: RenderNotesInput;
  /** The hand-written expected rl-<MAJOR>.md. */
  expected: string;
}

/** test/vectors/release-notes/<name>/: rl-next/*.md, change-authors.yml, case.json, existing.md?, expected.md. */
function loadCase(name: string): NotesCase {
  const dir = path.join(vectors, name);
  const read = (file: string): string => readFileSync(path.join(dir, file), 'utf8');
  const c = JSON.parse(read('case.json')) as {
    product: string;
    version: VersionInfo;
    date: string;
    links: NotesConfig['links'];
    notesFile: string;
  };
  const next = path.join(dir, 'rl-next');
  const fragments: Fragment[] = existsSync(next)
    ? readdirSync(next)
        .filter((f) => f.endsWith('.md'))
        .sort()
        .map((f) => ({ file: `rl-next/${f}`, text: read(`rl-next/${f}`) }))
    : [];
  const input: RenderNotesInput = {
    product: c.product,
    version: c.version,
    date: c.date,
    fragments,
    authors: parseAuthors(read('change-authors.yml'), 'change-authors.yml'),
    links: c.links,
    notesFile: c.notesFile,
  };
  if (existsSync(path.join(dir, 'existing.md'))) input.existing = read('existing.md');
  return { input, expected: read('expected.md') };
}

function renders(name: string): NotesCase {
  const c = loadCase(name);
  assert.equal(renderReleaseNotes(c.input), c.expected, name);
  return c;
}

// The error cases below run against the vectors' authors file and inputs.
const BASE = loadCase('entry-links-body-credits').input;
const AUTHORS: ReadonlyMap<string, Author> = BASE.authors;

function frag(file: string, meta: string, body = ''): Fragment {
  return { file: `rl-next/${file}`, text: `---\n${meta}\n---\n${body}` };
}

function render(fragments: Fragment[], v: VersionInfo = BASE.version, existing?: string): string {
  return renderReleaseNotes({
    ...BASE,
    version: v,
    fragments,
    ...(existing !== undefined ? { existing } : {}),
  });
}

test('categories in the spec order; significant first, then by file name; Miscellany by default', () => {
  renders('category-order');
});

test('an entry: synopsis with links, the body indented, credits through the authors file', () => {
  renders('entry-links-body-credits');
});

test('links without templates are plain references', () => {
  renders('links-without-templates');
});

test('a later release of the same MAJOR goes on top, under the page header kept as it was', () => {
  // One chain: each case's existing.md is what the previous one rendered.
  const first = renders('same-major-1-first');
  const second = renders('same-major-2-later');
  assert.equal(second.input.existing, first.expected);
  // No fragments: the headers alone.
  const third = renders('same-major-3-no-fragments');
  assert.equal(third.input.fragments.length, 0);
  assert.equal(third.input.existing, second.expected);
  rejects(
    () => render([], second.input.version, second.expected),
    'RELEASE_NOTES_INVALID',
    'rl-1.2.md',
    /has a section for 1\.2\.1 already/,
  );
});

test('front matter validation names the fragment (and the line for YAML errors)', () => {
  const cases: [Fragment, ErrorCode, string, RegExp][] = [
    [frag('a.md', 'category: Fixes'), 'RELEASE_NOTES_INVALID', 'rl-next/a.md', /^synopsis is required/],
    [
      frag('a.md', 'synopsis: x\nauthor: bob'),
      'RELEASE_NOTES_INVALID',
      'rl-next/a.md',
      /^unknown key author/,
    ],
    [
      frag('a.md', 'synopsis: x\ncategory: Bugs'),
      'RELEASE_NOTES_INVALID',
      'rl-next/a.md',
      /^category must be one of/,
    ],
    [
      frag('a.md', 'synopsis: x\nsignificance: huge'),
      'RELEASE_NOTES_INVALID',
      'rl-next/a.md',
      /^significance/,
    ],
    [
      frag('a.md', 'synopsis: [1, 2]'),
      'RELEASE_NOTES_INVALID',
      'rl-next/a.md',
      /^synopsis must be a one-line string/,
    ],
    [
      frag('a.md', 'synopsis: x\nissues: [gh#12]'),
      'RELEASE_NOTES_INVALID',
      'rl-next/a.md',
      /^issues: each entry/,
    ],
    [
      frag('a.md', 'synopsis: x\ncredits: [mallory]'),
      'RELEASE_UNKNOWN_AUTHOR',
      'rl-next/a.md',
      /unknown author "mallory"/,
    ],
    [
      frag('a.md', 'synopsis: x\nissues: [1,\n  cls: 2'),
      'RELEASE_NOTES_INVALID',
      'rl-next/a.md:4',
      /^invalid YAML/,
    ],
    [frag('a.md', 'synopsis: x\nsynopsis: y'), 'RELEASE_NOTES_INVALID', 'rl-next/a.md:3', /^invalid YAML/],
    [frag('a.md', '- a list'), 'RELEASE_NOTES_INVALID', 'rl-next/a.md', /must be a YAML map/],
    [
      { file: 'rl-next/a.md', text: 'synopsis: x\n' },
      'RELEASE_NOTES_INVALID',
      'rl-next/a.md:1',
      /front matter/,
    ],
    [
      { file: 'rl-next/a.md', text: '---\nsynopsis: x\n' },
      'RELEASE_NOTES_INVALID',
      'rl-next/a.md:1',
      /not closed/,
    ],
  ];
  for (const [f, code, where, message] of cases)
    rejects(() => parseFragment(f, AUTHORS), code, where, message);
  // Rendering validates every fragment: one bad one stops it.
  rejects(
    () => render([frag('a.md', 'synopsis: ok'), frag('b.md', 'synopsis: x\ncredits: zed')]),
    'RELEASE_UNKNOWN_AUTHOR',
    'rl-next/b.md',
    /"zed"/,
  );
});

test('the authors file: display name defaults to the key; bad entries name file:line', () => {
  assert.deepEqual(AUTHORS.get('dave'), { displayName: 'dave' });
  assert.deepEqual(AUTHORS.get('alice'), { displayName: 'Alice Liddell', github: 'aliddell' });
  rejects(
    () => parseAuthors('alice:\n  github: a\nbob:\n  twitter: b\n', 'authors.yml'),
    'RELEASE_CONFIG_INVALID',
    'authors.yml:3',
    /^bob: unknown key twitter/,
  );
  rejects(
    () => parseAuthors('alice:\n  url: ftp://x\n', 'authors.yml'),
    'RELEASE_CONFIG_INVALID',
    'authors.yml:1',
    /url must be an http/,
  );
  rejects(
    () => parseAuthors('alice: [\n', 'authors.yml'),
    'RELEASE_CONFIG_INVALID',
    'authors.yml:2',
    /invalid YAML/,
  );
  assert.equal(pluralList([]), '');
  assert.equal(pluralList(['A']), 'A');
  assert.equal(pluralList(['A', 'B']), 'A and B');
  assert.equal(pluralList(['A', 'B', 'C', 'D']), 'A, B, C, and D');
});

test('the summary gets the page after its marker line, once', () => {
  const summary = '# Summary\n\n- [Intro](index.md)\n<!-- rl -->\n- [Old](old.md)\n';
  const entry = '  - [Release 1.2 (2024-05-01)](release-notes/rl-1.2.md)';
  const once = insertSummaryEntry(summary, '<!-- rl -->', entry, 'SUMMARY.md');
  assert.equal(
    once,
    '# Summary\n\n- [Intro](index.md)\n<!-- rl -->\n  - [Release 1.2 (2024-05-01)](release-notes/rl-1.2.md)\n- [Old](old.md)\n',
  );
  assert.equal(insertSummaryEntry(once, '<!-- rl -->', entry, 'SUMMARY.md'), once);
  rejects(
    () => insertSummaryEntry(summary, '<!-- nope -->', entry, 'SUMMARY.md'),
    'RELEASE_CONFIG_INVALID',
    'SUMMARY.md',
    /notes\.summary_marker: no line/,
  );
});
