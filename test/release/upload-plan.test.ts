// The pure half of `release upload` (src/release/upload-plan.ts): build directory checks and the
// decisions upload/skip/delete/keep, in publication order, from vectors (no disk, no network).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import {
  buildUploadPlan,
  checkBuildFiles,
  checkLatestManifest,
  checkReleaseNames,
  contentTypeOf,
  formatUploadPlan,
  keysToInspect,
  parseChecksumFile,
  parseReleaseManifest,
  PHASES,
  type BuildEntry,
  type LocalFile,
  type PlanInput,
  type ReleaseManifest,
  type RemoteObject,
} from '../../src/release/upload-plan.js';

const H = (c: string): string => c.repeat(64);

function throwsCode(fn: () => unknown, code: ErrorCode, mentions?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSlipwayError(err, code), `expected ${code}, got ${String(err)}`);
    if (mentions !== undefined)
      assert.ok(err.message.includes(mentions), `'${err.message}' should mention '${mentions}'`);
    return true;
  });
}

const local = (rel: string, size: number, sha: string): LocalFile => ({
  rel,
  path: `/b/${rel}`,
  size,
  sha256: sha,
});

function planInput(over: Partial<PlanInput> = {}): PlanInput {
  return {
    product: 'demo',
    version: '2.1.0',
    major: '2.1',
    official: false,
    releasesBucket: 'rel',
    docsBucket: 'docs',
    release: {
      files: [
        local('demo-2.1.0.tar.gz', 100, H('a')),
        local('demo-2.1.0.tar.gz.sha256', 84, H('b')),
        local('manifest.json', 300, H('c')),
      ],
      remote: [],
    },
    latest: { file: local('latest.json', 40, H('d')), remote: undefined, remoteVersion: undefined },
    pendingMultipart: [],
    ...over,
  };
}

describe('upload plan: decisions', () => {
  test('a first upload: everything new, in publication order, latest.json last', () => {
    const plan = buildUploadPlan(
      planInput({
        docs: { files: [local('index.html', 5, H('e'))], remote: { 'manual/2.1/': [] } },
      }),
    );
    assert.deepEqual(
      plan.objects.map((o) => [o.phase, o.action, o.bucket, o.key]),
      [
        ['release files', 'upload', 'rel', 'demo/demo-2.1.0/demo-2.1.0.tar.gz'],
        ['release files', 'upload', 'rel', 'demo/demo-2.1.0/demo-2.1.0.tar.gz.sha256'],
        ['release manifest', 'upload', 'rel', 'demo/demo-2.1.0/manifest.json'],
        ['docs', 'upload', 'docs', 'manual/2.1/index.html'],
        ['latest', 'upload', 'rel', 'demo/latest.json'],
      ],
    );
    assert.deepEqual(plan.totals, { upload: 5, uploadBytes: 529, skip: 0, delete: 0, keep: 0 });
    assert.equal(plan.objects.at(-1)?.cacheControl, 'no-cache');
    assert.deepEqual(plan.docsPrefixes, ['manual/2.1/']);
  });

  test('skip only with the same sha256 metadata and the same size', () => {
    const remote: RemoteObject[] = [
      { key: 'demo/demo-2.1.0/demo-2.1.0.tar.gz', size: 100, sha256: H('a') }, // same: skip
      { key: 'demo/demo-2.1.0/demo-2.1.0.tar.gz.sha256', size: 84, sha256: H('0') }, // sha differs
      { key: 'demo/demo-2.1.0/manifest.json', size: 300 }, // no metadata (another tool put it)
    ];
    const plan = buildUploadPlan(
      planInput({
        release: { files: planInput().release.files, remote },
        latest: {
          file: local('latest.json', 40, H('d')),
          remote: { key: 'demo/latest.json', size: 41, sha256: H('d') }, // size differs
          remoteVersion: '2.0.0',
        },
      }),
    );
    assert.deepEqual(
      plan.objects.map((o) => [o.action, o.reason]),
      [
        ['skip', 'same sha256 and size'],
        ['upload', 'sha256 differs'],
        ['upload', 'no sha256 metadata there'],
        ['upload', 'size differs (41 there)'],
      ],
    );
  });

  test('all skips on a complete release: latest.json still last, nothing to upload', () => {
    const files = planInput().release.files;
    const plan = buildUploadPlan(
      planInput({
        release: {
          files,
          remote: files.map((f) => ({ key: `demo/demo-2.1.0/${f.rel}`, size: f.size, sha256: f.sha256 })),
        },
        latest: {
          file: local('latest.json', 40, H('d')),
          remote: { key: 'demo/latest.json', size: 40, sha256: H('d') },
          remoteVersion: '2.1.0',
        },
      }),
    );
    assert.ok(plan.objects.every((o) => o.action === 'skip'));
    assert.equal(plan.objects.at(-1)?.key, 'demo/latest.json');
    assert.equal(plan.totals.upload, 0);
  });

  test('docs: changed and new uploaded, stale deleted after all uploads, both prefixes when official', () => {
    const files = [
      local('index.html', 5, H('1')),
      local('a.html', 7, H('2')),
      local('new/b.html', 3, H('3')),
    ];
    const remoteFor = (p: string): RemoteObject[] => [
      { key: `${p}index.html`, size: 5, sha256: H('1') },
      { key: `${p}a.html`, size: 7, sha256: H('9') },
      { key: `${p}old/gone.html`, size: 11 },
    ];
    const plan = buildUploadPlan(
      planInput({
        official: true,
        docs: {
          files,
          remote: { 'manual/2.1/': remoteFor('manual/2.1/'), 'manual/stable/': remoteFor('manual/stable/') },
        },
      }),
    );
    assert.deepEqual(plan.docsPrefixes, ['manual/2.1/', 'manual/stable/']);
    assert.deepEqual(
      plan.objects.filter((o) => o.group === 'docs').map((o) => `${o.phase}: ${o.action} ${o.key}`),
      [
        'docs: upload manual/2.1/a.html',
        'docs: skip manual/2.1/index.html',
        'docs: upload manual/2.1/new/b.html',
        'docs: upload manual/stable/a.html',
        'docs: skip manual/stable/index.html',
        'docs: upload manual/stable/new/b.html',
        'stale docs: delete manual/2.1/old/gone.html',
        'stale docs: delete manual/stable/old/gone.html',
      ],
    );
    assert.equal(plan.totals.delete, 2);
    // Phases never go backwards.
    const order = plan.objects.map((o) => PHASES.indexOf(o.phase));
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
    );
  });

  test('docs without a docs bucket: not synced, with a warning', () => {
    const plan = buildUploadPlan(planInput({ docsBucket: undefined, docsSkipped: 'docs/ is not synced' }));
    assert.ok(plan.objects.every((o) => o.group !== 'docs'));
    assert.deepEqual(plan.warnings, ['docs/ is not synced']);
  });

  test('latest.json is never moved back to an older release', () => {
    const newer = buildUploadPlan(
      planInput({
        latest: {
          file: local('latest.json', 40, H('d')),
          remote: { key: 'demo/latest.json', size: 40, sha256: H('e') },
          remoteVersion: '2.2.0',
        },
      }),
    );
    const latest = newer.objects.at(-1);
    assert.equal(latest?.action, 'keep');
    assert.match(newer.warnings.join('\n'), /names 2\.2\.0, newer than 2\.1\.0/);
    assert.match(formatUploadPlan(newer), /keep .*demo\/latest\.json +\(it names the newer 2\.2\.0\)/);
    const older = buildUploadPlan(
      planInput({
        latest: {
          file: local('latest.json', 40, H('d')),
          remote: { key: 'demo/latest.json', size: 40, sha256: H('e') },
          remoteVersion: '2.1.0-rc1',
        },
      }),
    );
    assert.equal(older.objects.at(-1)?.action, 'upload');
    // A pointer that does not name a version (hand-written, another tool's) is replaced.
    const odd = buildUploadPlan(
      planInput({
        latest: {
          file: local('latest.json', 40, H('d')),
          remote: { key: 'demo/latest.json', size: 40, sha256: undefined },
          remoteVersion: 'nightly',
        },
      }),
    );
    assert.equal(odd.objects.at(-1)?.action, 'upload');
  });

  test('objects under the release prefix that the build lacks are left, with a warning', () => {
    const plan = buildUploadPlan(
      planInput({
        release: { files: planInput().release.files, remote: [{ key: 'demo/demo-2.1.0/old.bin', size: 1 }] },
      }),
    );
    assert.ok(plan.objects.every((o) => o.action !== 'delete'));
    assert.match(
      plan.warnings[0] ?? '',
      /1 object\(s\) under s3:\/\/rel\/demo\/demo-2\.1\.0\/ .*: demo\/demo-2\.1\.0\/old\.bin$/,
    );
  });

  test('pending multipart uploads are listed to abort; the plan text shows every section', () => {
    const plan = buildUploadPlan(
      planInput({
        pendingMultipart: [{ bucket: 'rel', key: 'demo/demo-2.1.0/demo-2.1.0.tar.gz', uploadId: 'u1' }],
        docs: { files: [], remote: { 'manual/2.1/': [{ key: 'manual/2.1/x.html', size: 2048 }] } },
      }),
    );
    const text = formatUploadPlan(plan);
    const lines = text.trimEnd().split('\n');
    assert.equal(lines[0], 'upload demo 2.1.0 (release, major 2.1)');
    assert.match(text, /abort +s3:\/\/rel\/demo\/demo-2\.1\.0\/demo-2\.1\.0\.tar\.gz \(upload id u1\)/);
    assert.match(text, /delete +2 KiB +manual\/2\.1\/x\.html +\(not in the build\)/);
    // The sections in publication order, latest.json last.
    const titles = lines.filter((l) => /^ {2}\d\. /.test(l)).map((l) => l.replace(/ → .*/, ''));
    assert.deepEqual(titles, [
      '  1. release files',
      '  2. release manifest',
      '  3. stale docs, deleted after the new ones are up',
      '  4. latest.json, LAST (now absent)',
    ]);
    assert.equal(
      lines.at(-1),
      '  total: 4 to upload (524 B), 0 unchanged, 1 to delete, 1 pending multipart upload(s) to abort',
    );
  });

  test('keysToInspect: only listed keys with the local size need their metadata read', () => {
    const files = [local('a', 1, H('1')), local('b', 2, H('2'))];
    assert.deepEqual(
      keysToInspect(files, 'p/', [
        { key: 'p/a', size: 1 },
        { key: 'p/b', size: 3 },
        { key: 'p/c', size: 1 },
      ]),
      ['p/a'],
    );
  });

  test('names that would walk or split keys are refused', () => {
    for (const [p, v, m] of [
      ['../x', '1.0', '1.0'],
      ['demo', '1.0/evil', '1.0'],
      ['demo', '1.0', ''],
      ['a b', '1.0', '1.0'],
    ] as const) {
      throwsCode(() => {
        checkReleaseNames(p, v, m);
      }, 'RELEASE_CONFIG_INVALID');
    }
    checkReleaseNames('lix', '2.96.0-pre+1', '2.96');
  });

  test('contentTypeOf', () => {
    assert.equal(contentTypeOf('x.tar.gz'), 'application/gzip');
    assert.equal(contentTypeOf('INDEX.HTML'), 'text/html; charset=utf-8');
    assert.equal(contentTypeOf('x.tar.gz.sha256'), 'text/plain; charset=utf-8');
    assert.equal(contentTypeOf('blob'), 'application/octet-stream');
  });
});

describe('upload plan: the build directory', () => {
  const manifest: ReleaseManifest = {
    product: 'demo',
    version: '2.1.0',
    major: '2.1',
    official: true,
    commit: 'abc',
    name: 'N',
    files: [{ name: 'a.tar.gz', size: 10, sha256: H('a') }],
  };
  const expect = { product: 'demo', version: '2.1.0', major: '2.1', official: true };
  const good = (): { entries: BuildEntry[]; checksums: Map<string, string> } => ({
    entries: [
      { name: 'a.tar.gz', kind: 'file', size: 10, sha256: H('a') },
      { name: 'a.tar.gz.sha256', kind: 'file', size: 76, sha256: H('b') },
      { name: 'manifest.json', kind: 'file', size: 200, sha256: H('c') },
    ],
    checksums: new Map([['a.tar.gz.sha256', `${H('a')}  a.tar.gz\n`]]),
  });
  const check = (
    over: Partial<{ manifest: ReleaseManifest; entries: BuildEntry[]; checksums: Map<string, string> }>,
  ): void => {
    checkBuildFiles({ dir: '/b/files', manifest, expect, ...good(), ...over });
  };

  test('a complete build passes; .sha256 files may be listed in the manifest too', () => {
    check({});
    check({
      manifest: {
        ...manifest,
        files: [...manifest.files, { name: 'a.tar.gz.sha256', size: 76, sha256: H('b') }],
      },
    });
    check({ checksums: new Map([['a.tar.gz.sha256', `${H('a')} *a.tar.gz`]]) }); // binary mode, no newline
  });

  test('every way a build can be wrong is RELEASE_BUILD_INVALID naming the file', () => {
    const { entries } = good();
    const cases: [string, Parameters<typeof check>[0], string][] = [
      [
        'content differs',
        { entries: entries.map((e) => (e.name === 'a.tar.gz' ? { ...e, sha256: H('f') } : e)) },
        'a.tar.gz has sha256',
      ],
      [
        'size differs',
        { entries: entries.map((e) => (e.name === 'a.tar.gz' ? { ...e, size: 11 } : e)) },
        '11 bytes',
      ],
      ['missing artifact', { entries: entries.filter((e) => e.name !== 'a.tar.gz') }, 'a.tar.gz is listed'],
      [
        'missing checksum',
        { entries: entries.filter((e) => e.name !== 'a.tar.gz.sha256') },
        'no a.tar.gz.sha256',
      ],
      [
        'wrong checksum',
        { checksums: new Map([['a.tar.gz.sha256', `${H('0')}  a.tar.gz\n`]]) },
        'a.tar.gz.sha256 says',
      ],
      [
        'checksum of another file',
        { checksums: new Map([['a.tar.gz.sha256', `${H('a')}  b.tar.gz\n`]]) },
        "names 'b.tar.gz'",
      ],
      [
        'two lines',
        { checksums: new Map([['a.tar.gz.sha256', `${H('a')}  a.tar.gz\n${H('a')}  a.tar.gz\n`]]) },
        'one line',
      ],
      [
        'stray file',
        { entries: [...entries, { name: 'x.bin', kind: 'file', size: 1, sha256: H('1') }] },
        'x.bin is not listed',
      ],
      [
        'orphan checksum',
        { entries: [...entries, { name: 'y.sha256', kind: 'file', size: 1, sha256: H('1') }] },
        'missing file y',
      ],
      [
        'a directory',
        { entries: [...entries, { name: 'sub', kind: 'other', size: 0 }] },
        'sub is not a regular file',
      ],
      [
        'a hidden file',
        { entries: [...entries, { name: '.tmp', kind: 'file', size: 0, sha256: H('1') }] },
        '.tmp',
      ],
      ['another version', { manifest: { ...manifest, version: '2.1.1' } }, 'version 2.1.1'],
      ['not official', { manifest: { ...manifest, official: false } }, 'official false'],
    ];
    for (const [what, over, mentions] of cases) {
      assert.throws(
        () => {
          check(over);
        },
        (err: unknown) => {
          assert.ok(isSlipwayError(err, 'RELEASE_BUILD_INVALID'), `${what}: ${String(err)}`);
          assert.ok(err.message.includes(mentions), `${what}: '${err.message}' should mention '${mentions}'`);
          assert.ok(err.where?.startsWith('/b/files/'), `${what}: where ${err.where ?? ''}`);
          return true;
        },
      );
    }
  });

  test('parseReleaseManifest guards every field', () => {
    const ok = JSON.stringify(manifest);
    assert.deepEqual(parseReleaseManifest(ok, 'm.json'), manifest);
    const bad: [string, string][] = [
      ['{', 'not valid JSON'],
      ['[]', 'JSON object'],
      [JSON.stringify({ ...manifest, product: '' }), "'product'"],
      [JSON.stringify({ ...manifest, official: 'yes' }), "'official'"],
      [JSON.stringify({ ...manifest, files: {} }), "'files'"],
      [JSON.stringify({ ...manifest, files: [{ name: '../x', size: 1, sha256: H('a') }] }), 'files[0].name'],
      [
        JSON.stringify({ ...manifest, files: [{ name: 'manifest.json', size: 1, sha256: H('a') }] }),
        'itself',
      ],
      [JSON.stringify({ ...manifest, files: [{ name: 'x', size: -1, sha256: H('a') }] }), 'files[0].size'],
      [JSON.stringify({ ...manifest, files: [{ name: 'x', size: 1, sha256: 'ABC' }] }), 'files[0].sha256'],
      [JSON.stringify({ ...manifest, files: [manifest.files[0], manifest.files[0]] }), 'twice'],
    ];
    for (const [text, mentions] of bad)
      throwsCode(() => parseReleaseManifest(text, 'm.json'), 'RELEASE_BUILD_INVALID', mentions);
  });

  test('parseChecksumFile and checkLatestManifest', () => {
    assert.equal(parseChecksumFile(`${H('a')}  x\n`, 'x', 'x.sha256'), H('a'));
    throwsCode(
      () => parseChecksumFile(`${H('A')}  x\n`, 'x', 'x.sha256'),
      'RELEASE_BUILD_INVALID',
      'sha256sum format',
    );
    checkLatestManifest('{"version":"1.0","product":"demo"}', '1.0', 'latest.json');
    checkLatestManifest(`{"version":"1.0","manifestSha256":"${H('c')}"}`, '1.0', 'latest.json', H('c'));
    throwsCode(
      () => {
        checkLatestManifest(`{"version":"1.0","manifestSha256":"${H('0')}"}`, '1.0', 'latest.json', H('c'));
      },
      'RELEASE_BUILD_INVALID',
      'manifest.json',
    );
    throwsCode(
      () => {
        checkLatestManifest('{"version":"0.9"}', '1.0', 'latest.json');
      },
      'RELEASE_BUILD_INVALID',
      '0.9',
    );
    throwsCode(
      () => {
        checkLatestManifest('{}', '1.0', 'latest.json');
      },
      'RELEASE_BUILD_INVALID',
      "'version'",
    );
  });
});
