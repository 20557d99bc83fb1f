// Release notes from fragments, against vectors written by hand from the spec's rules
// (specs/release-process.md, "prepare") and the rendering documented in src/release/notes.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import type { VersionInfo } from '../../src/release/config.js';
import {
  insertSummaryEntry,
  parseAuthors,
  parseFragment,
  pluralList,
  renderReleaseNotes,
  type Fragment,
} from '../../src/release/notes.js';

const AUTHORS = parseAuthors(
  `alice:
  display_name: Alice Liddell
  github: aliddell
bob:
  display_name: Bob
carol:
  display_name: Carol
  url: https://carol.example.org
dave: {}
`,
  'change-authors.yml',
);
const LINKS = {
  issues: 'https://git.example/widget/issues/{id}',
  prs: 'https://git.example/widget/pulls/{id}',
  cls: 'https://review.example/c/{id}',
};
const V120: VersionInfo = { version: '1.2.0', major: '1.2', name: 'Harbor', official: false };
const V121: VersionInfo = { version: '1.2.1', major: '1.2', name: 'Harbor', official: false };

function frag(file: string, meta: string, body = ''): Fragment {
  return { file: `rl-next/${file}`, text: `---\n${meta}\n---\n${body}` };
}

function render(fragments: Fragment[], v = V120, existing?: string, date = '2024-05-01'): string {
  return renderReleaseNotes({
    product: 'Widget',
    version: v,
    date,
    fragments,
    authors: AUTHORS,
    links: LINKS,
    ...(existing !== undefined ? { existing } : {}),
    notesFile: 'rl-1.2.md',
  });
}

function rejects(fn: () => unknown, code: ErrorCode, where: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSlipwayError(err, code), `expected ${code}, got ${String(err)}`);
    assert.equal(err.where, where);
    assert.match(err.message, message);
    return true;
  });
}

test('categories in the spec order; significant first, then by file name; Miscellany by default', () => {
  const fragments = [
    frag('zz-misc.md', 'synopsis: Tidy the logs'),
    frag('b-fix.md', 'synopsis: Fix B\ncategory: Fixes'),
    frag('a-fix.md', 'synopsis: Fix A\ncategory: Fixes'),
    frag('c-fix.md', 'synopsis: Fix C (important)\ncategory: Fixes\nsignificance: significant'),
    frag('dev.md', 'synopsis: Faster CI\ncategory: Development'),
    frag('break.md', 'synopsis: Drop the v1 API\ncategory: Breaking Changes'),
    frag('pkg.md', 'synopsis: Debian packages\ncategory: Packaging\nsignificance: normal'),
    frag('feat.md', 'synopsis: Gizmos\ncategory: Features'),
    frag('impr.md', 'synopsis: Quicker spin-up\ncategory: Improvements'),
  ];
  assert.equal(
    render(fragments),
    `# Widget 1.2 "Harbor" (2024-05-01)

# Widget 1.2.0 (2024-05-01)

## Breaking Changes

- Drop the v1 API

## Features

- Gizmos

## Improvements

- Quicker spin-up

## Fixes

- Fix C (important)

- Fix A

- Fix B

## Packaging

- Debian packages

## Development

- Faster CI

## Miscellany

- Tidy the logs
`,
  );
});

test('an entry: synopsis with links, the body indented, credits through the authors file', () => {
  const fragments = [
    frag(
      'spin.md',
      'synopsis: Sprockets spin up twice as fast\nissues: [12, "#13"]\nprs: 57\ncls: [1234]\ncategory: Improvements\ncredits: [alice, bob, carol]',
      '\nSpinning up reuses the warm cache.\n\n```sh\nwidget spin\n```\n\n',
    ),
    frag(
      'solo.md',
      'synopsis: One credit\ncategory: Improvements\ncredits: dave\nissues: https://elsewhere.example/i/9',
    ),
    frag('two.md', 'synopsis: Two credits\ncategory: Improvements\ncredits: [bob, dave]'),
  ];
  assert.equal(
    render(fragments),
    `# Widget 1.2 "Harbor" (2024-05-01)

# Widget 1.2.0 (2024-05-01)

## Improvements

- One credit (<https://elsewhere.example/i/9>)

  Many thanks to dave for this.

- Sprockets spin up twice as fast ([#12](https://git.example/widget/issues/12), [#13](https://git.example/widget/issues/13), [#57](https://git.example/widget/pulls/57), [cl/1234](https://review.example/c/1234))

  Spinning up reuses the warm cache.

  \`\`\`sh
  widget spin
  \`\`\`

  Many thanks to [Alice Liddell](https://github.com/aliddell), Bob, and [Carol](https://carol.example.org) for this.

- Two credits

  Many thanks to Bob and dave for this.
`,
  );
});

test('links without templates are plain references', () => {
  const out = renderReleaseNotes({
    product: 'Widget',
    version: V120,
    date: '2024-05-01',
    fragments: [frag('x.md', 'synopsis: X\nissues: 1\nprs: 2\ncls: 3')],
    authors: AUTHORS,
    links: {},
    notesFile: 'rl-1.2.md',
  });
  assert.equal(
    out,
    `# Widget 1.2 "Harbor" (2024-05-01)

# Widget 1.2.0 (2024-05-01)

## Miscellany

- X (#1, #2, cl/3)
`,
  );
});

test('a later release of the same MAJOR goes on top, under the page header kept as it was', () => {
  const first = render([frag('a.md', 'synopsis: First feature\ncategory: Features')]);
  const second = render([frag('b.md', 'synopsis: A fix\ncategory: Fixes')], V121, first, '2024-06-02');
  assert.equal(
    second,
    `# Widget 1.2 "Harbor" (2024-05-01)

# Widget 1.2.1 (2024-06-02)

## Fixes

- A fix

# Widget 1.2.0 (2024-05-01)

## Features

- First feature
`,
  );
  // No fragments: the headers alone.
  assert.equal(
    render([], { ...V121, version: '1.2.2' }, second, '2024-07-03'),
    second.replace(
      '# Widget 1.2.1 (2024-06-02)',
      '# Widget 1.2.2 (2024-07-03)\n\n# Widget 1.2.1 (2024-06-02)',
    ),
  );
  rejects(
    () => render([], V121, second),
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
