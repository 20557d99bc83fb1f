/** `slipway boot …`: thin adapters from flags to src/boot. */
import { lookimage, mkimage } from '../boot/index.js';
import { fetchNetboot } from '../boot/netboot-client.js';
import { openRawLink } from '../boot/netboot-link.js';
import { serveNetboot } from '../boot/netboot-server.js';
import { SlipwayError } from '../core/errors.js';
import { formatLookimage, headerJson } from '../formats/bootimage.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const BOOT_USAGE = `slipway boot <command>
  mkimage -i RAW -o IMAGE [-O CSUM_FILE] [-s MEBIBYTES] [-N NAME] [-D DATASET] [-z] [--level N] [--workers N]
  lookimage [-s|--skip-checksum] IMAGE
  serve IMAGE --interface IF [--client MAC|any]... [--once] [--timeout SECS]
  fetch --interface IF --checksum HEX -o OUT [--timeout SECS]
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

async function serveCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = 'slipway boot serve IMAGE --interface IF [--client MAC|any]... [--once] [--timeout SECS]';
  const { values, positionals } = parse(
    argv,
    {
      interface: { type: 'string', short: 'i' },
      client: { type: 'string', multiple: true },
      once: { type: 'boolean' },
      timeout: { type: 'string' },
    },
    usage,
  );
  const image = positionals[0];
  const iface = str(values.interface);
  if (image === undefined || positionals.length !== 1 || iface === undefined)
    throw new SlipwayError('USAGE', `usage: ${usage}`);
  const clients = Array.isArray(values.client)
    ? values.client.filter((c): c is string => typeof c === 'string')
    : [];
  const timeout = int(values.timeout, '--timeout');
  const link = openRawLink(iface);
  ctx.reporter.emit({ kind: 'log', level: 'info', message: `serving ${image} on ${iface} (${link.mac})` });
  try {
    const r = await serveNetboot({
      imagePath: image,
      link,
      clients: clients.length === 0 || clients.includes('any') ? 'any' : clients,
      signal: ctx.signal,
      ...(values.once === true ? { exitAfterFinished: 1 } : {}),
      ...(timeout !== undefined ? { noClientTimeoutMs: timeout * 1000 } : {}),
    });
    const sessions = [...r.sessions.entries()].map(([mac, st]) => ({ mac, ...st }));
    return {
      data: { finished: r.finished, sessions },
      human: `served ${image}: ${r.finished} client(s) finished (${sessions.map((s) => s.mac).join(', ')})`,
    };
  } finally {
    link.close();
  }
}

async function fetchCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = 'slipway boot fetch --interface IF --checksum HEX -o OUT [--timeout SECS]';
  const { values } = parse(
    argv,
    {
      interface: { type: 'string', short: 'i' },
      checksum: { type: 'string' },
      output: { type: 'string', short: 'o' },
      timeout: { type: 'string' },
    },
    usage,
  );
  const iface = str(values.interface);
  const checksum = str(values.checksum);
  const output = str(values.output);
  if (iface === undefined || checksum === undefined || output === undefined)
    throw new SlipwayError('USAGE', `usage: ${usage}`);
  if (!/^[0-9a-fA-F]{64}$/.test(checksum))
    throw new SlipwayError('USAGE', `--checksum takes 64 hex digits (a sha256), got '${checksum}'`);
  const timeout = int(values.timeout, '--timeout');
  const link = openRawLink(iface);
  try {
    const r = await fetchNetboot({
      link,
      expectedSha256: Buffer.from(checksum, 'hex'),
      outputPath: output,
      signal: ctx.signal,
      ...(timeout !== undefined ? { timeoutMs: timeout * 1000, offerTimeoutMs: timeout * 1000 } : {}),
    });
    return {
      data: {
        output,
        bytes: r.image.length,
        server: r.server,
        dataset: r.dataset,
        retransmits: r.retransmits,
        ms: r.ms,
      },
      human: `${output}: ${r.image.length} bytes from ${r.server} in ${r.ms} ms (${r.retransmits} re-requests), sha256 ${checksum.toLowerCase()}`,
    };
  } finally {
    link.close();
  }
}

export async function bootCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'mkimage':
      return mkimageCommand(rest, ctx);
    case 'lookimage':
      return lookimageCommand(rest, ctx);
    case 'serve':
      return serveCommand(rest, ctx);
    case 'fetch':
      return fetchCommand(rest, ctx);
    default:
      throw new SlipwayError(
        'USAGE',
        `${cmd === undefined ? 'missing' : `unknown`} boot command${cmd === undefined ? '' : ` '${cmd}'`}\n\n${BOOT_USAGE}`,
      );
  }
}
