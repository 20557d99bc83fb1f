/** `slipway layer …`: thin adapters from flags to the layer library. */
import { SlipwayError } from '../core/errors.js';
import { formatSize } from '../core/size.js';
import {
  diffArchives,
  inspectArchive,
  installLayers,
  packDirectory,
  packFromTar,
  verifyArchive,
  type PackOptions,
} from '../layer/index.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const LAYER_USAGE = `slipway layer <command>
  pack DIR -o OUT.tar.gz [--type layer|baseline] [--pkg NAME] [--version V] [--level N] [--follow-links] [--workers N]
  pack --from-tar ROOTFS.tar[.gz] -o OUT.tar.gz [same options]
  inspect ARCHIVE [--list]
  verify ARCHIVE...
  install --root DIR [--baseline BASE.tar.gz] LAYER...
  diff A B
every command takes --json`;

async function pack(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage =
    'slipway layer pack DIR|--from-tar TARBALL -o OUT.tar.gz [--type layer|baseline] [--pkg NAME] [--version V] [--level N]';
  const { values, positionals } = parse(
    argv,
    {
      output: { type: 'string', short: 'o' },
      type: { type: 'string' },
      pkg: { type: 'string' },
      version: { type: 'string' },
      level: { type: 'string' },
      workers: { type: 'string' },
      'from-tar': { type: 'boolean' },
      'follow-links': { type: 'boolean' },
    },
    usage,
  );
  const output = str(values.output);
  const input = positionals[0];
  if (output === undefined || input === undefined || positionals.length !== 1) {
    throw new SlipwayError('USAGE', `pack takes one input and -o OUT\nusage: ${usage}`);
  }
  const type = str(values.type) ?? 'layer';
  if (type !== 'layer' && type !== 'baseline') {
    throw new SlipwayError('USAGE', `--type must be 'layer' or 'baseline', got '${type}'`);
  }
  const level = int(values.level, '--level');
  const workers = int(values.workers, '--workers');
  const options: PackOptions = {
    type,
    reporter: ctx.reporter,
    followLinks: values['follow-links'] === true,
    ...(str(values.pkg) !== undefined ? { pkg: str(values.pkg) } : {}),
    ...(str(values.version) !== undefined ? { version: str(values.version) } : {}),
    ...(level !== undefined ? { level } : {}),
    ...(workers !== undefined ? { workers } : {}),
  };
  const r =
    values['from-tar'] === true
      ? await packFromTar(input, output, options)
      : await packDirectory(input, output, options);
  return {
    data: r,
    human: `${r.output}: ${r.type} ${r.pkg} ${r.version}, ${r.entries} entries, ${formatSize(r.tarSize)} → ${formatSize(r.size)}\nsha256 ${r.sha256}`,
  };
}

async function inspect(argv: string[]): Promise<CommandResult> {
  const usage = 'slipway layer inspect ARCHIVE [--list]';
  const { values, positionals } = parse(argv, { list: { type: 'boolean' } }, usage);
  const file = positionals[0];
  if (file === undefined || positionals.length !== 1) throw new SlipwayError('USAGE', `usage: ${usage}`);
  const r = await inspectArchive(file, { list: values.list === true });
  const lines = [
    `file:      ${r.file}`,
    `type:      ${r.type}`,
    ...(r.pkg !== undefined ? [`pkg:       ${r.pkg}`] : []),
    ...(r.version !== undefined ? [`version:   ${r.version}`] : []),
    `entries:   ${r.entries} (${r.counts.files} files, ${r.counts.directories} directories, ${r.counts.symlinks} symlinks, ${r.counts.hardlinks} hard links${r.counts.other > 0 ? `, ${r.counts.other} other` : ''})`,
    `content:   ${formatSize(r.contentBytes)}`,
    `size:      ${formatSize(r.size)} (${formatSize(r.uncompressedSize)} uncompressed${r.gzip ? '' : ', not compressed'})`,
    `sha256:    ${r.sha256}`,
  ];
  if (r.list !== undefined) {
    lines.push('');
    for (const e of r.list) {
      lines.push(
        `${e.type.padEnd(9)} ${e.mode} ${`${e.uid}:${e.gid}`.padEnd(9)} ${String(e.size).padStart(10)}  ${e.path}${e.link !== undefined ? ` -> ${e.link}` : ''}${e.sha256 !== undefined ? `  ${e.sha256}` : ''}`,
      );
    }
  }
  return { data: r, human: lines.join('\n') };
}

async function verify(argv: string[]): Promise<CommandResult> {
  const usage = 'slipway layer verify ARCHIVE...';
  const { positionals } = parse(argv, {}, usage);
  if (positionals.length === 0) throw new SlipwayError('USAGE', `usage: ${usage}`);
  const reports = [];
  for (const f of positionals) reports.push(await verifyArchive(f));
  const lines: string[] = [];
  for (const r of reports) {
    for (const w of r.warnings) lines.push(`warning[${w.code}]: ${w.where ?? r.file}: ${w.message}`);
    for (const p of r.problems)
      lines.push(
        `error[${p.code}]: ${p.where !== undefined && !p.message.includes(p.where) ? `${p.where}: ` : ''}${p.message}`,
      );
    if (r.ok)
      lines.push(
        `ok: ${r.file} (${r.oxide?.t ?? '?'}${r.oxide?.pkg !== undefined ? ` ${r.oxide.pkg}` : ''}, ${r.entries ?? 0} entries)`,
      );
  }
  const ok = reports.every((r) => r.ok);
  return { data: { ok, archives: reports }, human: lines.join('\n'), exitCode: ok ? 0 : 2 };
}

async function install(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = 'slipway layer install --root DIR [--baseline BASE.tar.gz] LAYER...';
  const { values, positionals } = parse(
    argv,
    { root: { type: 'string' }, baseline: { type: 'string' } },
    usage,
  );
  const root = str(values.root);
  if (root === undefined) throw new SlipwayError('USAGE', `--root is required\nusage: ${usage}`);
  const baseline = str(values.baseline);
  const r = await installLayers(root, positionals, {
    ...(baseline !== undefined ? { baseline } : {}),
    reporter: ctx.reporter,
  });
  return {
    data: r,
    human: `installed ${r.archives.length} archive(s) into ${r.root}: ${r.files} files (${formatSize(r.bytes)}), ${r.directories} directories, ${r.links} links`,
  };
}

async function diff(argv: string[]): Promise<CommandResult> {
  const usage = 'slipway layer diff A B';
  const { positionals } = parse(argv, {}, usage);
  const [a, b] = positionals;
  if (a === undefined || b === undefined || positionals.length !== 2)
    throw new SlipwayError('USAGE', `usage: ${usage}`);
  const d = await diffArchives(a, b);
  const lines = [
    ...d.added.map((e) => `+ ${e.path}`),
    ...d.removed.map((e) => `- ${e.path}`),
    ...d.changed.map((e) => `~ ${e.path} (${(e.changes ?? []).join(', ')})`),
    `${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed, ${d.unchanged} unchanged`,
  ];
  return { data: d, human: lines.join('\n') };
}

export async function layerCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'pack':
      return pack(rest, ctx);
    case 'inspect':
      return inspect(rest);
    case 'verify':
      return verify(rest);
    case 'install':
      return install(rest, ctx);
    case 'diff':
      return diff(rest);
    default:
      throw new SlipwayError(
        'USAGE',
        `${cmd === undefined ? 'missing command' : `unknown command 'layer ${cmd}'`}\nusage: ${LAYER_USAGE}`,
      );
  }
}
