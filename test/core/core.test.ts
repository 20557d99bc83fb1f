import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import {
  AtomicFile,
  canonicalJson,
  DigestStream,
  formatSize,
  isSlipwayError,
  MultiDigest,
  parseSize,
  renderError,
  SlipwayError,
  withAtomicFile,
  writeFileAtomic,
} from '../../src/core/index.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir();

test('SlipwayError: code, cause, exit codes and rendering', () => {
  const cause = new Error('inner');
  const e = new SlipwayError('PATH_UNSAFE', "path 'a/../b' contains '..'", {
    where: 'x.tar.gz: a/../b',
    cause,
  });
  assert.equal(e.code, 'PATH_UNSAFE');
  assert.equal(e.cause, cause);
  assert.equal(e.exitCode, 2);
  assert.equal(new SlipwayError('IO', 'disk full').exitCode, 1);
  assert.equal(renderError(e), "error[PATH_UNSAFE]: x.tar.gz: a/../b: path 'a/../b' contains '..'");
  assert.ok(!renderError(e).includes('    at '), 'no stack without --debug');
  assert.ok(renderError(e, true).includes('caused by: Error: inner'));
  assert.equal(renderError(new Error('boom')), 'error[INTERNAL]: boom');
  assert.ok(isSlipwayError(e, 'PATH_UNSAFE'));
  assert.ok(!isSlipwayError(e, 'IO'));
});

test('canonical JSON: sorted keys by code point, minimal escaping, integers only', () => {
  assert.equal(
    canonicalJson({ b: 1, a: [true, null, 'x"y\\z'], c: { z: 'é', y: '\n' } }),
    '{"a":[true,null,"x\\"y\\\\z"],"b":1,"c":{"y":"\n","z":"é"}}',
  );
  // U+FB01 (BMP, above the surrogates) sorts before U+1F600 by code point, after it by UTF-16 unit.
  assert.equal(canonicalJson({ '\u{1F600}': 1, '\uFB01': 2 }), '{"\uFB01":2,"\u{1F600}":1}');
  assert.throws(
    () => canonicalJson({ a: 1.5 }),
    (e: unknown) => isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
  assert.equal(canonicalJson({ a: undefined, b: -3 }), '{"b":-3}');
});

test('sizes', () => {
  assert.equal(parseSize('1MiB'), 1048576);
  assert.equal(parseSize('1MB'), 1000000);
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('1.5GiB'), 1610612736);
  assert.equal(parseSize('64k'), 65536);
  assert.throws(
    () => parseSize('lots'),
    (e: unknown) => isSlipwayError(e, 'INVALID_ARGUMENT'),
  );
  assert.equal(formatSize(1536), '1.5 KiB');
  assert.equal(formatSize(1048576), '1 MiB');
  assert.equal(formatSize(12), '12 B');
  assert.equal(formatSize(950 * 1024 ** 2), '950 MiB');
  assert.equal(formatSize(100 * 1024 ** 2), '100 MiB');
  assert.equal(formatSize(120 * 1024 ** 2), '120 MiB');
  assert.equal(formatSize(10 * 1024), '10 KiB');
});

test('digests: sha256, sha1 and md5 in one pass, streaming', async () => {
  const data = Buffer.from('slipway '.repeat(100_000));
  const md = new MultiDigest(['sha256', 'sha1', 'md5']);
  for (let i = 0; i < data.length; i += 4097) md.update(data.subarray(i, i + 4097));
  const want = (a: string): string => createHash(a).update(data).digest('hex');
  assert.deepEqual(md.digest(), { sha256: want('sha256'), sha1: want('sha1'), md5: want('md5') });
  const ds = new DigestStream(['sha256', 'md5']);
  const sink: Buffer[] = [];
  await pipeline(
    Readable.from([data.subarray(0, 10), data.subarray(10)]),
    ds,
    new Writable({
      write(c: Buffer, _e, cb) {
        sink.push(c);
        cb();
      },
    }),
  );
  assert.equal(ds.digests.sha256, want('sha256'));
  assert.equal(ds.length, data.length);
  assert.ok(Buffer.concat(sink).equals(data));
});

test('atomic files: nothing at the target until commit, no temp left on error', async () => {
  const target = path.join(tmp, 'out.bin');
  fs.writeFileSync(target, 'old');
  const f = await AtomicFile.open(target);
  await f.write(Buffer.from('new contents'));
  assert.equal(fs.readFileSync(target, 'utf8'), 'old');
  assert.ok(fs.existsSync(f.tempPath));
  assert.equal(path.dirname(f.tempPath), tmp, 'temp file lives beside the target');
  await f.commit();
  assert.equal(fs.readFileSync(target, 'utf8'), 'new contents');
  await assert.rejects(
    withAtomicFile(target, async (file) => {
      await file.write(Buffer.from('partial'));
      throw new SlipwayError('IO', 'fails half way');
    }),
  );
  assert.equal(fs.readFileSync(target, 'utf8'), 'new contents');
  assert.deepEqual(fs.readdirSync(tmp), ['out.bin']);
  await writeFileAtomic(path.join(tmp, 'small.txt'), 'x');
  assert.equal(fs.readFileSync(path.join(tmp, 'small.txt'), 'utf8'), 'x');
  await assert.rejects(writeFileAtomic(path.join(tmp, 'no/such/dir/f'), 'x'), (e: unknown) =>
    isSlipwayError(e, 'NOT_FOUND'),
  );
});
