/**
 * The images client and `slipway images …` end to end against the real
 * server (in-process, SQLite + a temp directory, loopback port 0): every
 * command, the import's clean-up, --latest, paging past 1000 images, signed
 * requests. One negative case (a server lying about Content-MD5 or about
 * what it stored) uses a tiny fake server, since the real one does not lie.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CliContext, CommandResult } from '../../src/cli/context.js';
import { imagesCommand, latestImages, renderTable, sortRows } from '../../src/cli/images.js';
import { CliReporter } from '../../src/cli/render.js';
import { isSlipwayError, SlipwayError, type ErrorCode } from '../../src/core/errors.js';
import type { SlipwayEvent } from '../../src/core/events.js';
import type { ImageManifest } from '../../src/formats/imgapi-types.js';
import { defaultImagesConfig, type ImagesConfig } from '../../src/images/config.js';
import { apiErrorOf, ImagesClient } from '../../src/images/client.js';
import { formatSshPublicKey } from '../../src/images/http-signature.js';
import { startImagesServer } from '../../src/server/imgapi-server.js';
import { OWNER, publishedImage } from '../helpers/imgapi.js';
import { tempDir } from '../helpers/tmp.js';
import { quietCliContext } from '../helpers/cli.js';

const tmp = tempDir('slipway-images-client-');

class RecordingReporter extends CliReporter {
  readonly events: SlipwayEvent[] = [];
  override emit(event: SlipwayEvent): void {
    this.events.push(event);
  }
}

function makeCtx(): CliContext & { reporter: RecordingReporter } {
  return { ...quietCliContext(), reporter: new RecordingReporter({ quiet: true, plain: true }) };
}

type Server = Awaited<ReturnType<typeof startImagesServer>>;

async function startServer(name: string, edit: (c: ImagesConfig) => void = () => undefined): Promise<Server> {
  const config = defaultImagesConfig(path.join(tmp, name));
  config.host = '127.0.0.1';
  config.port = 0;
  config.closeGraceMs = 1000;
  edit(config);
  fs.mkdirSync(config.dataDir, { recursive: true });
  return startImagesServer(config, {});
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<SlipwayError> {
  try {
    await p;
  } catch (err) {
    assert.ok(isSlipwayError(err), `expected a SlipwayError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected error ${code}`);
}

/** An image file: random bytes (the server does not look inside). */
function imageFile(name: string, size = 200_000): { file: string; sha1: string; size: number } {
  const data = randomBytes(size);
  const file = path.join(tmp, name);
  fs.writeFileSync(file, data);
  return { file, sha1: createHash('sha1').update(data).digest('hex'), size };
}

/** A manifest as published (what `import -m` reads). */
function published(f: { sha1: string; size: number }, fields: Partial<ImageManifest> = {}): ImageManifest {
  return publishedImage(randomUUID(), {
    files: [{ sha1: f.sha1, size: f.size, compression: 'gzip' }],
    ...fields,
  });
}

function writeJson(name: string, value: unknown): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, JSON.stringify(value, null, 2));
  return p;
}

describe('against the real server (auth none)', () => {
  let server: Server;
  let url: string;
  const ctx = makeCtx();
  const run = (...args: string[]): Promise<CommandResult> => imagesCommand(['--url', url, ...args], ctx);

  before(async () => {
    server = await startServer('plain');
    url = server.url;
  });
  after(async () => {
    await server.close();
  });

  test('ping and channels', async () => {
    const pong = (await run('ping')).data as { ping: string; imgapi: boolean };
    assert.equal(pong.ping, 'pong');
    assert.equal(pong.imgapi, true);
    const channels = await run('channels');
    const names = (channels.data as { name: string }[]).map((c) => c.name);
    assert.ok(names.includes('dev') && names.includes('release'), names.join(','));
    assert.match(channels.human.split('\n')[0] ?? '', /^NAME\s+DEFAULT\s+DESCRIPTION$/);
    assert.equal((await run('channels', '-H', '-o', 'name')).human.split('\n')[0], 'experimental');
    assert.deepEqual(JSON.parse((await run('channels', '-j')).human), channels.data);
  });

  test('import -m -f: admin import, add-file, activate; get, list, get-file with progress', async () => {
    const f = imageFile('base.zfs.gz');
    const m = published(f);
    const r = await run('import', '-m', writeJson('base.imgmanifest', m), '-f', f.file);
    const image = r.data as ImageManifest;
    assert.equal(image.uuid, m.uuid);
    assert.equal(image.state, 'active');
    assert.equal(image.published_at, '2024-01-02T03:04:05Z');
    assert.deepEqual(image.files, m.files);
    assert.deepEqual(image.channels, ['dev']);
    assert.match(r.human, new RegExp(`^Imported image ${m.uuid} \\(base-64, 1.0.0, state=active\\)$`));
    const kinds = ctx.reporter.events
      .filter((e) => 'task' in e && e.task?.startsWith('upload'))
      .map((e) => e.kind);
    assert.equal(kinds[0], 'task-start');
    assert.equal(kinds[kinds.length - 1], 'task-end');

    const got = (await run('get', m.uuid)).data as ImageManifest;
    assert.deepEqual(got, image);
    const listed = await run('list', `name=${m.name}`);
    assert.deepEqual(
      (listed.data as ImageManifest[]).map((i) => i.uuid),
      [m.uuid],
    );
    const [header, row] = listed.human.split('\n');
    assert.match(header ?? '', /^UUID\s+NAME\s+VERSION\s+FLAGS\s+OS\s+PUBLISHED$/);
    assert.match(
      row ?? '',
      new RegExp(`^${m.uuid}\\s+base-64\\s+1\\.0\\.0\\s+P\\s+smartos\\s+2024-01-02T03:04:05Z$`),
    );

    ctx.reporter.events.length = 0;
    const out = path.join(tmp, 'downloaded.zfs.gz');
    const dl = await run('get-file', m.uuid, '-o', out);
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(f.file)));
    assert.deepEqual(
      { size: (dl.data as { size: number }).size, sha1: (dl.data as { sha1: string }).sha1 },
      {
        size: f.size,
        sha1: f.sha1,
      },
    );
    const progress = ctx.reporter.events.filter((e) => e.kind === 'task-progress');
    assert.ok(progress.length > 0);
    assert.deepEqual(ctx.reporter.events.at(-1), { kind: 'task-end', task: `download ${m.uuid}`, ok: true });
    // without -o: <uuid>-file.gz in the working directory
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      await run('get-file', m.uuid);
    } finally {
      process.chdir(cwd);
    }
    assert.ok(fs.readFileSync(path.join(tmp, `${m.uuid}-file.gz`)).equals(fs.readFileSync(f.file)));
  });

  test('create, add-file, activate, disable, enable, update, channel-add, delete', async () => {
    const f = imageFile('app.tgz');
    const manifest = writeJson('app.json', {
      owner: OWNER,
      name: 'app',
      version: '2.0.0',
      type: 'zone-dataset',
      os: 'smartos',
      public: false,
      tags: { role: 'app', keep: 'yes' },
    });
    const created = await run('create', '-m', manifest);
    const uuid = created.human;
    assert.match(uuid, /^[0-9a-f-]{36}$/);
    assert.equal((created.data as ImageManifest).state, 'unactivated');

    const added = await run('add-file', uuid, '-f', f.file); // .tgz → gzip
    assert.deepEqual((added.data as ImageManifest).files, [
      { sha1: f.sha1, size: f.size, compression: 'gzip' },
    ]);
    assert.equal(added.human, `Added file "${f.file}" (compression "gzip") to image ${uuid}`);

    assert.equal(((await run('activate', uuid)).data as ImageManifest).state, 'active');
    await rejectsWith(run('activate', uuid), 'IMAGES_API_ERROR', /HTTP 422 ImageAlreadyActivated: /);

    assert.equal(((await run('disable', uuid)).data as ImageManifest).state, 'disabled');
    assert.ok(!((await run('list', 'name=app')).data as ImageManifest[]).some((i) => i.uuid === uuid));
    const all = await run('list', '-a', 'name=app');
    assert.match(all.human.split('\n')[0] ?? '', /STATE/);
    assert.match(all.human, new RegExp(`${uuid}\\s+app\\s+2\\.0\\.0\\s+X\\s+smartos\\s+disabled`));
    assert.equal(((await run('enable', uuid)).data as ImageManifest).state, 'active');

    const updated = (
      await run('update', uuid, 'description=the app', 'tags.role=web', 'tags.keep=', 'public=true')
    ).data as ImageManifest;
    assert.equal(updated.description, 'the app');
    assert.equal(updated.public, true);
    assert.deepEqual(updated.tags, { role: 'web' });

    const added2 = await run('channel-add', 'staging', uuid);
    assert.equal(added2.human, `Added image ${uuid} (app@2.0.0) to "staging" channel`);
    assert.deepEqual(((await run('-C', 'staging', 'get', uuid)).data as ImageManifest).channels?.sort(), [
      'dev',
      'staging',
    ]);
    await rejectsWith(run('channel-add', 'nosuch', uuid), 'IMAGES_API_ERROR', /HTTP 422/);

    // delete from one channel, then from all
    assert.equal(
      (await run('-C', 'staging', 'delete', uuid)).human,
      `Deleted image ${uuid} from "staging" channel`,
    );
    assert.deepEqual(((await run('get', uuid)).data as ImageManifest).channels, ['dev']);
    await rejectsWith(run('-C', 'staging', 'get', uuid), 'IMAGES_API_ERROR', /HTTP 404 ResourceNotFound/);
    await run('channel-add', 'staging', uuid);
    await run('delete', uuid, '--force-all-channels');
    const gone = await rejectsWith(run('-C', '*', 'get', uuid), 'IMAGES_API_ERROR', /HTTP 404/);
    assert.equal(apiErrorOf(gone)?.statusCode, 404);
    assert.equal(apiErrorOf(gone)?.restCode, 'ResourceNotFound');
  });

  test('import cleans up: a file whose sha1 differs from the manifest leaves no image behind', async () => {
    const f = imageFile('bad.zfs.gz');
    const m = published({ sha1: createHash('sha1').update('something else').digest('hex'), size: f.size });
    const err = await rejectsWith(
      run('import', '-m', writeJson('bad.imgmanifest', m), '-f', f.file),
      'IMAGES_API_ERROR',
      /HTTP 400 Download: .*the partially imported image .* was deleted/s,
    );
    assert.match(err.message, new RegExp(m.uuid));
    await rejectsWith(run('-C', '*', 'get', m.uuid), 'IMAGES_API_ERROR', /HTTP 404/);
    const failedTask = ctx.reporter.events.filter((e) => e.kind === 'task-end').at(-1);
    assert.deepEqual(failedTask, { kind: 'task-end', task: 'upload bad.zfs.gz', ok: false });
    // and the uuid is free again: the right file imports
    const good = published(f, { uuid: m.uuid });
    assert.equal(
      ((await run('import', '-m', writeJson('good.imgmanifest', good), '-f', f.file)).data as ImageManifest)
        .state,
      'active',
    );
  });

  test('import cleans up when activation fails too (and says so)', async () => {
    // an origin that is not in the channel: the import itself is refused, nothing to clean
    const f = imageFile('child.zfs.gz');
    const m = published(f, { origin: randomUUID() });
    await rejectsWith(
      run('import', '-m', writeJson('child.imgmanifest', m), '-f', f.file),
      'IMAGES_API_ERROR',
      /HTTP 422/,
    );
    await rejectsWith(run('-C', '*', 'get', m.uuid), 'IMAGES_API_ERROR', /HTTP 404/);
    // a manifest without files[0]: refused before anything is sent
    const noFiles = { ...published(f), files: [] };
    await rejectsWith(
      run('import', '-m', writeJson('nofiles.imgmanifest', noFiles), '-f', f.file),
      'INVALID_ARGUMENT',
    );
    await rejectsWith(run('-C', '*', 'get', noFiles.uuid), 'IMAGES_API_ERROR', /HTTP 404/);
  });

  test('list --latest keeps, per owner+name, the newest published_at; -j, -o, -s', async () => {
    const f = imageFile('l.gz', 1000);
    const mk = (name: string, version: string, at: string): ImageManifest =>
      published(f, { name, version, published_at: at });
    const images = [
      mk('latest-a', '1', '2024-03-01T00:00:00Z'),
      mk('latest-a', '3', '2024-03-03T00:00:00.123Z'),
      mk('latest-a', '2', '2024-03-02T00:00:00Z'),
      mk('latest-b', '1', '2024-03-01T12:00:00Z'),
    ];
    for (const [i, m] of images.entries())
      await run('import', '-m', writeJson(`latest-${i}.json`, m), '-f', f.file);
    const latest = await run('list', 'name=~latest-', '--latest');
    assert.deepEqual(
      (latest.data as ImageManifest[]).map((m) => `${m.name}@${m.version}`),
      ['latest-b@1', 'latest-a@3'],
    );
    assert.match(latest.human, /latest-a\s+3\s+P\s+smartos\s+2024-03-03T00:00:00Z/); // published: no milliseconds
    const j = JSON.parse((await run('list', 'name=~latest-', '-j')).human) as ImageManifest[];
    assert.equal(j.length, 4);
    const cols = await run(
      'list',
      'name=~latest-',
      '-o',
      'name,version,published_date',
      '--sort=-version,name',
      '-H',
    );
    assert.deepEqual(cols.human.split('\n'), [
      'latest-a  3  2024-03-03',
      'latest-a  2  2024-03-02',
      'latest-a  1  2024-03-01',
      'latest-b  1  2024-03-01',
    ]);
    await rejectsWith(run('list', '-o', 'uuid,nonsense'), 'USAGE', /unknown column 'nonsense'/);
    await rejectsWith(run('list', 'namefoo'), 'USAGE', /FIELD=VALUE/);
  });

  test('usage errors and unreachable servers', async () => {
    await rejectsWith(imagesCommand(['ping'], makeCtx()), 'USAGE', /--url/);
    await rejectsWith(run('frobnicate'), 'USAGE', /unknown images command/);
    await rejectsWith(run('get'), 'USAGE', /one image UUID/);
    await rejectsWith(run('get', 'not-a-uuid'), 'INVALID_ARGUMENT', /not an image uuid/);
    await rejectsWith(run('add-file', randomUUID(), '-f', path.join(tmp, 'x.bin')), 'USAGE', /compression/);
    await rejectsWith(run('add-file', randomUUID(), '-f', path.join(tmp, 'missing.gz')), 'NOT_FOUND');
    await rejectsWith(run('create', '-m', path.join(tmp, 'base.zfs.gz')), 'INVALID_ARGUMENT', /not JSON/);
    await rejectsWith(run('update', randomUUID()), 'USAGE');
    await rejectsWith(run('--key', path.join(tmp, 'k'), 'ping'), 'USAGE', /needs a user/);
    // serve is images-serve.ts's: delegated with its own flags; client flags before it are refused
    await rejectsWith(imagesCommand(['serve', '--no-such-flag'], makeCtx()), 'USAGE');
    await rejectsWith(run('serve'), 'USAGE', /client flags do not apply/);
    // a port nobody listens on
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const client = new ImagesClient({ url: `http://127.0.0.1:${port}`, retries: 1, backoffMs: 10 });
    await rejectsWith(
      client.ping(),
      'IMAGES_UNREACHABLE',
      /cannot reach the image repository .*ECONNREFUSED/,
    );
  });
});

describe('paging', () => {
  let server: Server;
  before(async () => {
    server = await startServer('paging');
  });
  after(async () => {
    await server.close();
  });

  test('listImages pages past 1000 images like sdc-clients (inclusive marker, first element dropped)', async () => {
    const requests: URL[] = [];
    const counting: typeof fetch = (input, init) => {
      requests.push(new URL(input instanceof Request ? input.url : String(input)));
      return fetch(input, init);
    };
    const client = new ImagesClient({ url: server.url, fetch: counting });
    const total = 1234;
    const base = Date.parse('2021-01-01T00:00:00Z');
    const uuids = new Set<string>();
    // seed through AdminImport (unactivated, keeps published_at): one request per image
    const queue = Array.from({ length: total }, (_, i) => i);
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
          const m = published(
            { sha1: 'a'.repeat(40), size: 1 },
            {
              name: 'paged',
              version: `1.0.${i}`,
              published_at: new Date(base + i * 1000).toISOString().replace('.000Z', 'Z'),
            },
          );
          uuids.add(m.uuid);
          await client.adminImportImage(m);
        }
      }),
    );
    requests.length = 0;
    const listed = await client.listImages({ name: 'paged', state: 'all' });
    assert.equal(listed.length, total);
    assert.equal(new Set(listed.map((m) => m.uuid)).size, total);
    assert.deepEqual(new Set(listed.map((m) => m.uuid)), uuids);
    // sorted by published_at across the page boundary
    const times = listed.map((m) => m.published_at ?? '');
    assert.deepEqual([...times].sort(), times);
    const pages = requests.filter((u) => u.pathname === '/images');
    assert.equal(pages.length, 2);
    assert.equal(pages[0]?.searchParams.get('limit'), null);
    assert.equal(pages[0]?.searchParams.get('marker'), null);
    assert.equal(pages[1]?.searchParams.get('limit'), '1000');
    assert.equal(pages[1]?.searchParams.get('marker'), listed[999]?.uuid);
    // all: false → one page of at most 1000
    assert.equal((await client.listImages({ name: 'paged', state: 'all' }, { all: false })).length, 1000);
    // through the CLI
    const r = await imagesCommand(['--url', server.url, 'list', 'name=paged', 'state=all', '-j'], makeCtx());
    assert.equal((r.data as unknown[]).length, total);
  });
});

describe('signed requests (auth = signature)', () => {
  let server: Server;
  const keysDir = path.join(tmp, 'authkeys');
  const alice = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const mallory = generateKeyPairSync('ed25519');
  const aliceKeyFile = path.join(tmp, 'alice.pem');
  const malloryKeyFile = path.join(tmp, 'mallory.pem');

  before(async () => {
    fs.mkdirSync(keysDir, { recursive: true });
    fs.writeFileSync(
      path.join(keysDir, 'alice.keys'),
      `# alice\n${formatSshPublicKey(alice.publicKey, 'alice@ci')}\n`,
    );
    fs.writeFileSync(aliceKeyFile, alice.privateKey.export({ type: 'pkcs1', format: 'pem' }));
    fs.writeFileSync(malloryKeyFile, mallory.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    server = await startServer('signed', (c) => {
      c.auth = { type: 'signature', keysDir, reads: false };
    });
  });
  after(async () => {
    await server.close();
  });

  test('anonymous reads work, anonymous writes get 401; signed writes work; a wrong key gets 401', async () => {
    const ctx = makeCtx();
    const run = (...args: string[]): Promise<CommandResult> =>
      imagesCommand(['--url', server.url, ...args], ctx);
    const f = imageFile('signed.zfs.gz', 5000);
    const m = published(f);
    const manifest = writeJson('signed.imgmanifest', m);
    assert.equal(((await run('ping')).data as { ping: string }).ping, 'pong');
    await rejectsWith(run('import', '-m', manifest, '-f', f.file), 'IMAGES_API_ERROR', /HTTP 401/);
    await rejectsWith(
      run('--user', 'alice', '--key', malloryKeyFile, 'import', '-m', manifest, '-f', f.file),
      'IMAGES_API_ERROR',
      /HTTP 401/,
    );
    await rejectsWith(
      run('--user', 'bob', '--key', aliceKeyFile, 'import', '-m', manifest, '-f', f.file),
      'IMAGES_API_ERROR',
      /HTTP 401/,
    );
    const r = await run('--user', 'alice', '--key', aliceKeyFile, 'import', '-m', manifest, '-f', f.file);
    assert.equal((r.data as ImageManifest).state, 'active');
    assert.equal(((await run('get', m.uuid)).data as ImageManifest).uuid, m.uuid);

    // an OpenSSH-format private key as ssh-keygen writes it, its public half in DIR/<user>/*.pub
    if (spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined) {
      const keyFile = path.join(tmp, 'carol_ed25519');
      execFileSync('ssh-keygen', ['-t', 'ed25519', '-N', '', '-q', '-f', keyFile]);
      fs.mkdirSync(path.join(keysDir, 'carol'));
      fs.copyFileSync(`${keyFile}.pub`, path.join(keysDir, 'carol', 'laptop.pub'));
      const u = await run(
        '--user',
        'carol',
        '--key',
        keyFile,
        'update',
        m.uuid,
        'description=signed by carol',
      );
      assert.equal((u.data as ImageManifest).description, 'signed by carol');
    }

    // the same through the environment (a key file, or the key itself)
    const saved = { ...process.env };
    try {
      process.env.SLIPWAY_IMAGES_URL = server.url;
      process.env.SLIPWAY_IMAGES_USER = 'alice';
      process.env.SLIPWAY_IMAGES_KEY = aliceKeyFile;
      const d = await imagesCommand(['disable', m.uuid], ctx);
      assert.equal((d.data as ImageManifest).state, 'disabled');
      process.env.SLIPWAY_IMAGES_KEY = fs.readFileSync(aliceKeyFile, 'utf8'); // the key itself
      const e = await imagesCommand(['enable', m.uuid], ctx);
      assert.equal((e.data as ImageManifest).state, 'active');
    } finally {
      for (const k of ['SLIPWAY_IMAGES_URL', 'SLIPWAY_IMAGES_USER', 'SLIPWAY_IMAGES_KEY']) {
        if (saved[k] === undefined) Reflect.deleteProperty(process.env, k);
        else process.env[k] = saved[k];
      }
    }
  });
});

describe('a server that lies (fake)', () => {
  const data = randomBytes(100_000);
  const sha1 = createHash('sha1').update(data).digest('hex');
  const md5 = createHash('md5').update(data).digest('base64');
  const uuid = randomUUID();
  let mode: 'bad-md5' | 'bad-sha1' | 'short' | 'bad-json-md5' | 'bad-stored' = 'bad-md5';
  let server: http.Server;
  let url: string;

  before(async () => {
    server = http.createServer((req, res) => {
      const manifest = published(
        { sha1: mode === 'bad-sha1' ? 'b'.repeat(40) : sha1, size: data.length },
        { uuid },
      );
      if (req.method === 'GET' && req.url?.startsWith(`/images/${uuid}/file`)) {
        const body = mode === 'short' ? data.subarray(0, 1000) : data;
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': body.length,
          'content-md5': mode === 'bad-md5' ? createHash('md5').update('x').digest('base64') : md5,
        });
        res.end(body);
      } else if (req.method === 'GET' && req.url?.startsWith(`/images/${uuid}`)) {
        const body = JSON.stringify(manifest);
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-md5': createHash('md5')
            .update(mode === 'bad-json-md5' ? 'x' : body)
            .digest('base64'),
        });
        res.end(body);
      } else if (req.method === 'PUT') {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({ ...manifest, files: [{ sha1: 'c'.repeat(40), size: 5, compression: 'gzip' }] }),
          );
        });
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 'ResourceNotFound', message: 'nope' }));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const dirEntries = (dir: string): string[] => fs.readdirSync(dir).sort();

  test('get-file: wrong Content-MD5, wrong sha1, short body → CHECKSUM_MISMATCH, nothing left behind', async () => {
    const dir = path.join(tmp, 'lies');
    fs.mkdirSync(dir);
    const out = path.join(dir, 'image.gz');
    const client = new ImagesClient({ url });
    for (const [m, re] of [
      ['bad-md5', /Content-MD5 expected to be .*, but was/],
      ['bad-sha1', /sha1 expected to be b{40}/],
      ['short', /the server sends 1000 bytes but the manifest says the file has 100000/],
    ] as const) {
      mode = m;
      await rejectsWith(client.getImageFile(uuid, out), 'CHECKSUM_MISMATCH', re);
      assert.deepEqual(dirEntries(dir), [], m);
    }
    // an existing file is left as it was
    fs.writeFileSync(out, 'old');
    mode = 'bad-md5';
    await rejectsWith(
      imagesCommand(['--url', url, 'get-file', uuid, '-o', out], makeCtx()),
      'CHECKSUM_MISMATCH',
    );
    assert.deepEqual(dirEntries(dir), ['image.gz']);
    assert.equal(fs.readFileSync(out, 'utf8'), 'old');
    // and the honest answer works
    mode = 'bad-json-md5';
    await rejectsWith(client.getImage(uuid), 'IMAGES_API_ERROR', /Content-MD5 does not match/);
  });

  test('add-file: a stored sha1/size other than what was sent → CHECKSUM_MISMATCH', async () => {
    mode = 'bad-stored';
    const f = imageFile('stored.gz', 1234);
    await rejectsWith(
      new ImagesClient({ url }).addImageFile(uuid, f.file, { compression: 'gzip' }),
      'CHECKSUM_MISMATCH',
      /uploaded 1234 bytes with sha1 .* but the server stored 5 bytes with sha1 c{40}/,
    );
  });
});

describe('pure helpers', () => {
  test('latestImages, sortRows, renderTable', () => {
    const m = (name: string, owner: string, at?: string): ImageManifest =>
      published(
        { sha1: 'a'.repeat(40), size: 1 },
        { name, owner, ...(at !== undefined ? { published_at: at } : {}) },
      );
    const imgs = [
      m('a', OWNER, '2024-01-01T00:00:00Z'),
      m('a', OWNER, '2024-02-01T00:00:00Z'),
      m('a', randomUUID(), '2023-01-01T00:00:00Z'),
    ];
    assert.deepEqual(
      latestImages(imgs).map((i) => i.published_at),
      ['2024-02-01T00:00:00Z', '2023-01-01T00:00:00Z'],
    );
    const rows = [{ a: 2, b: 'x' }, { a: 1, b: 'y' }, { b: 'z' }];
    assert.deepEqual(
      sortRows(rows, 'a').map((r) => r.b),
      ['z', 'y', 'x'],
    );
    assert.deepEqual(
      sortRows(rows, '-a').map((r) => r.b),
      ['x', 'y', 'z'],
    );
    assert.equal(renderTable(rows, ['a', 'b']), 'A  B\n2  x\n1  y\n-  z');
  });
});
