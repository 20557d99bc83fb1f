/**
 * Where signing keys come from (specs/tuf-repo.md "Keys"): `-k/--key`
 * values, per-role keys, or the environment; with none, a throwaway key is
 * generated and shown once (CI builds). Everything downstream sees only
 * `Signer`s, so a KMS or HSM can replace a key string later.
 */
import * as fs from 'node:fs';
import { SlipwayError } from '../core/errors.js';
import {
  generateKey,
  localSigner,
  parsePrivateKey,
  type RoleName,
  type RoleSigners,
  type Signer,
} from '../formats/tuf/index.js';

export const KEY_ENV = 'SLIPWAY_TUF_KEY';
/** tufaceous' variable, read too so existing CI set-ups keep working. */
export const TUFACEOUS_KEY_ENV = 'TUFACEOUS_KEY';

export const ROLES: readonly RoleName[] = ['root', 'targets', 'snapshot', 'timestamp'];

export interface KeyOptions {
  /** `-k` values: sign every role. */
  keys?: readonly string[];
  /** Per-role keys (`--root-key` …): replace `keys` for that role. */
  roleKeys?: Partial<Record<RoleName, readonly string[]>>;
  env?: NodeJS.ProcessEnv;
  /** Generate a throwaway key when none is given (default true). */
  generate?: boolean;
}

export interface LoadedKeys {
  signers: RoleSigners;
  /** Set when a throwaway key was generated: its `ed25519:…` text. */
  generated?: string;
}

/**
 * A key value: `ed25519:…` itself, `env:NAME` (read from the environment) or
 * `file:PATH` (the first line of a file), so secrets need not sit in argv.
 */
export function resolveKeyText(value: string, env: NodeJS.ProcessEnv, where: string): string {
  if (value.startsWith('env:')) {
    const name = value.slice(4);
    const v = env[name];
    if (v === undefined || v.trim() === '') {
      throw new SlipwayError('TUF_KEY_INVALID', `environment variable ${name} is not set`, { where });
    }
    return v.trim();
  }
  if (value.startsWith('file:')) {
    const file = value.slice(5);
    try {
      return (fs.readFileSync(file, 'utf8').split('\n')[0] ?? '').trim();
    } catch {
      throw new SlipwayError('TUF_KEY_INVALID', `cannot read key file ${file}`, { where });
    }
  }
  return value.trim();
}

function signerFor(value: string, env: NodeJS.ProcessEnv, where: string): Signer {
  return localSigner(parsePrivateKey(resolveKeyText(value, env, where), where));
}

export function loadSigners(options: KeyOptions): LoadedKeys {
  const env = options.env ?? process.env;
  const common: Signer[] = (options.keys ?? []).map((k, i) => signerFor(k, env, `--key #${i + 1}`));
  if (common.length === 0) {
    const fromEnv = env[KEY_ENV] ?? env[TUFACEOUS_KEY_ENV];
    if (fromEnv !== undefined && fromEnv.trim() !== '') {
      common.push(
        signerFor(fromEnv, env, env[KEY_ENV] !== undefined ? `$${KEY_ENV}` : `$${TUFACEOUS_KEY_ENV}`),
      );
    }
  }
  let generated: string | undefined;
  const roleKeys = options.roleKeys ?? {};
  const needCommon = ROLES.some((r) => (roleKeys[r]?.length ?? 0) === 0);
  if (common.length === 0 && needCommon) {
    if (options.generate === false) {
      throw new SlipwayError('TUF_KEY_INVALID', `no signing key: give -k/--key, or set ${KEY_ENV}`);
    }
    const k = generateKey();
    generated = k.text;
    common.push(localSigner(k.privateKey));
  }
  const forRole = (r: RoleName): Signer[] => {
    const own = roleKeys[r] ?? [];
    return own.length > 0 ? own.map((k, i) => signerFor(k, env, `--${r}-key #${i + 1}`)) : common;
  };
  return {
    signers: {
      root: forRole('root'),
      targets: forRole('targets'),
      snapshot: forRole('snapshot'),
      timestamp: forRole('timestamp'),
    },
    ...(generated !== undefined ? { generated } : {}),
  };
}

/** `--threshold root=2` values → thresholds per role. */
export function parseThresholds(values: readonly string[]): Partial<Record<RoleName, number>> {
  const out: Partial<Record<RoleName, number>> = {};
  for (const v of values) {
    const m = /^(root|targets|snapshot|timestamp)=(\d+)$/.exec(v);
    if (m === null)
      throw new SlipwayError(
        'USAGE',
        `--threshold takes ROLE=N (root, targets, snapshot, timestamp), got '${v}'`,
      );
    const n = Number(m[2]);
    if (n < 1) throw new SlipwayError('USAGE', `--threshold ${v}: a threshold is at least 1`);
    out[m[1] as RoleName] = n;
  }
  return out;
}

/** `7d`, `12h`, `30m`, `3600s` or seconds → milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+)([smhdw]?)$/.exec(text.trim());
  if (m === null)
    throw new SlipwayError('USAGE', `${flag} takes a duration like 7d, 12h, 30m, got '${text}'`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] as '' | 's' | 'm' | 'h' | 'd' | 'w'];
  const ms = Number(m[1]) * unit * 1000;
  if (ms <= 0) throw new SlipwayError('USAGE', `${flag} must be longer than zero`);
  return ms;
}

/** The injected clock: SOURCE_DATE_EPOCH when set (reproducible builds), else now. */
export function clockFrom(env: NodeJS.ProcessEnv): Date {
  const s = env.SOURCE_DATE_EPOCH;
  if (s !== undefined && s !== '') {
    if (!/^\d+$/.test(s))
      throw new SlipwayError('INVALID_ARGUMENT', `SOURCE_DATE_EPOCH must be whole seconds, got '${s}'`);
    return new Date(Number(s) * 1000);
  }
  return new Date();
}
