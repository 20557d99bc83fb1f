// prepare → tag → build with the real git CLI, in copies of examples/release with a bare remote.
// Every refusal asserts its code AND that nothing changed: HEAD, branch, tags, status, files.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import { buildRelease } from '../../src/release/build.js';
import { prepareRelease } from '../../src/release/prepare.js';
import { uploadRelease } from '../../src/release/publish.js';
import { tagRelease } from '../../src/release/tag.js';
import {
  checkBuildFiles,
  checkLatestManifest,
  parseReleaseManifest,
  type BuildEntry,
} from '../../src/release/upload-plan.js';
import { snapshot, tempDir } from '../helpers/tmp.js';
import { GIT_TEST_ENV } from './helpers.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const tmp = tempDir('slipway-release-');

const ENV: NodeJS.ProcessEnv = { ...process.env, ...GIT_TEST_ENV };

function git(dir: string, ...args: string[]): string {
  return execFileSync('/usr/bin/git', ['-C', dir, ...args], { env: ENV, encoding: 'utf8' }).trim();
}

/** A fresh product repository from the example, committed on main, with a bare `origin`. */
function product(edit?: (dir: string) => void): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'widget-'));
  fs.cpSync(path.join(repoRoot, 'examples/release'), dir, { recursive: true });
  edit?.(dir);
  const remote = `${dir}.git`;
  execFileSync('/usr/bin/git', ['-c', 'init.defaultBranch=main', 'init', '-q', '--bare', remote], {
    env: ENV,
  });
  git(dir, '-c', 'init.defaultBranch=main', 'init', '-q');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'widget');
  git(dir, 'remote', 'add', 'origin', remote);
  return dir;
}

/** Everything a step could change: refs, HEAD, status and the files (outside .git). */
function state(dir: string): Record<string, unknown> {
  const files = Object.fromEntries(
    Object.entries(snapshot(dir)).filter(([k]) => k !== '.git' && !k.startsWith('.git/')),
  );
  return {
    head: git(dir, 'rev-parse', 'HEAD'),
    branch: git(dir, 'rev-parse', '--abbrev-ref', 'HEAD'),
    refs: git(dir, 'for-each-ref', '--format=%(refname) %(objectname)'),
    status: git(dir, 'status', '--porcelain'),
    files,
  };
}

async function refuses(
  dir: string,
  step: () => Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
): Promise<void> {
  const before = state(dir);
  await assert.rejects(step, (err: unknown) => {
    assert.ok(isSlipwayError(err, code), `expected ${code}, got ${String(err)}`);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
  assert.deepEqual(state(dir), before, 'nothing changed');
}

function entries(filesDir: string): { entries: BuildEntry[]; checksums: Map<string, string> } {
  const checksums = new Map<string, string>();
  const list = fs
    .readdirSync(filesDir)
    .sort()
    .map((name): BuildEntry => {
      const p = path.join(filesDir, name);
      const data = fs.readFileSync(p);
      if (name.endsWith('.sha256')) checksums.set(name, data.toString('utf8'));
      return { name, kind: 'file', size: data.length, sha256: sha256(data) };
    });
  return { entries: list, checksums };
}

function sha256(data: Buffer): string {
  return execFileSync('sha256sum', [], { input: data, encoding: 'utf8' }).split(' ')[0] ?? '';
}

const NOTES = `# Widget 1.2 "Harbor" (2024-05-01)

# Widget 1.2.0 (2024-05-01)

## Features

- \`widget --gizmo\` picks the gizmo type

  The default stays \`round\`.

  Many thanks to Bob and [Carol](https://carol.example.org) for this.

## Improvements

- Sprockets spin up twice as fast ([#12](https://github.com/example/widget/issues/12), [#57](https://github.com/example/widget/pull/57))

  Spinning up now reuses the warm cache instead of starting cold.

  Many thanks to [Alice Liddell](https://github.com/aliddell) for this.

## Fixes

- Fix a typo in \`widget --help\`
`;

test('prepare → tag → build on the example: notes, the git dance, a complete reproducible build', async () => {
  const dir = product();
  const base = git(dir, 'rev-parse', 'HEAD');

  // Dry runs print plans and change nothing.
  const before = state(dir);
  const dryPrepare = await prepareRelease({ dir, env: ENV, dryRun: true });
  assert.deepEqual(dryPrepare.plan.fragments, [
    'doc/manual/rl-next/faster-spin.md',
    'doc/manual/rl-next/gizmo-flag.md',
    'doc/manual/rl-next/typo.md',
  ]);
  assert.equal(dryPrepare.notes, NOTES);
  assert.deepEqual(state(dir), before);

  // prepare: one commit with the notes page, the summary line, the fragments gone.
  const prepared = await prepareRelease({ dir, env: ENV });
  assert.equal(git(dir, 'rev-parse', 'HEAD^'), base);
  assert.equal(git(dir, 'log', '-1', '--format=%s'), 'release notes: 1.2.0');
  assert.equal(prepared.commit, git(dir, 'rev-parse', 'HEAD'));
  assert.equal(fs.readFileSync(path.join(dir, 'doc/manual/src/release-notes/rl-1.2.md'), 'utf8'), NOTES);
  assert.equal(
    git(dir, 'show', '--name-status', '--format=', 'HEAD'),
    [
      'D\tdoc/manual/rl-next/faster-spin.md',
      'D\tdoc/manual/rl-next/gizmo-flag.md',
      'D\tdoc/manual/rl-next/typo.md',
      'M\tdoc/manual/src/SUMMARY.md',
      'A\tdoc/manual/src/release-notes/rl-1.2.md',
    ].join('\n'),
  );
  assert.match(
    fs.readFileSync(path.join(dir, 'doc/manual/src/SUMMARY.md'), 'utf8'),
    /<!-- release notes: new pages below -->\n {2}- \[Release 1\.2 \(2024-05-01\)\]\(release-notes\/rl-1\.2\.md\)\n/,
  );
  assert.equal(git(dir, 'status', '--porcelain'), '');

  // build before the tag: refused, and no output directory appears.
  await refuses(dir, () => buildRelease({ dir, env: ENV }), 'RELEASE_NOT_ON_TAG', /no tag 1\.2\.0/);
  assert.equal(fs.existsSync(path.join(dir, 'out')), false);

  // tag: dry run first, then the dance.
  const notesCommit = git(dir, 'rev-parse', 'HEAD');
  const beforeTag = state(dir);
  const dryTag = await tagRelease({ dir, env: ENV, dryRun: true });
  assert.equal(dryTag.plan.branch, 'main');
  assert.equal(dryTag.plan.steps.length, 8);
  assert.deepEqual(state(dir), beforeTag);
  const tagged = await tagRelease({ dir, env: ENV });
  const release = git(dir, 'rev-parse', '1.2.0^{commit}');
  assert.equal(tagged.releaseCommit, release);
  assert.equal(git(dir, 'cat-file', '-t', 'refs/tags/1.2.0'), 'tag', 'an annotated tag');
  assert.equal(
    git(dir, 'for-each-ref', '--format=%(contents:subject)', 'refs/tags/1.2.0'),
    'Release 1.2.0 "Harbor"',
  );
  assert.equal(git(dir, 'log', '-1', '--format=%s', release), 'release: 1.2.0 "Harbor"');
  assert.equal(git(dir, 'rev-parse', `${release}^`), notesCommit);
  assert.match(git(dir, 'show', `${release}:version.json`), /"official_release": true/);
  // The branch: a merge of the tag whose tree is the branch's own (-s ours), still not official.
  const merge = git(dir, 'rev-parse', 'refs/heads/main');
  assert.equal(tagged.mergeCommit, merge);
  assert.equal(git(dir, 'rev-list', '--parents', '-n', '1', merge), `${merge} ${notesCommit} ${release}`);
  assert.equal(git(dir, 'rev-parse', `${merge}^{tree}`), git(dir, 'rev-parse', `${notesCommit}^{tree}`));
  assert.match(git(dir, 'show', 'main:version.json'), /"official_release": false/);
  // HEAD: detached on the tag, clean.
  assert.equal(git(dir, 'rev-parse', 'HEAD'), release);
  assert.equal(git(dir, 'rev-parse', '--abbrev-ref', 'HEAD'), 'HEAD');
  assert.equal(git(dir, 'describe', '--tags'), '1.2.0');
  assert.equal(git(dir, 'status', '--porcelain'), '');

  // build: dry run changes nothing; then a build the upload's own checks accept.
  const beforeBuild = state(dir);
  const dryBuild = await buildRelease({ dir, env: ENV, dryRun: true });
  assert.deepEqual(dryBuild.plan.files, [
    'widget-1.2.0-aarch64-linux.tar.gz',
    'widget-1.2.0-x86_64-linux.tar.gz',
    'widget-1.2.0.tar.gz',
  ]);
  assert.deepEqual(state(dir), beforeBuild);
  const envNoEpoch = { ...ENV };
  delete envNoEpoch.SOURCE_DATE_EPOCH; // the build takes the commit time
  const built = await buildRelease({ dir, env: envNoEpoch });
  const out = path.join(dir, 'out/release/1.2.0');
  assert.equal(built.plan.out, out);
  assert.deepEqual(fs.readdirSync(out).sort(), ['docs', 'files', 'latest.json', 'oci']);
  const filesDir = path.join(out, 'files');
  const manifestText = fs.readFileSync(path.join(filesDir, 'manifest.json'), 'utf8');
  const manifest = parseReleaseManifest(manifestText, 'files/manifest.json');
  assert.deepEqual(
    { ...manifest, files: manifest.files.map((f) => f.name) },
    {
      product: 'widget',
      version: '1.2.0',
      major: '1.2',
      official: true,
      commit: release,
      name: 'Harbor',
      files: ['widget-1.2.0-aarch64-linux.tar.gz', 'widget-1.2.0-x86_64-linux.tar.gz', 'widget-1.2.0.tar.gz'],
    },
  );
  const { entries: list, checksums } = entries(filesDir);
  checkBuildFiles({
    dir: 'files',
    manifest,
    expect: { product: 'widget', version: '1.2.0', major: '1.2', official: true },
    entries: list,
    checksums,
  });
  const latestText = fs.readFileSync(path.join(out, 'latest.json'), 'utf8');
  checkLatestManifest(latestText, '1.2.0', 'latest.json');
  assert.deepEqual(JSON.parse(latestText), {
    product: 'widget',
    version: '1.2.0',
    major: '1.2',
    official: true,
    commit: release,
    manifest: 'widget/widget-1.2.0/manifest.json',
    manifestSha256: sha256(Buffer.from(manifestText)),
  });
  execFileSync(
    'sha256sum',
    ['--quiet', '-c', ...fs.readdirSync(filesDir).filter((f) => f.endsWith('.sha256'))],
    {
      cwd: filesDir,
    },
  );
  // The source tarball: git archive of the tag under widget-1.2.0/.
  const names = execFileSync('tar', ['-tzf', path.join(filesDir, 'widget-1.2.0.tar.gz')], {
    encoding: 'utf8',
  })
    .split('\n')
    .filter((n) => n !== '');
  assert.ok(names.every((n) => n.startsWith('widget-1.2.0/')));
  assert.ok(names.includes('widget-1.2.0/release.toml'));
  assert.equal(
    execFileSync('tar', ['-xzOf', path.join(filesDir, 'widget-1.2.0.tar.gz'), 'widget-1.2.0/version.json'], {
      encoding: 'utf8',
    }),
    git(dir, 'show', `${release}:version.json`) + '\n',
  );
  assert.ok(fs.existsSync(path.join(out, 'docs/release-notes/rl-1.2.md')));
  assert.equal(git(dir, 'status', '--porcelain'), '', 'the output is ignored by git');

  // Reproducible: a second build (cleaning first) gives the same bytes.
  const first = snapshot(out);
  fs.writeFileSync(path.join(filesDir, 'stray.txt'), 'left over');
  await buildRelease({ dir, env: envNoEpoch, jobs: 1 });
  assert.deepEqual(snapshot(out), first);
});

test('dirty tree: prepare and tag refuse; nothing changes', async () => {
  const dir = product();
  fs.appendFileSync(path.join(dir, 'src/widget.sh'), '# edited\n');
  await refuses(dir, () => prepareRelease({ dir, env: ENV }), 'RELEASE_DIRTY_TREE', /src\/widget\.sh/);
  await refuses(dir, () => tagRelease({ dir, env: ENV }), 'RELEASE_DIRTY_TREE');
  fs.writeFileSync(path.join(dir, 'untracked.txt'), 'new');
  git(dir, 'checkout', '-q', '--', 'src/widget.sh');
  await refuses(dir, () => tagRelease({ dir, env: ENV }), 'RELEASE_DIRTY_TREE', /untracked\.txt/);
});

test('existing tag: refused without --force-tag; --force-tag replaces it', async () => {
  const dir = product();
  await tagRelease({ dir, env: ENV });
  const firstRelease = git(dir, 'rev-parse', '1.2.0^{commit}');
  git(dir, 'checkout', '-q', 'main');
  await refuses(dir, () => tagRelease({ dir, env: ENV }), 'RELEASE_TAG_EXISTS', /--force-tag/);
  await refuses(dir, () => tagRelease({ dir, env: ENV, dryRun: true }), 'RELEASE_TAG_EXISTS');
  const forced = await tagRelease({ dir, env: ENV, forceTag: true });
  assert.equal(forced.plan.replacesTag, firstRelease);
  const second = git(dir, 'rev-parse', '1.2.0^{commit}');
  assert.notEqual(second, firstRelease);
  assert.equal(git(dir, 'rev-parse', 'HEAD'), second);
  assert.equal(git(dir, 'rev-parse', `${second}^`), git(dir, 'rev-parse', 'main^'));
});

test('not on the tag: build refuses after the branch moved on, and on a detached other commit', async () => {
  const dir = product();
  await tagRelease({ dir, env: ENV });
  git(dir, 'checkout', '-q', 'main');
  await refuses(dir, () => buildRelease({ dir, env: ENV }), 'RELEASE_NOT_ON_TAG', /git checkout 1\.2\.0/);
  git(dir, 'checkout', '-q', '--detach', 'main~1');
  await refuses(dir, () => buildRelease({ dir, env: ENV, dryRun: true }), 'RELEASE_NOT_ON_TAG');
  assert.equal(fs.existsSync(path.join(dir, 'out')), false);
});

test('tag: a failure part way (merge refused by a hook) puts tag, branch and HEAD back', async () => {
  const dir = product();
  const hook = path.join(dir, '.git/hooks/pre-merge-commit');
  fs.writeFileSync(hook, '#!/bin/sh\necho "merges are frozen" >&2\nexit 1\n', { mode: 0o755 });
  await refuses(dir, () => tagRelease({ dir, env: ENV }), 'RELEASE_GIT_FAILED', /merges are frozen/);
  assert.equal(git(dir, 'tag', '--list'), '');
});

test('bad fragments: unknown author, missing synopsis, unknown key, invalid YAML; nothing changes', async () => {
  const cases: [string, string, ErrorCode, RegExp][] = [
    ['---\nsynopsis: x\ncredits: [mallory]\n---\n', 'z.md', 'RELEASE_UNKNOWN_AUTHOR', /"mallory"/],
    ['---\ncategory: Fixes\n---\nbody\n', 'z.md', 'RELEASE_NOTES_INVALID', /synopsis is required/],
    ['---\nsynopsis: x\nseverity: high\n---\n', 'z.md', 'RELEASE_NOTES_INVALID', /unknown key severity/],
    ['---\nsynopsis: [x\n---\n', 'z.md', 'RELEASE_NOTES_INVALID', /invalid YAML/],
  ];
  for (const [text, name, code, message] of cases) {
    const dir = product((d) => {
      fs.writeFileSync(path.join(d, 'doc/manual/rl-next', name), text);
    });
    await assert.rejects(
      () => prepareRelease({ dir, env: ENV }),
      (err: unknown) =>
        isSlipwayError(err, code) && (err.where ?? '').startsWith(`doc/manual/rl-next/${name}`),
    );
    await refuses(dir, () => prepareRelease({ dir, env: ENV }), code, message);
    assert.equal(fs.readdirSync(path.join(dir, 'doc/manual/rl-next')).length, 4, 'fragments still there');
  }
});

test('config errors name file:line:key; a second prepare of the same version is refused', async () => {
  const dir = product((d) => {
    const f = path.join(d, 'release.toml');
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('releases_bucket = "widget-releases"\n', ''));
  });
  await assert.rejects(
    () => prepareRelease({ dir, env: ENV }),
    (err: unknown) =>
      isSlipwayError(err, 'RELEASE_CONFIG_INVALID') &&
      err.where === `${path.join(dir, 'release.toml')}:45` &&
      err.message === 'environments.local.s3.releases_bucket: required key is missing',
  );
  const dir2 = product((d) => {
    fs.writeFileSync(
      path.join(d, 'version.json'),
      '{"version": "1.2", "release_name": "H", "official_release": 0}\n',
    );
  });
  await refuses(
    dir2,
    () => tagRelease({ dir: dir2, env: ENV }),
    'RELEASE_CONFIG_INVALID',
    /official_release/,
  );

  const dir3 = product();
  await prepareRelease({ dir: dir3, env: ENV });
  await refuses(
    dir3,
    () => prepareRelease({ dir: dir3, env: ENV }),
    'RELEASE_NOTES_INVALID',
    /prepared before/,
  );
});

test('build failures: a failing job and a missing artifact are RELEASE_BUILD_FAILED naming the job', async () => {
  const failing = product((d) => {
    fs.writeFileSync(path.join(d, 'scripts/build-docs.sh'), 'echo "no docs today" >&2\nexit 3\n');
  });
  await tagRelease({ dir: failing, env: ENV });
  await assert.rejects(
    () => buildRelease({ dir: failing, env: ENV }),
    (err: unknown) =>
      isSlipwayError(err, 'RELEASE_BUILD_FAILED') && /job:docs failed: .*exit code 3/.test(err.message),
  );
  const missing = product((d) => {
    const f = path.join(d, 'release.toml');
    fs.writeFileSync(
      f,
      fs
        .readFileSync(f, 'utf8')
        .replace('"widget-{version}-aarch64-linux.tar.gz"', '"widget-{version}-riscv64-linux.tar.gz"'),
    );
  });
  await tagRelease({ dir: missing, env: ENV });
  await assert.rejects(
    () => buildRelease({ dir: missing, env: ENV }),
    (err: unknown) =>
      isSlipwayError(err, 'RELEASE_BUILD_FAILED') &&
      /did not produce widget-1\.2\.0-riscv64-linux\.tar\.gz/.test(err.message),
  );
  // A failed build leaves its logs and nothing else: no partial files/, docs/ or oci/.
  const failedOut = path.join(missing, 'out/release/1.2.0');
  assert.deepEqual(fs.readdirSync(failedOut), ['.build']);
  assert.deepEqual(fs.readdirSync(path.join(failedOut, '.build')), ['logs']);
  assert.ok(fs.readdirSync(path.join(failedOut, '.build/logs')).length > 0);
});

test('build never empties an output directory holding files it did not write (-o or build.out)', async () => {
  const dir = product((d) => {
    const f = path.join(d, 'release.toml');
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('out = "out/release/{version}"', 'out = "src"'));
  });
  await tagRelease({ dir, env: ENV });
  // build.out names a directory of the repository: refused, the sources stay (dry run too).
  await refuses(dir, () => buildRelease({ dir, env: ENV, dryRun: true }), 'INVALID_ARGUMENT', /"widget\.sh"/);
  await refuses(dir, () => buildRelease({ dir, env: ENV }), 'INVALID_ARGUMENT', /"widget\.sh"/);
  // -o at a directory of someone's files.
  const elsewhere = fs.mkdtempSync(path.join(tmp, 'home-'));
  fs.writeFileSync(path.join(elsewhere, 'thesis.tex'), 'years of work');
  fs.mkdirSync(path.join(elsewhere, 'files'));
  await refuses(
    dir,
    () => buildRelease({ dir, env: ENV, out: elsewhere }),
    'INVALID_ARGUMENT',
    /"thesis\.tex", which no release build wrote/,
  );
  assert.deepEqual(fs.readdirSync(elsewhere).sort(), ['files', 'thesis.tex']);
});

test('a second release of the same MAJOR: its section on top, the summary left alone, one commit', async () => {
  const dir = product();
  await prepareRelease({ dir, env: ENV });
  const summary = fs.readFileSync(path.join(dir, 'doc/manual/src/SUMMARY.md'), 'utf8');
  fs.writeFileSync(
    path.join(dir, 'version.json'),
    '{\n  "version": "1.2.1",\n  "release_name": "Harbor",\n  "official_release": false\n}\n',
  );
  fs.mkdirSync(path.join(dir, 'doc/manual/rl-next')); // the first prepare removed it with its fragments
  fs.writeFileSync(
    path.join(dir, 'doc/manual/rl-next/crash.md'),
    '---\nsynopsis: Fix a crash on empty input\ncategory: Fixes\nsignificance: significant\n---\n',
  );
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', '1.2.1');
  const base = git(dir, 'rev-parse', 'HEAD');
  const r = await prepareRelease({ dir, env: { ...ENV, SOURCE_DATE_EPOCH: '1717286400' } }); // 2024-06-02
  assert.equal(r.plan.notesCreated, false);
  assert.equal(r.plan.summary, undefined);
  assert.equal(git(dir, 'rev-parse', 'HEAD^'), base);
  assert.equal(fs.readFileSync(path.join(dir, 'doc/manual/src/SUMMARY.md'), 'utf8'), summary);
  assert.equal(
    git(dir, 'show', '--name-status', '--format=', 'HEAD'),
    'D\tdoc/manual/rl-next/crash.md\nM\tdoc/manual/src/release-notes/rl-1.2.md',
  );
  assert.equal(
    fs.readFileSync(path.join(dir, 'doc/manual/src/release-notes/rl-1.2.md'), 'utf8'),
    NOTES.replace(
      '# Widget 1.2.0 (2024-05-01)',
      '# Widget 1.2.1 (2024-06-02)\n\n## Fixes\n\n- Fix a crash on empty input\n\n# Widget 1.2.0 (2024-05-01)',
    ),
  );
});

/** A build stand-in for upload's first check (latest.json names HEAD): upload's git checks come before it reads more. */
function fakeBuild(dir: string): void {
  const out = path.join(dir, 'out/release/1.2.0');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'latest.json'), JSON.stringify({ commit: git(dir, 'rev-parse', 'HEAD') }));
}

function remoteRefs(dir: string): string {
  return execFileSync(
    '/usr/bin/git',
    ['--git-dir', `${dir}.git`, 'for-each-ref', '--format=%(refname) %(objectname)'],
    {
      encoding: 'utf8',
    },
  );
}

/** The example with its S3 endpoint on a closed port: these refusals must come before any S3 request. */
function productNoS3(): string {
  return product((d) => {
    const f = path.join(d, 'release.toml');
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('http://127.0.0.1:7480', 'http://127.0.0.1:9'));
  });
}

test('upload refuses what git would refuse, before publishing anything: a re-tagged release, a moved remote branch', async () => {
  // Tagged and pushed, then re-tagged (tag --force-tag): the remote holds the first tag.
  const dir = productNoS3();
  await tagRelease({ dir, env: ENV });
  git(dir, 'push', '-q', 'origin', 'main', '1.2.0');
  const pushed = remoteRefs(dir);
  git(dir, 'checkout', '-q', 'main');
  await tagRelease({ dir, env: ENV, forceTag: true });
  fakeBuild(dir);
  for (const dryRun of [true, false]) {
    await refuses(
      dir,
      () => uploadRelease({ dir, env: ENV, environment: 'local', dryRun, noconfirm: true }),
      'RELEASE_TAG_EXISTS',
      /git remote origin has another tag 1\.2\.0 .*release upload --force-tag/,
    );
  }
  assert.equal(remoteRefs(dir), pushed, 'the remote is untouched');
  // The build of the first tag (latest.json names its commit) is not this release's.
  const latest = path.join(dir, 'out/release/1.2.0/latest.json');
  fs.writeFileSync(latest, JSON.stringify({ commit: git(dir, 'rev-parse', 'HEAD^') }));
  await refuses(
    dir,
    () => uploadRelease({ dir, env: ENV, environment: 'local', forceTag: true }),
    'RELEASE_BUILD_INVALID',
    /is of commit .* but HEAD is .*run slipway release build again/,
  );
  fs.rmSync(latest);
  await refuses(
    dir,
    () => uploadRelease({ dir, env: ENV, environment: 'local', forceTag: true }),
    'RELEASE_BUILD_INVALID',
    /no complete build/,
  );
  assert.equal(remoteRefs(dir), pushed);

  // Someone pushed to the remote's main meanwhile: the branch push would be refused.
  const other = productNoS3();
  await tagRelease({ dir: other, env: ENV });
  git(other, 'push', '-q', 'origin', 'main', '1.2.0');
  const clone = fs.mkdtempSync(path.join(tmp, 'clone-'));
  execFileSync('/usr/bin/git', ['clone', '-q', `${other}.git`, clone], { env: ENV });
  fs.writeFileSync(path.join(clone, 'NEWS'), 'news\n');
  git(clone, 'add', 'NEWS');
  git(clone, 'commit', '-q', '-m', 'news');
  git(clone, 'push', '-q', 'origin', 'main');
  const moved = remoteRefs(other);
  fakeBuild(other);
  await refuses(
    other,
    () => uploadRelease({ dir: other, env: ENV, environment: 'local', noconfirm: true }),
    'RELEASE_GIT_FAILED',
    /branch main of the git remote origin .* is not in the local main.*git pull origin main/,
  );
  assert.equal(remoteRefs(other), moved);
  // A --branch that is not a branch name.
  await refuses(
    other,
    () => uploadRelease({ dir: other, env: ENV, environment: 'local', branch: 'main:refs/heads/x' }),
    'INVALID_ARGUMENT',
  );
});
