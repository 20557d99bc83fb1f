/**
 * Joyent HTTP Signature auth, as IMGAPI and sdc-clients use it
 * (specs/imgapi.md "Auth"): the client signs `date: <Date header>` with the
 * private half of one of its SSH keys and sends
 *
 *   Authorization: Signature keyId="<user>",algorithm="rsa-sha256",headers="date",signature="<base64>"
 *
 * and the server checks the signature against that user's SSH public keys.
 * SSH keys are decoded here by hand (RFC 4253 §6.6 wire format, the
 * "openssh-key-v1" private key container) into JWKs for node:crypto, so no
 * dependency is needed.
 *
 * Errors of the server side are ImgapiErrors (they go over the wire):
 *
 * | case | status | code |
 * |---|---|---|
 * | Authorization not `Signature …`, unparsable parameters, missing keyId/algorithm/signature, signature not base64, unparsable Date | 400 | InvalidHeader |
 * | unsupported algorithm (hmac-*, dsa-*, …) | 401 | Unauthorized |
 * | no Date header, or one more than `maxSkewMs` away from now (clock skew) | 401 | Unauthorized |
 * | `headers` does not cover `date` | 401 | Unauthorized |
 * | unknown user, no key of the user verifies the signature | 401 | Unauthorized |
 *
 * 401 `Unauthorized` is what IMGAPI (restify's UnauthorizedError) sends; an
 * unknown user and a wrong key get the same message so the answer does not
 * tell which user names exist.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { ImgapiError } from '../formats/imgapi-types.js';

// ---- SSH wire format (RFC 4251 §5, RFC 4253 §6.6) ----

class WireReader {
  #off = 0;
  constructor(
    readonly buf: Buffer,
    readonly where: string,
  ) {}

  get done(): boolean {
    return this.#off === this.buf.length;
  }

  uint32(): number {
    if (this.#off + 4 > this.buf.length) throw keyError(this.where, 'truncated key data');
    const n = this.buf.readUInt32BE(this.#off);
    this.#off += 4;
    return n;
  }

  bytes(): Buffer {
    const n = this.uint32();
    if (this.#off + n > this.buf.length) throw keyError(this.where, 'truncated key data');
    const out = this.buf.subarray(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }

  string(): string {
    return this.bytes().toString('latin1');
  }

  /** An mpint as unsigned big-endian bytes without leading zeros. */
  mpint(): Buffer {
    const b = this.bytes();
    if (b.length > 0 && (b[0] ?? 0) & 0x80) throw keyError(this.where, 'negative integer in key data');
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    return b.subarray(i);
  }
}

function wireString(data: Buffer | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function wireMpint(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length && unsigned[i] === 0) i++;
  const b = unsigned.subarray(i);
  return wireString(b.length > 0 && (b[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

function keyError(where: string, message: string, cause?: unknown): SlipwayError {
  return new SlipwayError('IMAGES_KEY_INVALID', `${where}: ${message}`, { where, cause });
}

const b64url = (b: Buffer): string => b.toString('base64url');

const CURVES = {
  nistp256: { crv: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { crv: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { crv: 'P-521', size: 66, hash: 'sha512' },
} as const;
type CurveName = keyof typeof CURVES;

function curveOf(name: string, where: string): (typeof CURVES)[CurveName] {
  if (!Object.hasOwn(CURVES, name)) throw keyError(where, `unsupported ECDSA curve '${name}'`);
  return CURVES[name as CurveName];
}

function ecPoint(q: Buffer, size: number, where: string): { x: string; y: string } {
  if (q.length !== 1 + 2 * size || q[0] !== 4)
    throw keyError(where, 'ECDSA key is not an uncompressed point');
  return { x: b64url(q.subarray(1, 1 + size)), y: b64url(q.subarray(1 + size)) };
}

/** Reads the public key fields after the type string; returns a public JWK. */
function readPublicJwk(type: string, r: WireReader): Record<string, string> {
  if (type === 'ssh-rsa') {
    const e = r.mpint();
    const n = r.mpint();
    return { kty: 'RSA', e: b64url(e), n: b64url(n) };
  }
  if (type === 'ssh-ed25519') {
    const x = r.bytes();
    if (x.length !== 32) throw keyError(r.where, 'ed25519 key is not 32 bytes');
    return { kty: 'OKP', crv: 'Ed25519', x: b64url(x) };
  }
  const m = /^ecdsa-sha2-(nistp256|nistp384|nistp521)$/.exec(type);
  if (m !== null) {
    const curveName = r.string();
    if (curveName !== m[1]) throw keyError(r.where, `key type ${type} names curve '${curveName}'`);
    const curve = curveOf(curveName, r.where);
    return { kty: 'EC', crv: curve.crv, ...ecPoint(r.bytes(), curve.size, r.where) };
  }
  throw keyError(r.where, `unsupported key type '${type}' (ssh-rsa, ssh-ed25519 and ecdsa-sha2-nistp* are)`);
}

const KEY_TYPES =
  /(?:^|\s)(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521))\s+([A-Za-z0-9+/]+={0,2})(?:\s|$)/;

/**
 * Parses one OpenSSH public key line (`ssh-rsa AAAA… comment`, also with
 * authorized_keys options in front) into a public KeyObject. `where` names
 * the line in errors (e.g. `keys/alice.keys:3`).
 */
export function parseSshPublicKey(line: string, where: string): KeyObject {
  const m = KEY_TYPES.exec(line.trim());
  if (m === null) {
    throw keyError(
      where,
      'not an OpenSSH public key line (expected "ssh-rsa AAAA…", "ssh-ed25519 …" or "ecdsa-sha2-nistp256 …")',
    );
  }
  const declared = m[1] ?? '';
  const blob = Buffer.from(m[2] ?? '', 'base64');
  const r = new WireReader(blob, where);
  const type = r.string();
  if (type !== declared)
    throw keyError(where, `key data is of type '${type}' but the line says '${declared}'`);
  const jwk = readPublicJwk(type, r);
  if (!r.done) throw keyError(where, 'trailing bytes after the key data');
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (err) {
    throw keyError(where, `unusable ${type} key: ${(err as Error).message}`, err);
  }
}

/** The SSH wire encoding of a public key (what fingerprints hash and `.pub` lines carry). */
export function sshPublicKeyBlob(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  const d = (s: string | undefined): Buffer => Buffer.from(s ?? '', 'base64url');
  if (jwk.kty === 'RSA')
    return Buffer.concat([wireString('ssh-rsa'), wireMpint(d(jwk.e)), wireMpint(d(jwk.n))]);
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519')
    return Buffer.concat([wireString('ssh-ed25519'), wireString(d(jwk.x))]);
  if (jwk.kty === 'EC') {
    const name = (Object.keys(CURVES) as CurveName[]).find((n) => CURVES[n].crv === jwk.crv);
    if (name !== undefined) {
      const point = Buffer.concat([Buffer.from([4]), d(jwk.x), d(jwk.y)]);
      return Buffer.concat([wireString(`ecdsa-sha2-${name}`), wireString(name), wireString(point)]);
    }
  }
  throw new SlipwayError('IMAGES_KEY_INVALID', `unsupported key type ${pub.asymmetricKeyType ?? 'unknown'}`);
}

/** `ssh-rsa AAAA… comment`: the OpenSSH public key line of a key. */
export function formatSshPublicKey(key: KeyObject, comment = ''): string {
  const blob = sshPublicKeyBlob(key);
  const type = new WireReader(blob, 'key').string();
  return `${type} ${blob.toString('base64')}${comment !== '' ? ` ${comment}` : ''}`;
}

/** The two fingerprint forms of ssh-keygen: `SHA256:<base64, no padding>` and the MD5 `aa:bb:…` form. */
export function fingerprintOf(key: KeyObject): { sha256: string; md5: string } {
  const blob = sshPublicKeyBlob(key);
  const sha256 = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
  const md5 = (createHash('md5').update(blob).digest('hex').match(/../g) ?? []).join(':');
  return { sha256, md5 };
}

function fingerprintMatches(key: KeyObject, fp: string): boolean {
  const f = fingerprintOf(key);
  if (fp.startsWith('SHA256:')) return fp.replace(/=+$/, '') === f.sha256;
  const md5 = fp.startsWith('MD5:') ? fp.slice(4) : fp;
  return md5.toLowerCase() === f.md5;
}

// ---- private keys ----

/** d mod (m - 1) for the CRT exponents that OpenSSH keys do not store. */
function modMinusOne(d: Buffer, m: Buffer): Buffer {
  const toBig = (b: Buffer): bigint => BigInt(`0x${b.toString('hex') || '0'}`);
  let hex = (toBig(d) % (toBig(m) - 1n)).toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  return Buffer.from(hex, 'hex');
}

function parseOpensshPrivateKey(text: string, where: string): KeyObject {
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (m === null) throw keyError(where, 'no OpenSSH private key block');
  const raw = Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64');
  const magic = Buffer.from('openssh-key-v1\0', 'latin1');
  if (!raw.subarray(0, magic.length).equals(magic))
    throw keyError(where, 'not an openssh-key-v1 private key');
  const r = new WireReader(raw.subarray(magic.length), where);
  const cipher = r.string();
  const kdf = r.string();
  r.bytes(); // kdf options
  if (cipher !== 'none' || kdf !== 'none') {
    throw keyError(
      where,
      'the private key is encrypted with a passphrase; use an unencrypted copy (ssh-keygen -p -N "" -f COPY)',
    );
  }
  const count = r.uint32();
  if (count !== 1) throw keyError(where, `the file holds ${count} keys; one is expected`);
  r.bytes(); // public key
  const p = new WireReader(r.bytes(), where);
  if (p.uint32() !== p.uint32()) throw keyError(where, 'corrupt private key (check words differ)');
  const type = p.string();
  let jwk: Record<string, string>;
  if (type === 'ssh-rsa') {
    const n = p.mpint();
    const e = p.mpint();
    const d = p.mpint();
    const iqmp = p.mpint();
    const pp = p.mpint();
    const q = p.mpint();
    jwk = {
      kty: 'RSA',
      n: b64url(n),
      e: b64url(e),
      d: b64url(d),
      p: b64url(pp),
      q: b64url(q),
      dp: b64url(modMinusOne(d, pp)),
      dq: b64url(modMinusOne(d, q)),
      qi: b64url(iqmp),
    };
  } else if (type === 'ssh-ed25519') {
    const pub = p.bytes();
    const secret = p.bytes();
    if (pub.length !== 32 || secret.length !== 64) throw keyError(where, 'corrupt ed25519 private key');
    jwk = { kty: 'OKP', crv: 'Ed25519', x: b64url(pub), d: b64url(secret.subarray(0, 32)) };
  } else if (/^ecdsa-sha2-nistp(256|384|521)$/.test(type)) {
    const curve = curveOf(p.string(), where);
    const point = ecPoint(p.bytes(), curve.size, where);
    let d = p.mpint();
    if (d.length < curve.size) d = Buffer.concat([Buffer.alloc(curve.size - d.length), d]);
    jwk = { kty: 'EC', crv: curve.crv, ...point, d: b64url(d) };
  } else {
    throw keyError(where, `unsupported private key type '${type}'`);
  }
  try {
    return createPrivateKey({ key: jwk, format: 'jwk' });
  } catch (err) {
    throw keyError(where, `unusable ${type} private key: ${(err as Error).message}`, err);
  }
}

/**
 * A private key for signing requests: the OpenSSH format ssh-keygen writes
 * (unencrypted), or PEM (PKCS#1 `RSA PRIVATE KEY`, PKCS#8, SEC1 `EC PRIVATE
 * KEY`). Encrypted keys are refused with a hint.
 */
export function parseSshPrivateKey(text: string, where: string): KeyObject {
  if (text.includes('-----BEGIN OPENSSH PRIVATE KEY-----')) return parseOpensshPrivateKey(text, where);
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw keyError(where, 'the private key is encrypted with a passphrase; use an unencrypted copy');
  }
  if (!text.includes('-----BEGIN')) {
    throw keyError(where, 'not a private key (expected an OpenSSH or PEM private key file)');
  }
  try {
    const key = createPrivateKey({ key: text, format: 'pem' });
    algorithmFor(key, where);
    return key;
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    throw keyError(where, `cannot read the private key: ${(err as Error).message}`, err);
  }
}

// ---- algorithms ----

/** What the algorithm names of the scheme mean for node:crypto; HMAC and DSA are refused (IMGAPI does the same for HMAC). */
const ALGORITHMS: Record<string, { keyType: string; hash: string | null; curve?: string }> = {
  'rsa-sha1': { keyType: 'rsa', hash: 'sha1' },
  'rsa-sha256': { keyType: 'rsa', hash: 'sha256' },
  'rsa-sha512': { keyType: 'rsa', hash: 'sha512' },
  'ecdsa-sha256': { keyType: 'ec', hash: 'sha256', curve: 'P-256' },
  'ecdsa-sha384': { keyType: 'ec', hash: 'sha384', curve: 'P-384' },
  'ecdsa-sha512': { keyType: 'ec', hash: 'sha512', curve: 'P-521' },
  'ed25519-sha512': { keyType: 'ed25519', hash: null },
};

/** The algorithm name a key signs with: rsa-sha256, ecdsa-sha256/384/512 (by curve), ed25519-sha512. */
function algorithmFor(key: KeyObject, where = 'key'): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'rsa-sha256';
    case 'ed25519':
      return 'ed25519-sha512';
    case 'ec': {
      const crv = key.export({ format: 'jwk' }).crv;
      const name = Object.keys(ALGORITHMS).find((a) => ALGORITHMS[a]?.curve === crv);
      if (name !== undefined) return name;
      break;
    }
    default:
      break;
  }
  throw keyError(
    where,
    `keys of type ${key.asymmetricKeyType ?? 'unknown'} cannot sign requests (rsa, ed25519 and ecdsa can)`,
  );
}

function keyFits(key: KeyObject, algorithm: string): boolean {
  const a = ALGORITHMS[algorithm];
  if (a === undefined || key.asymmetricKeyType !== a.keyType) return false;
  return a.curve === undefined || key.export({ format: 'jwk' }).crv === a.curve;
}

// ---- client side ----

export interface SignedHeaders {
  /** The `Date` header to send (RFC 1123). */
  date: string;
  /** The `Authorization` header to send. */
  authorization: string;
}

/**
 * Signs `date: <RFC 1123 date>` with `privateKey`; RSA keys use rsa-sha256
 * (as the spec requires), ed25519 keys ed25519-sha512, ECDSA keys ecdsa-shaN.
 */
export function signRequest(opts: { keyId: string; privateKey: KeyObject; date?: Date }): SignedHeaders {
  if (opts.keyId === '' || /["\r\n]/.test(opts.keyId)) {
    throw new SlipwayError('INVALID_ARGUMENT', `keyId '${opts.keyId}' cannot go in a Signature header`);
  }
  const date = (opts.date ?? new Date()).toUTCString();
  const algorithm = algorithmFor(opts.privateKey);
  const hash = ALGORITHMS[algorithm]?.hash ?? null;
  const signature = sign(hash, Buffer.from(`date: ${date}`, 'utf8'), opts.privateKey).toString('base64');
  return {
    date,
    authorization: `Signature keyId="${opts.keyId}",algorithm="${algorithm}",headers="date",signature="${signature}"`,
  };
}

// ---- server side ----

export interface SignatureParams {
  keyId: string;
  algorithm: string;
  /** Lower-cased header names, in signing order (default `["date"]`). */
  headers: string[];
  signature: Buffer;
}

const invalidHeader = (message: string): ImgapiError => new ImgapiError(400, 'InvalidHeader', message);
const unauthorized = (message: string): ImgapiError => new ImgapiError(401, 'Unauthorized', message);

/**
 * Parses `Signature k="v",k="v",…` strictly: every value quoted, no
 * duplicates; keyId, algorithm and signature required; unknown parameters
 * ignored (as draft-cavage says). Throws 400 InvalidHeader.
 */
export function parseSignatureHeader(authorization: string): SignatureParams {
  const m = /^Signature\s+(.*)$/is.exec(authorization.trim());
  if (m === null) throw invalidHeader('Authorization header: only the "Signature" scheme is supported');
  const rest = m[1] ?? '';
  const params = new Map<string, string>();
  const re = /\s*([A-Za-z][A-Za-z0-9_-]*)="([^"]*)"\s*(,|$)/y;
  let pos = 0;
  let separator = '';
  while (pos < rest.length) {
    re.lastIndex = pos;
    const p = re.exec(rest);
    if (p === null) {
      throw invalidHeader(
        `Authorization header: malformed Signature parameters at "${rest.slice(pos, pos + 20)}"`,
      );
    }
    const name = p[1] ?? '';
    if (params.has(name)) throw invalidHeader(`Authorization header: parameter "${name}" given twice`);
    params.set(name, p[2] ?? '');
    pos = re.lastIndex;
    separator = p[3] ?? '';
  }
  if (separator === ',')
    throw invalidHeader('Authorization header: trailing comma after the Signature parameters');
  const keyId = params.get('keyId');
  const algorithm = params.get('algorithm');
  const signature = params.get('signature');
  for (const [name, v] of [
    ['keyId', keyId],
    ['algorithm', algorithm],
    ['signature', signature],
  ] as const) {
    if (v === undefined || v === '') throw invalidHeader(`Authorization header: Signature has no "${name}"`);
  }
  const sig = signature ?? '';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sig) || sig.length % 4 !== 0) {
    throw invalidHeader('Authorization header: the signature is not base64');
  }
  const headersParam = params.get('headers');
  const headers = headersParam === undefined ? ['date'] : headersParam.trim().toLowerCase().split(/\s+/);
  if (headers.length === 0 || headers[0] === '')
    throw invalidHeader('Authorization header: "headers" is empty');
  return {
    keyId: keyId ?? '',
    algorithm: (algorithm ?? '').toLowerCase(),
    headers,
    signature: Buffer.from(sig, 'base64'),
  };
}

/** User names of keys directories and keyIds: no path separators, no dot files. */
export const USER_NAME = /^(?!\.)[a-zA-Z0-9._-]+$/;

/** `<user>` or `/<user>/keys/<fingerprint or key name>`. */
function userOfKeyId(keyId: string): { user: string; fingerprint?: string } | undefined {
  const m = /^\/([^/]+)\/keys\/(.+)$/.exec(keyId);
  const user = m === null ? keyId : (m[1] ?? '');
  if (!USER_NAME.test(user)) return undefined;
  return m === null ? { user } : { user, fingerprint: m[2] ?? '' };
}

const FINGERPRINT = /^(SHA256:[A-Za-z0-9+/]{43}=?|(MD5:)?[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){15})$/;

export interface SignedRequest {
  authorization?: string;
  date?: string;
  method: string;
  /** The request target as sent: path and query. */
  path: string;
  /** Other request headers (lower-case names) when the signature covers more than date and (request-target). */
  headers?: Record<string, string | undefined>;
}

/**
 * Verifies a request's Signature against the SSH public keys of the user
 * its keyId names; returns the user. Throws ImgapiError (see the table at
 * the top of this file).
 */
export async function verifyRequestSignature(
  req: SignedRequest,
  keys: (user: string) => Promise<KeyObject[] | undefined>,
  opts: { now: Date; maxSkewMs: number },
): Promise<{ user: string }> {
  if (req.authorization === undefined || req.authorization === '') {
    throw unauthorized('Unauthorized (this request needs an HTTP Signature Authorization header)');
  }
  const params = parseSignatureHeader(req.authorization);
  const alg = ALGORITHMS[params.algorithm];
  if (alg === undefined) {
    throw unauthorized(
      `Unauthorized ("${params.algorithm}" is not a supported http-signature signing algorithm)`,
    );
  }
  if (!params.headers.includes('date'))
    throw unauthorized('Unauthorized (the signature must cover the date header)');
  if (req.date === undefined || req.date === '') {
    throw unauthorized('Unauthorized (the request has no Date header; signed requests need one)');
  }
  const when = Date.parse(req.date);
  if (!Number.isFinite(when)) throw invalidHeader(`Date header: "${req.date}" is not an HTTP date`);
  const skew = when - opts.now.getTime();
  if (Math.abs(skew) > opts.maxSkewMs) {
    throw unauthorized(
      `Unauthorized (clock skew: the Date header is ${Math.round(Math.abs(skew) / 1000)}s ${skew < 0 ? 'behind' : 'ahead of'} the server's clock; at most ${Math.round(opts.maxSkewMs / 1000)}s is allowed)`,
    );
  }
  const lines: string[] = [];
  for (const h of params.headers) {
    if (h === '(request-target)') lines.push(`(request-target): ${req.method.toLowerCase()} ${req.path}`);
    else if (h === 'date') lines.push(`date: ${req.date}`);
    else {
      const v = req.headers?.[h];
      if (v === undefined)
        throw invalidHeader(`Authorization header: signed header "${h}" is not in the request`);
      lines.push(`${h}: ${v}`);
    }
  }
  const data = Buffer.from(lines.join('\n'), 'utf8');
  const denied = unauthorized(
    `Unauthorized (the signature does not verify with any key of keyId "${params.keyId}")`,
  );
  const who = userOfKeyId(params.keyId);
  if (who === undefined) throw denied;
  const userKeys = await keys(who.user);
  if (userKeys === undefined || userKeys.length === 0) throw denied;
  let candidates = userKeys.filter((k) => keyFits(k, params.algorithm));
  if (who.fingerprint !== undefined && FINGERPRINT.test(who.fingerprint)) {
    const fp = who.fingerprint;
    candidates = candidates.filter((k) => fingerprintMatches(k, fp));
  }
  const verifies = (key: KeyObject): boolean => {
    try {
      return verify(alg.hash, data, key, params.signature);
    } catch {
      return false; // e.g. an ECDSA signature that is not DER
    }
  };
  if (candidates.some(verifies)) return { user: who.user };
  throw denied;
}

// ---- keys directories ----

/** Public keys of an authorized_keys-like text: one per line, blank lines and `#` comments ignored. */
export function parseKeysText(
  text: string,
  file: string,
  onInvalid?: (err: SlipwayError) => void,
): KeyObject[] {
  const out: KeyObject[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    try {
      out.push(parseSshPublicKey(t, `${file}:${i + 1}`));
    } catch (err) {
      if (onInvalid === undefined || !(err instanceof SlipwayError)) throw err;
      onInvalid(err);
    }
  });
  return out;
}

async function statOrUndefined(p: string): Promise<{ mtimeMs: number; size: number } | undefined> {
  try {
    const st = await fsp.stat(p);
    return st.isFile() ? { mtimeMs: st.mtimeMs, size: st.size } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The keys of `user` from `dir`: `DIR/<user>.keys` and `DIR/<user>/*.pub`
 * (authorized_keys-like). undefined when neither exists (unknown user) or
 * the name is not a plain user name. Files are re-read when they change
 * (size or mtime); a line that is not a key is skipped (and reported to
 * `onInvalidKey`), so one bad line does not lock the user out.
 */
export function loadKeysDir(
  dir: string,
  options: { onInvalidKey?: (err: SlipwayError) => void } = {},
): (user: string) => Promise<KeyObject[] | undefined> {
  const cache = new Map<string, { stamp: string; keys: KeyObject[] }>();
  return async (user: string) => {
    if (!USER_NAME.test(user)) return undefined;
    const files: string[] = [];
    const keysFile = path.join(dir, `${user}.keys`);
    if ((await statOrUndefined(keysFile)) !== undefined) files.push(keysFile);
    try {
      const userDir = path.join(dir, user);
      for (const name of (await fsp.readdir(userDir)).sort()) {
        if (name.endsWith('.pub')) files.push(path.join(userDir, name));
      }
    } catch {
      /* no per-user directory */
    }
    const stats = await Promise.all(files.map(async (f) => ({ f, st: await statOrUndefined(f) })));
    const present = stats.filter((s) => s.st !== undefined);
    if (present.length === 0) {
      cache.delete(user);
      return undefined;
    }
    const stamp = present.map((s) => `${s.f}:${s.st?.mtimeMs ?? 0}:${s.st?.size ?? 0}`).join('\n');
    const cached = cache.get(user);
    if (cached !== undefined && cached.stamp === stamp) return cached.keys;
    const keys: KeyObject[] = [];
    for (const { f } of present) {
      let text: string;
      try {
        text = await fsp.readFile(f, 'utf8');
      } catch {
        continue;
      }
      keys.push(...parseKeysText(text, f, options.onInvalidKey ?? (() => undefined)));
    }
    cache.set(user, { stamp, keys });
    return keys;
  };
}
