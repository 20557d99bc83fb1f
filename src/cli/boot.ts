/** `slipway boot …`: thin adapters from flags to src/boot. */
import { lookimage, mkimage } from '../boot/index.js';
import { SlipwayError } from '../core/errors.js';
import { formatLookimage, headerJson } from '../formats/bootimage.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const BOOT_USAGE = `slipway boot <command>
  mkimage -i RAW -o IMAGE [-O CSUM_FILE] [-s MEBIBYTES] [-N NAME] [-D DATASET] [-z] [--level N] [--workers N]
  lookimage [-s|--skip-checksum] IMAGE
every command takes --json`;

async function mkimageCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage =
    'slipway boot mkimage -i RAW -o IMAGE [-O CSUM_FILE] [-s MEBIBYTES] [-N NAME] [-D DATASET] [-z] [--level N] [--workers N]';
  const { values, positionals } = parse(
    argv,
    {
      input: { type: 'string', short: 'i' },
      output: { type: 'string', short: 'o' },
      checksum: { type: 'string', short: 'O' },
      size: { type: 'string', short: 's' },
      name: { type: 'string', short: 'N' },
      dataset: { type: 'string', short: 'D' },
      compress: { type: 'boolean', short: 'z' },
      level: { type: 'string' },
      workers: { type: 'string' },
    },
    usage,
  );
  const input = str(values.input);
  const output = str(values.output);
  if (input === undefined || output === undefined || positionals.length !== 0) {
    throw new SlipwayError('USAGE', `mkimage takes -i RAW and -o IMAGE\nusage: ${usage}`);
  }
  const compress = values.compress === true;
  const level = int(values.level, '--level');
  if (level !== undefined && !compress) throw new SlipwayError('USAGE', '--level only applies with -z');
  const targetMiB = int(values.size, '-s');
  const workers = int(values.workers, '--workers');
  const checksumOutput = str(values.checksum);
  const name = str(values.name);
  const dataset = str(values.dataset);
  const r = await mkimage({
    input,
    output,
    compress,
    signal: ctx.signal,
    ...(checksumOutput !== undefined ? { checksumOutput } : {}),
    ...(targetMiB !== undefined ? { targetMiB } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(dataset !== undefined ? { dataset } : {}),
    ...(level !== undefined ? { level } : {}),
    ...(workers !== undefined ? { workers } : {}),
  });
  return {
    data: { output: r.output, checksumOutput: r.checksumOutput ?? null, header: headerJson(r.header) },
    human: [`${r.output}:`, ...formatLookimage(r.header)].join('\n'),
  };
}

async function lookimageCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = 'slipway boot lookimage [-s|--skip-checksum] IMAGE';
  const { values, positionals } = parse(argv, { 'skip-checksum': { type: 'boolean', short: 's' } }, usage);
  const file = positionals[0];
  if (file === undefined || positionals.length !== 1) throw new SlipwayError('USAGE', `usage: ${usage}`);
  const r = await lookimage(file, { skipChecksum: values['skip-checksum'] === true, signal: ctx.signal });
  return {
    data: { file: r.file, verified: r.verified, header: headerJson(r.header) },
    human: formatLookimage(r.header).join('\n'),
  };
}

export async function bootCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'mkimage':
      return mkimageCommand(rest, ctx);
    case 'lookimage':
      return lookimageCommand(rest, ctx);
    default:
      throw new SlipwayError(
        'USAGE',
        `${cmd === undefined ? 'missing' : `unknown`} boot command${cmd === undefined ? '' : ` '${cmd}'`}\n\n${BOOT_USAGE}`,
      );
  }
}
