import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import type { ImageManifest } from '../../src/formats/imgapi-types.js';
import {
  channelForBranch,
  compactTimestamp,
  compatTable,
  isOriginImage,
  originChain,
  originImageName,
  originVersionStamp,
  parseOriginDefinition,
} from '../../src/images/origin-rules.js';
import { OWNER } from '../helpers/imgapi.js';

const BASE = '5f0bb4e4-b6b6-4e0a-9b64-3b6b3c2c9a01';

function image(
  uuid: string,
  name: string,
  version: string,
  extra: Partial<ImageManifest> = {},
): ImageManifest {
  return {
    v: 2,
    uuid,
    owner: OWNER,
    name,
    version,
    state: 'active',
    disabled: false,
    public: false,
    type: 'zone-dataset',
    os: 'smartos',
    files: [],
    ...extra,
  };
}

test('origin image name and version stamp (triton-origin-image conventions)', () => {
  assert.equal(
    originImageName({ family: 'triton-origin', arch: 'x86_64', originVersion: '24.4.1' }),
    'triton-origin-x86_64-24.4.1',
  );
  const now = new Date('2026-03-04T05:06:07.890Z');
  assert.equal(compactTimestamp(now), '20260304T050607Z');
  assert.equal(
    originVersionStamp(
      { branch: 'master', commit: '0123456789abcdef0123456789abcdef01234567', dirty: false },
      now,
    ),
    'master-20260304T050607Z-g0123456',
  );
  assert.equal(
    originVersionStamp({ branch: 'release-20260301', commit: 'abcdef1234567', dirty: true }, now),
    'release-20260301-20260304T050607Z-gabcdef1-dirty',
  );
  assert.equal(
    originVersionStamp({ branch: 'feature/x y', commit: 'abcdef1', dirty: false }, now),
    'feature_x_y-20260304T050607Z-gabcdef1',
  );
  assert.throws(
    () => originVersionStamp({ branch: 'main', commit: 'zz', dirty: false }, now),
    (e: unknown) => isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
});

test('publishing channel by branch', () => {
  assert.equal(channelForBranch('release-20260301'), 'staging');
  assert.equal(channelForBranch('release-2026'), 'experimental');
  assert.equal(channelForBranch('main'), 'dev');
  assert.equal(channelForBranch('master'), 'dev');
  assert.equal(channelForBranch('TRITON-123'), 'experimental');
});

test('origin definition: fields, defaults, errors with file:line', () => {
  const def = parseOriginDefinition(
    `family = "triton-origin"\narch = "x86_64"\norigin_version = "24.4.1"\nbase = "${BASE}"\nlayer = "pkgs"\nowner = "${OWNER}"\n[tags]\nrole = "origin"\n`,
    'origin.toml',
  );
  assert.equal(def.os, 'smartos');
  assert.equal(def.type, 'zone-dataset');
  assert.deepEqual(def.tags, { role: 'origin' });
  assert.throws(
    () =>
      parseOriginDefinition(
        `family = "x"\narch = "x86_64"\norigin_version = "1"\nbase = "NOT-A-UUID"\nlayer = "p"\nowner = "${OWNER}"\n`,
        'o.toml',
      ),
    (e: unknown) => isSlipwayError(e, 'MANIFEST_INVALID') && e.where === 'o.toml:4',
  );
});

test('origin chain and the compatibility table come from the manifests', () => {
  const base = image(BASE, 'base-64', '24.4.0');
  const origin = image(
    '11111111-1111-4111-8111-111111111111',
    'triton-origin-x86_64-24.4.1',
    'master-20260304T050607Z-gabcdef1',
    {
      origin: BASE,
      tags: { origin_image: true },
    },
  );
  const vm = image('22222222-2222-4222-8222-222222222222', 'vmapi', 'master-20260305T000000Z-g1234567', {
    origin: origin.uuid,
    channels: ['dev'],
  });
  const vm2 = image('33333333-3333-4333-8333-333333333333', 'vmapi', 'master-20260306T000000Z-g7654321', {
    origin: origin.uuid,
    channels: ['dev', 'staging'],
  });
  const other = image('44444444-4444-4444-8444-444444444444', 'cnapi', '1.0.0', { origin: BASE });
  const all = [base, origin, vm, vm2, other];
  const byUuid = new Map(all.map((m) => [m.uuid, m]));
  assert.deepEqual(
    originChain(vm.uuid, (u) => byUuid.get(u)).chain.map((m) => m.name),
    ['vmapi', 'triton-origin-x86_64-24.4.1', 'base-64'],
  );
  assert.equal(
    originChain('55555555-5555-4555-8555-555555555555', (u) => byUuid.get(u)).missing,
    '55555555-5555-4555-8555-555555555555',
  );
  const loop = image('66666666-6666-4666-8666-666666666666', 'loop', '1', {
    origin: '66666666-6666-4666-8666-666666666666',
  });
  assert.equal(originChain(loop.uuid, (u) => (u === loop.uuid ? loop : undefined)).cycle, true);
  const rows = compatTable(all, isOriginImage);
  assert.deepEqual(
    rows.map((r) => [r.component, r.componentVersion, r.origin, r.channels.join(',')]),
    [
      ['vmapi', 'master-20260306T000000Z-g7654321', 'triton-origin-x86_64-24.4.1', 'dev,staging'],
      ['vmapi', 'master-20260305T000000Z-g1234567', 'triton-origin-x86_64-24.4.1', 'dev'],
    ],
  );
});
