/** `slipway release prepare|tag|build|upload`: a thin adapter from flags to src/release. */
import * as readline from 'node:readline';
import { SlipwayError } from '../core/errors.js';
import { formatSize } from '../core/size.js';
import {
  buildRelease,
  formatBuildPlan,
  formatPreparePlan,
  formatTagPlan,
  formatUploadStepPlan,
  prepareRelease,
  tagRelease,
  uploadRelease,
} from '../release/index.js';
import { int, parse, str, type Options } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const RELEASE_USAGE = `slipway release prepare|tag|build|upload [-C DIR] [--config FILE] [--dry-run]
  prepare                 release notes: DIR's rl-next fragments → rl-<MAJOR>.md (+ docs summary), one commit
  tag [--force-tag]       official release commit, annotated tag VERSION merged back (-s ours); HEAD on the tag
  build [-o OUT] [--jobs N]
                          on the tag: source tarball, artifacts, .sha256 files, manifest.json, latest.json
  upload [--env NAME] [-o OUT] [--noconfirm] [--branch B] [--concurrency N] [--force-tag]
                          on the tag, to an environment of release.toml (default staging): release files,
                          docs, container images, git push of branch and tag; latest.json last.
                          --force-tag replaces the remote's tag VERSION when it differs (after tag --force-tag)`;

const COMMON: Options = {
  dir: { type: 'string', short: 'C' },
  config: { type: 'string' },
  'dry-run': { type: 'boolean' },
};

/** One line from stdin, after `prompt` on stderr ('' at end of input). */
async function readLine(prompt: string, signal: AbortSignal): Promise<string> {
  process.stderr.write(prompt);
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  const abort = (): void => {
    rl.close();
  };
  signal.addEventListener('abort', abort, { once: true });
  try {
    for await (const line of rl) return line;
    return '';
  } finally {
    signal.removeEventListener('abort', abort);
    rl.close();
  }
}

export async function releaseCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  const extra: Record<string, Options> = {
    prepare: {},
    tag: { 'force-tag': { type: 'boolean' } },
    build: { output: { type: 'string', short: 'o' }, jobs: { type: 'string', short: 'j' } },
    upload: {
      env: { type: 'string' },
      output: { type: 'string', short: 'o' },
      noconfirm: { type: 'boolean' },
      branch: { type: 'string' },
      concurrency: { type: 'string' },
      'force-tag': { type: 'boolean' },
    },
  };
  const own = sub === undefined ? undefined : extra[sub];
  if (own === undefined) throw new SlipwayError('USAGE', `usage: ${RELEASE_USAGE}`);
  const { values, positionals } = parse(rest, { ...COMMON, ...own }, RELEASE_USAGE);
  if (positionals.length > 0)
    throw new SlipwayError('USAGE', `unexpected '${positionals[0] ?? ''}'\nusage: ${RELEASE_USAGE}`);
  const dir = str(values.dir);
  const config = str(values.config);
  const common = {
    ...(dir !== undefined ? { dir } : {}),
    ...(config !== undefined ? { configFile: config } : {}),
    dryRun: values['dry-run'] === true,
    reporter: ctx.reporter,
  };
  const dry = common.dryRun ? ' (dry run: nothing done)' : '';

  if (sub === 'prepare') {
    const r = await prepareRelease(common);
    const human = r.dryRun
      ? `${formatPreparePlan(r.plan)}${dry}`
      : `release notes for ${r.plan.version} in ${r.plan.notesFile} (${r.plan.fragments.length} fragment(s)), commit ${r.commit?.slice(0, 12) ?? '?'}`;
    return { data: r, human };
  }
  if (sub === 'tag') {
    const r = await tagRelease({ ...common, forceTag: values['force-tag'] === true });
    const human = r.dryRun
      ? `${formatTagPlan(r.plan)}${dry}`
      : `tagged ${r.plan.version} on ${r.releaseCommit?.slice(0, 12) ?? '?'}; ${r.plan.branch} merged it (${r.mergeCommit?.slice(0, 12) ?? '?'}); HEAD is on the tag`;
    return { data: r, human };
  }
  if (sub === 'build') {
    const out = str(values.output);
    const jobs = int(values.jobs, '--jobs');
    const r = await buildRelease({
      ...common,
      ...(out !== undefined ? { out } : {}),
      ...(jobs !== undefined ? { jobs } : {}),
      signal: ctx.signal,
    });
    if (r.dryRun) return { data: r, human: `${formatBuildPlan(r.plan)}${dry}` };
    const lines = [
      `built ${r.plan.product} ${r.plan.version} in ${r.plan.out}`,
      ...(r.files ?? []).map((f) => `  ${f.name}  ${formatSize(f.size)}  sha256 ${f.sha256}`),
      `  manifest.json sha256 ${r.manifestSha256 ?? '?'}`,
    ];
    return { data: r, human: lines.join('\n') };
  }
  const out = str(values.output);
  const env = str(values.env);
  const branch = str(values.branch);
  const concurrency = int(values.concurrency, '--concurrency');
  const r = await uploadRelease({
    ...common,
    ...(out !== undefined ? { out } : {}),
    ...(env !== undefined ? { environment: env } : {}),
    ...(branch !== undefined ? { branch } : {}),
    ...(concurrency !== undefined ? { concurrency } : {}),
    noconfirm: values.noconfirm === true,
    forceTag: values['force-tag'] === true,
    confirm: (prompt) => readLine(prompt, ctx.signal),
    signal: ctx.signal,
  });
  if (r.dryRun) return { data: r, human: `${formatUploadStepPlan(r)}${dry}` };
  const u = r.uploaded;
  const lines = [
    `released ${r.version} to ${r.environment}: ${u?.uploaded ?? 0} object(s) uploaded (${formatSize(u?.bytes ?? 0)}), ${u?.skipped ?? 0} unchanged, ${u?.deleted ?? 0} deleted`,
    ...(r.images ?? []).map((i) => `  ${i.target}@${i.digest} tags ${i.tags.join(', ')}`),
    `  pushed ${r.publish.git.branch ?? ''} ${r.publish.git.tag} to ${r.publish.git.remote}`,
  ];
  return { data: r, human: lines.join('\n') };
}
