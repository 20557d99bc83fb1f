/**
 * HTTP Signature auth (src/images/http-signature.ts) with real SSH keys from
 * ssh-keygen (or, without it, keys from node:crypto written as OpenSSH
 * public lines by hand): key decoding, fingerprints, signing, and the
 * server-side checks — every rejection asserts its HTTP status and code.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import { ImgapiError } from '../../src/formats/imgapi-types.js';
import {
  fingerprintOf,
  formatSshPublicKey,
  loadKeysDir,
  parseSignatureHeader,
  parseSshPrivateKey,
  parseSshPublicKey,
  signRequest,
  verifyRequestSignature,
} from '../../src/images/http-signature.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('slipway-httpsig-');
const haveSshKeygen = spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined;

// scripts/setup.sh installs it: a missing ssh-keygen fails the suite instead of quietly skipping checks.
test('ssh-keygen is installed', () => {
  assert.ok(haveSshKeygen, 'install openssh-client (bash scripts/setup.sh as root)');
});

interface TestKey {
  privateKey: KeyObject;
  publicLine: string;
  privateFile: string;
  publicFile: string;
}

function makeKey(name: string, type: 'rsa' | 'ed25519' | 'ecdsa'): TestKey {
  const privateFile = path.join(tmp, name);
  const publicFile = `${privateFile}.pub`;
  if (haveSshKeygen) {
    const args =
      type === 'rsa'
        ? ['-t', 'rsa', '-b', '2048']
        : type === 'ecdsa'
          ? ['-t', 'ecdsa', '-b', '256']
          : ['-t', 'ed25519'];
    execFileSync('ssh-keygen', [...args, '-N', '', '-q', '-C', `${name}@test`, '-f', privateFile]);
  } else {
    const pair =
      type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : type === 'ecdsa'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : generateKeyPairSync('ed25519');
    fs.writeFileSync(privateFile, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    fs.writeFileSync(publicFile, `${formatSshPublicKey(pair.publicKey, `${name}@test`)}\n`);
  }
  return {
    privateKey: parseSshPrivateKey(fs.readFileSync(privateFile, 'utf8'), privateFile),
    publicLine: fs.readFileSync(publicFile, 'utf8').trim(),
    privateFile,
    publicFile,
  };
}

const alice = makeKey('alice', 'rsa');
const alice2 = makeKey('alice2', 'ed25519');
const bob = makeKey('bob', 'rsa');
const carol = makeKey('carol', 'ecdsa');
const mallory = makeKey('mallory', 'rsa');

const pubDer = (k: KeyObject): string =>
  (k.type === 'private' ? createPublicKey(k) : k).export({ type: 'spki', format: 'der' }).toString('hex');

const keyTable = new Map<string, KeyObject[]>([
  ['alice', [parseSshPublicKey(alice.publicLine, 'alice'), parseSshPublicKey(alice2.publicLine, 'alice2')]],
  ['bob', [parseSshPublicKey(bob.publicLine, 'bob')]],
  ['carol', [parseSshPublicKey(carol.publicLine, 'carol')]],
]);
const keys = (user: string): Promise<KeyObject[] | undefined> => Promise.resolve(keyTable.get(user));

const NOW = new Date('2030-01-02T03:04:05Z');
const SKEW = 300_000;

function requestOf(
  h: { date: string; authorization: string },
  extra: Partial<{ method: string; path: string }> = {},
) {
  return { authorization: h.authorization, date: h.date, method: 'POST', path: '/images', ...extra };
}

async function rejects(
  p: Promise<unknown>,
  status: number,
  code: string,
  message?: RegExp,
): Promise<ImgapiError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ImgapiError, `expected an ImgapiError, got ${String(err)}`);
    assert.equal(err.statusCode, status, err.message);
    assert.equal(err.restCode, code, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return err;
  }
  assert.fail('expected a rejection');
}

const verifyAt = (req: Parameters<typeof verifyRequestSignature>[0], now = NOW) =>
  verifyRequestSignature(req, keys, { now, maxSkewMs: SKEW });

describe('SSH keys', () => {
  test('public key lines decode to the same key as the private key (rsa, ed25519, ecdsa)', () => {
    for (const k of [alice, alice2, carol]) {
      const pub = parseSshPublicKey(k.publicLine, k.publicFile);
      assert.equal(pubDer(pub), pubDer(k.privateKey));
      // and encode back to the same line (without the comment)
      assert.equal(formatSshPublicKey(pub), k.publicLine.split(/\s+/).slice(0, 2).join(' '));
    }
  });

  test('authorized_keys options in front of the key are skipped', () => {
    const pub = parseSshPublicKey(`no-pty,command="echo hi there" ${alice.publicLine}`, 'x');
    assert.equal(pubDer(pub), pubDer(alice.privateKey));
  });

  test('fingerprints match ssh-keygen -l (SHA256 and MD5)', { skip: !haveSshKeygen }, () => {
    for (const k of [alice, alice2, carol]) {
      const fp = fingerprintOf(parseSshPublicKey(k.publicLine, 'k'));
      const sha = execFileSync('ssh-keygen', ['-l', '-f', k.publicFile], { encoding: 'utf8' }).split(' ')[1];
      const md5 = execFileSync('ssh-keygen', ['-l', '-E', 'md5', '-f', k.publicFile], {
        encoding: 'utf8',
      }).split(' ')[1];
      assert.equal(fp.sha256, sha);
      assert.equal(`MD5:${fp.md5}`, md5);
    }
  });

  test('bad public key lines fail with IMAGES_KEY_INVALID naming where', () => {
    const [type, blob] = alice.publicLine.split(/\s+/) as [string, string];
    const truncated = Buffer.from(blob, 'base64').subarray(0, 40).toString('base64');
    const ed = alice2.publicLine.split(/\s+/)[1] ?? '';
    for (const [line, re] of [
      ['', /not an OpenSSH public key/],
      ['ssh-dss AAAAB3NzaC1kc3MAAACBAP', /not an OpenSSH public key/],
      [`${type} ${truncated}`, /truncated/],
      [`ssh-rsa ${ed}`, /of type 'ssh-ed25519' but the line says 'ssh-rsa'/],
      [
        `${type} ${Buffer.concat([Buffer.from(blob, 'base64'), Buffer.from([0])]).toString('base64')}`,
        /trailing bytes/,
      ],
    ] as const) {
      assert.throws(
        () => parseSshPublicKey(line, 'keys/alice.keys:3'),
        (err: unknown) =>
          isSlipwayError(err, 'IMAGES_KEY_INVALID') &&
          err.where === 'keys/alice.keys:3' &&
          re.test(err.message),
        line,
      );
    }
  });

  test('private keys: OpenSSH, PEM PKCS#1 and PKCS#8; encrypted ones are refused with a hint', () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    for (const pem of [
      pair.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
      pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    ]) {
      assert.equal(pubDer(parseSshPrivateKey(pem, 'k.pem')), pubDer(pair.publicKey));
    }
    const enc = pair.privateKey.export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'x',
    }) as string;
    assert.throws(
      () => parseSshPrivateKey(enc, 'k.pem'),
      (e: unknown) => isSlipwayError(e, 'IMAGES_KEY_INVALID') && /encrypted/.test(e.message),
    );
    assert.throws(
      () => parseSshPrivateKey(alice.publicLine, 'id.pub'),
      (e: unknown) => isSlipwayError(e, 'IMAGES_KEY_INVALID'),
    );
    if (haveSshKeygen) {
      const file = path.join(tmp, 'encrypted');
      execFileSync('ssh-keygen', ['-t', 'ed25519', '-N', 'secret', '-q', '-f', file]);
      assert.throws(
        () => parseSshPrivateKey(fs.readFileSync(file, 'utf8'), file),
        (e: unknown) =>
          isSlipwayError(e, 'IMAGES_KEY_INVALID') && /passphrase/.test(e.message) && e.where === file,
      );
    }
  });
});

describe('signing and verifying', () => {
  test('a good rsa-sha256 signature verifies; the header has the documented form', async () => {
    const h = signRequest({ keyId: 'alice', privateKey: alice.privateKey, date: NOW });
    assert.equal(h.date, 'Wed, 02 Jan 2030 03:04:05 GMT');
    assert.match(
      h.authorization,
      /^Signature keyId="alice",algorithm="rsa-sha256",headers="date",signature="[A-Za-z0-9+/]+=*"$/,
    );
    // the signature is over exactly `date: <date>` (what sdc-clients sign)
    const expected = sign('sha256', Buffer.from(`date: ${h.date}`), alice.privateKey).toString('base64');
    assert.equal(parseSignatureHeader(h.authorization).signature.toString('base64'), expected);
    assert.deepEqual(await verifyAt(requestOf(h)), { user: 'alice' });
  });

  test('ed25519 and ecdsa keys sign and verify too; the user may hold several keys', async () => {
    const h = signRequest({ keyId: 'alice', privateKey: alice2.privateKey, date: NOW });
    assert.match(h.authorization, /algorithm="ed25519-sha512"/);
    assert.deepEqual(await verifyAt(requestOf(h)), { user: 'alice' });
    const c = signRequest({ keyId: 'carol', privateKey: carol.privateKey, date: NOW });
    assert.match(c.authorization, /algorithm="ecdsa-sha256"/);
    assert.deepEqual(await verifyAt(requestOf(c)), { user: 'carol' });
  });

  test('a header without headers="…" means date only', async () => {
    const h = signRequest({ keyId: 'bob', privateKey: bob.privateKey, date: NOW });
    const authorization = h.authorization.replace(',headers="date"', '');
    assert.deepEqual(await verifyAt({ ...requestOf(h), authorization }), { user: 'bob' });
  });

  test('(request-target) in headers binds the method and path', async () => {
    const date = NOW.toUTCString();
    const sig = sign(
      'sha256',
      Buffer.from(`(request-target): post /images/x?action=activate\ndate: ${date}`),
      bob.privateKey,
    ).toString('base64');
    const authorization = `Signature keyId="bob",algorithm="rsa-sha256",headers="(request-target) date",signature="${sig}"`;
    const req = { authorization, date, method: 'POST', path: '/images/x?action=activate' };
    assert.deepEqual(await verifyAt(req), { user: 'bob' });
    await rejects(verifyAt({ ...req, path: '/images/x?action=disable' }), 401, 'Unauthorized');
    await rejects(verifyAt({ ...req, method: 'DELETE' }), 401, 'Unauthorized');
  });

  test('wrong key: signed by a key the user does not hold', async () => {
    const h = signRequest({ keyId: 'alice', privateKey: mallory.privateKey, date: NOW });
    await rejects(verifyAt(requestOf(h)), 401, 'Unauthorized', /does not verify/);
  });

  test('unknown user, and user names that are not plain names, get the same answer as a wrong key', async () => {
    for (const keyId of ['nobody', '../alice', '.alice', '/alice/../keys/x']) {
      const h = signRequest({ keyId, privateKey: alice.privateKey, date: NOW });
      await rejects(verifyAt(requestOf(h)), 401, 'Unauthorized', /does not verify/);
    }
  });

  test('missing Authorization and missing Date → 401', async () => {
    const h = signRequest({ keyId: 'alice', privateKey: alice.privateKey, date: NOW });
    await rejects(
      verifyAt({ method: 'GET', path: '/images', date: h.date }),
      401,
      'Unauthorized',
      /Authorization/,
    );
    await rejects(
      verifyAt({ method: 'GET', path: '/images', authorization: h.authorization }),
      401,
      'Unauthorized',
      /no Date header/,
    );
  });

  test('stale Date: outside the allowed skew in either direction → 401; inside → ok', async () => {
    const h = signRequest({ keyId: 'alice', privateKey: alice.privateKey, date: NOW });
    const at = (ms: number): Date => new Date(NOW.getTime() + ms);
    await rejects(verifyAt(requestOf(h), at(SKEW + 1000)), 401, 'Unauthorized', /clock skew.*behind/);
    await rejects(verifyAt(requestOf(h), at(-SKEW - 1000)), 401, 'Unauthorized', /clock skew.*ahead/);
    assert.deepEqual(await verifyAt(requestOf(h), at(SKEW - 1000)), { user: 'alice' });
    assert.deepEqual(await verifyAt(requestOf(h), at(-SKEW + 1000)), { user: 'alice' });
  });

  test('tampered: a signature of another date, a modified keyId, garbage signatures', async () => {
    const h = signRequest({ keyId: 'alice', privateKey: alice.privateKey, date: NOW });
    const later = new Date(NOW.getTime() + 1000).toUTCString();
    await rejects(verifyAt({ ...requestOf(h), date: later }), 401, 'Unauthorized');
    await rejects(
      verifyAt({ ...requestOf(h), authorization: h.authorization.replace('keyId="alice"', 'keyId="bob"') }),
      401,
      'Unauthorized',
    );
    const garbage = h.authorization.replace(/signature="[^"]*"/, 'signature="not base64!!"');
    await rejects(verifyAt({ ...requestOf(h), authorization: garbage }), 400, 'InvalidHeader', /base64/);
    const random = h.authorization.replace(
      /signature="[^"]*"/,
      `signature="${Buffer.alloc(256, 7).toString('base64')}"`,
    );
    await rejects(verifyAt({ ...requestOf(h), authorization: random }), 401, 'Unauthorized');
    // the algorithm must match the key: an rsa signature announced as ecdsa
    const relabelled = h.authorization.replace('rsa-sha256', 'ecdsa-sha256');
    await rejects(verifyAt({ ...requestOf(h), authorization: relabelled }), 401, 'Unauthorized');
  });

  test('malformed headers → 400 InvalidHeader; unsupported algorithms → 401', async () => {
    const h = signRequest({ keyId: 'alice', privateKey: alice.privateKey, date: NOW });
    const sig = /signature="([^"]*)"/.exec(h.authorization)?.[1] ?? '';
    for (const authorization of [
      'Basic YWxpY2U6c2VjcmV0',
      'Signature',
      `Signature keyId=alice,algorithm="rsa-sha256",signature="${sig}"`,
      `Signature keyId="alice",algorithm="rsa-sha256"`,
      `Signature algorithm="rsa-sha256",signature="${sig}"`,
      `Signature keyId="alice",signature="${sig}"`,
      `Signature keyId="alice",keyId="bob",algorithm="rsa-sha256",signature="${sig}"`,
      `Signature keyId="alice",algorithm="rsa-sha256",signature="${sig}",`,
      `Signature keyId="alice" algorithm="rsa-sha256" signature="${sig}"`,
      `Signature keyId="alice",algorithm="rsa-sha256",headers="",signature="${sig}"`,
    ]) {
      await rejects(
        verifyAt({ authorization, date: h.date, method: 'GET', path: '/' }),
        400,
        'InvalidHeader',
      );
    }
    await rejects(verifyAt({ ...requestOf(h), date: 'yesterday' }), 400, 'InvalidHeader', /not an HTTP date/);
    const hmac = h.authorization.replace('rsa-sha256', 'hmac-sha256');
    await rejects(verifyAt({ ...requestOf(h), authorization: hmac }), 401, 'Unauthorized', /not a supported/);
    const noDate = h.authorization.replace('headers="date"', 'headers="(request-target)"');
    await rejects(
      verifyAt({ ...requestOf(h), authorization: noDate }),
      401,
      'Unauthorized',
      /cover the date/,
    );
    // spaces after commas and an unknown parameter are fine
    const spaced = `Signature keyId="alice", algorithm="rsa-sha256", ext="1", signature="${sig}"`;
    assert.deepEqual(await verifyAt({ ...requestOf(h), authorization: spaced }), { user: 'alice' });
  });

  test('keyId /<user>/keys/<fingerprint>: only that key is tried', async () => {
    const fp = fingerprintOf(parseSshPublicKey(alice.publicLine, 'a'));
    const fp2 = fingerprintOf(parseSshPublicKey(alice2.publicLine, 'a2'));
    for (const f of [fp.sha256, fp.md5, `MD5:${fp.md5}`]) {
      const h = signRequest({ keyId: `/alice/keys/${f}`, privateKey: alice.privateKey, date: NOW });
      assert.deepEqual(await verifyAt(requestOf(h)), { user: 'alice' });
    }
    // a key name rather than a fingerprint: all of the user's keys are tried
    const named = signRequest({ keyId: '/alice/keys/laptop', privateKey: alice.privateKey, date: NOW });
    assert.deepEqual(await verifyAt(requestOf(named)), { user: 'alice' });
    // the fingerprint of another of alice's keys: refused
    const wrong = signRequest({
      keyId: `/alice/keys/${fp2.sha256}`,
      privateKey: alice.privateKey,
      date: NOW,
    });
    await rejects(verifyAt(requestOf(wrong)), 401, 'Unauthorized');
    // SHA256 fingerprints are base64 and may hold '/'
    let slashed: KeyObject | undefined;
    for (let i = 0; i < 64 && slashed === undefined; i++) {
      const k = generateKeyPairSync('ed25519').privateKey;
      if (fingerprintOf(k).sha256.includes('/')) slashed = k;
    }
    assert.ok(slashed !== undefined);
    keyTable.set('dave', [createPublicKey(slashed)]);
    const dave = signRequest({
      keyId: `/dave/keys/${fingerprintOf(slashed).sha256}`,
      privateKey: slashed,
      date: NOW,
    });
    assert.deepEqual(await verifyAt(requestOf(dave)), { user: 'dave' });
    // bob's name with alice's fingerprint
    const other = signRequest({ keyId: `/bob/keys/${fp.sha256}`, privateKey: alice.privateKey, date: NOW });
    await rejects(verifyAt(requestOf(other)), 401, 'Unauthorized');
  });
});

describe('loadKeysDir', () => {
  test('DIR/<user>.keys and DIR/<user>/*.pub, comments and blank lines ignored, re-read on change', async () => {
    const dir = path.join(tmp, 'keys');
    fs.mkdirSync(path.join(dir, 'bob'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'alice.keys'),
      `# alice's keys\n\n${alice.publicLine}\nnot a key\n  ${alice2.publicLine}  \n`,
    );
    fs.writeFileSync(path.join(dir, 'bob', 'laptop.pub'), `${bob.publicLine}\n`);
    fs.writeFileSync(path.join(dir, 'bob', 'notes.txt'), `${mallory.publicLine}\n`);
    const invalid: string[] = [];
    const load = loadKeysDir(dir, { onInvalidKey: (e) => invalid.push(e.where ?? '') });
    assert.deepEqual((await load('alice'))?.map(pubDer), [alice.privateKey, alice2.privateKey].map(pubDer));
    assert.deepEqual(invalid, [`${path.join(dir, 'alice.keys')}:4`]);
    assert.deepEqual((await load('bob'))?.map(pubDer), [pubDer(bob.privateKey)]);
    assert.equal(await load('nobody'), undefined);
    for (const bad of ['..', '.', '../keys/alice', 'alice/..', '.hidden', ''])
      assert.equal(await load(bad), undefined, bad);

    const h = signRequest({ keyId: 'bob', privateKey: bob.privateKey, date: NOW });
    assert.deepEqual(await verifyRequestSignature(requestOf(h), load, { now: NOW, maxSkewMs: SKEW }), {
      user: 'bob',
    });

    // a new key appears in bob's directory: seen on the next call
    const m = signRequest({ keyId: 'bob', privateKey: mallory.privateKey, date: NOW });
    await rejects(
      verifyRequestSignature(requestOf(m), load, { now: NOW, maxSkewMs: SKEW }),
      401,
      'Unauthorized',
    );
    fs.writeFileSync(path.join(dir, 'bob', 'ci.pub'), `${mallory.publicLine}\n`);
    assert.deepEqual(await verifyRequestSignature(requestOf(m), load, { now: NOW, maxSkewMs: SKEW }), {
      user: 'bob',
    });
    // and a removed one is gone
    fs.rmSync(path.join(dir, 'bob', 'ci.pub'));
    await rejects(
      verifyRequestSignature(requestOf(m), load, { now: NOW, maxSkewMs: SKEW }),
      401,
      'Unauthorized',
    );
  });
});
