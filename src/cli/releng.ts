/** `slipway releng DIR`: a thin adapter from flags to src/releng. */
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { formatSize } from '../core/size.js';
import { summarize } from '../build/index.js';
import { runReleng } from '../releng/releng.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const RELENG_USAGE = `slipway releng DIR [-o OUT] [--jobs N] [--dry-run] [-k KEY]... [--var KEY=VALUE]...
  runs DIR/releng.toml: packages → stamped zones → control plane; OS images; firmware;
  OUT/repo.zip (+ .sha256.txt), re-verified. A second run with no change does nothing.`;

export async function relengCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    {
      output: { type: 'string', short: 'o' },
      jobs: { type: 'string', short: 'j' },
      'dry-run': { type: 'boolean' },
      key: { type: 'string', short: 'k', multiple: true },
      var: { type: 'string', multiple: true },
    },
    RELENG_USAGE,
  );
  const dir = positionals[0];
  if (dir === undefined || positionals.length !== 1)
    throw new SlipwayError('USAGE', `usage: ${RELENG_USAGE}`);
  const vars: Record<string, string> = {};
  for (const v of Array.isArray(values.var) ? values.var : []) {
    const m = typeof v === 'string' ? /^([^=]+)=(.*)$/.exec(v) : null;
    if (m === null) throw new SlipwayError('USAGE', `--var takes KEY=VALUE, got '${String(v)}'`);
    vars[m[1] ?? ''] = m[2] ?? '';
  }
  const jobs = int(values.jobs, '--jobs');
  const keys = Array.isArray(values.key) ? values.key.filter((k): k is string => typeof k === 'string') : [];
  const r = await runReleng({
    dir,
    out: str(values.output) ?? 'out',
    dryRun: values['dry-run'] === true,
    keys,
    vars,
    ...(jobs !== undefined ? { jobs } : {}),
    reporter: ctx.reporter,
    signal: ctx.signal,
  });
  if (r.generatedKey !== undefined) {
    process.stderr.write(
      `generated a throwaway signing key, kept in ${path.join(r.out, '.slipway', 'throwaway-key')}: ${r.generatedKey}\n`,
    );
  }
  if (r.dryRun) {
    const lines = [
      `release ${r.version} into ${r.out} (dry run: nothing done)`,
      ...r.plan.map(
        (j) =>
          `  ${j.name.padEnd(16)} ${j.describe}${j.deps.length > 0 ? `  [after ${j.deps.join(', ')}]` : ''}`,
      ),
    ];
    return { data: r, human: lines.join('\n') };
  }
  const report = r.report;
  if (report !== undefined && !report.ok) {
    const failed = report.jobs.find((j) => j.name === report.failed);
    throw new SlipwayError(
      'JOB_FAILED',
      `job '${report.failed ?? '?'}' failed: ${failed?.error?.message ?? 'see its log'} (log: ${failed?.logFile ?? '?'})`,
      {
        ...(failed?.error?.where !== undefined ? { where: failed.error.where } : {}),
        cause: failed?.error,
      },
    );
  }
  const lines = [
    `release ${r.version}`,
    ...(report !== undefined ? [summarize(report)] : []),
    ...(r.repo !== undefined
      ? [
          `${r.repo.file}  ${formatSize(r.repo.size)}  valid until ${r.repo.validUntil}`,
          `sha256 ${r.repo.sha256}`,
        ]
      : []),
    ...r.artifacts.map((a) => `  ${a.kind.padEnd(22)} ${a.name} ${a.version}`),
  ];
  return { data: r, human: lines.join('\n') };
}
