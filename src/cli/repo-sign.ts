/** `slipway repo sign` and `slipway repo rotate-root`: thin adapters from flags to src/repo/sign.ts. */
import { SlipwayError } from '../core/errors.js';
import { localSigner, parsePrivateKey, type RoleName, type Signer } from '../formats/tuf/index.js';
import { clockFrom, loadSigners, parseDuration, parseThresholds, resolveKeyText } from '../repo/index.js';
import { rotateRepositoryRoot, signRepository, type SignResult } from '../repo/sign.js';
import { parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const REPO_SIGN_USAGE = `  sign ZIP|DIR [-k KEY]... [--role timestamp|snapshot|targets|root]... [--expiry 7d] [--add-signature]
       [-o OUT.zip] [--dry-run]
  rotate-root ZIP|DIR --new-key KEY... [--new-ROLE-key KEY]... [--old-key KEY]... [--threshold ROLE=N]...
       [--expiry 7d] [-o OUT.zip] [--dry-run]`;

const ROLES: readonly RoleName[] = ['root', 'targets', 'snapshot', 'timestamp'];

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Key values (`ed25519:…`, `env:VAR`, `file:PATH`) of one flag; errors name the flag, never the secret. */
function keysOf(values: readonly string[], flag: string): Signer[] {
  return values.map((v, i) => {
    const where = `${flag} #${i + 1}`;
    return localSigner(parsePrivateKey(resolveKeyText(v, process.env, where), where));
  });
}

function validForOf(values: Record<string, unknown>): number | undefined {
  const expiry = str(values.expiry);
  return expiry === undefined ? undefined : parseDuration(expiry, '--expiry');
}

function render(r: SignResult, what: string): string {
  const short = (id: string): string => id.slice(0, 16);
  const lines = [
    `${r.dryRun ? 'would update' : 'updated'} ${r.repo}${r.output !== r.repo ? ` → ${r.output}` : ''}: ${what}, root v${r.rootVersion}`,
    ...r.changes.map((c) => {
      const versions = c.oldVersion === c.version ? `v${c.version}` : `v${c.oldVersion} → v${c.version}`;
      return `  ${c.role.padEnd(9)} ${c.action.padEnd(15)} ${versions}  expires ${c.expires}  ${c.signatures}/${c.threshold} signatures  signed by ${c.signedBy.map(short).join(', ')}`;
    }),
  ];
  if (r.sha256 !== undefined) lines.push(`sha256 ${r.sha256} (${r.output}.sha256.txt)`);
  if (!r.complete) lines.push(`not yet complete: ${r.pending ?? 'a threshold is not met'}`);
  if (r.unusedKeys.length > 0)
    lines.push(`note: these keys signed nothing: ${r.unusedKeys.map(short).join(', ')}`);
  return lines.join('\n');
}

async function sign(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = `slipway repo sign ZIP|DIR [-k KEY]... [--role ROLE]... [--expiry 7d] [--add-signature] [-o OUT.zip] [--dry-run]`;
  const { values, positionals } = parse(
    argv,
    {
      key: { type: 'string', short: 'k', multiple: true },
      role: { type: 'string', multiple: true },
      expiry: { type: 'string' },
      'add-signature': { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      'dry-run': { type: 'boolean' },
    },
    usage,
  );
  const repo = positionals[0];
  if (repo === undefined || positionals.length !== 1) throw new SlipwayError('USAGE', `usage: ${usage}`);
  const roles = strings(values.role);
  for (const r of roles) {
    if (!(ROLES as readonly string[]).includes(r)) {
      throw new SlipwayError('USAGE', `--role takes root, targets, snapshot or timestamp, got '${r}'`);
    }
  }
  if (values['add-signature'] === true && str(values.expiry) !== undefined) {
    throw new SlipwayError('USAGE', '--add-signature keeps the metadata as it is; --expiry does not apply');
  }
  // No -k: $SLIPWAY_TUF_KEY (say, an online timestamp key in CI); never a generated key.
  const { signers } = loadSigners({ keys: strings(values.key), generate: false });
  const validFor = validForOf(values);
  const addSignature = values['add-signature'] === true;
  const output = str(values.output);
  const r = await signRepository(repo, {
    now: clockFrom(process.env),
    keys: signers.root,
    roles: roles.length > 0 ? (roles as RoleName[]) : ['timestamp'],
    addSignature,
    ...(validFor !== undefined ? { validFor } : {}),
    ...(output !== undefined ? { output } : {}),
    dryRun: values['dry-run'] === true,
  });
  if (r.unusedKeys.length > 0) {
    ctx.reporter.emit({
      kind: 'log',
      level: 'warn',
      message: `${r.unusedKeys.length} given key(s) signed nothing`,
    });
  }
  return { data: r, human: render(r, addSignature ? 'signatures added' : 're-signed') };
}

async function rotate(argv: string[]): Promise<CommandResult> {
  const usage =
    'slipway repo rotate-root ZIP|DIR --new-key KEY... [--new-ROLE-key KEY]... [--old-key KEY]... [--threshold ROLE=N]... [--expiry 7d] [-o OUT.zip] [--dry-run]';
  const { values, positionals } = parse(
    argv,
    {
      'new-key': { type: 'string', multiple: true },
      'new-root-key': { type: 'string', multiple: true },
      'new-targets-key': { type: 'string', multiple: true },
      'new-snapshot-key': { type: 'string', multiple: true },
      'new-timestamp-key': { type: 'string', multiple: true },
      'old-key': { type: 'string', multiple: true },
      threshold: { type: 'string', multiple: true },
      expiry: { type: 'string' },
      output: { type: 'string', short: 'o' },
      'dry-run': { type: 'boolean' },
    },
    usage,
  );
  const repo = positionals[0];
  if (repo === undefined || positionals.length !== 1) throw new SlipwayError('USAGE', `usage: ${usage}`);
  const common = keysOf(strings(values['new-key']), '--new-key');
  const newSigners = {
    root: [] as Signer[],
    targets: [] as Signer[],
    snapshot: [] as Signer[],
    timestamp: [] as Signer[],
  };
  for (const role of ROLES) {
    const own = keysOf(strings(values[`new-${role}-key`]), `--new-${role}-key`);
    newSigners[role] = own.length > 0 ? own : common;
    if (newSigners[role].length === 0) {
      throw new SlipwayError(
        'USAGE',
        `rotate-root needs the new keys: --new-key (or --new-${role}-key)\nusage: ${usage}`,
      );
    }
  }
  const thresholds = parseThresholds(strings(values.threshold));
  const validFor = validForOf(values);
  const output = str(values.output);
  const r = await rotateRepositoryRoot(repo, {
    now: clockFrom(process.env),
    newSigners,
    oldRootSigners: keysOf(strings(values['old-key']), '--old-key'),
    thresholds,
    ...(validFor !== undefined ? { validFor } : {}),
    ...(output !== undefined ? { output } : {}),
    dryRun: values['dry-run'] === true,
  });
  return { data: r, human: render(r, 'root rotated') };
}

export async function repoSignCommand(
  cmd: 'sign' | 'rotate-root',
  argv: string[],
  ctx: CliContext,
): Promise<CommandResult> {
  return cmd === 'sign' ? sign(argv, ctx) : rotate(argv);
}
