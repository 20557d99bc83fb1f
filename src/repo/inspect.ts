/**
 * `slipway repo inspect`: what a repository zip says about itself, without
 * trusting it — roles, versions, expiry, signature counts (against its own
 * root), artifacts. For verification use `repo verify`.
 */
import { ZipReader } from '../archive/zip-read.js';
import { ARTIFACTS_JSON, parseArtifactsDocument } from '../formats/repo-artifacts.js';
import {
  countValidSignatures,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  targetPathFor,
  type Envelope,
  type RoleName,
  type RootMeta,
} from '../formats/tuf/index.js';

export interface InspectResult {
  file: string;
  systemVersion?: string;
  entries: number;
  roles: { role: RoleName; version: number; expires: string; signatures: number; threshold: number }[];
  artifacts: {
    kind: string;
    name: string;
    version: string;
    target: string;
    size?: number;
    sha256?: string;
  }[];
}

const MAX = 16 * 1024 * 1024;

export async function inspectRepository(file: string): Promise<InspectResult> {
  const reader = await ZipReader.open(file);
  try {
    const meta = async (name: string): Promise<Buffer | undefined> => {
      const e = reader.get(`repo/metadata/${name}`);
      return e === undefined ? undefined : reader.readEntry(e, MAX);
    };
    // The newest root is the one with the highest N.
    let root: Envelope<RootMeta> | undefined;
    for (let n = 1; n < 1000; n++) {
      const b = await meta(`${n}.root.json`);
      if (b === undefined) break;
      root = parseRoot(b, `${n}.root.json`);
    }
    const result: InspectResult = { file, entries: reader.entries.length, roles: [], artifacts: [] };
    if (root === undefined) return result;
    const rootEnv = root;
    const add = (role: RoleName, env: Envelope<{ version: number; expires: string }>): void => {
      const keys = rootEnv.signed.roles[role];
      result.roles.push({
        role,
        version: env.signed.version,
        expires: env.signed.expires,
        signatures: countValidSignatures(env, rootEnv.signed.keys, keys),
        threshold: keys.threshold,
      });
    };
    add('root', root);
    const tsBytes = await meta('timestamp.json');
    if (tsBytes === undefined) return result;
    const ts = parseTimestamp(tsBytes, 'timestamp.json');
    add('timestamp', ts);
    const snapVersion = ts.signed.meta['snapshot.json']?.version;
    const snapBytes = await meta(`${snapVersion ?? 0}.snapshot.json`);
    if (snapBytes === undefined) return result;
    const snap = parseSnapshot(snapBytes, 'snapshot.json');
    add('snapshot', snap);
    const targetsVersion = snap.signed.meta['targets.json']?.version;
    const targetsBytes = await meta(`${targetsVersion ?? 0}.targets.json`);
    if (targetsBytes === undefined) return result;
    const targets = parseTargets(targetsBytes, 'targets.json');
    add('targets', targets);
    const info = targets.signed.targets[ARTIFACTS_JSON];
    const sha = info?.hashes.sha256;
    const entry =
      sha === undefined ? undefined : reader.get(`repo/targets/${targetPathFor(ARTIFACTS_JSON, sha)}`);
    if (entry === undefined) return result;
    const doc = parseArtifactsDocument(
      await reader.readEntry(entry, 4 * 1024 * 1024),
      `${file}: artifacts.json`,
    );
    result.systemVersion = doc.system_version;
    result.artifacts = doc.artifacts.map((a) => {
      const t = targets.signed.targets[a.target];
      return {
        ...a,
        ...(t !== undefined
          ? { size: t.length, ...(t.hashes.sha256 !== undefined ? { sha256: t.hashes.sha256 } : {}) }
          : {}),
      };
    });
    return result;
  } finally {
    await reader.close();
  }
}
