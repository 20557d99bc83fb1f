/** `slipway repo …`: thin adapters from flags to src/repo. */
import * as fs from 'node:fs';
import { SlipwayError } from '../core/errors.js';
import { formatSize } from '../core/size.js';
import { formatPrivateKey, generateKey, keyIdOf, publicKeyOf, type RoleName } from '../formats/tuf/index.js';
import {
  assembleRepository,
  clockFrom,
  extractRepository,
  inspectRepository,
  loadSigners,
  parseDuration,
  parseThresholds,
  verifyRepositoryZip,
} from '../repo/index.js';
import { parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';
import { repoServeCommand, REPO_SERVE_USAGE } from './repo-serve.js';
import { repoSignCommand, REPO_SIGN_USAGE } from './repo-sign.js';

export const REPO_USAGE = `slipway repo <command>
  assemble MANIFEST OUT.zip [-k KEY]... [--ROLE-key KEY]... [--threshold ROLE=N]... [--expiry 7d]
           [--skip-all-present] [--allow-non-semver] [--no-installinator-document] [--no-generate-key]
  verify ZIP [--root TRUSTED_ROOT.json] [--ignore-expiry] [--skip-all-present]
  inspect ZIP
  extract ZIP DIR [--no-verify] [--root TRUSTED_ROOT.json]
  keygen [-o FILE]
${REPO_SIGN_USAGE}
${REPO_SERVE_USAGE}
KEY: ed25519:<base64url PKCS#8>, env:VAR or file:PATH; default $SLIPWAY_TUF_KEY (or $TUFACEOUS_KEY),
else a throwaway key is generated and printed to stderr. SOURCE_DATE_EPOCH sets the clock.
every command takes --json`;

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

export const KEY_FLAGS = {
  key: { type: 'string', short: 'k', multiple: true },
  'root-key': { type: 'string', multiple: true },
  'targets-key': { type: 'string', multiple: true },
  'snapshot-key': { type: 'string', multiple: true },
  'timestamp-key': { type: 'string', multiple: true },
  threshold: { type: 'string', multiple: true },
  'no-generate-key': { type: 'boolean' },
} as const;

export function signersFromFlags(
  values: Record<string, unknown>,
  ctx: CliContext,
): ReturnType<typeof loadSigners> {
  const roleKeys: Partial<Record<RoleName, string[]>> = {};
  for (const r of ['root', 'targets', 'snapshot', 'timestamp'] as const)
    roleKeys[r] = strings(values[`${r}-key`]);
  const loaded = loadSigners({
    keys: strings(values.key),
    roleKeys,
    generate: values['no-generate-key'] !== true,
  });
  if (loaded.generated !== undefined) {
    // Shown once so a CI log holds what is needed to re-sign; never written to disk by us.
    process.stderr.write(
      `generated a throwaway signing key (pass it with -k to sign again): ${loaded.generated}\n`,
    );
    ctx.reporter.emit({ kind: 'log', level: 'warn', message: 'signing with a throwaway key' });
  }
  return loaded;
}

async function assemble(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = 'slipway repo assemble MANIFEST OUT.zip [-k KEY]... [--expiry 7d] [--skip-all-present] …';
  const { values, positionals } = parse(
    argv,
    {
      ...KEY_FLAGS,
      expiry: { type: 'string' },
      'skip-all-present': { type: 'boolean' },
      'allow-non-semver': { type: 'boolean' },
      'no-installinator-document': { type: 'boolean' },
    },
    usage,
  );
  const [manifestFile, output] = positionals;
  if (manifestFile === undefined || output === undefined || positionals.length !== 2) {
    throw new SlipwayError('USAGE', `assemble takes MANIFEST and OUT.zip\nusage: ${usage}`);
  }
  const validFor =
    str(values.expiry) === undefined ? undefined : parseDuration(str(values.expiry) ?? '', '--expiry');
  const thresholds = parseThresholds(strings(values.threshold));
  const { signers } = signersFromFlags(values, ctx);
  const r = await assembleRepository({
    manifestFile,
    output,
    signers,
    thresholds,
    now: clockFrom(process.env),
    ...(validFor !== undefined ? { validFor } : {}),
    skipAllPresent: values['skip-all-present'] === true,
    allowNonSemver: values['allow-non-semver'] === true,
    installinatorDocument: values['no-installinator-document'] !== true,
    reporter: ctx.reporter,
    signal: ctx.signal,
  });
  const lines = [
    `${r.output}  system version ${r.systemVersion}  ${formatSize(r.size)}  valid until ${r.validUntil}`,
    `sha256 ${r.sha256} (${r.output}.sha256.txt)`,
    ...r.artifacts.map(
      (a) =>
        `  ${a.kind.padEnd(22)} ${a.name} ${a.version}  ${formatSize(a.size).padStart(9)}  ${a.sha256.slice(0, 16)}`,
    ),
  ];
  return { data: r, human: lines.join('\n') };
}

function trustedRootFrom(values: Record<string, unknown>): Uint8Array | undefined {
  const file = str(values.root);
  if (file === undefined) return undefined;
  try {
    return fs.readFileSync(file);
  } catch {
    throw new SlipwayError('NOT_FOUND', `cannot read trusted root ${file}`, { where: file });
  }
}

async function verify(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = 'slipway repo verify ZIP [--root TRUSTED_ROOT.json] [--ignore-expiry] [--skip-all-present]';
  const { values, positionals } = parse(
    argv,
    {
      root: { type: 'string' },
      'ignore-expiry': { type: 'boolean' },
      'skip-all-present': { type: 'boolean' },
    },
    usage,
  );
  const file = positionals[0];
  if (file === undefined || positionals.length !== 1) throw new SlipwayError('USAGE', `usage: ${usage}`);
  const trustedRoot = trustedRootFrom(values);
  const r = await verifyRepositoryZip(file, {
    now: new Date(),
    ...(trustedRoot !== undefined ? { trustedRoot } : {}),
    ignoreExpiry: values['ignore-expiry'] === true,
    skipAllPresent: values['skip-all-present'] === true,
    reporter: ctx.reporter,
    signal: ctx.signal,
  });
  const lines = [
    `${r.file}: OK  system version ${r.systemVersion}  valid until ${r.validUntil}`,
    `sha256 ${r.sha256}  canonical name ${r.canonicalName}`,
    `root v${r.rootVersion}${r.trustedRootFromRepo ? ' (trusted from the repository itself: pass --root to pin it)' : ''}, targets v${r.targetsVersion}`,
    ...r.artifacts.map(
      (a) => `  ${a.kind.padEnd(22)} ${a.name} ${a.version}  ${formatSize(a.size).padStart(9)}`,
    ),
  ];
  return { data: r, human: lines.join('\n') };
}

async function inspect(argv: string[]): Promise<CommandResult> {
  const usage = 'slipway repo inspect ZIP';
  const { positionals } = parse(argv, {}, usage);
  const file = positionals[0];
  if (file === undefined || positionals.length !== 1) throw new SlipwayError('USAGE', `usage: ${usage}`);
  const r = await inspectRepository(file);
  const lines = [
    `${file}: system version ${r.systemVersion ?? '?'}`,
    ...r.roles.map(
      (role) =>
        `  ${role.role.padEnd(9)} v${role.version}  expires ${role.expires}  ${role.signatures} signature(s), threshold ${role.threshold}`,
    ),
    ...r.artifacts.map(
      (a) =>
        `  ${a.kind.padEnd(22)} ${a.name} ${a.version}  ${a.target}  ${formatSize(a.size ?? 0).padStart(9)}`,
    ),
  ];
  return { data: r, human: lines.join('\n') };
}

async function extract(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = 'slipway repo extract ZIP DIR [--no-verify] [--root TRUSTED_ROOT.json]';
  const { values, positionals } = parse(
    argv,
    { 'no-verify': { type: 'boolean' }, root: { type: 'string' } },
    usage,
  );
  const [file, dir] = positionals;
  if (file === undefined || dir === undefined || positionals.length !== 2)
    throw new SlipwayError('USAGE', `usage: ${usage}`);
  const trustedRoot = trustedRootFrom(values);
  const r = await extractRepository(file, dir, {
    verify: values['no-verify'] !== true,
    now: new Date(),
    ...(trustedRoot !== undefined ? { trustedRoot } : {}),
    reporter: ctx.reporter,
    signal: ctx.signal,
  });
  return { data: r, human: `extracted ${r.files} files into ${r.dir}` };
}

function keygen(argv: string[]): CommandResult {
  const usage = 'slipway repo keygen [-o FILE]';
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' } }, usage);
  if (positionals.length !== 0) throw new SlipwayError('USAGE', `usage: ${usage}`);
  const { privateKey } = generateKey();
  const text = formatPrivateKey(privateKey);
  const pub = publicKeyOf(privateKey);
  const out = str(values.output);
  if (out !== undefined) {
    // 0600 and exclusive: never overwrite an existing key.
    try {
      fs.writeFileSync(out, `${text}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      throw new SlipwayError('IO', `cannot write key file ${out}: ${(err as Error).message}`, { where: out });
    }
  }
  const data = {
    keyid: keyIdOf(pub),
    public: pub.keyval.public,
    ...(out !== undefined ? { file: out } : { key: text }),
  };
  return {
    data,
    human: out !== undefined ? `wrote ${out}\nkeyid ${data.keyid}` : `${text}\nkeyid ${data.keyid}`,
  };
}

export async function repoCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'assemble':
      return assemble(rest, ctx);
    case 'verify':
      return verify(rest, ctx);
    case 'inspect':
      return inspect(rest);
    case 'extract':
      return extract(rest, ctx);
    case 'keygen':
      return keygen(rest);
    case 'sign':
    case 'rotate-root':
      return repoSignCommand(cmd, rest, ctx);
    case 'serve':
      return repoServeCommand(rest, ctx);
    default:
      throw new SlipwayError(
        'USAGE',
        `${cmd === undefined ? 'missing command' : `unknown command 'repo ${cmd}'`}\nusage: ${REPO_USAGE}`,
      );
  }
}
