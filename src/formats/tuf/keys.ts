/**
 * ed25519 keys for TUF (specs/tuf-repo.md): the public key form that goes into
 * root.json, keyids, the `ed25519:<base64url PKCS#8>` private key strings that
 * tufaceous uses, and the Signer interface every signing goes through.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';
import { canonicalJson, type CanonicalValue } from '../../core/canonical-json.js';
import { sha256Hex } from '../../core/digest.js';
import { SlipwayError } from '../../core/errors.js';

export interface TufKey {
  keytype: 'ed25519';
  scheme: 'ed25519';
  keyval: { public: string };
}

/** Signs bytes; async so a KMS or HSM can stand behind it. */
export interface Signer {
  readonly key: TufKey;
  readonly keyId: string;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

export const KEY_PREFIX = 'ed25519:';

// PKCS#8 v1 (RFC 8410): SEQUENCE { INTEGER 0, AlgorithmIdentifier id-Ed25519, OCTET STRING { OCTET STRING seed } }
const V1_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
// v2 (OneAsymmetricKey, as ring 0.17 writes): version 1 and publicKey [1] IMPLICIT BIT STRING.
const V2_PREFIX = Buffer.from('3051020101300506032b657004220420', 'hex');
const V2_MIDDLE = Buffer.from('812100', 'hex');
// Older ring (0.16) tagged the public key [1] EXPLICIT; ring still reads it, so do we.
const V2_LEGACY_PREFIX = Buffer.from('3053020101300506032b657004220420', 'hex');
const V2_LEGACY_MIDDLE = Buffer.from('a123032100', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const HEX64 = /^[0-9a-f]{64}$/;
const SIG_HEX = /^[0-9a-fA-F]{128}$/;

/** sha256 of the key's canonical JSON, every field included (others' keys may carry more). */
export function keyIdOf(key: TufKey): string {
  return sha256Hex(canonicalJson(key as unknown as CanonicalValue));
}

/** An ed25519 private key from its 32-byte seed (deterministic test keys, parsed documents). */
export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) {
    throw new SlipwayError('TUF_KEY_INVALID', `an ed25519 seed is 32 bytes, not ${seed.length}`);
  }
  return createPrivateKey({ key: Buffer.concat([V1_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function rawPublic(key: KeyObject): Buffer {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  return Buffer.from(jwk.x ?? '', 'base64url');
}

function rawSeed(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).d ?? '', 'base64url');
}

function checkEd25519Private(key: KeyObject): void {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') {
    throw new SlipwayError('TUF_KEY_INVALID', 'not an ed25519 private key');
  }
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.subarray(0, prefix.length).equals(prefix);
}

/**
 * Reads `ed25519:<base64url with padding of PKCS#8 v1 or v2>`. Errors name
 * `where` (a flag, an environment variable) and never repeat the secret.
 */
export function parsePrivateKey(text: string, where: string): KeyObject {
  const fail = (why: string): never => {
    throw new SlipwayError('TUF_KEY_INVALID', `invalid ed25519 private key: ${why}`, { where });
  };
  const s = text.trim();
  if (!s.startsWith(KEY_PREFIX)) fail(`expected the form ${KEY_PREFIX}<base64url PKCS#8>`);
  const b64 = s.slice(KEY_PREFIX.length);
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    fail('not base64url with padding');
  }
  const der = Buffer.from(b64, 'base64url');
  // Buffer ignores stray bits; a round trip rejects non-canonical encodings.
  const again = der.toString('base64url');
  if (again + '='.repeat((4 - (again.length % 4)) % 4) !== b64) fail('not base64url with padding');

  let seed: Buffer | undefined;
  let embedded: Buffer | undefined;
  if (der.length === 48 && startsWith(der, V1_PREFIX)) {
    seed = der.subarray(16, 48);
  } else if (der.length === 83 && startsWith(der, V2_PREFIX) && der.subarray(48, 51).equals(V2_MIDDLE)) {
    seed = der.subarray(16, 48);
    embedded = der.subarray(51);
  } else if (
    der.length === 85 &&
    startsWith(der, V2_LEGACY_PREFIX) &&
    der.subarray(48, 53).equals(V2_LEGACY_MIDDLE)
  ) {
    seed = der.subarray(16, 48);
    embedded = der.subarray(53);
  }
  if (seed === undefined) return fail(`not an ed25519 PKCS#8 v1 or v2 document (${der.length} bytes)`);
  const key = privateKeyFromSeed(seed);
  if (embedded !== undefined && !embedded.equals(rawPublic(key))) {
    fail('the public key in the document does not belong to its private key');
  }
  return key;
}

/** `ed25519:` + base64url (padded) of the 83-byte PKCS#8 v2 document; Node itself only exports v1. */
export function formatPrivateKey(key: KeyObject): string {
  checkEd25519Private(key);
  const der = Buffer.concat([V2_PREFIX, rawSeed(key), V2_MIDDLE, rawPublic(key)]);
  const b64 = der.toString('base64url');
  return KEY_PREFIX + b64 + '='.repeat((4 - (b64.length % 4)) % 4);
}

export function generateKey(): { privateKey: KeyObject; text: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, text: formatPrivateKey(privateKey) };
}

/** The TUF public key of an ed25519 private (or public) KeyObject. */
export function publicKeyOf(key: KeyObject): TufKey {
  if (key.asymmetricKeyType !== 'ed25519') throw new SlipwayError('TUF_KEY_INVALID', 'not an ed25519 key');
  return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: rawPublic(key).toString('hex') } };
}

export function localSigner(privateKey: KeyObject): Signer {
  checkEd25519Private(privateKey);
  const key = publicKeyOf(privateKey);
  return {
    key,
    keyId: keyIdOf(key),
    sign: (data) => Promise.resolve(new Uint8Array(cryptoSign(null, data, privateKey))),
  };
}

/** True only for a well-formed ed25519 key and a valid signature; never throws. */
export function verifySignature(key: TufKey, data: Uint8Array, sigHex: string): boolean {
  try {
    // Runtime checks: keys come from untrusted metadata whatever the type says.
    const k = key as { keytype?: unknown; scheme?: unknown; keyval?: { public?: unknown } };
    if (k.keytype !== 'ed25519' || k.scheme !== 'ed25519') return false;
    const pub = k.keyval?.public;
    if (typeof pub !== 'string' || !HEX64.test(pub)) return false;
    if (typeof sigHex !== 'string' || !SIG_HEX.test(sigHex)) return false;
    const publicKey = createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, Buffer.from(pub, 'hex')]),
      format: 'der',
      type: 'spki',
    });
    return cryptoVerify(null, data, publicKey, Buffer.from(sigHex, 'hex'));
  } catch {
    return false;
  }
}
