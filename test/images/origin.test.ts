import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import { defaultImagesConfig } from '../../src/images/config.js';
import { ImagesClient } from '../../src/images/client.js';
import {
  buildOrigin,
  compatibility,
  gitStamp,
  publishOrigin,
  releaseImages,
} from '../../src/images/origin.js';
import { startImagesServer } from '../../src/server/imgapi-server.js';
import { OWNER } from '../helpers/imgapi.js';
import { tempDir, writeTree } from '../helpers/tmp.js';

const tmp = tempDir();

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
}

test('build-origin → publish by branch → release with its chain → compat, against a real server', async () => {
  const config = defaultImagesConfig(path.join(tmp, 'data'));
  config.port = 0;
  fs.mkdirSync(config.dataDir, { recursive: true });
  const server = await startImagesServer(config, {});
  after(() => server.close());
  const client = (channel: string): ImagesClient => new ImagesClient({ url: server.url, channel });

  // The base image: in dev only.
  const baseFile = path.join(tmp, 'base.tar.gz');
  fs.writeFileSync(baseFile, Buffer.from('base image bytes\n'));
  const baseUuid = randomUUID();
  const sha1 = createHash('sha1').update(fs.readFileSync(baseFile)).digest('hex');
  await client('dev').importImage(
    {
      v: 2,
      uuid: baseUuid,
      owner: OWNER,
      name: 'base-64',
      version: '24.4.0',
      state: 'active',
      disabled: false,
      public: true,
      published_at: '2026-01-01T00:00:00Z',
      type: 'zone-dataset',
      os: 'smartos',
      files: [{ sha1, size: fs.statSync(baseFile).size, compression: 'gzip' }],
    },
    baseFile,
  );

  // A git checkout holding the definition and its package set, on main.
  const repo = path.join(tmp, 'origin-repo');
  writeTree(repo, {
    'origin.toml': `family = "triton-origin"\narch = "x86_64"\norigin_version = "24.4.1"\nbase = "${baseUuid}"\nlayer = "pkgs"\nowner = "${OWNER}"\n`,
    'pkgs/opt/local/bin/tool': { data: '#!/bin/sh\necho tool\n', mode: 0o755 },
  });
  git(repo, 'init', '-q', '-b', 'main');
  git(repo, '-c', 'user.email=ci@example.com', '-c', 'user.name=ci', 'add', '.');
  git(repo, '-c', 'user.email=ci@example.com', '-c', 'user.name=ci', 'commit', '-q', '-m', 'origin');
  const stamp = gitStamp(repo);
  assert.equal(stamp.branch, 'main');
  assert.equal(stamp.dirty, false);

  const now = new Date('2026-11-22T01:02:03Z');
  const built = await buildOrigin(path.join(repo, 'origin.toml'), { out: path.join(tmp, 'out'), now });
  assert.equal(built.manifest.name, 'triton-origin-x86_64-24.4.1');
  assert.equal(built.manifest.version, `main-20261122T010203Z-g${stamp.commit.slice(0, 7)}`);
  assert.equal(built.manifest.origin, baseUuid);
  assert.deepEqual(
    {
      branch: built.manifest.tags?.branch,
      git: built.manifest.tags?.git,
      timestamp: built.manifest.tags?.timestamp,
    },
    { branch: 'main', git: stamp.commit, timestamp: '20261122T010203Z' },
  );
  // The file is a layer archive of the package set (t=layer, oxide.json first).
  const list = execFileSync('tar', ['-tzf', built.file], { encoding: 'utf8' });
  assert.match(list, /^oxide\.json\n/);
  assert.match(list, /root\/opt\/local\/bin\/tool/);

  // main → dev.
  const pub = await publishOrigin(built.manifestFile, built.file, client);
  assert.equal(pub.channel, 'dev');
  const inDev = await client('dev').getImage(pub.uuid);
  assert.equal(inDev.state, 'active');

  // Release: the base is only in dev, so without --with-origins nothing is added anywhere.
  await assert.rejects(releaseImages([pub.uuid], client), (e: unknown) => {
    assert.ok(isSlipwayError(e, 'INVALID_ARGUMENT'));
    assert.match(e.message, /origin chain is not there .*base-64/);
    return true;
  });
  assert.deepEqual((await client('dev').getImage(pub.uuid)).channels, ['dev']);
  const plan = await releaseImages([pub.uuid], client, { withOrigins: true });
  assert.deepEqual(
    plan.map((p) => p.channel),
    ['release', 'staging', 'experimental', 'support'],
  );
  const released = await client('release').getImage(pub.uuid);
  assert.deepEqual([...(released.channels ?? [])].sort(), [
    'dev',
    'experimental',
    'release',
    'staging',
    'support',
  ]);
  assert.ok((await client('support').getImage(baseUuid)).channels?.includes('support'));

  // A component built on the origin image shows up in the compatibility table.
  const compFile = path.join(tmp, 'vmapi.tar.gz');
  fs.writeFileSync(compFile, 'vmapi build\n');
  await client('dev').importImage(
    {
      v: 2,
      uuid: randomUUID(),
      owner: OWNER,
      name: 'vmapi',
      version: 'master-20261122T020000Z-g1234567',
      state: 'active',
      disabled: false,
      public: false,
      published_at: '2026-11-22T02:00:00Z',
      type: 'zone-dataset',
      os: 'smartos',
      origin: pub.uuid,
      files: [
        {
          sha1: createHash('sha1').update(fs.readFileSync(compFile)).digest('hex'),
          size: fs.statSync(compFile).size,
          compression: 'gzip',
        },
      ],
    },
    compFile,
  );
  const rows = await compatibility(client('*'));
  assert.deepEqual(
    rows.map((r) => [r.component, r.origin, r.originVersion]),
    [['vmapi', 'triton-origin-x86_64-24.4.1', built.manifest.version]],
  );
});
