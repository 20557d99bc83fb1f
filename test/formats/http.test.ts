import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  etagMatches,
  hostForUrl,
  parseRange,
  requestLogLine,
  type RangeResult,
} from '../../src/formats/http.js';

test('parseRange: single ranges, suffixes, open ends; others mean the whole file or 416', () => {
  const partial = (start: number, end: number): RangeResult => ({ kind: 'partial', start, end });
  const cases: [string | undefined, number, RangeResult][] = [
    [undefined, 1000, { kind: 'whole' }],
    ['bytes=0-99', 1000, partial(0, 99)],
    ['bytes=990-2000', 1000, partial(990, 999)],
    ['bytes=100-', 1000, partial(100, 999)],
    ['bytes=-10', 1000, partial(990, 999)],
    ['bytes=-5000', 1000, partial(0, 999)],
    ['BYTES = 5 - 6', 1000, partial(5, 6)],
    ['bytes=2-4', 10, partial(2, 4)],
    ['bytes=-3', 10, partial(7, 9)],
    ['bytes=1000-', 1000, { kind: 'unsatisfiable' }],
    ['bytes=1000-1001', 1000, { kind: 'unsatisfiable' }],
    ['bytes=99999999999999999999-', 1000, { kind: 'unsatisfiable' }],
    ['bytes=-0', 1000, { kind: 'unsatisfiable' }],
    ['bytes=-1', 0, { kind: 'unsatisfiable' }],
    ['bytes=0-', 0, { kind: 'unsatisfiable' }],
  ];
  for (const [header, size, want] of cases) assert.deepEqual(parseRange(header, size), want, header);
  for (const ignored of [
    'bytes=0-1,5-6',
    'bytes=9-3',
    'bytes=2000-1500',
    'items=0-1',
    'bytes=',
    'bytes=-',
    'bytes=a-b',
    'bytes=0x1-2',
  ]) {
    assert.deepEqual(parseRange(ignored, 1000), { kind: 'whole' }, ignored);
  }
});

test('etagMatches: lists, weak tags and *; quoted ETags compare as they are, bare ones without quotes', () => {
  // The repository server's ETags are quoted (RFC 9110).
  assert.ok(etagMatches(`"x", W/"ff-1000"`, '"ff-1000"'));
  assert.ok(etagMatches('*', '"a"'));
  assert.ok(!etagMatches(undefined, '"a"'));
  assert.ok(!etagMatches('"b"', '"a"'));
  assert.ok(!etagMatches('a', '"a"'));
  assert.ok(!etagMatches('"*"', '"a"'));
  // The image server's are bare sha1s (as IMGAPI's); clients may quote them.
  const sha1 = 'ab'.repeat(20);
  assert.ok(etagMatches(sha1, sha1));
  assert.ok(etagMatches(`"${sha1}"`, sha1));
  assert.ok(etagMatches(`"other", W/"${sha1}"`, sha1));
  assert.ok(etagMatches('"*"', sha1));
  assert.ok(!etagMatches('"other"', sha1));
});

test('hostForUrl and requestLogLine', () => {
  assert.equal(hostForUrl('127.0.0.1'), '127.0.0.1');
  assert.equal(hostForUrl('::1'), '[::1]');
  assert.equal(
    requestLogLine({ method: 'GET', path: '/a b', status: 206, bytes: 10, received: 0, ms: 3 }),
    'http method=GET path="/a b" status=206 bytes=10 ms=3',
  );
  assert.equal(
    requestLogLine({
      method: undefined,
      path: undefined,
      status: 0,
      incomplete: true,
      route: 'UpdateImage',
      action: 'channel-add',
      error: 'ResourceNotFound',
      bytes: 0,
      received: 7,
      ms: 12,
      user: '-',
      id: 'r1',
    }),
    'http method=- path="" status=0 incomplete=true route=UpdateImage action="channel-add" ' +
      'error=ResourceNotFound bytes=0 received=7 ms=12 user=- id=r1',
  );
});
