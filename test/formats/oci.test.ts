import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import {
  ANNOTATION_REF_NAME,
  ANNOTATION_SOURCE,
  encodeConfig,
  encodeIndex,
  encodeManifest,
  formatPlatform,
  formatReference,
  MEDIA_TYPE_CONFIG,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_LAYER_TAR,
  MEDIA_TYPE_LAYER_TAR_GZIP,
  MEDIA_TYPE_LAYER_TAR_ZSTD,
  MEDIA_TYPE_MANIFEST,
  OCI_LAYOUT_BYTES,
  parseConfig,
  parseDescriptor,
  parseDigest,
  parseIndex,
  parseManifest,
  parsePlatform,
  parseReference,
  parseWwwAuthenticate,
  tokenCacheKey,
  tokenScope,
  verifyDigest,
} from '../../src/formats/oci.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

function throwsCode(
  fn: () => unknown,
  code: 'OCI_INVALID' | 'OCI_AUTH_CHALLENGE_INVALID',
  re?: RegExp,
): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSlipwayError(err, code), `expected ${code}, got ${String(err)}`);
    if (re) assert.match(err.message, re);
    return true;
  });
}

test('media types and annotation keys match the spec strings', () => {
  assert.equal(MEDIA_TYPE_INDEX, 'application/vnd.oci.image.index.v1+json');
  assert.equal(MEDIA_TYPE_MANIFEST, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(MEDIA_TYPE_CONFIG, 'application/vnd.oci.image.config.v1+json');
  assert.equal(MEDIA_TYPE_LAYER_TAR_GZIP, 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.equal(MEDIA_TYPE_LAYER_TAR_ZSTD, 'application/vnd.oci.image.layer.v1.tar+zstd');
  assert.equal(MEDIA_TYPE_LAYER_TAR, 'application/vnd.oci.image.layer.v1.tar');
  assert.equal(ANNOTATION_REF_NAME, 'org.opencontainers.image.ref.name');
  assert.equal(ANNOTATION_SOURCE, 'org.opencontainers.image.source');
});

test('oci-layout bytes are exact', () => {
  assert.deepEqual(Buffer.from(OCI_LAYOUT_BYTES), Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
});

test('encodeManifest writes the documented key order and a hand-computed digest', () => {
  const expected =
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",' +
    `"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${A}","size":123},` +
    `"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"${B}","size":456}],` +
    '"annotations":{"org.opencontainers.image.source":"https://x","org.opencontainers.image.title":"t"}}';
  const { bytes, descriptor } = encodeManifest(
    {
      // keys deliberately out of order
      layers: [{ size: 456, digest: B, mediaType: MEDIA_TYPE_LAYER_TAR_GZIP }],
      config: { digest: A, mediaType: MEDIA_TYPE_CONFIG, size: 123 },
      annotations: { 'org.opencontainers.image.title': 't', 'org.opencontainers.image.source': 'https://x' },
    },
    { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  );
  assert.equal(Buffer.from(bytes).toString('utf8'), expected);
  assert.deepEqual(descriptor, {
    mediaType: MEDIA_TYPE_MANIFEST,
    digest: sha(expected),
    size: Buffer.byteLength(expected),
    platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  });
  assert.ok(verifyDigest(bytes, descriptor.digest));
  assert.deepEqual(parseManifest(bytes).layers[0]?.digest, B);
});

test('encodeIndex and encodeConfig are deterministic and round-trip', () => {
  const ix = encodeIndex({
    manifests: [
      {
        mediaType: MEDIA_TYPE_MANIFEST,
        digest: A,
        size: 1,
        platform: { os: 'linux', architecture: 'amd64' },
        annotations: { [ANNOTATION_REF_NAME]: '1.2' },
      },
    ],
  });
  const expected =
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":' +
    `[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${A}","size":1,` +
    '"annotations":{"org.opencontainers.image.ref.name":"1.2"},"platform":{"architecture":"amd64","os":"linux"}}]}';
  assert.equal(Buffer.from(ix.bytes).toString(), expected);
  assert.equal(ix.descriptor.digest, sha(expected));
  assert.equal(ix.descriptor.mediaType, MEDIA_TYPE_INDEX);
  assert.deepEqual(parseIndex(ix.bytes).manifests[0]?.platform, { architecture: 'amd64', os: 'linux' });

  const cfg = encodeConfig({
    os: 'linux',
    architecture: 'amd64',
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'], Labels: { b: '2', a: '1' } },
    rootfs: { type: 'layers', diff_ids: [A] },
    created: '1970-01-01T00:00:00Z',
  });
  const expectedCfg =
    '{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux",' +
    '"config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"Labels":{"a":"1","b":"2"}},' +
    `"rootfs":{"type":"layers","diff_ids":["${A}"]}}`;
  assert.equal(Buffer.from(cfg.bytes).toString(), expectedCfg);
  assert.deepEqual(cfg.descriptor, {
    mediaType: MEDIA_TYPE_CONFIG,
    digest: sha(expectedCfg),
    size: expectedCfg.length,
  });
  assert.deepEqual(encodeConfig(parseConfig(cfg.bytes)).bytes, cfg.bytes);
});

test('encoders reject bad input', () => {
  throwsCode(
    () =>
      encodeManifest({ config: { mediaType: MEDIA_TYPE_CONFIG, digest: 'sha256:XY', size: 1 }, layers: [] }),
    'OCI_INVALID',
    /\$\.config\.digest/,
  );
});

test('parsers name the JSON path of the problem', () => {
  const good = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: { mediaType: MEDIA_TYPE_CONFIG, digest: A, size: 1 },
    layers: [{ mediaType: MEDIA_TYPE_LAYER_TAR_GZIP, digest: B, size: 2 }],
  };
  const bad = (patch: (o: Record<string, unknown>) => void): Uint8Array => {
    const o = structuredClone(good) as unknown as Record<string, unknown>;
    patch(o);
    return enc(JSON.stringify(o));
  };
  const layer0 = (o: Record<string, unknown>): Record<string, unknown> =>
    (o['layers'] as Record<string, unknown>[])[0] as Record<string, unknown>;
  assert.equal(parseManifest(enc(JSON.stringify(good))).config.size, 1);
  throwsCode(() => parseManifest(bad((o) => (o['schemaVersion'] = 1))), 'OCI_INVALID', /\$\.schemaVersion/);
  throwsCode(
    () => parseManifest(bad((o) => (o['mediaType'] = MEDIA_TYPE_INDEX))),
    'OCI_INVALID',
    /\$\.mediaType/,
  );
  throwsCode(
    () => parseManifest(bad((o) => (layer0(o)['size'] = -1))),
    'OCI_INVALID',
    /\$\.layers\[0\]\.size/,
  );
  throwsCode(
    () => parseManifest(bad((o) => (layer0(o)['digest'] = 'md5:00'))),
    'OCI_INVALID',
    /\$\.layers\[0\]\.digest/,
  );
  throwsCode(
    () => parseManifest(bad((o) => (o['annotations'] = { k: 1 }))),
    'OCI_INVALID',
    /\$\.annotations\["k"\]/,
  );
  throwsCode(
    () => parseManifest(bad((o) => delete o['config'])),
    'OCI_INVALID',
    /\$\.config: expected an object/,
  );
  throwsCode(() => parseManifest(enc('{')), 'OCI_INVALID', /not valid JSON/);
  throwsCode(() => parseManifest(new Uint8Array([0xff])), 'OCI_INVALID', /UTF-8/);
  throwsCode(() => parseManifest(enc(JSON.stringify(good)), { maxBytes: 10 }), 'OCI_INVALID', /limit of 10/);
  throwsCode(
    () =>
      parseIndex(
        enc(`{"schemaVersion":2,"manifests":[{"mediaType":"x/y","digest":"${A}","size":1,"platform":{}}]}`),
      ),
    'OCI_INVALID',
    /\$\.manifests\[0\]\.platform\.architecture/,
  );
  throwsCode(
    () =>
      parseConfig(enc('{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["x"]}}')),
    'OCI_INVALID',
    /\$\.rootfs\.diff_ids\[0\]/,
  );
  throwsCode(
    () =>
      parseConfig(
        enc(
          '{"os":"linux","architecture":"amd64","config":{"Env":[1]},"rootfs":{"type":"layers","diff_ids":[]}}',
        ),
      ),
    'OCI_INVALID',
    /\$\.config\.Env\[0\]/,
  );
  // Docker's nulls are accepted as absent.
  assert.deepEqual(
    parseConfig(
      enc(
        '{"os":"linux","architecture":"amd64","config":{"Entrypoint":null},"rootfs":{"type":"layers","diff_ids":[]}}',
      ),
    ).config,
    {},
  );
  assert.equal(parseDescriptor(enc(`{"mediaType":"a/b","digest":"${A}","size":0}`)).size, 0);
  throwsCode(
    () => parseDescriptor(enc(`{"mediaType":"ab","digest":"${A}","size":0}`)),
    'OCI_INVALID',
    /\$\.mediaType/,
  );
});

test('parseDigest and verifyDigest', () => {
  assert.deepEqual(parseDigest(A), { algorithm: 'sha256', hex: 'a'.repeat(64) });
  assert.equal(parseDigest(`sha512:${'0'.repeat(128)}`).algorithm, 'sha512');
  throwsCode(() => parseDigest(`sha256:${'A'.repeat(64)}`), 'OCI_INVALID');
  throwsCode(() => parseDigest(`sha256:${'a'.repeat(63)}`), 'OCI_INVALID', /64 hex digits/);
  throwsCode(() => parseDigest(`sha512:${'a'.repeat(64)}`), 'OCI_INVALID', /128/);
  throwsCode(() => parseDigest(`md5:${'a'.repeat(32)}`), 'OCI_INVALID', /unsupported/);
  const body = enc('hello');
  assert.ok(verifyDigest(body, sha('hello')));
  assert.ok(verifyDigest(body, `sha512:${createHash('sha512').update('hello').digest('hex')}`));
  assert.ok(!verifyDigest(body, A));
});

test('platforms', () => {
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  for (const s of ['linux/arm64/v8', 'linux/riscv64', 'windows/386', 'linux/loong64', 'linux/s390x']) {
    assert.equal(formatPlatform(parsePlatform(s)), s);
  }
  throwsCode(() => parsePlatform('linux/x86_64'), 'OCI_INVALID', /did you mean amd64/);
  throwsCode(() => parsePlatform('Linux/amd64'), 'OCI_INVALID', /unknown os/);
  throwsCode(() => parsePlatform('linux'), 'OCI_INVALID');
  throwsCode(() => parsePlatform('linux/arm//'), 'OCI_INVALID');
});

test('references follow docker rules', () => {
  const d = `sha256:${'c'.repeat(64)}`;
  assert.deepEqual(parseReference('alpine'), { registry: 'docker.io', repository: 'library/alpine' });
  assert.deepEqual(parseReference('alpine:3.19'), {
    registry: 'docker.io',
    repository: 'library/alpine',
    tag: '3.19',
  });
  assert.deepEqual(parseReference('team/app'), { registry: 'docker.io', repository: 'team/app' });
  assert.deepEqual(parseReference('index.docker.io/team/app'), {
    registry: 'docker.io',
    repository: 'team/app',
  });
  assert.deepEqual(parseReference(`127.0.0.1:5000/team/app:1.2@${d}`), {
    registry: '127.0.0.1:5000',
    repository: 'team/app',
    tag: '1.2',
    digest: d,
  });
  assert.deepEqual(parseReference('localhost/app'), { registry: 'localhost', repository: 'app' });
  assert.deepEqual(parseReference(`ghcr.io/a/b/c@${d}`), {
    registry: 'ghcr.io',
    repository: 'a/b/c',
    digest: d,
  });
  assert.deepEqual(parseReference('[::1]:5000/app:x'), {
    registry: '[::1]:5000',
    repository: 'app',
    tag: 'x',
  });
  const s = `registry.example.com:443/a-b/c__d.e:v1.0_rc-1@${d}`;
  assert.equal(formatReference(parseReference(s)), s);
  assert.equal(formatReference(parseReference('alpine')), 'docker.io/library/alpine');

  throwsCode(() => parseReference('Team/app'), 'OCI_INVALID', /lower-case/);
  throwsCode(() => parseReference('ghcr.io/App'), 'OCI_INVALID', /lower-case/);
  throwsCode(() => parseReference('app:-bad'), 'OCI_INVALID', /bad tag/);
  throwsCode(() => parseReference(`app:${'t'.repeat(129)}`), 'OCI_INVALID', /bad tag/);
  throwsCode(() => parseReference('app:a+b'), 'OCI_INVALID', /bad tag/);
  throwsCode(() => parseReference('app@sha256:123'), 'OCI_INVALID', /64 hex digits/);
  throwsCode(() => parseReference('ghcr.io/'), 'OCI_INVALID', /no repository/);
  throwsCode(() => parseReference('a//b'), 'OCI_INVALID');
  throwsCode(() => parseReference(''), 'OCI_INVALID');
});

test('WWW-Authenticate challenges', () => {
  assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm"'), [
    { scheme: 'Basic', params: { realm: 'Registry Realm' } },
  ]);
  assert.deepEqual(
    parseWwwAuthenticate(
      'Bearer realm="https://Auth.Example.com/Token",service="registry.example.com",scope="repository:a:pull,push"',
    ),
    [
      {
        scheme: 'Bearer',
        params: {
          realm: 'https://Auth.Example.com/Token',
          service: 'registry.example.com',
          scope: 'repository:a:pull,push',
        },
      },
    ],
  );
  assert.deepEqual(parseWwwAuthenticate('bEaReR Realm="r", error="say \\"hi\\", ok"  ,  basic realm=x'), [
    { scheme: 'Bearer', params: { realm: 'r', error: 'say "hi", ok' } },
    { scheme: 'Basic', params: { realm: 'x' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Negotiate, Basic realm="r"'), [
    { scheme: 'Basic', params: { realm: 'r' } },
  ]);
  for (const bad of [
    '',
    'Bearer realm="unterminated',
    'Bearer realm=',
    'realm="x"',
    'Bearer realm="a" service="b"',
    'Bearer service="b"',
    'Basic realm="a", realm="b"',
    'Basic foo bar',
  ]) {
    throwsCode(() => parseWwwAuthenticate(bad), 'OCI_AUTH_CHALLENGE_INVALID');
  }
});

test('token scopes and cache keys', () => {
  assert.equal(tokenScope('team/app', ['pull', 'push']), 'repository:team/app:pull,push');
  assert.equal(tokenScope('app', ['pull', 'pull']), 'repository:app:pull');
  throwsCode(() => tokenScope('app', []), 'OCI_INVALID');
  assert.equal(tokenCacheKey('GHCR.io', 'repository:a:pull'), tokenCacheKey('ghcr.io', 'repository:a:pull'));
  assert.notEqual(
    tokenCacheKey('ghcr.io', 'repository:a:pull'),
    tokenCacheKey('ghcr.io', 'repository:a:pull,push'),
  );
});
