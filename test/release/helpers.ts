// Shared by the release tests: git isolated from the user's configuration, and error assertions.
import assert from 'node:assert/strict';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';

/** Git identity and a fixed clock through the environment: no global config is read or written. */
export const GIT_TEST_ENV = {
  GIT_AUTHOR_NAME: 'Release Tester',
  GIT_AUTHOR_EMAIL: 'release@example.org',
  GIT_COMMITTER_NAME: 'Release Tester',
  GIT_COMMITTER_EMAIL: 'release@example.org',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  SOURCE_DATE_EPOCH: '1714521600', // 2024-05-01
} as const;

/** `fn` throws a SlipwayError with `code`, exactly this `where`, and a message matching `message`. */
export function rejects(fn: () => unknown, code: ErrorCode, where: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSlipwayError(err, code), `expected ${code}, got ${String(err)}`);
    assert.equal(err.where, where);
    assert.match(err.message, message);
    return true;
  });
}
