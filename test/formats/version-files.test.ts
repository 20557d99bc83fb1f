import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import {
  parseBareVersion,
  parseChecksumList,
  parseShellVars,
  requireVar,
} from '../../src/formats/version-files.js';

function expectInvalid(fn: () => unknown, where: string, includes: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isSlipwayError(e, 'VERSION_FILE_INVALID'), String(e));
    assert.equal(e.where, where);
    assert.ok(e.message.includes(includes), e.message);
    return true;
  });
}

const SHA_A = 'a'.repeat(64);
const SHA_B = '0123456789abcdef'.repeat(4);

test('shell vars: the tools/*_version and *_checksums conventions', () => {
  const text = [
    '# pinned by tools/update_maghemite.sh', // 1
    'COMMIT="2fd39b8f4e7a3c0b9c4b3b3d5b8f0f6b6c1a2d3e"', // 2
    'SHA2="' + SHA_B + '"', // 3
    '', // 4
    `CIDL_SHA256_ILLUMOS="${SHA_A}"`, // 5
    `CIDL_SHA256_LINUX='${SHA_B}'`, // 6
    `CIDL_SHA256_DARWIN=${SHA_A}`, // 7
    '  export URL="https://example.invalid/a=b"  # trailing comment', // 8
    'EMPTY=', // 9
    'COMMIT="later-wins"', // 10
  ].join('\n');
  const vars = parseShellVars(text, 'tools/maghemite_version');
  assert.deepEqual(
    [...vars.keys()],
    ['COMMIT', 'SHA2', 'CIDL_SHA256_ILLUMOS', 'CIDL_SHA256_LINUX', 'CIDL_SHA256_DARWIN', 'URL', 'EMPTY'],
  );
  assert.deepEqual(vars.get('COMMIT'), { value: 'later-wins', line: 10 });
  assert.deepEqual(vars.get('SHA2'), { value: SHA_B, line: 3 });
  assert.deepEqual(vars.get('CIDL_SHA256_LINUX'), { value: SHA_B, line: 6 });
  assert.deepEqual(vars.get('CIDL_SHA256_DARWIN'), { value: SHA_A, line: 7 });
  // Split on the first `=` only.
  assert.deepEqual(vars.get('URL'), { value: 'https://example.invalid/a=b', line: 8 });
  assert.equal(requireVar(vars, 'EMPTY', 'f'), '');
  assert.equal(requireVar(vars, 'CIDL_SHA256_ILLUMOS', 'tools/maghemite_version'), SHA_A);
  // Windows line endings read the same.
  assert.equal(parseShellVars('COMMIT="abc"\r\n', 'f').get('COMMIT')?.value, 'abc');
});

test('shell vars: a missing key lists the keys there are', () => {
  const vars = parseShellVars('COMMIT="abc"\nSHA2="def"\n', 'tools/dendrite_openapi_version');
  expectInvalid(
    () => requireVar(vars, 'CIDL_SHA256_ILLUMOS', 'tools/dendrite_openapi_version'),
    'tools/dendrite_openapi_version',
    'tools/dendrite_openapi_version: no key CIDL_SHA256_ILLUMOS (has: COMMIT, SHA2)',
  );
});

test('shell vars: malformed lines name file:line', () => {
  expectInvalid(() => parseShellVars('COMMIT="abc"\njust words\n', 'v'), 'v:2', 'expected KEY="value"');
  expectInvalid(() => parseShellVars('\n\n2COMMIT=abc\n', 'v'), 'v:3', 'is not a variable name');
  expectInvalid(() => parseShellVars('COMMIT="abc\n', 'v'), 'v:1', 'COMMIT: unterminated double quote');
  expectInvalid(() => parseShellVars("# c\nCOMMIT='abc\n", 'v'), 'v:2', 'unterminated single quote');
  expectInvalid(
    () => parseShellVars('COMMIT="abc" def\n', 'v'),
    'v:1',
    'unexpected text after the closing quote',
  );
  expectInvalid(() => parseShellVars('COMMIT=abc def\n', 'v'), 'v:1', 'must be quoted');
});

test('bare version files', () => {
  assert.equal(parseBareVersion('v1.2.3\n', 'tools/console_version'), 'v1.2.3');
  assert.equal(parseBareVersion('\n  0.4.0  \n\n', 'f'), '0.4.0');
  expectInvalid(() => parseBareVersion('\n\n', 'tools/v'), 'tools/v', 'empty');
  expectInvalid(() => parseBareVersion('1.0\n2.0\n', 'tools/v'), 'tools/v:2', 'single version line');
  expectInvalid(() => parseBareVersion('1.0 beta\n', 'tools/v'), 'tools/v:1', 'no spaces');
});

test('checksum lists: <sha256> <name> lines', () => {
  const text = [
    `${SHA_A}  gimlet-sp-1.0.4.zip`,
    '',
    `${SHA_B.toUpperCase()}\tgimlet-rot-1.0.0.zip`,
    `${SHA_A} *psc sp image.zip`,
  ].join('\n');
  const m = parseChecksumList(text, 'tools/permslip_production');
  assert.deepEqual(
    [...m],
    [
      ['gimlet-sp-1.0.4.zip', SHA_A],
      ['gimlet-rot-1.0.0.zip', SHA_B],
      ['psc sp image.zip', SHA_A],
    ],
  );
  expectInvalid(() => parseChecksumList(`${SHA_A} a\nnotahash b\n`, 'p'), 'p:2', 'not a SHA-256');
  expectInvalid(() => parseChecksumList(`${SHA_A.slice(1)} a\n`, 'p'), 'p:1', 'not a SHA-256');
  expectInvalid(() => parseChecksumList(`\n${SHA_A}\n`, 'p'), 'p:2', 'expected "<sha256> <name>"');
  expectInvalid(() => parseChecksumList(`${SHA_A} a\n${SHA_B} a\n`, 'p'), 'p:2', 'a is listed twice');
});
