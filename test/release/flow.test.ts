// The whole release through the CLI: prepare → tag → build → upload to the `local` environment
// (the S3 service of scripts/test.sh, a docker-registry, a bare git remote), checked with Debian's
// awscli, the registry's API and git. Without the S3 service this test fails (it never skips).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { startRegistry, type Registry } from '../helpers/registry.js';
import { testS3Client } from '../helpers/s3.js';
import { s3Env, START_SERVICES_HINT } from '../helpers/services.js';
import { tempDir } from '../helpers/tmp.js';
import { GIT_TEST_ENV } from './helpers.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(repoRoot, 'bin/slipway.js');
/** Debian's awscli; an `aws` earlier in PATH may be another installation. */
const AWS = '/usr/bin/aws';
const tmp = tempDir('slipway-release-flow-');
const s3 = s3Env();
const suffix = randomBytes(4).toString('hex');
const BUCKETS = {
  releases: `flow-rel-${suffix}`,
  docs: `flow-docs-${suffix}`,
  production: `flow-prod-${suffix}`,
};
let registry: Registry | undefined;

function service(): Record<string, string> {
  if (s3 === undefined) {
    assert.fail(
      `the S3 service is not running (no $SLIPWAY_SERVICES_DIR/ceph/env; SLIPWAY_SERVICES_DIR=${process.env.SLIPWAY_SERVICES_DIR ?? '(unset)'}): ${START_SERVICES_HINT}`,
    );
  }
  return s3;
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const s = service();
  const e: NodeJS.ProcessEnv = {
    ...process.env,
    ...GIT_TEST_ENV,
    AWS_ACCESS_KEY_ID: s.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: s.AWS_SECRET_ACCESS_KEY,
    AWS_REGION: s.AWS_REGION ?? 'us-east-1',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    NO_COLOR: '1',
    ...extra,
  };
  delete e.AWS_PROFILE;
  delete e.AWS_SESSION_TOKEN;
  return e;
}

function git(dir: string, ...args: string[]): string {
  return execFileSync('/usr/bin/git', ['-C', dir, ...args], { env: env(), encoding: 'utf8' }).trim();
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function slipway(dir: string, args: string[], o: { input?: string; env?: Record<string, string> } = {}): Run {
  const r = spawnSync(process.execPath, [CLI, '--plain', 'release', ...args, '-C', dir], {
    env: env(o.env),
    encoding: 'utf8',
    input: o.input ?? '',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(r: Run): Run {
  assert.equal(r.status, 0, `exit ${String(r.status)}\n${r.stdout}\n${r.stderr}`);
  return r;
}

function aws(...args: string[]): string {
  const s = service();
  return execFileSync(AWS, ['--endpoint-url', s.S3_ENDPOINT ?? '', '--output', 'json', ...args], {
    env: env(),
    encoding: 'utf8',
  });
}

function keys(bucket: string): string[] {
  const out = aws('s3api', 'list-objects-v2', '--bucket', bucket);
  if (out.trim() === '') return [];
  const doc = JSON.parse(out) as { Contents?: { Key: string }[] };
  return (doc.Contents ?? []).map((o) => o.Key).sort();
}

function head(
  bucket: string,
  key: string,
): { ContentLength: number; Metadata: Record<string, string> } | undefined {
  const s = service();
  const r = spawnSync(
    AWS,
    [
      '--endpoint-url',
      s.S3_ENDPOINT ?? '',
      '--output',
      'json',
      's3api',
      'head-object',
      '--bucket',
      bucket,
      '--key',
      key,
    ],
    { env: env(), encoding: 'utf8' },
  );
  if (r.status !== 0) return undefined;
  return JSON.parse(r.stdout) as { ContentLength: number; Metadata: Record<string, string> };
}

function remoteRefs(dir: string): string {
  return execFileSync('/usr/bin/git', ['--git-dir', `${dir}.git`, 'for-each-ref', '--format=%(refname)'], {
    encoding: 'utf8',
  }).trim();
}

async function registryTags(repo: string): Promise<string[]> {
  const res = await fetch(`http://${registry?.host ?? ''}/v2/${repo}/tags/list`);
  if (res.status === 404) return [];
  const doc = (await res.json()) as { tags?: string[] | null };
  return [...(doc.tags ?? [])].sort();
}

/** The example with every environment pointed at the test services, plus a big artifact (for the kill). */
function product(): string {
  const s = service();
  const dir = fs.mkdtempSync(path.join(tmp, 'widget-'));
  fs.cpSync(path.join(repoRoot, 'examples/release'), dir, { recursive: true });
  const file = path.join(dir, 'release.toml');
  const text = fs.readFileSync(file, 'utf8');
  const head = text.slice(0, text.indexOf('# A local S3'));
  fs.writeFileSync(
    file,
    `${head}[[build.jobs]]
name = "big"
command = ["dd", "if=/dev/zero", "of={work}/widget-{version}-big.bin", "bs=1048576", "count=40", "status=none"]
artifacts = ["widget-{version}-big.bin"]

[environments.local]
git_remote = "origin"

[environments.local.s3]
endpoint = "${s.S3_ENDPOINT ?? ''}"
region = "${s.AWS_REGION ?? 'us-east-1'}"
releases_bucket = "${BUCKETS.releases}"
docs_bucket = "${BUCKETS.docs}"

[[environments.local.registries]]
target = "${registry?.host ?? ''}/widget"
layout = "widget"
tags = ["{version}", "{major}", "latest"]
insecure = true

[environments.production]
git_remote = "origin"

[environments.production.s3]
endpoint = "${s.S3_ENDPOINT ?? ''}"
releases_bucket = "${BUCKETS.production}"
`,
  );
  execFileSync('/usr/bin/git', ['-c', 'init.defaultBranch=main', 'init', '-q', '--bare', `${dir}.git`]);
  git(dir, '-c', 'init.defaultBranch=main', 'init', '-q');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'widget');
  git(dir, 'remote', 'add', 'origin', `${dir}.git`);
  return dir;
}

before(async () => {
  const client = testS3Client(service());
  for (const b of Object.values(BUCKETS)) await client.send(new CreateBucketCommand({ Bucket: b }));
  client.destroy();
  registry = await startRegistry();
});

after(async () => {
  await registry?.stop();
  if (s3 === undefined) return;
  const client = testS3Client(s3);
  for (const b of Object.values(BUCKETS)) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: b })).catch(() => undefined);
    const objects = (listed?.Contents ?? []).map((o) => ({ Key: o.Key ?? '' }));
    if (objects.length > 0)
      await client.send(new DeleteObjectsCommand({ Bucket: b, Delete: { Objects: objects } }));
    await client.send(new DeleteBucketCommand({ Bucket: b })).catch(() => undefined);
  }
  client.destroy();
});

test('prepare → tag → build → upload through the CLI; re-runs finish or send nothing; refusals change nothing', async () => {
  const dir = product();
  ok(slipway(dir, ['prepare']));
  ok(slipway(dir, ['tag']));
  ok(slipway(dir, ['build']));
  const out = path.join(dir, 'out/release/1.2.0');
  const files = fs.readdirSync(path.join(out, 'files')).sort();
  const prefix = 'widget/widget-1.2.0/';
  const latestKey = 'widget/latest.json';

  // Wrong credentials: RELEASE_S3_AUTH (exit 2), nothing anywhere.
  const denied = slipway(dir, ['upload', '--env', 'local'], {
    env: { AWS_SECRET_ACCESS_KEY: 'wrong-secret' },
  });
  assert.equal(denied.status, 2, denied.stderr);
  assert.match(denied.stderr, /error\[RELEASE_S3_AUTH\]/);
  assert.deepEqual(keys(BUCKETS.releases), []);
  assert.equal(remoteRefs(dir), '');

  // Not on the tag: refused before anything is read remotely.
  git(dir, 'checkout', '-q', 'main');
  const offTag = slipway(dir, ['upload', '--env', 'local']);
  assert.equal(offTag.status, 2);
  assert.match(offTag.stderr, /error\[RELEASE_NOT_ON_TAG\]/);
  git(dir, 'checkout', '-q', '1.2.0');

  // Dry run: the plan, nothing done.
  const dry = ok(slipway(dir, ['upload', '--env', 'local', '--dry-run']));
  assert.match(dry.stdout, /latest\.json, LAST \(now absent\)/);
  assert.match(
    dry.stdout,
    new RegExp(`oci/widget → ${registry?.host ?? ''}/widget:\\{1\\.2\\.0,1\\.2,latest\\}`),
  );
  assert.match(dry.stdout, /git push origin main 1\.2\.0/);
  assert.deepEqual(keys(BUCKETS.releases), []);
  assert.equal(remoteRefs(dir), '');
  assert.deepEqual(await registryTags('widget'), []);

  // Killed part way (after its first object): latest.json is not there; a re-run finishes.
  const child = spawn(process.execPath, [CLI, '--plain', 'release', 'upload', '--env', 'local', '-C', dir], {
    env: env(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((resolve) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      stderr += s;
      if (/uploaded s3:\/\//.test(stderr) && child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('close', () => {
      resolve();
    });
  });
  assert.equal(child.signalCode, 'SIGKILL', `the upload ended before it could be killed:\n${stderr}`);
  const partial = keys(BUCKETS.releases);
  assert.ok(
    partial.length > 0 && !partial.includes(latestKey),
    `latest.json must come last: ${partial.join(', ')}`,
  );

  ok(slipway(dir, ['--json', 'upload', '--env', 'local']));
  // Every file with its sha256 as metadata, the manifest, and latest.json (the build's bytes).
  const expected = [...files.map((f) => prefix + f), latestKey].sort();
  assert.deepEqual(keys(BUCKETS.releases), expected);
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'files/manifest.json'), 'utf8')) as {
    files: { name: string; sha256: string; size: number }[];
  };
  for (const f of manifest.files) {
    const h = head(BUCKETS.releases, prefix + f.name);
    assert.equal(h?.Metadata.sha256, f.sha256, f.name);
    assert.equal(h?.ContentLength, f.size, f.name);
  }
  const fetched = path.join(tmp, 'latest.json');
  aws('s3', 'cp', `s3://${BUCKETS.releases}/${latestKey}`, fetched);
  assert.equal(fs.readFileSync(fetched, 'utf8'), fs.readFileSync(path.join(out, 'latest.json'), 'utf8'));
  // awscli's own listing and download: every file there, with the bytes the manifest names.
  const listed = aws('s3', 'ls', '--recursive', `s3://${BUCKETS.releases}/${prefix}`)
    .trim()
    .split('\n')
    .map((l) => l.replace(/^\S+ \S+ +\d+ /, ''))
    .sort();
  assert.deepEqual(listed, files.map((f) => prefix + f).sort());
  const downloaded = path.join(tmp, 'downloaded');
  aws('s3', 'cp', '--recursive', '--only-show-errors', `s3://${BUCKETS.releases}/${prefix}`, downloaded);
  for (const f of manifest.files) {
    const data = fs.readFileSync(path.join(downloaded, f.name));
    assert.equal(createHash('sha256').update(data).digest('hex'), f.sha256, f.name);
  }
  execFileSync('sha256sum', ['--quiet', '-c', ...files.filter((f) => f.endsWith('.sha256'))], {
    cwd: downloaded,
  });
  // Docs under manual/<MAJOR>/ and, the release being official, manual/stable/.
  const docs = keys(BUCKETS.docs);
  assert.ok(docs.includes('manual/1.2/release-notes/rl-1.2.md'), docs.join(', '));
  assert.ok(docs.includes('manual/stable/release-notes/rl-1.2.md'), docs.join(', '));
  // The images (tags from the templates) and the git refs.
  assert.deepEqual(await registryTags('widget'), ['1.2', '1.2.0', 'latest']);
  assert.equal(remoteRefs(dir), 'refs/heads/main\nrefs/tags/1.2.0');
  assert.equal(
    execFileSync('/usr/bin/git', ['--git-dir', `${dir}.git`, 'rev-parse', 'refs/tags/1.2.0^{commit}'], {
      encoding: 'utf8',
    }).trim(),
    git(dir, 'rev-parse', 'HEAD'),
  );

  // A second upload sends no object.
  const again = ok(slipway(dir, ['--json', 'upload', '--env', 'local']));
  const result = JSON.parse(again.stdout) as {
    uploaded: { uploaded: number; skipped: number; deleted: number };
  };
  assert.equal(result.uploaded.uploaded, 0);
  assert.equal(result.uploaded.deleted, 0);
  assert.equal(result.uploaded.skipped, expected.length + docs.length);

  // Production: without the typed phrase, nothing; with it, the release is there.
  const refused = slipway(dir, ['upload', '--env', 'production'], { input: 'yes\n' });
  assert.equal(refused.status, 2, refused.stderr);
  assert.match(refused.stderr, /Type "I want to release this to production" to go on: /);
  assert.match(refused.stderr, /error\[RELEASE_NOT_CONFIRMED\]/);
  assert.deepEqual(keys(BUCKETS.production), []);
  ok(slipway(dir, ['upload', '--env', 'production'], { input: 'I want to release this to production\n' }));
  assert.deepEqual(keys(BUCKETS.production), expected);

  // Re-tagged after the push (tag --force-tag), rebuilt: upload refuses the remote's other tag
  // before writing anything; with --force-tag it replaces that tag and publishes the new build.
  const remoteTag = (): string =>
    execFileSync('/usr/bin/git', ['--git-dir', `${dir}.git`, 'rev-parse', 'refs/tags/1.2.0^{commit}'], {
      encoding: 'utf8',
    }).trim();
  const firstRelease = remoteTag();
  git(dir, 'checkout', '-q', 'main');
  ok(slipway(dir, ['tag', '--force-tag']));
  ok(slipway(dir, ['build']));
  const retagged = git(dir, 'rev-parse', 'HEAD');
  assert.notEqual(retagged, firstRelease);
  const latestBefore = head(BUCKETS.releases, latestKey);
  const retagRefused = slipway(dir, ['upload', '--env', 'local']);
  assert.equal(retagRefused.status, 2, retagRefused.stderr);
  assert.match(retagRefused.stderr, /error\[RELEASE_TAG_EXISTS\].*git remote origin has another tag 1\.2\.0/);
  assert.deepEqual(keys(BUCKETS.releases), expected);
  assert.deepEqual(head(BUCKETS.releases, latestKey), latestBefore);
  assert.equal(remoteTag(), firstRelease);
  const dryForced = ok(slipway(dir, ['upload', '--env', 'local', '--dry-run', '--force-tag']));
  assert.match(dryForced.stdout, /replaces origin's tag 1\.2\.0 .*--force-tag/);
  assert.equal(remoteTag(), firstRelease);
  ok(slipway(dir, ['upload', '--env', 'local', '--force-tag']));
  assert.equal(remoteTag(), retagged);
  aws('s3', 'cp', `s3://${BUCKETS.releases}/${latestKey}`, fetched);
  assert.equal(
    (JSON.parse(fs.readFileSync(fetched, 'utf8')) as { commit: string }).commit,
    retagged,
    'latest.json names the re-tagged build',
  );

  // Production with --noconfirm: no prompt (stdin is empty: a prompt would read nothing and refuse),
  // and the re-tagged build goes out.
  const unprompted = ok(slipway(dir, ['upload', '--env', 'production', '--noconfirm']));
  assert.doesNotMatch(unprompted.stderr, /Type "|I want to release this to production/);
  assert.doesNotMatch(unprompted.stdout, /Type "|I want to release this to production/);
  assert.match(unprompted.stderr, /uploaded s3:\/\/flow-prod-/);
  assert.deepEqual(keys(BUCKETS.production), expected);
  aws('s3', 'cp', `s3://${BUCKETS.production}/${latestKey}`, fetched);
  assert.equal(
    (JSON.parse(fs.readFileSync(fetched, 'utf8')) as { commit: string }).commit,
    retagged,
    'production latest.json names the re-tagged build',
  );
});
