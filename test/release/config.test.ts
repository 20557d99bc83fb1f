// release.toml and the version file: the example parses; every bad input is RELEASE_CONFIG_INVALID
// naming file:line and the key; tag templates and the `latest` rule.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  compareVersions,
  environmentOf,
  expandTags,
  isNewestRelease,
  markOfficial,
  parseReleaseConfig,
  parseVersionFile,
} from '../../src/release/config.js';
import { planBuild } from '../../src/release/plan.js';
import { rejects } from './helpers.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const example = fs.readFileSync(path.join(repo, 'examples/release/release.toml'), 'utf8');

const MINIMAL = `[product]
name = "widget"

[notes]
fragments = "rl-next"
authors = "authors.yml"
output_dir = "notes"
`;

test('the example release.toml parses into the documented shape', () => {
  const c = parseReleaseConfig(example, 'release.toml');
  assert.deepEqual(c.warnings, []);
  assert.deepEqual(c.product, { name: 'widget', displayName: 'Widget', versionFile: 'version.json' });
  assert.equal(c.notes.fragments, 'doc/manual/rl-next');
  assert.deepEqual(c.notes.summary, {
    file: 'doc/manual/src/SUMMARY.md',
    marker: '<!-- release notes: new pages below -->',
    entry: '  - [Release {major} ({date})](release-notes/rl-{major}.md)',
  });
  assert.equal(c.notes.links.issues, 'https://github.com/example/widget/issues/{id}');
  assert.equal(c.build.out, 'out/release/{version}');
  assert.deepEqual(
    c.build.jobs.map((j) => [j.name, j.artifacts, j.docs]),
    [
      [
        'tarballs',
        ['widget-{version}-x86_64-linux.tar.gz', 'widget-{version}-aarch64-linux.tar.gz'],
        undefined,
      ],
      ['docs', [], 'html'],
      ['images', [], undefined],
    ],
  );
  assert.deepEqual(Object.keys(c.environments), ['local', 'staging', 'production']);
  const local = environmentOf(c, 'local');
  assert.deepEqual(local.s3, {
    endpoint: 'http://127.0.0.1:7480',
    region: 'us-east-1',
    forcePathStyle: true,
    releasesBucket: 'widget-releases',
    docsBucket: 'widget-docs',
  });
  assert.equal(local.confirm, false);
  assert.equal(environmentOf(c, 'staging').s3.forcePathStyle, false);
  assert.deepEqual(c.build.jobs[2]?.oci, { widget: 'layout' });
  assert.deepEqual(
    environmentOf(c, 'staging').registries.map((r) => [r.target, r.layout, r.tags, r.insecure]),
    [['registry.example.net/widget', 'widget', ['{version}', '{major}', 'latest'], false]],
  );
  assert.equal(environmentOf(c, 'production').confirm, true);
  assert.equal(environmentOf(c, 'production').gitRemote, 'origin');
});

test('a minimal config takes the defaults; unknown keys are warnings naming file:line', () => {
  const c = parseReleaseConfig(`${MINIMAL}\n[build]\ncolour = "blue"\n`, 'r.toml');
  assert.equal(c.product.displayName, 'widget');
  assert.equal(c.product.versionFile, 'version.json');
  assert.equal(c.notes.summary, undefined);
  assert.deepEqual(c.build.jobs, []);
  assert.deepEqual(c.environments, {});
  assert.deepEqual(c.warnings, [
    { where: 'r.toml:10', key: 'build.colour', message: 'build.colour: unknown key (ignored)' },
  ]);
});

test('config errors name file:line and the key', () => {
  const cases: [string, string, RegExp][] = [
    ['[product]\nversion_file = "v.json"\n[notes]\n', 'r.toml:1', /^product\.name: required key is missing/],
    ['[product]\nname = "wid get"\n', 'r.toml:2', /^product\.name: "wid get"/],
    [MINIMAL.replace('"rl-next"', '"../rl-next"'), 'r.toml:5', /^notes\.fragments: must be a relative path/],
    [`${MINIMAL}summary = "S.md"\n`, 'r.toml:8', /^notes\.summary: give both/],
    [
      `${MINIMAL}[notes.links]\nissues = "https://x/issues"\n`,
      'r.toml:9',
      /^notes\.links\.issues: a link template needs \{id\}/,
    ],
    [
      `${MINIMAL}\n[[build.jobs]]\nname = "a"\ncommand = ["make", "{out}"]\nartifacts = ["a.tgz"]\n`,
      'r.toml:11',
      /^build\.jobs\[0\]\.command\[1\]: unknown placeholder \{out\}/,
    ],
    [
      `${MINIMAL}\n[[build.jobs]]\nname = "a"\ncommand = ["make"]\nartifacts = ["dir/a.tgz"]\n`,
      'r.toml:12',
      /^build\.jobs\[0\]\.artifacts\[0\]: an artifact is a plain file name/,
    ],
    [
      `${MINIMAL}\n[[build.jobs]]\nname = "a"\ncommand = ["make"]\nartifacts = ["a.tgz"]\ndeps = ["b"]\n`,
      'r.toml:13',
      /^build\.jobs\[0\]\.deps\[0\]: no job named "b"/,
    ],
    [
      `${MINIMAL}\n[[build.jobs]]\nname = "a"\ncommand = ["make"]\n`,
      'r.toml:9',
      /^build\.jobs\[0\]: a job must produce something/,
    ],
    [
      `${MINIMAL}\n[[build.jobs]]\nname = "a"\ncommand = ["make"]\nartifacts = ["x"]\n[[build.jobs]]\nname = "b"\ncommand = ["make"]\nartifacts = ["x"]\n`,
      'r.toml:16',
      /^build\.jobs\[1\]\.artifacts: "x" is produced by job a too/,
    ],
    [
      `${MINIMAL}[environments.staging.s3]\nregion = "x"\n`,
      'r.toml:8',
      /^environments\.staging\.s3\.releases_bucket: required key is missing/,
    ],
    [
      `${MINIMAL}[environments.staging.s3]\nreleases_bucket = "bkt"\nsecret_access_key = "hunter2"\n`,
      'r.toml:10',
      /^environments\.staging\.s3\.secret_access_key: credentials do not belong in release\.toml/,
    ],
    [
      `${MINIMAL}[environments.staging.s3]\nreleases_bucket = "bkt"\nendpoint = "https://AKIA:hunter2@s3.example.net"\n`,
      'r.toml:10',
      /^environments\.staging\.s3\.endpoint: credentials do not belong in release\.toml/,
    ],
    [
      `${MINIMAL}[environments.Prod.s3]\nreleases_bucket = "bkt"\n`,
      'r.toml:8',
      /^environments\.Prod: invalid environment name/,
    ],
    [
      `${MINIMAL}[environments.staging.s3]\nreleases_bucket = "Bad_Bucket"\n`,
      'r.toml:9',
      /^environments\.staging\.s3\.releases_bucket: "Bad_Bucket" is not a valid bucket name/,
    ],
    [
      `${MINIMAL}[environments.staging.s3]\nreleases_bucket = "bkt"\n[[environments.staging.registries]]\ntarget = "reg:5000/widget"\nlayout = "nope"\ntags = ["{version}"]\n`,
      'r.toml:12',
      /^environments\.staging\.registries\[0\]\.layout: no build job produces the OCI layout "nope"/,
    ],
    [
      `${MINIMAL}[environments.staging]\nconfirm = "yes"\n[environments.staging.s3]\nreleases_bucket = "bkt"\n`,
      'r.toml:9',
      /^environments\.staging\.confirm: must be a boolean/,
    ],
    ['[product]\nname = \n', 'r.toml:2', /^invalid TOML/],
  ];
  for (const [text, where, message] of cases)
    rejects(() => parseReleaseConfig(text, 'r.toml'), 'RELEASE_CONFIG_INVALID', where, message);
});

test('registry targets: tag templates checked, layouts tied to build jobs', () => {
  const text = `${MINIMAL}
[[build.jobs]]
name = "images"
command = ["slipway", "oci", "build", "-o", "{work}/layout"]
oci = { widget = "layout" }

[environments.local.s3]
releases_bucket = "widget-releases"

[[environments.local.registries]]
target = "127.0.0.1:5000/widget"
layout = "widget"
tags = ["{version}", "{major}", "latest"]
insecure = true
`;
  const c = parseReleaseConfig(text, 'r.toml');
  const r = environmentOf(c, 'local').registries[0];
  assert.deepEqual(
    { ...r, line: 0 },
    {
      target: '127.0.0.1:5000/widget',
      layout: 'widget',
      tags: ['{version}', '{major}', 'latest'],
      insecure: true,
      line: 0,
    },
  );
  rejects(
    () => parseReleaseConfig(text.replace('"latest"]', '"v/{version}"]'), 'r.toml'),
    'RELEASE_CONFIG_INVALID',
    'r.toml:20',
    /tags\[2\]: "v\/\{version\}" is not a valid tag/,
  );
  rejects(
    () => environmentOf(c, 'prod'),
    'RELEASE_ENV_INVALID',
    'r.toml: environments.prod',
    /no environment "prod" in r\.toml \(known: local\)/,
  );
  // `slipway` in a command runs this Slipway; placeholders expand.
  const plan = planBuild({
    config: c,
    version: { version: '1.2.0', major: '1.2', name: 'N', official: true },
    commit: 'c0ffee',
    repo: '/r',
    out: '/o',
    slipway: ['node', '/s/bin/slipway.js'],
  });
  assert.deepEqual(plan.jobs[0]?.command, [
    'node',
    '/s/bin/slipway.js',
    'oci',
    'build',
    '-o',
    '/o/.build/work/images/layout',
  ]);
  assert.deepEqual(plan.layouts, ['widget']);
  assert.deepEqual(plan.files, ['widget-1.2.0.tar.gz']);
});

test('the version file: MAJOR is the first two components; errors name file:line and key', () => {
  const text = '{\n  "version": "2.96.1",\n  "release_name": "Wiggly",\n  "official_release": false\n}\n';
  assert.deepEqual(parseVersionFile(text, 'version.json'), {
    version: '2.96.1',
    major: '2.96',
    name: 'Wiggly',
    official: false,
  });
  assert.equal(parseVersionFile(text.replace('2.96.1', '3.0.0-rc.1'), 'v').major, '3.0');
  rejects(
    () => parseVersionFile(text.replace('2.96.1', '2'), 'version.json'),
    'RELEASE_CONFIG_INVALID',
    'version.json:2',
    /^version: "2" is not MAJOR\.MINOR/,
  );
  rejects(
    () => parseVersionFile(text.replace('"Wiggly"', '7'), 'version.json'),
    'RELEASE_CONFIG_INVALID',
    'version.json:3',
    /^release_name: must be a string/,
  );
  rejects(
    () => parseVersionFile(text.replace('false', '"no"'), 'version.json'),
    'RELEASE_CONFIG_INVALID',
    'version.json:4',
    /^official_release: must be true or false/,
  );
  rejects(
    () => parseVersionFile('{"version": ', 'version.json'),
    'RELEASE_CONFIG_INVALID',
    'version.json',
    /^invalid JSON/,
  );
  // The tag step changes that one value and nothing else.
  assert.equal(markOfficial(text, 'version.json'), text.replace('false', 'true'));
});

test('tag templates: {version}, {major}; latest only for the newest release', () => {
  const v = { version: '2.96.1', major: '2.96', name: 'W', official: true };
  assert.deepEqual(expandTags(['{version}', '{major}', 'latest', '{product}-{major}'], v, 'widget', true), [
    '2.96.1',
    '2.96',
    'latest',
    'widget-2.96',
  ]);
  assert.deepEqual(expandTags(['{version}', '{major}', 'latest'], v, 'widget', false), ['2.96.1', '2.96']);
  assert.equal(isNewestRelease('2.96.1', ['2.95.0', '2.96.0', 'not-a-version', '2.96.1']), true);
  assert.equal(isNewestRelease('2.95.3', ['2.95.2', '2.96.0']), false);
  assert.equal(isNewestRelease('2.96.0', ['2.96.0-rc1']), true);
  assert.ok(compareVersions('2.10.0', '2.9.9') > 0);
  assert.ok(compareVersions('2.96.0-rc1', '2.96.0') < 0);
  assert.equal(compareVersions('2.96', '2.96.0'), 0);
});
