/** Signing and signature-threshold checks over the canonical JSON of `signed`. */
import { canonicalJsonBytes, type CanonicalValue } from '../../core/canonical-json.js';
import { SlipwayError } from '../../core/errors.js';
import { verifySignature, type Signer, type TufKey } from './keys.js';
import { own, type Envelope, type RoleKeys, type Signature } from './metadata.js';

function signedBytes(signed: unknown): Buffer {
  return canonicalJsonBytes(signed as CanonicalValue);
}

/** One signature per distinct key, ordered by keyid, `sig` in lowercase hex. */
export async function signMetadata<T>(signed: T, signers: readonly Signer[]): Promise<Envelope<T>> {
  const data = signedBytes(signed);
  const byId = new Map<string, Signer>();
  for (const s of signers) if (!byId.has(s.keyId)) byId.set(s.keyId, s);
  const ids = [...byId.keys()].sort();
  const signatures: Signature[] = [];
  for (const keyid of ids) {
    const signer = byId.get(keyid);
    if (signer === undefined) continue;
    const sig = await signer.sign(data);
    signatures.push({ keyid, sig: Buffer.from(sig).toString('hex') });
  }
  return { signed, signatures };
}

/**
 * Distinct keys of `role` (listed there and present in `keys`) with a valid
 * signature. A repeated signature, or one key listed under two keyids, counts once.
 */
export function countValidSignatures(
  env: Envelope<unknown>,
  keys: Record<string, TufKey>,
  role: RoleKeys,
): number {
  let data: Buffer;
  try {
    data = signedBytes(env.signed);
  } catch {
    return 0;
  }
  const keyIds = new Set<string>();
  const publics = new Set<string>();
  for (const { keyid, sig } of env.signatures) {
    if (keyIds.has(keyid) || !role.keyids.includes(keyid)) continue;
    const key = own(keys, keyid);
    if (key === undefined) continue;
    const pub = key.keyval.public.toLowerCase();
    if (publics.has(pub)) continue;
    if (!verifySignature(key, data, sig)) continue;
    keyIds.add(keyid);
    publics.add(pub);
  }
  return keyIds.size;
}

export function checkThreshold(
  env: Envelope<unknown>,
  keys: Record<string, TufKey>,
  role: RoleKeys,
  roleName: string,
  where: string,
): void {
  const n = countValidSignatures(env, keys, role);
  if (n < role.threshold) {
    throw new SlipwayError(
      'TUF_THRESHOLD_NOT_MET',
      `${roleName}: ${n} valid signature${n === 1 ? '' : 's'} of threshold ${role.threshold}`,
      { where },
    );
  }
}
