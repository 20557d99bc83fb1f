// The Slipway side of bench/release.sh (compiled to dist/bench/release-upload.js):
//
//   node dist/bench/release-upload.js input --dir DIR --mib 1024 --files 20 --version 1.0.0
//     writes a build directory as `release build` leaves it: DIR/files/ with FILES files of
//     pseudo-random bytes (AES-CTR of zeros, keyed by the file's index: the same bytes every run,
//     incompressible) totalling MIB MiB, a .sha256 beside each, manifest.json; DIR/latest.json.
//
//   node dist/bench/release-upload.js upload --build DIR --bucket B --endpoint URL
//        [--concurrency N] [--part-mib N] [--queue N] [--vars FILE --prefix P]
//     planReleaseUpload + applyReleaseUpload of that directory (credentials from the environment)
//     and prints the time of each half; with --vars, appends shell assignments P_PLAN_S=…,
//     P_APPLY_S=…, P_UPLOADED=…, P_SKIPPED=…, P_BYTES=… to FILE.
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { applyReleaseUpload, planReleaseUpload, type ReleaseUploadInput } from '../src/release/s3-upload.js';

const MiB = 1024 * 1024;
const PRODUCT = 'demo';

function fail(message: string): never {
  process.stderr.write(`release-upload: ${message}\n`);
  process.exit(2);
}

function whole(value: string | undefined, what: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) fail(`--${what} is required`);
    return fallback;
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) fail(`--${what} must be a whole number ≥ 1, got '${value}'`);
  return n;
}

/** `size` bytes of AES-128-CTR keystream for file `index`, written to `file`; returns its sha256. */
function writeDeterministic(file: string, index: number, size: number): string {
  const key = createHash('sha256').update(`slipway-bench-release-${index}`).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const zeros = Buffer.alloc(4 * MiB);
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let left = size; left > 0;) {
      const n = Math.min(left, zeros.length);
      const block = cipher.update(zeros.subarray(0, n));
      hash.update(block);
      fs.writeSync(fd, block);
      left -= n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

function makeInput(args: Record<string, string | undefined>): void {
  const dir = args.dir ?? fail('--dir is required');
  const total = whole(args.mib, 'mib') * MiB;
  const count = whole(args.files, 'files');
  const version = args.version ?? '1.0.0';
  const major = version.split('.').slice(0, 2).join('.');
  const filesDir = path.join(dir, 'files');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(filesDir, { recursive: true });
  const listed: { name: string; size: number; sha256: string }[] = [];
  const base = Math.floor(total / count);
  for (let i = 0; i < count; i++) {
    // The first file is the source tarball; the rest stand for per-architecture archives and images.
    const name =
      i === 0
        ? `${PRODUCT}-${version}.tar.gz`
        : `${PRODUCT}-${version}-part${String(i).padStart(2, '0')}.tar.xz`;
    const size = i === count - 1 ? total - base * (count - 1) : base;
    const sha256 = writeDeterministic(path.join(filesDir, name), i, size);
    fs.writeFileSync(path.join(filesDir, `${name}.sha256`), `${sha256}  ${name}\n`);
    listed.push({ name, size, sha256 });
  }
  const manifest = {
    product: PRODUCT,
    version,
    major,
    official: true,
    commit: 'bench',
    name: 'Bench',
    files: listed,
  };
  fs.writeFileSync(path.join(filesDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  fs.writeFileSync(
    path.join(dir, 'latest.json'),
    `${JSON.stringify({ product: PRODUCT, version, major })}\n`,
  );
  process.stdout.write(`wrote ${count} files, ${total} bytes, to ${filesDir}\n`);
}

async function upload(args: Record<string, string | undefined>): Promise<void> {
  const buildDir = args.build ?? fail('--build is required');
  const manifest = JSON.parse(fs.readFileSync(path.join(buildDir, 'files', 'manifest.json'), 'utf8')) as {
    version: string;
    major: string;
    official: boolean;
  };
  const input: ReleaseUploadInput = {
    s3: {
      endpoint: args.endpoint ?? fail('--endpoint is required'),
      region: process.env.AWS_REGION ?? 'us-east-1',
    },
    releasesBucket: args.bucket ?? fail('--bucket is required'),
    product: PRODUCT,
    version: manifest.version,
    major: manifest.major,
    official: manifest.official,
    buildDir,
    concurrency: whole(args.concurrency, 'concurrency', 4),
    partSize: whole(args['part-mib'], 'part-mib', 16) * MiB,
    queueSize: whole(args.queue, 'queue', 4),
  };
  const t0 = performance.now();
  const plan = await planReleaseUpload(input);
  const t1 = performance.now();
  const result = await applyReleaseUpload(input, plan);
  const t2 = performance.now();
  const planS = ((t1 - t0) / 1000).toFixed(3);
  const applyS = ((t2 - t1) / 1000).toFixed(3);
  process.stdout.write(
    `plan ${planS} s (hash ${plan.objects.length} files, list, head), apply ${applyS} s: ` +
      `${result.uploaded} uploaded (${result.bytes} bytes), ${result.skipped} skipped\n`,
  );
  if (args.vars !== undefined) {
    const p = args.prefix ?? 'SLW';
    fs.appendFileSync(
      args.vars,
      `${p}_PLAN_S=${planS}\n${p}_APPLY_S=${applyS}\n${p}_UPLOADED=${result.uploaded}\n` +
        `${p}_SKIPPED=${result.skipped}\n${p}_BYTES=${result.bytes}\n`,
    );
  }
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: Object.fromEntries(
    [
      'dir',
      'mib',
      'files',
      'version',
      'build',
      'bucket',
      'endpoint',
      'concurrency',
      'part-mib',
      'queue',
      'vars',
      'prefix',
    ].map((k) => [k, { type: 'string' as const }]),
  ),
});
const args = values as Record<string, string | undefined>;
switch (positionals[0]) {
  case 'input':
    makeInput(args);
    break;
  case 'upload':
    await upload(args);
    break;
  default:
    fail(
      'usage: release-upload.js input --dir DIR --mib N --files N | upload --build DIR --bucket B --endpoint URL',
    );
}
