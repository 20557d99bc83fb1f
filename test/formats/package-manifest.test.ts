import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isSlipwayError, renderError, type ErrorCode } from '../../src/core/errors.js';
import {
  interpolate,
  interpolatePaths,
  outputFileName,
  packagesForTarget,
  parsePackageManifest,
  resolveTarget,
  type PackageSpec,
} from '../../src/formats/package-manifest.js';
import { parseTomlLocated } from '../../src/formats/toml-located.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const vectors = path.join(repo, 'test/vectors/manifests');
const read = (name: string): string => readFileSync(path.join(vectors, name), 'utf8');
const load = (name: string) => parsePackageManifest(read(name), name);

function expectError(fn: () => unknown, code: ErrorCode, where: string, prefix: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isSlipwayError(e, code), `expected ${code}, got ${String(e)}`);
    assert.equal(e.where, where);
    assert.ok(
      e.message.startsWith(prefix),
      `message ${JSON.stringify(e.message)} should start with ${prefix}`,
    );
    return true;
  });
}

// Each case: vector, error code, the file:line read off the vector, and the message's key-path prefix.
const broken: [string, ErrorCode, number, string][] = [
  ['syntax-error.toml', 'MANIFEST_SYNTAX', 4, 'invalid TOML: '],
  ['duplicate-table.toml', 'MANIFEST_SYNTAX', 6, 'invalid TOML: '],
  ['bad-name.toml', 'MANIFEST_INVALID', 7, 'package.1nexus: invalid package name "1nexus"'],
  ['bad-service-name.toml', 'MANIFEST_INVALID', 2, 'package.nexus.service_name: invalid service name'],
  ['missing-service-name.toml', 'MANIFEST_INVALID', 6, 'package.nexus.service_name: required key is missing'],
  ['missing-output.toml', 'MANIFEST_INVALID', 1, 'package.oximeter.output: required key is missing'],
  ['unknown-source-type.toml', 'MANIFEST_INVALID', 6, 'package.nexus.source.type: unknown source type "git"'],
  [
    'paths-not-array.toml',
    'MANIFEST_INVALID',
    5,
    'package.nexus.source.paths: must be an array, found a table',
  ],
  [
    'relative-to-zone.toml',
    'MANIFEST_INVALID',
    6,
    'package.nexus.source.paths[1].to: must be an absolute path',
  ],
  ['unclosed-template.toml', 'MANIFEST_INVALID', 10, 'package.nexus.source.paths[1].from: unclosed "{{"'],
  [
    'rust-release-wrong-type.toml',
    'MANIFEST_INVALID',
    5,
    'package.oximeter.source.rust.release: must be a boolean, found a string',
  ],
  [
    'composite-missing.toml',
    'MANIFEST_INVALID',
    12,
    'package.nexus-all.source.packages[1]: no package in this manifest has output file "nexus-helper.tar.gz"',
  ],
  [
    'composite-bad-extension.toml',
    'MANIFEST_INVALID',
    9,
    'package.nexus-all.source.packages[0]: must be a package output file name ending in .tar.gz or .tar',
  ],
  [
    'composite-self.toml',
    'MANIFEST_INVALID',
    4,
    'package.switch.source.packages[0]: composite package switch includes itself',
  ],
  [
    'composite-cycle.toml',
    'MANIFEST_INVALID',
    4,
    'package.alpha.source.packages[1]: composite packages form a cycle: alpha → beta → alpha',
  ],
  [
    'prebuilt-sha-not-hex.toml',
    'MANIFEST_INVALID',
    9,
    'package.maghemite.source.sha256: must be 64 hexadecimal digits',
  ],
  [
    'intermediate-only-wrong-type.toml',
    'MANIFEST_INVALID',
    5,
    'package.nexus.output.intermediate_only: must be a boolean, found a string',
  ],
  [
    'duplicate-output.toml',
    'MANIFEST_INVALID',
    1,
    'package.nexus: output file nexus.tar.gz collides with Nexus.tar.gz of package.Nexus',
  ],
];

for (const [vector, code, line, prefix] of broken) {
  test(`broken manifest ${vector}: ${code} at line ${line}`, () => {
    expectError(() => load(vector), code, `${vector}:${line}`, prefix);
  });
}

test('the CLI rendering names file, line and key', () => {
  try {
    load('relative-to-zone.toml');
    assert.fail('should throw');
  } catch (e) {
    assert.equal(
      renderError(e),
      'error[MANIFEST_INVALID]: relative-to-zone.toml:6: package.nexus.source.paths[1].to: must be an absolute path',
    );
    assert.ok(isSlipwayError(e) && e.exitCode === 2);
  }
});

test('unknown keys are warnings naming file:line and key path, not errors', () => {
  const m = load('unknown-keys.toml');
  assert.equal(m.packages.length, 1);
  assert.deepEqual(m.warnings, [
    {
      where: 'unknown-keys.toml:7',
      key: 'package.nexus.setup_hnit',
      message: 'package.nexus.setup_hnit: unknown key (ignored)',
    },
    {
      where: 'unknown-keys.toml:5',
      key: 'package.nexus.source.pathz',
      message: 'package.nexus.source.pathz: unknown key (ignored)',
    },
    { where: 'unknown-keys.toml:9', key: 'target.presets', message: 'target.presets: unknown key (ignored)' },
  ]);
  // The misspelt `pathz` is ignored, as serde would: the package has no paths.
  assert.deepEqual(m.packages[0]?.source, { type: 'local', paths: [], blobs: [], buildomatBlobs: [] });
});

test('a {{key}} missing from the target names the path entry and key', () => {
  const m = load('interpolate-missing-key.toml');
  const nexus = m.packages[0] as PackageSpec;
  const target = resolveTarget(m, ['image=standard', 'machine=gimlet']);
  expectError(
    () => interpolatePaths(m, nexus, target),
    'MANIFEST_INVALID',
    'interpolate-missing-key.toml:6',
    'package.nexus.source.paths[1].from: target has no key "rack-topology"',
  );
  assert.deepEqual(
    interpolatePaths(m, nexus, { ...target, 'rack-topology': 'single-sled' }).map((p) => p.from),
    ['smf/nexus/manifest.xml', 'smf/nexus/single-sled'],
  );
});

test('interpolate: substitution, missing key, unclosed braces', () => {
  const t = { 'rack-topology': 'multi-sled', machine: 'gimlet' };
  assert.equal(
    interpolate('smf/{{machine}}/{{rack-topology}}.xml', t, 'f:1', 'k'),
    'smf/gimlet/multi-sled.xml',
  );
  assert.equal(interpolate('no templates', t, 'f:1', 'k'), 'no templates');
  expectError(
    () => interpolate('a/{{image}}', t, 'm.toml:3', 'package.x.source.paths[0].from'),
    'MANIFEST_INVALID',
    'm.toml:3',
    'package.x.source.paths[0].from: target has no key "image"',
  );
  expectError(
    () => interpolate('a/{{machine', t, 'm.toml:4', 'package.x.source.paths[0].to'),
    'MANIFEST_INVALID',
    'm.toml:4',
    'package.x.source.paths[0].to: unclosed "{{"',
  );
  expectError(
    () => interpolate('a/{{}}', t, 'm.toml:5', 'k'),
    'MANIFEST_INVALID',
    'm.toml:5',
    'k: bad "{{key}}"',
  );
});

test('a realistic Omicron manifest parses into the model', () => {
  const m = load('valid-omicron.toml');
  assert.deepEqual(m.warnings, []);
  assert.deepEqual(
    m.packages.map((p) => p.name),
    [
      'installinator',
      'mg-ddm-gz',
      'omicron-nexus',
      'omicron-sled-agent',
      'oximeter',
      'oximeter-collector',
      'propolis-server',
      'switch-softnpu',
      'zone-setup',
    ],
  );
  const byName = (n: string): PackageSpec => m.packages.find((p) => p.name === n) as PackageSpec;

  assert.deepEqual(byName('omicron-nexus'), {
    name: 'omicron-nexus',
    serviceName: 'nexus',
    line: 12,
    onlyForTargets: { image: 'standard' },
    source: {
      type: 'local',
      rust: { binaryNames: ['nexus', 'schema-updater'], release: true, line: 16 },
      paths: [
        { from: '/opt/ooce/pgsql-13/lib/amd64', to: '/opt/ooce/pgsql-13/lib/amd64', line: 19 },
        { from: 'smf/nexus/manifest.xml', to: '/var/svc/manifest/site/nexus/manifest.xml', line: 20 },
        { from: 'smf/nexus/{{rack-topology}}', to: '/var/svc/manifest/site/nexus', line: 21 },
        { from: 'out/console-assets', to: '/var/nexus/static', line: 22 },
      ],
      blobs: [],
      buildomatBlobs: [],
    },
    output: { type: 'zone', intermediateOnly: false },
    setupHint: '- Run `./tools/ci_download_console` to download the web console assets\n',
  });
  // A tarball's `to` need not be absolute (it is a path inside the tarball).
  assert.deepEqual(byName('omicron-sled-agent').source, {
    type: 'local',
    rust: { binaryNames: ['sled-agent'], release: true, line: 7 },
    paths: [{ from: 'smf/sled-agent/{{machine}}', to: 'pkg', line: 9 }],
    blobs: [],
    buildomatBlobs: [],
  });
  assert.deepEqual(byName('oximeter-collector').output, { type: 'zone', intermediateOnly: true });
  assert.deepEqual(byName('zone-setup').output, { type: 'zone', intermediateOnly: true });
  assert.equal(byName('zone-setup').onlyForTargets, undefined);
  assert.deepEqual(byName('oximeter').source, {
    type: 'composite',
    packages: [
      { file: 'oximeter-collector.tar.gz', line: 53 },
      { file: 'zone-setup.tar.gz', line: 53 },
    ],
  });
  assert.deepEqual(byName('propolis-server').source, {
    type: 'local',
    paths: [{ from: 'out/propolis', to: '/opt/oxide/propolis-server', line: 60 }],
    blobs: [{ path: 'OVMF_CODE.fd', line: 61 }],
    buildomatBlobs: [
      {
        repo: 'propolis',
        series: 'image',
        commit: '6d7ed9a033babc054db9eff5b59dee978d2b0d76',
        artifact: 'propolis-server.tar.gz',
        sha256: 'f8f41b47bc00811fefe2ba75e0f6b4ab77765dde8ef3b4ef5d9a5d8c1c5ce4e2',
        line: 64,
      },
    ],
  });
  assert.deepEqual(byName('mg-ddm-gz'), {
    name: 'mg-ddm-gz',
    serviceName: 'mg-ddm',
    line: 71,
    onlyForTargets: { image: 'standard' },
    source: {
      type: 'prebuilt',
      repo: 'maghemite',
      commit: '9e0fe45ca3862176dc31ad8cc83f605f8a7e1a42',
      sha256: '4fa86b9e4f5a4cb4bd0c7e1a9d1c3b8cfa0f04d5d6cf5d7f2c6e2fb1c6e4b0d2',
    },
    output: { type: 'tarball' },
  });
  assert.deepEqual(byName('switch-softnpu').source, { type: 'manual' });
  assert.deepEqual(byName('switch-softnpu').onlyForTargets, { image: 'standard', switch: 'softnpu' });
  assert.equal(outputFileName(byName('mg-ddm-gz')), 'mg-ddm-gz.tar');
  assert.equal(outputFileName(byName('oximeter')), 'oximeter.tar.gz');
  assert.deepEqual(Object.keys(m.presets), ['dev', 'standard']);
  assert.deepEqual(m.presets.standard, {
    image: 'standard',
    machine: 'gimlet',
    switch: 'asic',
    'rack-topology': 'multi-sled',
    'clickhouse-topology': 'single-node',
  });
});

test('resolveTarget: presets, key=value words, overrides, unknown preset', () => {
  const m = load('valid-omicron.toml');
  assert.deepEqual(resolveTarget(m, ['--target', 'dev']), m.presets.dev);
  // The CLI passes each `--target` value on its own: a bare word is a preset.
  assert.deepEqual(resolveTarget(m, ['dev', 'machine=gimlet']), { ...m.presets.dev, machine: 'gimlet' });
  assert.deepEqual(resolveTarget(m, ['--target=standard', 'switch=softnpu']), {
    ...m.presets.standard,
    switch: 'softnpu',
  });
  assert.deepEqual(resolveTarget(m, ['image=trampoline', 'machine=gimlet']), {
    image: 'trampoline',
    machine: 'gimlet',
  });
  assert.deepEqual(resolveTarget(m, ['k=a=b']), { k: 'a=b' });
  assert.throws(
    () => resolveTarget(m, ['--target', 'prod']),
    (e: unknown) => isSlipwayError(e, 'INVALID_ARGUMENT') && e.message.includes('presets: dev, standard'),
  );
  assert.throws(
    () => resolveTarget(m, ['--target']),
    (e: unknown) => isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => resolveTarget(m, ['gimlet']),
    (e: unknown) =>
      isSlipwayError(e, 'INVALID_ARGUMENT') && e.message.startsWith('unknown target preset "gimlet"'),
  );
  assert.throws(
    () => resolveTarget(m, ['=x']),
    (e: unknown) => isSlipwayError(e, 'INVALID_ARGUMENT') && e.message.includes('empty key'),
  );
  // Presets are an own-property lookup: `toString` is no preset.
  assert.throws(
    () => resolveTarget(m, ['--target', 'toString']),
    (e: unknown) => isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
});

test('packagesForTarget: every only_for_targets key must match', () => {
  const m = load('valid-omicron.toml');
  const names = (words: string[]): string[] =>
    packagesForTarget(m, resolveTarget(m, words)).map((p) => p.name);
  const standard = [
    'mg-ddm-gz',
    'omicron-nexus',
    'omicron-sled-agent',
    'oximeter',
    'oximeter-collector',
    'propolis-server',
    'zone-setup',
  ];
  assert.deepEqual(names(['--target', 'standard']), standard);
  assert.deepEqual(names(['--target', 'dev']), [...standard.slice(0, 6), 'switch-softnpu', 'zone-setup']);
  assert.deepEqual(names(['image=trampoline']), ['installinator', 'zone-setup']);
  // A key the target lacks never matches.
  assert.deepEqual(names([]), ['zone-setup']);
  const nexus = m.packages.find((p) => p.name === 'omicron-nexus') as PackageSpec;
  assert.deepEqual(interpolatePaths(m, nexus, resolveTarget(m, ['--target', 'dev']))[2], {
    from: 'smf/nexus/single-sled',
    to: '/var/svc/manifest/site/nexus',
    line: 21,
  });
});

test('an empty manifest has no packages and no presets', () => {
  assert.deepEqual(parsePackageManifest('', 'empty.toml'), {
    file: 'empty.toml',
    packages: [],
    presets: {},
    warnings: [],
  });
});

test('more type errors name the expected type', () => {
  const base = '[package.a]\nservice_name = "a"\noutput.type = "zone"\n';
  expectError(
    () => parsePackageManifest(`${base}source = "local"\n`, 'm.toml'),
    'MANIFEST_INVALID',
    'm.toml:4',
    'package.a.source: must be a table, found a string',
  );
  expectError(
    () => parsePackageManifest(`${base}source.type = "local"\nsource.paths = ["x"]\n`, 'm.toml'),
    'MANIFEST_INVALID',
    'm.toml:5',
    'package.a.source.paths[0]: must be a table, found a string',
  );
  expectError(
    () => parsePackageManifest(`${base}source.type = "local"\nsource.paths = [{ from = "x" }]\n`, 'm.toml'),
    'MANIFEST_INVALID',
    'm.toml:5',
    'package.a.source.paths[0].to: required key is missing',
  );
  expectError(
    () => parsePackageManifest(`${base}source.type = "composite"\nsource.packages = [1]\n`, 'm.toml'),
    'MANIFEST_INVALID',
    'm.toml:5',
    'package.a.source.packages[0]: must be a string, found a number',
  );
  expectError(
    () => parsePackageManifest(`${base}source.type = "manual"\nonly_for_targets.image = true\n`, 'm.toml'),
    'MANIFEST_INVALID',
    'm.toml:5',
    'package.a.only_for_targets.image: must be a string, found a boolean',
  );
  expectError(
    () =>
      parsePackageManifest(
        '[package.a]\nservice_name = "a"\nsource.type = "manual"\noutput.type = "image"\n',
        'm.toml',
      ),
    'MANIFEST_INVALID',
    'm.toml:4',
    'package.a.output.type: unknown output type "image"',
  );
  expectError(
    () => parsePackageManifest('package = 3\n', 'm.toml'),
    'MANIFEST_INVALID',
    'm.toml:1',
    'package: must be a table, found a number',
  );
  expectError(
    () => parsePackageManifest('[target.preset.dev]\nimage = 1\n', 'm.toml'),
    'MANIFEST_INVALID',
    'm.toml:2',
    'target.preset.dev.image: must be a string, found a number',
  );
});

test('toml-located: values match a TOML parse; lines for keys, headers and elements', () => {
  const text = [
    'title = "x"', // 1
    'big = 9007199254740993', // 2
    '[package."a.b"]', // 3
    'source.paths = [', // 4
    '  { from = "f", to = "/t" },', // 5
    '  { from = "g", to = "/u" },', // 6
    ']', // 7
    '[[list]]', // 8
    'n = 1', // 9
    '[[list]]', // 10
    'n = 2.5', // 11
    '[list.sub]', // 12
    'ok = true', // 13
    '',
  ].join('\n');
  const l = parseTomlLocated(text, 't.toml');
  assert.deepEqual(l.value, {
    title: 'x',
    big: 9007199254740993n,
    package: {
      'a.b': {
        source: {
          paths: [
            { from: 'f', to: '/t' },
            { from: 'g', to: '/u' },
          ],
        },
      },
    },
    list: [{ n: 1 }, { n: 2.5, sub: { ok: true } }],
  });
  const expected: [string, number][] = [
    ['title', 1],
    ['package', 3],
    ['package."a.b"', 3],
    ['package."a.b".source', 4],
    ['package."a.b".source.paths', 4],
    ['package."a.b".source.paths[0]', 5],
    ['package."a.b".source.paths[1]', 6],
    ['package."a.b".source.paths[1].to', 6],
    ['list', 8],
    ['list[0]', 8],
    ['list[0].n', 9],
    ['list[1]', 10],
    ['list[1].sub', 12],
    ['list[1].sub.ok', 13],
  ];
  for (const [p, line] of expected) assert.equal(l.lineOf(p), line, p);
  assert.equal(l.lineOf('package.a.b'), undefined);
  // Syntax errors point at the line with the mistake, not where the parser noticed it.
  const syntax: [string, number][] = [
    ['a = 1\nb = \n', 2],
    ['a = 1\nb = \n\nc = 2\n', 2],
    ['a = [1,\n2\n', 2],
    ['x = "abc\ny = 1\n', 1],
    ['a = 1\n@x = 2\n', 2],
  ];
  for (const [bad, line] of syntax)
    expectError(
      () => parseTomlLocated(bad, 'bad.toml'),
      'MANIFEST_SYNTAX',
      `bad.toml:${line}`,
      'invalid TOML',
    );
  assert.equal(l.lineOf('package.1nexus'), undefined);
});
