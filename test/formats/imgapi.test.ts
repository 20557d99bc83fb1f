import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import {
  ACTIONS,
  DEFAULT_CHANNELS,
  checkOriginChain,
  deriveState,
  errorBody,
  isUuid,
  matchesFilter,
  negotiateApiVersion,
  originDoesNotExist,
  parseAclAction,
  parseAction,
  parseChannels,
  parseListQuery,
  prettyJson,
  resolveChannel,
  serializeManifest,
  validateManifest,
  validateUpdate,
} from '../../src/formats/imgapi.js';
import {
  ImgapiError,
  type ChannelConfig,
  type ImageManifest,
  type ListFilter,
} from '../../src/formats/imgapi-types.js';
import { OWNER, publishedImage, SERVED_HEAD } from '../helpers/imgapi.js';

const U1 = '01b2c898-945f-11e1-a523-af1afbe22822';
const U2 = '02b2c898-945f-11e1-a523-af1afbe22822';
const U3 = '03b2c898-945f-11e1-a523-af1afbe22822';
const U4 = '04b2c898-945f-11e1-a523-af1afbe22822';
const SHA1 = '97f20b32c2016782257176fb58a35e5044f05840';

/** Asserts an ImgapiError with this status and code; `message` is exact when a string, else a pattern. */
function expectApi(
  fn: () => unknown,
  status: number,
  code: string,
  message?: string | RegExp,
  errors?: ImgapiError['errors'],
): ImgapiError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ImgapiError, `expected an ImgapiError, got ${String(caught)}`);
  assert.equal(caught.statusCode, status, caught.message);
  assert.equal(caught.restCode, code, caught.message);
  if (typeof message === 'string') assert.equal(caught.message, message);
  else if (message !== undefined) assert.match(caught.message, message);
  if (errors !== undefined) assert.deepEqual(caught.errors, errors);
  return caught;
}

function image(over: Partial<ImageManifest> = {}): ImageManifest {
  return publishedImage(U1, {
    version: '24.4.1',
    published_at: '2024-10-01T12:00:00Z',
    files: [{ sha1: SHA1, size: 46271847, compression: 'gzip' }],
    channels: ['dev'],
    ...over,
  });
}

function q(s: string): URLSearchParams {
  return new URLSearchParams(s);
}

// ---- channels

test('channels: the standard set, dev the default, each with a description', () => {
  assert.deepEqual(
    DEFAULT_CHANNELS.map((c) => c.name),
    ['experimental', 'dev', 'staging', 'release', 'support'],
  );
  assert.deepEqual(
    DEFAULT_CHANNELS.filter((c) => c.default === true).map((c) => c.name),
    ['dev'],
  );
  for (const c of DEFAULT_CHANNELS) assert.ok(c.description.length > 0, c.name);
  assert.deepEqual(parseChannels(DEFAULT_CHANNELS, 'config.toml'), DEFAULT_CHANNELS);
});

test('channels: parseChannels accepts a list without a default and keeps default only when true', () => {
  assert.deepEqual(
    parseChannels(
      [
        { name: 'a', description: 'A' },
        { name: 'b-2_x', description: '', default: false },
      ],
      'c.toml',
    ),
    [
      { name: 'a', description: 'A' },
      { name: 'b-2_x', description: '' },
    ],
  );
});

test('channels: parseChannels refuses bad configuration with MANIFEST_INVALID', () => {
  const cases: [unknown, RegExp][] = [
    ['dev', /expected a list/],
    [[], /empty/],
    [[{ name: 'Dev', description: 'x' }], /invalid channel name "Dev"/],
    [[{ name: '1dev', description: 'x' }], /invalid channel name/],
    [[{ name: 'de v', description: 'x' }], /invalid channel name/],
    [[{ name: '*', description: 'x' }], /invalid channel name/],
    [[{ description: 'x' }], /invalid channel name undefined/],
    [[{ name: 'dev' }], /description: expected a string/],
    [[{ name: 'dev', description: 'x', default: 'yes' }], /default: expected true or false/],
    [[{ name: 'dev', description: 'x', colour: 'red' }], /unknown key "colour"/],
    [['dev'], /channels\[0\]/],
    [
      [
        { name: 'dev', description: 'x' },
        { name: 'dev', description: 'y' },
      ],
      /duplicate channel name "dev"/,
    ],
    [
      [
        { name: 'dev', description: 'x', default: true },
        { name: 'staging', description: 'y', default: true },
      ],
      /more than one default channel/,
    ],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(
      () => parseChannels(value, 'imgapi.toml'),
      (e: unknown) => {
        assert.ok(isSlipwayError(e, 'MANIFEST_INVALID'), String(e));
        assert.equal(e.where, 'imgapi.toml');
        assert.match(e.message, pattern);
        return true;
      },
      JSON.stringify(value),
    );
  }
});

test('channels: resolveChannel follows the request rules', () => {
  const withDefault = DEFAULT_CHANNELS;
  const noDefault: ChannelConfig[] = [
    { name: 'dev', description: 'd' },
    { name: 'release', description: 'r' },
  ];
  // No channels configured: the parameter is ignored, whatever it is.
  for (const p of [null, 'dev', 'nope', '*']) {
    assert.equal(resolveChannel(p, undefined, 'read'), undefined);
    assert.equal(resolveChannel(p, undefined, 'write'), undefined);
  }
  // Missing → the default channel.
  assert.equal(resolveChannel(null, withDefault, 'read'), 'dev');
  assert.equal(resolveChannel(null, withDefault, 'write'), 'dev');
  assert.equal(resolveChannel('', withDefault, 'write'), 'dev');
  assert.equal(resolveChannel('staging', withDefault, 'write'), 'staging');
  assert.equal(resolveChannel('release', noDefault, 'read'), 'release');
  // Missing and no default → 422 ValidationFailed, MissingParameter.
  for (const mode of ['read', 'write'] as const)
    expectApi(() => resolveChannel(null, noDefault, mode), 422, 'ValidationFailed', undefined, [
      { field: 'channel', code: 'MissingParameter' },
    ]);
  // Unknown → 422 ValidationFailed `unknown channel: X`.
  expectApi(
    () => resolveChannel('nope', withDefault, 'read'),
    422,
    'ValidationFailed',
    'unknown channel: nope',
    [{ field: 'channel', code: 'Invalid' }],
  );
  expectApi(
    () => resolveChannel('Dev', withDefault, 'write'),
    422,
    'ValidationFailed',
    'unknown channel: Dev',
  );
  // `*`: reads only.
  assert.equal(resolveChannel('*', withDefault, 'read'), '*');
  assert.equal(resolveChannel('*', noDefault, 'read'), '*');
  expectApi(() => resolveChannel('*', withDefault, 'write'), 422, 'ValidationFailed', 'unknown channel: *', [
    { field: 'channel', code: 'Invalid' },
  ]);
});

// ---- Accept-Version

test('api version: no header is ~1; ranges pick the highest of 1.0.0 and 2.0.0', () => {
  const cases: [string | undefined, 1 | 2][] = [
    [undefined, 1],
    ['~1', 1],
    ['~1.0', 1],
    ['~1.0.0', 1],
    ['1', 1],
    ['1.0.0', 1],
    ['1.x', 1],
    ['^1', 1],
    ['^1.0.0', 1],
    ['<2', 1],
    ['<=1', 1],
    ['>=1 <2', 1],
    ['>= 1.0.0 < 2.0.0', 1],
    ['=1.0.0', 1],
    ['v1.0.0', 1],
    ['~2', 2],
    ['~2.0', 2],
    ['2', 2],
    ['2.0.0', 2],
    ['2.x', 2],
    ['^2', 2],
    ['*', 2],
    ['x', 2],
    ['>=1', 2],
    ['>=1.0.0', 2],
    ['>1', 2],
    ['>=2', 2],
    ['<=2', 2],
    ['1 || 2', 2],
    ['~1 || ~2', 2],
    ['1.0.0 - 2.0.0', 2],
    ['1 - 1.5', 1],
    [' ~2 ', 2],
    ['', 2],
  ];
  for (const [header, want] of cases) assert.equal(negotiateApiVersion(header), want, String(header));
});

test('api version: an unsatisfiable or malformed range is 400 InvalidVersion', () => {
  for (const header of [
    '~3',
    '3',
    '3.0.0',
    '>2',
    '>=3',
    '<1',
    '^0.1',
    '1.5.0',
    '2.1',
    'garbage',
    '~',
    '>=',
    '1.0.0.0',
  ])
    expectApi(() => negotiateApiVersion(header), 400, 'InvalidVersion', undefined);
  expectApi(
    () => negotiateApiVersion('~3', 'GET /images'),
    400,
    'InvalidVersion',
    '~3 is not supported by GET /images',
  );
  expectApi(() => negotiateApiVersion('x'.repeat(1000)), 400, 'InvalidVersion');
});

// ---- ListImages query

test('list query: defaults', () => {
  assert.deepEqual(parseListQuery(q(''), undefined), { state: 'active', tags: [], limit: 1000, sort: 'asc' });
  assert.deepEqual(parseListQuery(q(''), DEFAULT_CHANNELS), {
    state: 'active',
    tags: [],
    limit: 1000,
    sort: 'asc',
    channel: 'dev',
  });
});

test('list query: state', () => {
  for (const s of ['active', 'disabled', 'unactivated', 'all', 'creating', 'failed'])
    assert.equal(parseListQuery(q(`state=${s}`), undefined).state, s);
  expectApi(
    () => parseListQuery(q('state=bogus'), undefined),
    422,
    'InvalidParameter',
    'invalid state: "bogus"',
  );
  expectApi(() => parseListQuery(q('state=Active'), undefined), 422, 'InvalidParameter');
});

test('list query: name, version, owner, os, type, public', () => {
  const f = parseListQuery(
    q(`name=base-64&version=~24.4&owner=${OWNER}&os=smartos&type=!zvol&public=true&account=${U1}`),
    undefined,
  );
  assert.deepEqual(f.name, { exact: 'base-64' });
  assert.deepEqual(f.version, { substring: '24.4' });
  assert.equal(f.owner, OWNER);
  assert.equal(f.os, 'smartos');
  assert.deepEqual(f.type, { value: 'zvol', negate: true });
  assert.equal(f.public, true);
  assert.deepEqual(parseListQuery(q('name=~base&type=zvol&public=false'), undefined), {
    state: 'active',
    tags: [],
    limit: 1000,
    sort: 'asc',
    name: { substring: 'base' },
    type: { value: 'zvol', negate: false },
    public: false,
  });
  expectApi(() => parseListQuery(q('owner=nobody'), undefined), 422, 'InvalidParameter', /owner/);
  expectApi(() => parseListQuery(q(`owner=${OWNER.toUpperCase()}`), undefined), 422, 'InvalidParameter');
  expectApi(() => parseListQuery(q('public=yes'), undefined), 422, 'InvalidParameter', /public/);
  expectApi(() => parseListQuery(q('public='), undefined), 422, 'InvalidParameter');
});

test('list query: repeated tag.KEY=VALUE, channel, unknown params', () => {
  const f = parseListQuery(
    q('tag.smartdc_service=true&tag.role=imgapi&tag.n=1&frob=1&account=x'),
    DEFAULT_CHANNELS,
  );
  assert.deepEqual(f.tags, [
    ['smartdc_service', 'true'],
    ['role', 'imgapi'],
    ['n', '1'],
  ]);
  assert.equal(f.channel, 'dev');
  assert.equal(parseListQuery(q('channel=*'), DEFAULT_CHANNELS).channel, '*');
  assert.equal(parseListQuery(q('channel=release'), DEFAULT_CHANNELS).channel, 'release');
  assert.equal(parseListQuery(q('channel=release'), undefined).channel, undefined);
  expectApi(
    () => parseListQuery(q('channel=nope'), DEFAULT_CHANNELS),
    422,
    'ValidationFailed',
    'unknown channel: nope',
  );
  expectApi(
    () => parseListQuery(q(''), [{ name: 'dev', description: '' }]),
    422,
    'ValidationFailed',
    undefined,
    [{ field: 'channel', code: 'MissingParameter' }],
  );
});

test('list query: limit', () => {
  assert.equal(parseListQuery(q('limit=1'), undefined).limit, 1);
  assert.equal(parseListQuery(q('limit=1000'), undefined).limit, 1000);
  assert.equal(parseListQuery(q('limit=5000'), undefined).limit, 1000);
  for (const bad of ['0', '-1', 'abc', '1.5', '1e3', ' 5'])
    expectApi(
      () => parseListQuery(q(`limit=${encodeURIComponent(bad)}`), undefined),
      422,
      'InvalidParameter',
      /limit/,
    );
});

test('list query: marker is a uuid or a date', () => {
  const byUuid = parseListQuery(q(`marker=${U1}&limit=1000`), undefined);
  assert.equal(byUuid.markerUuid, U1);
  assert.equal(byUuid.markerPublishedAt, undefined);
  assert.equal(
    parseListQuery(q('marker=2014-03-20T12:34:56.789Z'), undefined).markerPublishedAt,
    '2014-03-20T12:34:56.789Z',
  );
  assert.equal(
    parseListQuery(q('marker=2014-03-20T12:34:56Z'), undefined).markerPublishedAt,
    '2014-03-20T12:34:56.000Z',
  );
  assert.equal(
    parseListQuery(q('marker=2014-03-20'), undefined).markerPublishedAt,
    '2014-03-20T00:00:00.000Z',
  );
  assert.equal(
    parseListQuery(q(`marker=${encodeURIComponent('2014-03-20T12:00:00+02:00')}`), undefined)
      .markerPublishedAt,
    '2014-03-20T10:00:00.000Z',
  );
  for (const bad of [
    'yesterday',
    U1.toUpperCase(),
    '2014-02-30',
    '2014-13-01',
    '2014-03-20T12:00:00',
    '12345',
  ])
    expectApi(
      () => parseListQuery(q(`marker=${encodeURIComponent(bad)}`), undefined),
      422,
      'InvalidParameter',
      /marker/,
    );
});

test('list query: sort', () => {
  assert.equal(parseListQuery(q('sort=published_at'), undefined).sort, 'asc');
  assert.equal(parseListQuery(q('sort=published_at.asc'), undefined).sort, 'asc');
  assert.equal(parseListQuery(q('sort=published_at.desc'), undefined).sort, 'desc');
  assert.equal(parseListQuery(q('sort=published_at.DESC'), undefined).sort, 'desc');
  expectApi(() => parseListQuery(q('sort=name'), undefined), 422, 'InvalidParameter', /sort/);
  expectApi(() => parseListQuery(q('sort=name.asc'), undefined), 422, 'InvalidParameter', /sort/);
  expectApi(() => parseListQuery(q('sort=published_at.up'), undefined), 422, 'InvalidParameter', /sort/);
});

// ---- filter semantics

function filter(over: Partial<ListFilter> = {}): ListFilter {
  return { state: 'all', tags: [], limit: 1000, sort: 'asc', ...over };
}

test('filter: states are derived from activated and disabled', () => {
  const active = image({ state: 'active', disabled: false });
  const disabled = image({ state: 'disabled', disabled: true });
  const unactivated = image({ state: 'unactivated', disabled: false, files: [], published_at: undefined });
  const unactivatedDisabled = image({ state: 'unactivated', disabled: true });
  const creating = image({ state: 'creating' });
  const failed = image({ state: 'failed' });
  const all = [active, disabled, unactivated, unactivatedDisabled, creating, failed];
  const pick = (state: ListFilter['state']): ImageManifest[] =>
    all.filter((m) => matchesFilter(m, filter({ state })));
  assert.deepEqual(pick('active'), [active]);
  assert.deepEqual(pick('disabled'), [disabled]);
  assert.deepEqual(pick('unactivated'), [unactivated, unactivatedDisabled, creating, failed]);
  assert.deepEqual(pick('creating'), [creating]);
  assert.deepEqual(pick('failed'), [failed]);
  assert.deepEqual(pick('all'), all);
  // The filter parsed from an empty query keeps only active images.
  const dflt = parseListQuery(q(''), undefined);
  assert.deepEqual(
    all.filter((m) => matchesFilter(m, dflt)),
    [active],
  );
});

test('filter: ~ is a case-sensitive substring, otherwise exact', () => {
  const m = image({ name: 'triton-origin-x86_64-24.4.1', version: 'master-20241001T120000Z-g1234567' });
  assert.ok(matchesFilter(m, filter({ name: { exact: 'triton-origin-x86_64-24.4.1' } })));
  assert.ok(!matchesFilter(m, filter({ name: { exact: 'triton-origin' } })));
  assert.ok(matchesFilter(m, filter({ name: { substring: 'origin-x86' } })));
  assert.ok(matchesFilter(m, filter({ name: { substring: '' } })));
  assert.ok(!matchesFilter(m, filter({ name: { substring: 'Origin' } })));
  assert.ok(matchesFilter(m, filter({ version: { substring: '20241001' } })));
  assert.ok(!matchesFilter(m, filter({ version: { exact: 'MASTER-20241001T120000Z-g1234567' } })));
  // Through the query parser.
  assert.ok(matchesFilter(m, parseListQuery(q('name=~x86_64&state=all'), undefined)));
  assert.ok(!matchesFilter(m, parseListQuery(q('name=~X86_64&state=all'), undefined)));
});

test('filter: owner, os, type and !type, public', () => {
  const m = image({ type: 'zone-dataset', os: 'smartos', public: false });
  assert.ok(matchesFilter(m, filter({ owner: OWNER })));
  assert.ok(!matchesFilter(m, filter({ owner: U2 })));
  assert.ok(matchesFilter(m, filter({ os: 'smartos' })));
  assert.ok(!matchesFilter(m, filter({ os: 'linux' })));
  assert.ok(matchesFilter(m, filter({ type: { value: 'zone-dataset', negate: false } })));
  assert.ok(!matchesFilter(m, filter({ type: { value: 'zvol', negate: false } })));
  assert.ok(matchesFilter(m, filter({ type: { value: 'zvol', negate: true } })));
  assert.ok(!matchesFilter(m, filter({ type: { value: 'zone-dataset', negate: true } })));
  assert.ok(matchesFilter(m, filter({ public: false })));
  assert.ok(!matchesFilter(m, filter({ public: true })));
});

test('filter: tags compare as strings, every pair must match', () => {
  const m = image({
    tags: { role: 'imgapi', smartdc_service: true, n: 1, obj: { a: 1 }, long: 'x'.repeat(101) },
  });
  const t = (...tags: [string, string][]): boolean => matchesFilter(m, filter({ tags }));
  assert.ok(t(['role', 'imgapi']));
  assert.ok(t(['smartdc_service', 'true']));
  assert.ok(t(['n', '1']));
  assert.ok(t(['role', 'imgapi'], ['n', '1']));
  assert.ok(!t(['role', 'imgapi'], ['n', '2']));
  assert.ok(!t(['role', 'IMGAPI']));
  assert.ok(!t(['smartdc_service', 'false']));
  assert.ok(!t(['missing', 'x']));
  assert.ok(!t(['obj', '[object Object]']));
  // `tag.KEY=` (empty value): the tag is present.
  assert.ok(t(['obj', '']));
  assert.ok(t(['role', '']));
  assert.ok(!t(['missing', '']));
  // Long string values are not searchable by value.
  assert.ok(!t(['long', 'x'.repeat(101)]));
  assert.ok(!matchesFilter(image({ tags: undefined }), filter({ tags: [['role', 'imgapi']] })));
  assert.ok(
    matchesFilter(m, parseListQuery(q('tag.role=imgapi&tag.smartdc_service=true&state=all'), undefined)),
  );
});

test('filter: channels', () => {
  const m = image({ channels: ['dev', 'staging'] });
  assert.ok(matchesFilter(m, filter({})));
  assert.ok(matchesFilter(m, filter({ channel: '*' })));
  assert.ok(matchesFilter(m, filter({ channel: 'staging' })));
  assert.ok(!matchesFilter(m, filter({ channel: 'release' })));
  assert.ok(!matchesFilter(image({ channels: undefined }), filter({ channel: 'dev' })));
  assert.ok(matchesFilter(image({ channels: undefined }), filter({ channel: '*' })));
});

test('deriveState: unactivated / disabled / active; creating and failed kept', () => {
  assert.equal(deriveState({ activated: false, disabled: false }), 'unactivated');
  assert.equal(deriveState({ activated: false, disabled: true }), 'unactivated');
  assert.equal(deriveState({ activated: true, disabled: false }), 'active');
  assert.equal(deriveState({ activated: true, disabled: true }), 'disabled');
  assert.equal(deriveState({ state: 'active', disabled: true }), 'disabled');
  assert.equal(deriveState({ state: 'disabled', disabled: false }), 'active');
  assert.equal(deriveState({ state: 'unactivated', disabled: true }), 'unactivated');
  assert.equal(deriveState({ disabled: false }), 'unactivated');
  assert.equal(deriveState({ state: 'creating', disabled: false, activated: true }), 'creating');
  assert.equal(deriveState({ state: 'failed', disabled: false }), 'failed');
  assert.equal(deriveState({ state: 'unactivated', activated: true, disabled: false }), 'active');
});

// ---- manifests: CreateImage

const CREATE_BODY = {
  owner: OWNER,
  name: 'triton-origin-x86_64-24.4.1',
  version: 'master-20241001T120000Z-g1234567',
  type: 'zone-dataset',
  os: 'smartos',
};

test('create: a minimal body becomes an unactivated v2 manifest', () => {
  assert.deepEqual(validateManifest(CREATE_BODY, 'create', { channelsEnabled: false }), {
    v: 2,
    uuid: '',
    owner: OWNER,
    name: 'triton-origin-x86_64-24.4.1',
    version: 'master-20241001T120000Z-g1234567',
    state: 'unactivated',
    disabled: false,
    public: false,
    type: 'zone-dataset',
    os: 'smartos',
    files: [],
  });
  const m = validateManifest({ ...CREATE_BODY, v: 2, public: true }, 'create', {
    channelsEnabled: true,
    uuid: U1,
    channel: 'dev',
  });
  assert.equal(m.uuid, U1);
  assert.equal(m.public, true);
  assert.deepEqual(m.channels, ['dev']);
});

test('create: optional fields are validated and kept', () => {
  const body = {
    ...CREATE_BODY,
    description: 'Triton origin image',
    homepage: 'https://example.com/origin',
    eula: 'http://example.com/eula',
    origin: U2,
    acl: [U3],
    tags: { branch: 'master', n: 1 },
    requirements: {
      networks: [{ name: 'net0', description: 'admin' }],
      min_platform: { '7.0': '20141030T081701Z' },
      min_ram: 256,
      max_ram: 1024,
      brand: 'joyent-minimal',
      ssh_key: true,
    },
    users: [{ name: 'root' }],
    billing_tags: ['small'],
    traits: { ssd: true, hw: ['a'] },
    generate_passwords: false,
    inherited_directories: ['/opt'],
  };
  const m = validateManifest(body, 'create', { channelsEnabled: false });
  for (const [k, v] of Object.entries(body))
    assert.deepEqual((m as unknown as Record<string, unknown>)[k], v, k);
  // A single acl uuid / billing tag string is taken as a list, as the reference does.
  const one = validateManifest({ ...CREATE_BODY, acl: U3, billing_tags: 'big' }, 'create', {
    channelsEnabled: false,
  });
  assert.deepEqual(one.acl, [U3]);
  assert.deepEqual(one.billing_tags, ['big']);
});

test('create: `state` present is 422 ValidationFailed', () => {
  for (const state of ['active', 'unactivated'])
    expectApi(
      () => validateManifest({ ...CREATE_BODY, state }, 'create', { channelsEnabled: false }),
      422,
      'ValidationFailed',
      /state/,
    );
});

test('create: unknown keys are 422 InvalidParameter listing them', () => {
  const e = expectApi(
    () => validateManifest({ ...CREATE_BODY, foo: 1, bar: 2 }, 'create', { channelsEnabled: false }),
    422,
    'InvalidParameter',
    'invalid extra parameters: "foo", "bar"',
  );
  assert.deepEqual(
    e.errors?.map((x) => [x.field, x.code]),
    [
      ['foo', 'Invalid'],
      ['bar', 'Invalid'],
    ],
  );
  // uuid and published_at are not CreateImage's to set.
  expectApi(
    () => validateManifest({ ...CREATE_BODY, uuid: U1 }, 'create', { channelsEnabled: false }),
    422,
    'InvalidParameter',
    'invalid extra parameters: "uuid"',
  );
  expectApi(
    () =>
      validateManifest({ ...CREATE_BODY, published_at: '2024-01-01T00:00:00Z' }, 'create', {
        channelsEnabled: false,
      }),
    422,
    'InvalidParameter',
    'invalid extra parameters: "published_at"',
  );
  // zvol fields on another type are extra, as in the reference.
  expectApi(
    () => validateManifest({ ...CREATE_BODY, nic_driver: 'virtio' }, 'create', { channelsEnabled: false }),
    422,
    'InvalidParameter',
    'invalid extra parameters: "nic_driver"',
  );
});

test('create: files and channels from a served manifest are tolerated and dropped', () => {
  const m = validateManifest(
    { ...CREATE_BODY, files: [{ sha1: SHA1, size: 10, compression: 'gzip' }], channels: ['release'] },
    'create',
    { channelsEnabled: true, channel: 'dev' },
  );
  assert.deepEqual(m.files, []);
  assert.deepEqual(m.channels, ['dev']);
  assert.equal(
    validateManifest({ ...CREATE_BODY, channels: ['x'] }, 'create', { channelsEnabled: true }).channels,
    undefined,
  );
});

test('create: v defaults to 2; others refused', () => {
  assert.equal(validateManifest(CREATE_BODY, 'create', { channelsEnabled: false }).v, 2);
  expectApi(
    () => validateManifest({ ...CREATE_BODY, v: 1 }, 'create', { channelsEnabled: false }),
    422,
    'ValidationFailed',
    /v/,
  );
});

test('create: field rules (name, version, uuids, enums, tags, files)', () => {
  const bad: [Record<string, unknown>, string, string?][] = [
    [{ name: 'x'.repeat(513) }, 'name'],
    [{ name: 'bad:name' }, 'name'],
    [{ name: '' }, 'name'],
    [{ name: 7 }, 'name'],
    [{ version: 'v'.repeat(129) }, 'version'],
    [{ version: '1.0 beta' }, 'version'],
    [{ owner: OWNER.toUpperCase() }, 'owner'],
    [{ owner: 'admin' }, 'owner'],
    [{ origin: 'not-a-uuid' }, 'origin'],
    [{ origin: U2.toUpperCase() }, 'origin'],
    [{ type: 'vm' }, 'type'],
    [{ os: 'macos' }, 'os'],
    [{ tags: ['a'] }, 'tags'],
    [{ tags: 'a=b' }, 'tags'],
    [{ tags: null }, 'tags'],
    [{ public: 'yes' }, 'public'],
    [{ homepage: 'ftp://example.com' }, 'homepage'],
    [{ acl: ['nope'] }, 'acl'],
    [{ users: [{ name: 'root', extra: 1 }] }, 'users'],
    [{ requirements: { frobs: 1 } }, 'requirements.frobs'],
    [{ requirements: { min_ram: 512, max_ram: 256 } }, 'requirements.max_ram'],
    [{ requirements: { min_platform: { '7.0': '2014' } } }, 'requirements.min_platform'],
    [{ inherited_directories: ['/opt'], type: 'lx-dataset' }, 'inherited_directories'],
    [
      {
        files: [
          { sha1: SHA1, size: 1, compression: 'gzip' },
          { sha1: SHA1, size: 1, compression: 'gzip' },
        ],
      },
      'files',
    ],
    [{ files: [{ sha1: 'abc', size: 1, compression: 'gzip' }] }, 'files'],
    [{ files: [{ sha1: SHA1, size: 1.5, compression: 'gzip' }] }, 'files'],
    [{ files: [{ sha1: SHA1, size: 1, compression: 'zip' }] }, 'files'],
    [{ files: {} }, 'files'],
  ];
  for (const [over, field] of bad) {
    const e = expectApi(
      () => validateManifest({ ...CREATE_BODY, ...over }, 'create', { channelsEnabled: false }),
      422,
      'ValidationFailed',
      undefined,
    );
    assert.equal(e.message, `invalid image data: ${field}`, JSON.stringify(over));
    assert.ok(
      e.errors?.some((x) => x.field === field && x.code === 'Invalid' && typeof x.message === 'string'),
      JSON.stringify(e.errors),
    );
  }
  // Limits are inclusive; the character sets are the spec's.
  const ok = validateManifest(
    { ...CREATE_BODY, name: `${'n'.repeat(508)} ./-`, version: `${'v'.repeat(124)}+_/.` },
    'create',
    { channelsEnabled: false },
  );
  assert.equal(ok.name.length, 512);
  assert.equal(ok.version.length, 128);
  assert.equal(
    validateManifest({ ...CREATE_BODY, name: 'A_b.c/d e-f' }, 'create', { channelsEnabled: false }).name,
    'A_b.c/d e-f',
  );
});

test('create: missing required fields are MissingParameter, all listed', () => {
  const e = expectApi(
    () => validateManifest({ owner: OWNER, type: 'zone-dataset' }, 'create', { channelsEnabled: false }),
    422,
    'ValidationFailed',
    'invalid image data: name, version, os',
  );
  assert.deepEqual(
    e.errors?.map((x) => [x.field, x.code]),
    [
      ['name', 'MissingParameter'],
      ['version', 'MissingParameter'],
      ['os', 'MissingParameter'],
    ],
  );
  for (const body of [null, [], 'x', 3])
    expectApi(() => validateManifest(body, 'create', { channelsEnabled: false }), 422, 'ValidationFailed');
});

test('create: zvol images need their drivers and size', () => {
  const zvol = { ...CREATE_BODY, type: 'zvol', os: 'linux' };
  expectApi(
    () => validateManifest(zvol, 'create', { channelsEnabled: false }),
    422,
    'ValidationFailed',
    'invalid image data: nic_driver, disk_driver, cpu_type, image_size',
  );
  const m = validateManifest(
    { ...zvol, nic_driver: 'virtio', disk_driver: 'virtio', cpu_type: 'host', image_size: 10240 },
    'create',
    { channelsEnabled: false },
  );
  assert.equal(m.image_size, 10240);
  expectApi(
    () =>
      validateManifest(
        { ...zvol, nic_driver: 'virtio', disk_driver: 'virtio', cpu_type: 'host', image_size: -1 },
        'create',
        { channelsEnabled: false },
      ),
    422,
    'ValidationFailed',
    'invalid image data: image_size',
  );
});

// ---- manifests: AdminImport

const PUBLISHED_FIELDS = {
  published_at: '2024-10-01T12:00:00.123Z',
  description: 'base image',
  origin: U2,
  tags: { role: 'base' },
};
const PUBLISHED = { ...image({ ...PUBLISHED_FIELDS, channels: ['release'] }), activated: true };

test('import: the manifest as published starts unactivated without a file, keeping published_at', () => {
  const m = validateManifest(PUBLISHED, 'import', { channelsEnabled: true, channel: 'dev' });
  assert.deepEqual(m, image({ ...PUBLISHED_FIELDS, state: 'unactivated', files: [], channels: ['dev'] }));
  const noMs = validateManifest({ ...PUBLISHED, published_at: '2024-10-01T12:00:00Z' }, 'import', {
    channelsEnabled: false,
  });
  assert.equal(noMs.published_at, '2024-10-01T12:00:00Z');
  assert.equal(noMs.channels, undefined);
});

test('import: errors', () => {
  const noUuid: Record<string, unknown> = { ...PUBLISHED };
  delete noUuid.uuid;
  expectApi(
    () => validateManifest(noUuid, 'import', { channelsEnabled: false }),
    422,
    'InvalidParameter',
    /uuid/,
    [{ field: 'uuid', code: 'MissingParameter', message: '"uuid" is required' }],
  );
  expectApi(
    () => validateManifest({ ...PUBLISHED, uuid: 'abc' }, 'import', { channelsEnabled: false }),
    422,
    'ValidationFailed',
    'invalid image data: uuid',
  );
  for (const at of [
    '2024-10-01',
    '2024-10-01T12:00:00',
    '2024-10-01T12:00:00.12Z',
    '2024-13-01T12:00:00Z',
    1,
  ])
    expectApi(
      () => validateManifest({ ...PUBLISHED, published_at: at }, 'import', { channelsEnabled: false }),
      422,
      'ValidationFailed',
      'invalid image data: published_at',
    );
  expectApi(
    () => validateManifest({ ...PUBLISHED, state: 'gone' }, 'import', { channelsEnabled: false }),
    422,
    'ValidationFailed',
    'invalid image data: state',
  );
  expectApi(
    () => validateManifest({ ...PUBLISHED, colour: 'red' }, 'import', { channelsEnabled: false }),
    422,
    'InvalidParameter',
    'invalid extra parameters: "colour"',
  );
  expectApi(
    () =>
      validateManifest({ ...PUBLISHED, files: [{ sha1: SHA1, size: 1, compression: 'lz4' }] }, 'import', {
        channelsEnabled: false,
      }),
    422,
    'ValidationFailed',
    'invalid image data: files',
  );
});

// ---- manifests: UpdateImage

test('update: mutable fields become a partial; null removes an optional field', () => {
  const patch = validateManifest(
    { description: 'new', public: 'true', tags: { a: 'b' }, acl: [U3], homepage: null, name: 'renamed' },
    'update',
    { channelsEnabled: true },
  );
  assert.deepEqual(Object.keys(patch), ['description', 'public', 'tags', 'acl', 'homepage', 'name']);
  assert.equal(patch.description, 'new');
  assert.equal(patch.public, true);
  assert.deepEqual(patch.tags, { a: 'b' });
  assert.equal(patch.homepage, undefined);
  assert.ok('homepage' in patch);
  assert.deepEqual(validateUpdate({ version: '2.0' }, { channelsEnabled: false }), { version: '2.0' });
});

test('update: immutable fields are 422 ValidationFailed', () => {
  for (const field of [
    'uuid',
    'owner',
    'state',
    'files',
    'channels',
    'published_at',
    'type',
    'origin',
    'disabled',
    'v',
  ])
    expectApi(
      () => validateUpdate({ description: 'x', [field]: 'y' }, { channelsEnabled: true }),
      422,
      'ValidationFailed',
      `invalid image update data: ${field}`,
    );
  const e = expectApi(
    () => validateUpdate({ uuid: U2, state: 'active' }, { channelsEnabled: true }),
    422,
    'ValidationFailed',
    'invalid image update data: uuid, state',
  );
  assert.deepEqual(
    e.errors?.map((x) => x.field),
    ['uuid', 'state'],
  );
  expectApi(() => validateUpdate({}, { channelsEnabled: false }), 422, 'ValidationFailed', /no parameters/);
  expectApi(() => validateUpdate(null, { channelsEnabled: false }), 422, 'ValidationFailed');
});

test('update: values are validated like create, type rules against the current image', () => {
  expectApi(
    () => validateUpdate({ name: 'bad:name' }, { channelsEnabled: false }),
    422,
    'ValidationFailed',
    'invalid image data: name',
  );
  expectApi(
    () => validateUpdate({ name: null }, { channelsEnabled: false }),
    422,
    'ValidationFailed',
    'invalid image data: name',
  );
  expectApi(
    () => validateUpdate({ tags: [] }, { channelsEnabled: false }),
    422,
    'ValidationFailed',
    'invalid image data: tags',
  );
  expectApi(
    () => validateUpdate({ os: 'beos' }, { channelsEnabled: false }),
    422,
    'ValidationFailed',
    'invalid image data: os',
  );
  expectApi(
    () => validateUpdate({ nic_driver: 'e1000' }, { channelsEnabled: false, current: image() }),
    422,
    'ValidationFailed',
    'invalid image data: nic_driver',
  );
  const zvol = image({
    type: 'zvol',
    nic_driver: 'virtio',
    disk_driver: 'virtio',
    cpu_type: 'host',
    image_size: 10,
  });
  assert.deepEqual(validateUpdate({ nic_driver: 'e1000' }, { channelsEnabled: false, current: zvol }), {
    nic_driver: 'e1000',
  });
  expectApi(
    () => validateUpdate({ nic_driver: null }, { channelsEnabled: false, current: zvol }),
    422,
    'ValidationFailed',
    'invalid image data: nic_driver',
  );
});

// ---- serialization

test('serialize: the spec key order, channels last and only for API version 2', () => {
  const m: ImageManifest = {
    channels: ['dev', 'release'],
    tags: { role: 'base' },
    origin: U2,
    requirements: { min_ram: 256 },
    homepage: 'https://example.com',
    description: 'base image',
    files: [{ compression: 'gzip', size: 10, sha1: SHA1 }],
    os: 'smartos',
    type: 'zone-dataset',
    published_at: '2024-10-01T12:00:00Z',
    public: true,
    disabled: false,
    state: 'active',
    version: '24.4.1',
    name: 'base-64',
    owner: OWNER,
    uuid: U1,
    v: 2,
  };
  const v2 = serializeManifest(m, 2);
  assert.deepEqual(Object.keys(v2), [
    ...SERVED_HEAD,
    'published_at',
    'type',
    'os',
    'files',
    'description',
    'homepage',
    'requirements',
    'origin',
    'tags',
    'channels',
  ]);
  assert.deepEqual(Object.keys((v2.files as object[])[0] ?? {}), ['sha1', 'size', 'compression']);
  const v1 = serializeManifest(m, 1);
  assert.ok(!('channels' in v1));
  assert.deepEqual(Object.keys(v1), Object.keys(v2).slice(0, -1));
});

test('serialize: undefined fields are left out; the required ones come first', () => {
  const m = image({ published_at: undefined, state: 'unactivated', files: [], channels: undefined, acl: [] });
  const s = serializeManifest(m, 2);
  assert.deepEqual(Object.keys(s), [...SERVED_HEAD, 'type', 'os', 'files']);
  assert.deepEqual(s.files, []);
  assert.equal(
    prettyJson(serializeManifest(image({ channels: ['dev'] }), 2)),
    [
      '{',
      '  "v": 2,',
      `  "uuid": "${U1}",`,
      `  "owner": "${OWNER}",`,
      '  "name": "base-64",',
      '  "version": "24.4.1",',
      '  "state": "active",',
      '  "disabled": false,',
      '  "public": true,',
      '  "published_at": "2024-10-01T12:00:00Z",',
      '  "type": "zone-dataset",',
      '  "os": "smartos",',
      '  "files": [',
      '    {',
      `      "sha1": "${SHA1}",`,
      '      "size": 46271847,',
      '      "compression": "gzip"',
      '    }',
      '  ],',
      '  "channels": [',
      '    "dev"',
      '  ]',
      '}',
    ].join('\n'),
  );
});

test('prettyJson: two spaces, as the reference formatter writes', () => {
  assert.equal(prettyJson({ ping: 'pong', imgapi: true }), '{\n  "ping": "pong",\n  "imgapi": true\n}');
  assert.equal(prettyJson([]), '[]');
});

// ---- origin chains

/** checkOriginChain as an expression (it returns nothing when the chain is fine). */
function chainOk(
  m: ImageManifest,
  channel: string | undefined,
  lookup: (uuid: string) => ImageManifest | undefined,
): true {
  checkOriginChain(m, channel, lookup);
  return true;
}

test('origin chain: complete, active and in the channel', () => {
  const base = image({ uuid: U2, channels: ['dev', 'release'] });
  const mid = image({ uuid: U3, origin: U2, channels: ['dev', 'release'] });
  const db = new Map([
    [U2, base],
    [U3, mid],
  ]);
  const lookup = (u: string): ImageManifest | undefined => db.get(u);
  const child = image({ uuid: U1, origin: U3, state: 'unactivated', channels: ['release'] });
  checkOriginChain(child, 'release', lookup);
  checkOriginChain(child, 'dev', lookup);
  checkOriginChain(child, undefined, lookup);
  checkOriginChain(child, '*', lookup);
  checkOriginChain(image({ origin: undefined }), 'staging', lookup);

  // Not in the channel.
  expectApi(
    () => chainOk(child, 'staging', lookup),
    422,
    'OriginNotInChannel',
    new RegExp(`${U3}.*staging|staging.*${U3}`),
  );
  db.set(U2, image({ uuid: U2, channels: ['dev'] }));
  const e = expectApi(() => chainOk(child, 'release', lookup), 422, 'OriginNotInChannel');
  assert.match(e.message, new RegExp(U2));
  assert.match(e.message, /release/);
  // Without channels, channel membership is not checked.
  checkOriginChain(child, undefined, lookup);
});

test('origin chain: missing and inactive origins', () => {
  const db = new Map<string, ImageManifest>();
  const lookup = (u: string): ImageManifest | undefined => db.get(u);
  const child = image({ uuid: U1, origin: U2 });
  let e = expectApi(() => chainOk(child, 'dev', lookup), 422, 'OriginNotInChannel');
  assert.match(e.message, new RegExp(U2));
  assert.match(e.message, /dev/);
  expectApi(() => chainOk(child, undefined, lookup), 422, 'OriginNotInChannel', new RegExp(U2));

  db.set(U2, image({ uuid: U2, origin: U3 }));
  e = expectApi(() => chainOk(child, 'dev', lookup), 422, 'OriginNotInChannel');
  assert.match(e.message, new RegExp(U3), 'names the first missing image, deeper in the chain');

  db.set(U3, image({ uuid: U3, state: 'unactivated', published_at: undefined }));
  e = expectApi(() => chainOk(child, 'dev', lookup), 422, 'OriginNotInChannel');
  assert.match(e.message, new RegExp(U3));
  assert.match(e.message, /not active/);

  db.set(U3, image({ uuid: U3, state: 'disabled', disabled: true }));
  e = expectApi(() => chainOk(child, 'dev', lookup), 422, 'OriginNotInChannel');
  assert.match(e.message, new RegExp(U3));

  db.set(U3, image({ uuid: U3 }));
  checkOriginChain(child, 'dev', lookup);
});

test('origin chain: cycles and chains deeper than 100', () => {
  const db = new Map<string, ImageManifest>([
    [U2, image({ uuid: U2, origin: U3 })],
    [U3, image({ uuid: U3, origin: U2 })],
  ]);
  const lookup = (u: string): ImageManifest | undefined => db.get(u);
  expectApi(
    () => chainOk(image({ uuid: U1, origin: U2 }), 'dev', lookup),
    422,
    'OriginNotInChannel',
    /cycle/,
  );
  // An image that is its own origin, or whose chain comes back to it.
  expectApi(
    () => chainOk(image({ uuid: U4, origin: U4 }), 'dev', lookup),
    422,
    'OriginNotInChannel',
    /cycle/,
  );
  expectApi(
    () => chainOk(image({ uuid: U2, origin: U3 }), 'dev', lookup),
    422,
    'OriginNotInChannel',
    /cycle/,
  );

  const uuidOf = (i: number): string => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
  const chain = new Map<string, ImageManifest>();
  for (let i = 1; i <= 101; i++)
    chain.set(uuidOf(i), image({ uuid: uuidOf(i), origin: i < 101 ? uuidOf(i + 1) : undefined }));
  const deep = (n: number): ImageManifest => image({ uuid: uuidOf(0), origin: uuidOf(101 - n + 1) });
  checkOriginChain(deep(100), 'dev', (u) => chain.get(u));
  expectApi(() => chainOk(deep(101), 'dev', (u) => chain.get(u)), 422, 'OriginNotInChannel', /100/);
});

test('originDoesNotExist: 422 OriginDoesNotExist naming the origin', () => {
  const e = originDoesNotExist(U2);
  assert.equal(e.statusCode, 422);
  assert.equal(e.restCode, 'OriginDoesNotExist');
  assert.equal(e.message, `origin image "${U2}" does not exist`);
});

// ---- errors, actions, uuids

test('errorBody: ImgapiErrors as sent, anything else a 500 that leaks nothing', () => {
  assert.deepEqual(errorBody(new ImgapiError(404, 'ResourceNotFound', 'image not found')), {
    status: 404,
    body: { code: 'ResourceNotFound', message: 'image not found' },
  });
  assert.deepEqual(
    errorBody(
      new ImgapiError(422, 'ValidationFailed', 'unknown channel: x', [{ field: 'channel', code: 'Invalid' }]),
    ),
    {
      status: 422,
      body: {
        code: 'ValidationFailed',
        message: 'unknown channel: x',
        errors: [{ field: 'channel', code: 'Invalid' }],
      },
    },
  );
  for (const err of [new Error('secret /etc/passwd'), 'boom', undefined, { statusCode: 404 }])
    assert.deepEqual(errorBody(err), {
      status: 500,
      body: { code: 'InternalError', message: 'internal error' },
    });
});

test('actions: the six, none is 422 MissingParameter, unknown is 422 InvalidParameter', () => {
  assert.deepEqual([...ACTIONS], ['activate', 'disable', 'enable', 'update', 'channel-add', 'import']);
  for (const a of ACTIONS) assert.equal(parseAction(q(`action=${a}`)), a);
  expectApi(() => parseAction(q('')), 422, 'MissingParameter', undefined, [
    { field: 'action', code: 'MissingParameter' },
  ]);
  expectApi(() => parseAction(q('action=')), 422, 'MissingParameter');
  expectApi(() => parseAction(q('action=frob')), 422, 'InvalidParameter', '"frob" is not a valid action');
  expectApi(
    () => parseAction(q('action=Activate')),
    422,
    'InvalidParameter',
    '"Activate" is not a valid action',
  );
  assert.equal(parseAclAction(q('action=add')), 'add');
  assert.equal(parseAclAction(q('action=remove')), 'remove');
  expectApi(
    () => parseAclAction(q('action=activate')),
    422,
    'InvalidParameter',
    '"activate" is not a valid action',
  );
});

test('isUuid: lowercase 8-4-4-4-12 only', () => {
  assert.ok(isUuid(U1));
  assert.ok(isUuid('00000000-0000-0000-0000-000000000000'));
  for (const s of [
    U1.toUpperCase(),
    `{${U1}}`,
    U1.replace(/-/g, ''),
    `${U1} `,
    `${U1}0`,
    'g'.repeat(8) + U1.slice(8),
    '',
  ])
    assert.ok(!isUuid(s), s);
});
