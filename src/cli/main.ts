/**
 * The `slipway` command: global flags, dispatch, and the one place that
 * prints errors (`error[CODE]: …`, exit 2 for bad input, 1 for failures).
 */
import { readFileSync } from 'node:fs';
import { SlipwayError, exitCodeOf, renderError } from '../core/errors.js';
import { formatSize } from '../core/size.js';
import { removeTempFilesSync } from '../core/atomic-file.js';
import { runDemo } from '../releng/demo.js';
import { parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';
import { BOOT_USAGE, bootCommand } from './boot.js';
import { LAYER_USAGE, layerCommand } from './layer.js';
import { PACKAGE_USAGE, packageCommand } from './package.js';
import { PREREQ_USAGE, prereqCommand } from './prereq.js';
import { REPO_USAGE, repoCommand } from './repo.js';
import { RELENG_USAGE, relengCommand } from './releng.js';
import { IMAGES_USAGE, imagesCommand } from './images.js';
import { OCI_USAGE, ociCommand } from './oci.js';
import { RELEASE_USAGE, releaseCommand } from './release.js';
import { killProcessGroupsSync } from '../build/process.js';
import { parallelGzipIdle } from '../archive/pgzip.js';
import { CliReporter } from './render.js';

const USAGE = `slipway: release engineering for image-based systems

usage: slipway [--json] [--quiet] [--plain] [--debug] <group> <command> …

  layer    reproducible layer archives (oxide.json images): pack, inspect, verify, install, diff
  package  build Omicron package manifests on a parallel, cached job graph; stamp; list
  prereq   prerequisite downloads pinned by version and checksum files: fetch, check
  boot     phase-2 ramdisk boot images: mkimage, lookimage
  images   image repository (IMGAPI-compatible): serve, and a client like updates-imgadm; origin images
  oci      OCI images: build multi-arch layouts; push to, inspect and pull from registries
  releng   the whole release of DIR/releng.toml into a signed update repository, in one parallel run
  release  a product's release (release.toml): prepare notes, tag, build, upload to S3/registries/git
  repo     signed TUF update repositories (tufaceous layout): assemble, verify, inspect, extract, serve, sign
  demo     build an example (baseline/ + layers/*) into archives and install it into a scratch root

${LAYER_USAGE}

${PACKAGE_USAGE}

${PREREQ_USAGE}

${BOOT_USAGE}

${REPO_USAGE}

${RELENG_USAGE}

${IMAGES_USAGE}

${OCI_USAGE}

${RELEASE_USAGE}

slipway demo [EXAMPLE_DIR] [-o OUT_DIR]`;

const GLOBAL_FLAGS = new Set(['--json', '--quiet', '--plain', '--debug']);

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function demo(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const usage = 'slipway demo [EXAMPLE_DIR] [-o OUT_DIR]';
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' } }, usage);
  const dir = positionals[0] ?? 'examples/zone';
  const out = str(values.output) ?? 'out/example';
  const r = await runDemo(dir, out, ctx.reporter);
  const lines = r.archives.map(
    (a) => `${a.output}  ${a.type.padEnd(8)} ${formatSize(a.size).padStart(9)}  sha256 ${a.sha256}`,
  );
  lines.push(
    `installed into ${r.root}: ${r.install.files} files, ${r.install.directories} directories, ${r.install.links} links`,
  );
  return { data: r, human: lines.join('\n') };
}

export async function main(argv: string[]): Promise<number> {
  const flags = new Set(argv.filter((a) => GLOBAL_FLAGS.has(a)));
  const args = argv.filter((a) => !GLOBAL_FLAGS.has(a));
  const reporter = new CliReporter({
    quiet: flags.has('--quiet') || flags.has('--json'),
    plain: flags.has('--plain'),
  });
  const ctx: CliContext = {
    json: flags.has('--json'),
    debug: flags.has('--debug') || process.env.SLIPWAY_DEBUG === '1',
    quiet: flags.has('--quiet'),
    reporter,
    signal: interrupt.signal,
    onFirstInterrupt: (stop) => {
      gracefulStop = stop;
      return () => {
        if (gracefulStop === stop) gracefulStop = undefined;
      };
    },
    print: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  };
  try {
    const [group, ...rest] = args;
    let result: CommandResult;
    switch (group) {
      case 'layer':
        result = await layerCommand(rest, ctx);
        break;
      case 'package':
        result = await packageCommand(rest, ctx);
        break;
      case 'prereq':
        result = await prereqCommand(rest, ctx);
        break;
      case 'boot':
        result = await bootCommand(rest, ctx);
        break;
      case 'repo':
        result = await repoCommand(rest, ctx);
        break;
      case 'releng':
        result = await relengCommand(rest, ctx);
        break;
      case 'images':
        result = await imagesCommand(rest, ctx);
        break;
      case 'oci':
        result = await ociCommand(rest, ctx);
        break;
      case 'release':
        result = await releaseCommand(rest, ctx);
        break;
      case 'demo':
        result = await demo(rest, ctx);
        break;
      case '--version':
      case 'version':
        ctx.print(version());
        return 0;
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        ctx.print(USAGE);
        return group === undefined ? 2 : 0;
      default:
        throw new SlipwayError('USAGE', `unknown command '${group}'\n\n${USAGE}`);
    }
    reporter.close();
    ctx.print(ctx.json ? JSON.stringify(result.data, null, 2) : result.human);
    return result.exitCode ?? 0;
  } catch (err) {
    reporter.close();
    if (ctx.json) process.stdout.write(`${JSON.stringify({ error: errorJson(err) }, null, 2)}\n`);
    process.stderr.write(`${renderError(err, ctx.debug)}\n`);
    return exitCodeOf(err);
  }
}

function errorJson(err: unknown): { code: string; message: string; where?: string } {
  if (err instanceof SlipwayError)
    return { code: err.code, message: err.message, ...(err.where !== undefined ? { where: err.where } : {}) };
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

// Interrupts: abort running work, kill the process groups of our children,
// drop every temp file, then die of the same signal (the shell sees 130/143).
// Outputs are only ever renamed into place when complete, so nothing partial
// remains, and the next run picks up where this one stopped. Re-raising the
// signal, rather than process.exit(), skips tearing down busy gzip worker
// threads, which Node can abort on ("close before init").
const interrupt = new AbortController();
/** Set by a server that drains on the first signal (ctx.onFirstInterrupt). */
let gracefulStop: ((signal: string) => void) | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    const stop = gracefulStop;
    if (stop !== undefined) {
      gracefulStop = undefined;
      stop(sig);
      return;
    }
    process.stderr.write(`\nerror[INTERRUPTED]: stopped by ${sig}\n`);
    interrupt.abort();
    killProcessGroupsSync('SIGKILL');
    removeTempFilesSync();
    process.removeAllListeners(sig);
    process.kill(process.pid, sig);
  });
}

process.exitCode = await main(process.argv.slice(2));
// A failed command may have left blocks in the gzip workers; let them finish before Node tears the threads down.
await parallelGzipIdle();
