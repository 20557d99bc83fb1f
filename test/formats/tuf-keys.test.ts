import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import {
  formatPrivateKey,
  generateKey,
  keyIdOf,
  localSigner,
  parsePrivateKey,
  privateKeyFromSeed,
  publicKeyOf,
  verifySignature,
  type TufKey,
} from '../../src/formats/tuf/keys.js';
import type { Envelope, RoleKeys } from '../../src/formats/tuf/metadata.js';
import { checkThreshold, countValidSignatures, signMetadata } from '../../src/formats/tuf/sign.js';

// RFC 8032 §7.1, TEST 1.
const SEED = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
const PUB = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const EMPTY_SIG =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

/** base64url that keeps its `=` padding, as tufaceous writes it. */
const b64urlPadded = (b: Buffer): string => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');

const v2Doc = (seed: Buffer, pub: Buffer): Buffer =>
  Buffer.concat([
    Buffer.from([
      0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]),
    seed,
    Buffer.from([0x81, 0x21, 0x00]),
    pub,
  ]);

const keyInvalid = (where: string) => (e: unknown) =>
  isSlipwayError(e, 'TUF_KEY_INVALID') && e.where === where;

test('public key and keyid: keyid is sha256 of the canonical key JSON (vector built by hand)', () => {
  const key = publicKeyOf(privateKeyFromSeed(SEED));
  assert.deepEqual(key, { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: PUB } });
  const canonical = `{"keytype":"ed25519","keyval":{"public":"${PUB}"},"scheme":"ed25519"}`;
  assert.equal(keyIdOf(key), createHash('sha256').update(canonical).digest('hex'));
});

test('localSigner signs like RFC 8032 and verifySignature accepts it', async () => {
  const signer = localSigner(privateKeyFromSeed(SEED));
  const sig = Buffer.from(await signer.sign(new Uint8Array(0))).toString('hex');
  assert.equal(sig, EMPTY_SIG);
  assert.equal(signer.keyId, keyIdOf(signer.key));
  assert.equal(verifySignature(signer.key, new Uint8Array(0), EMPTY_SIG), true);
  assert.equal(verifySignature(signer.key, new Uint8Array(0), EMPTY_SIG.toUpperCase()), true);
  assert.equal(verifySignature(signer.key, Buffer.from('x'), EMPTY_SIG), false);
});

test('verifySignature returns false, never throws, on anything malformed', () => {
  const key = publicKeyOf(privateKeyFromSeed(SEED));
  const data = new Uint8Array(0);
  for (const sig of ['', 'zz', EMPTY_SIG.slice(2), `${EMPTY_SIG}00`, `${EMPTY_SIG.slice(0, -1)}g`]) {
    assert.equal(verifySignature(key, data, sig), false, sig);
  }
  const odd = [
    { ...key, keytype: 'rsa' },
    { ...key, scheme: 'rsassa-pss-sha256' },
    { ...key, keyval: { public: PUB.slice(2) } },
    { ...key, keyval: { public: PUB.toUpperCase() } },
    { ...key, keyval: {} },
    { keytype: 'ed25519', scheme: 'ed25519' },
  ] as unknown as TufKey[];
  for (const k of odd) assert.equal(verifySignature(k, data, EMPTY_SIG), false, JSON.stringify(k));
  assert.equal(verifySignature(key, data, null as unknown as string), false);
});

test('PKCS#8 v2 (83 bytes, as ring writes): parse, sign, verify with Node crypto', () => {
  const doc = v2Doc(SEED, Buffer.from(PUB, 'hex'));
  assert.equal(doc.length, 83);
  const text = `ed25519:${b64urlPadded(doc)}`;
  assert.ok(text.endsWith('='));
  const key = parsePrivateKey(text, '--key');
  const data = Buffer.from('signed bytes');
  const sig = localSigner(key);
  return sig.sign(data).then((s) => {
    const pub = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(PUB, 'hex').toString('base64url') },
      format: 'jwk',
    });
    assert.equal(nodeVerify(null, data, pub, s), true);
    assert.equal(formatPrivateKey(key), text);
  });
});

test('PKCS#8 v1 (48 bytes) and the older ring form (85 bytes, [1] EXPLICIT) are read too', () => {
  const v1 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), SEED]);
  assert.equal(publicKeyOf(parsePrivateKey(`ed25519:${b64urlPadded(v1)}`, 'k')).keyval.public, PUB);
  const legacy = Buffer.concat([
    Buffer.from('3053020101300506032b657004220420', 'hex'),
    SEED,
    Buffer.from('a123032100', 'hex'),
    Buffer.from(PUB, 'hex'),
  ]);
  assert.equal(legacy.length, 85);
  assert.equal(publicKeyOf(parsePrivateKey(`ed25519:${b64urlPadded(legacy)}`, 'k')).keyval.public, PUB);
  // Surrounding whitespace (an environment variable with a newline) is fine.
  assert.equal(publicKeyOf(parsePrivateKey(` ed25519:${b64urlPadded(v1)}\n`, 'k')).keyval.public, PUB);
});

test('formatPrivateKey writes the 83-byte v2 document; generateKey round-trips', () => {
  const text = formatPrivateKey(privateKeyFromSeed(SEED));
  assert.deepEqual(
    Buffer.from(text.slice('ed25519:'.length), 'base64url'),
    v2Doc(SEED, Buffer.from(PUB, 'hex')),
  );
  const g = generateKey();
  assert.match(g.text, /^ed25519:[A-Za-z0-9_-]+=*$/);
  assert.deepEqual(publicKeyOf(parsePrivateKey(g.text, 'gen')), publicKeyOf(g.privateKey));
});

test('bad key strings: TUF_KEY_INVALID naming where, never echoing the secret', () => {
  const good = v2Doc(SEED, Buffer.from(PUB, 'hex'));
  const wrongPub = Buffer.from(good);
  wrongPub[82] = (wrongPub[82] ?? 0) ^ 1;
  const wrongOid = Buffer.from(good);
  wrongOid[11] = 0x71; // Ed448
  const encoded = b64urlPadded(good);
  const cases: [string, string][] = [
    ['no prefix', encoded],
    ['other prefix', `ed448:${encoded}`],
    ['not base64', 'ed25519:!!!!'],
    ['standard base64 alphabet', `ed25519:${good.toString('base64').replace(/_/g, '/')}/`],
    ['missing padding', `ed25519:${encoded.replace(/=+$/, '')}`],
    ['truncated', `ed25519:${b64urlPadded(good.subarray(0, 80))}`],
    ['trailing bytes', `ed25519:${b64urlPadded(Buffer.concat([good, Buffer.from([0])]))}`],
    ['public key does not match', `ed25519:${b64urlPadded(wrongPub)}`],
    ['other algorithm', `ed25519:${b64urlPadded(wrongOid)}`],
    ['empty', ''],
  ];
  for (const [what, text] of cases) {
    assert.throws(() => parsePrivateKey(text, 'SLIPWAY_KEY'), keyInvalid('SLIPWAY_KEY'), what);
    try {
      parsePrivateKey(text, 'SLIPWAY_KEY');
    } catch (e) {
      const message = (e as Error).message;
      assert.ok(!message.includes(encoded.slice(0, 40)), `${what}: message echoes the key`);
    }
  }
});

test('signMetadata: one lowercase-hex signature per distinct key, ordered by keyid', async () => {
  const signers = ['a', 'b', 'c'].map((l) => localSigner(privateKeyFromSeed(Buffer.alloc(32, l))));
  const [s0, s1, s2] = signers as [(typeof signers)[0], (typeof signers)[0], (typeof signers)[0]];
  const env = await signMetadata({ hello: 'world' }, [s2, s0, s1, s0]);
  assert.equal(env.signatures.length, 3);
  const ids = env.signatures.map((s) => s.keyid);
  assert.deepEqual(ids, [...ids].sort());
  for (const s of env.signatures) assert.match(s.sig, /^[0-9a-f]{128}$/);
});

test('countValidSignatures: listed, known, valid and distinct only', async () => {
  const signers = ['a', 'b', 'c'].map((l) => localSigner(privateKeyFromSeed(Buffer.alloc(32, l))));
  const [a, b, c] = signers as [(typeof signers)[0], (typeof signers)[0], (typeof signers)[0]];
  const keys = Object.fromEntries(signers.map((s) => [s.keyId, s.key]));
  const role: RoleKeys = { keyids: [a.keyId, b.keyId], threshold: 2 };
  const env = await signMetadata({ n: 1 }, [a, b, c]);
  assert.equal(countValidSignatures(env, keys, role), 2);
  checkThreshold(env, keys, role, 'root', 'root.json');

  const sigA = env.signatures.find((s) => s.keyid === a.keyId);
  assert.ok(sigA);
  const dup: Envelope<unknown> = { signed: env.signed, signatures: [sigA, sigA] };
  assert.equal(countValidSignatures(dup, keys, role), 1);
  assert.throws(
    () => {
      checkThreshold(dup, keys, role, 'root', 'root.json');
    },
    (e: unknown) =>
      isSlipwayError(e, 'TUF_THRESHOLD_NOT_MET') &&
      e.where === 'root.json' &&
      e.message === 'root: 1 valid signature of threshold 2',
  );
  // c signed but is not listed; a key missing from `keys` does not count.
  assert.equal(countValidSignatures(env, keys, { keyids: [c.keyId], threshold: 1 }), 1);
  assert.equal(countValidSignatures(env, {}, role), 0);
  // One key listed under two keyids counts once.
  const alias = 'f'.repeat(64);
  const aliased: Envelope<unknown> = {
    signed: env.signed,
    signatures: [sigA, { keyid: alias, sig: sigA.sig }],
  };
  assert.equal(
    countValidSignatures(aliased, { ...keys, [alias]: a.key }, { keyids: [a.keyId, alias], threshold: 2 }),
    1,
  );
  // A body that cannot be canonical JSON verifies nothing rather than throwing.
  assert.equal(countValidSignatures({ signed: { x: 1.5 }, signatures: env.signatures }, keys, role), 0);
});
