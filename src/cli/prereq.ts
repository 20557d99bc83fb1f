/** `slipway prereq …`: thin adapters from flags to src/build/prereq.ts. */
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { checkPrereqs, DEFAULT_PREREQS_FILE, fetchPrereqs } from '../build/prereq.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const PREREQ_USAGE = `slipway prereq fetch [-f FILE] [--var KEY=VALUE]... [--jobs N] [--offline] [--cache-dir DIR]
slipway prereq check [-f FILE] [--var KEY=VALUE]...`;

function parseVars(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of Array.isArray(v) ? v : []) {
    const s = String(kv);
    const eq = s.indexOf('=');
    if (eq <= 0) throw new SlipwayError('USAGE', `--var takes KEY=VALUE, got '${s}'\nusage: ${PREREQ_USAGE}`);
    out[s.slice(0, eq)] = s.slice(eq + 1);
  }
  return out;
}

/** dest as people read it: relative to where they stand when inside it. */
function shown(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel === '' || rel.startsWith('..') || path.isAbsolute(rel) ? p : rel;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export async function prereqCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  if (sub === 'check') {
    const { values, positionals } = parse(
      rest,
      { file: { type: 'string', short: 'f' }, var: { type: 'string', multiple: true } },
      PREREQ_USAGE,
    );
    if (positionals.length > 0) throw new SlipwayError('USAGE', `unexpected '${positionals[0] ?? ''}'`);
    const r = await checkPrereqs({
      file: str(values.file) ?? DEFAULT_PREREQS_FILE,
      vars: parseVars(values.var),
      reporter: ctx.reporter,
    });
    const human =
      r.prereqs.length === 0
        ? `${r.file}: no prereqs`
        : table(r.prereqs.map((p) => [p.name, p.state, shown(p.dest)]));
    // Missing or stale is a result, not an error: exit 1 so scripts can gate on it.
    return { data: r, human, exitCode: r.ok ? 0 : 1 };
  }
  if (sub === 'fetch') {
    const { values, positionals } = parse(
      rest,
      {
        file: { type: 'string', short: 'f' },
        var: { type: 'string', multiple: true },
        jobs: { type: 'string', short: 'j' },
        offline: { type: 'boolean' },
        'cache-dir': { type: 'string' },
      },
      PREREQ_USAGE,
    );
    if (positionals.length > 0) throw new SlipwayError('USAGE', `unexpected '${positionals[0] ?? ''}'`);
    const jobs = int(values.jobs, '--jobs');
    const cacheDir = str(values['cache-dir']);
    const r = await fetchPrereqs({
      file: str(values.file) ?? DEFAULT_PREREQS_FILE,
      vars: parseVars(values.var),
      reporter: ctx.reporter,
      signal: ctx.signal,
      offline: values.offline === true,
      ...(jobs !== undefined ? { jobs } : {}),
      ...(cacheDir !== undefined ? { cacheDir } : {}),
    });
    const data = {
      ok: r.ok,
      file: r.file,
      cacheDir: r.cacheDir,
      failed: r.failed,
      warnings: r.warnings,
      prereqs: r.prereqs.map((p) => ({
        ...p,
        error:
          p.error === undefined
            ? undefined
            : { code: p.error.code, message: p.error.message, where: p.error.where },
      })),
    };
    const lines =
      r.prereqs.length === 0
        ? [`${r.file}: no prereqs`]
        : [table(r.prereqs.map((p) => [p.name, p.state, shown(p.dest)]))];
    const failed = r.prereqs.find((p) => p.name === r.failed);
    const e = failed?.error;
    if (e !== undefined) {
      lines.push(
        `error[${e.code}]: ${e.where !== undefined && !e.message.includes(e.where) ? `${e.where}: ` : ''}${e.message}`,
        `log: ${failed?.logFile ?? ''}`,
      );
    }
    return { data, human: lines.join('\n'), exitCode: r.ok ? 0 : (e?.exitCode ?? 1) };
  }
  throw new SlipwayError(
    'USAGE',
    sub === undefined
      ? `usage:\n${PREREQ_USAGE}`
      : `unknown command 'prereq ${sub}'\nusage:\n${PREREQ_USAGE}`,
  );
}
