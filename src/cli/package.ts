/** `slipway package …`: thin adapters from flags to the build library. */
import { SlipwayError } from '../core/errors.js';
import { buildPackages, listPackages, stampPackage, summarize } from '../build/index.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const PACKAGE_USAGE = `slipway package [-m FILE] [-t PRESET|key=value]... [-o OUT] [--jobs N] [--dry-run] [--force] [--offline] [PKG...]
  options: --rust-dir DIR  --blob-url URL  --buildomat-url URL  --prebuilt-url URL  --cache-dir DIR
slipway package stamp PKG VERSION [-m FILE] [-o OUT]
slipway package list [-m FILE] [-t PRESET|key=value]...`;

function words(v: unknown): string[] {
  return Array.isArray(v)
    ? v.filter((x): x is string => typeof x === 'string')
    : typeof v === 'string'
      ? [v]
      : [];
}

export async function packageCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  if (sub === 'stamp') {
    const { values, positionals } = parse(
      rest,
      { manifest: { type: 'string', short: 'm' }, output: { type: 'string', short: 'o' } },
      PACKAGE_USAGE,
    );
    const [name, version] = positionals;
    if (name === undefined || version === undefined || positionals.length !== 2) {
      throw new SlipwayError('USAGE', `usage: slipway package stamp PKG VERSION [-m FILE] [-o OUT]`);
    }
    const r = await stampPackage({
      manifest: str(values.manifest) ?? 'package-manifest.toml',
      name,
      version,
      reporter: ctx.reporter,
      ...(str(values.output) !== undefined ? { out: str(values.output) } : {}),
    });
    return { data: r, human: `${r.output}: ${r.name} ${r.version}\nsha256 ${r.sha256}` };
  }
  if (sub === 'list') {
    const { values } = parse(
      rest,
      { manifest: { type: 'string', short: 'm' }, target: { type: 'string', short: 't', multiple: true } },
      PACKAGE_USAGE,
    );
    const r = listPackages({
      manifest: str(values.manifest) ?? 'package-manifest.toml',
      target: words(values.target),
    });
    const lines = [
      `target: ${
        Object.entries(r.target)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ') || '(none)'
      }`,
      ...r.packages.map(
        (p) =>
          `${p.name.padEnd(28)} ${p.source.padEnd(10)} ${p.output}${p.intermediate ? ' (intermediate)' : ''}`,
      ),
    ];
    return { data: r, human: lines.join('\n') };
  }
  const { values, positionals } = parse(
    argv,
    {
      manifest: { type: 'string', short: 'm' },
      target: { type: 'string', short: 't', multiple: true },
      output: { type: 'string', short: 'o' },
      jobs: { type: 'string', short: 'j' },
      'dry-run': { type: 'boolean' },
      force: { type: 'boolean' },
      offline: { type: 'boolean' },
      'rust-dir': { type: 'string' },
      'blob-url': { type: 'string' },
      'buildomat-url': { type: 'string' },
      'prebuilt-url': { type: 'string' },
      'cache-dir': { type: 'string' },
    },
    PACKAGE_USAGE,
  );
  const jobs = int(values.jobs, '--jobs');
  const opt = (k: string): string | undefined => str(values[k]);
  const r = await buildPackages({
    manifest: opt('manifest') ?? 'package-manifest.toml',
    target: words(values.target),
    packages: positionals,
    reporter: ctx.reporter,
    signal: ctx.signal,
    dryRun: values['dry-run'] === true,
    force: values.force === true,
    offline: values.offline === true,
    ...(opt('output') !== undefined ? { out: opt('output') } : {}),
    ...(jobs !== undefined ? { jobs } : {}),
    ...(opt('rust-dir') !== undefined ? { rustDir: opt('rust-dir') } : {}),
    ...(opt('blob-url') !== undefined ? { blobUrl: opt('blob-url') } : {}),
    ...(opt('buildomat-url') !== undefined ? { buildomatUrl: opt('buildomat-url') } : {}),
    ...(opt('prebuilt-url') !== undefined ? { prebuiltUrl: opt('prebuilt-url') } : {}),
    ...(opt('cache-dir') !== undefined ? { cacheDir: opt('cache-dir') } : {}),
  });
  if (r.report === undefined) {
    const lines = r.plan.order.map((name) => {
      const j = r.plan.jobs.find((x) => x.name === name);
      return `${name}${j !== undefined && j.deps.length > 0 ? ` (after ${j.deps.join(', ')})` : ''}: ${j?.describe ?? ''}`;
    });
    return {
      data: { target: r.target, plan: r.plan },
      human: ['dry run: nothing was built', ...lines].join('\n'),
    };
  }
  const report = r.report;
  const data = {
    ok: report.ok,
    target: r.target,
    failed: report.failed,
    jobs: report.jobs.map((j) => ({
      ...j,
      error:
        j.error === undefined
          ? undefined
          : { code: j.error.code, message: j.error.message, where: j.error.where },
    })),
    outputs: r.outputs,
  };
  if (!report.ok) {
    const failed = report.jobs.find((j) => j.name === report.failed);
    const e = failed?.error;
    const lines = [summarize(report)];
    if (e !== undefined)
      lines.push(
        `error[${e.code}]: ${e.where !== undefined && !e.message.includes(e.where) ? `${e.where}: ` : ''}${e.message}`,
      );
    return { data, human: lines.join('\n'), exitCode: e?.exitCode ?? 1 };
  }
  return { data, human: summarize(report) };
}
