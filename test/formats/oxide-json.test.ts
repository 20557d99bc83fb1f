import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import { encodeOmicronOxideJson, encodeOxideJson, parseOxideJson } from '../../src/formats/oxide-json.js';

const bad = (text: string): void => {
  assert.throws(
    () => parseOxideJson(Buffer.from(text)),
    (e: unknown) => isSlipwayError(e, 'OXIDE_JSON_INVALID'),
    text,
  );
};

test('omicron-package form: keys v, t, pkg, version; compact; no newline', () => {
  assert.equal(
    encodeOmicronOxideJson('layer', 'nexus', '0.0.0').toString(),
    '{"v":"1","t":"layer","pkg":"nexus","version":"0.0.0"}',
  );
});

test('brand/tufaceous form: compact with a newline', () => {
  assert.equal(
    encodeOxideJson({ v: '1', t: 'os', i: { name: 'helios', checksum: 'ab' } }).toString(),
    '{"v":"1","t":"os","i":{"name":"helios","checksum":"ab"}}\n',
  );
});

test('parse: types, optional i, unknown keys ignored', () => {
  assert.deepEqual(parseOxideJson(Buffer.from('{"v":"1","t":"baseline","extra":[1]}')), {
    v: '1',
    t: 'baseline',
  });
  assert.deepEqual(parseOxideJson(Buffer.from('{"v":"1","t":"layer","pkg":"p","version":"1.0.0"}\n')), {
    v: '1',
    t: 'layer',
    pkg: 'p',
    version: '1.0.0',
  });
  for (const t of ['layer', 'baseline', 'os', 'control_plane', 'rot']) {
    assert.equal(parseOxideJson(Buffer.from(`{"v":"1","t":"${t}"}`)).t, t);
  }
});

test('parse: every malformed form is OXIDE_JSON_INVALID', () => {
  bad('{"v":1,"t":"layer"}');
  bad('{"v":"2","t":"layer"}');
  bad('{"v":"1","t":"zone"}');
  bad('{"v":"1"}');
  bad('[]');
  bad('{"v":"1","t":"layer","i":{"ab":"x"}}');
  bad('{"v":"1","t":"layer","i":{"name":1}}');
  bad('{"v":"1","t":"layer","pkg":3}');
  bad('{"v":"1",');
  assert.throws(
    () => parseOxideJson(Buffer.from([0x7b, 0xff, 0x7d])),
    (e: unknown) => isSlipwayError(e, 'OXIDE_JSON_INVALID'),
  );
});
