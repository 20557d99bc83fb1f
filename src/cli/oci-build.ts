/** `slipway oci build`: flags → OciBuildOptions → buildOciLayout (or planOciBuild with --dry-run). */
import { SlipwayError } from '../core/errors.js';
import { formatSize } from '../core/size.js';
import {
  ANNOTATION_REVISION,
  ANNOTATION_SOURCE,
  ANNOTATION_VERSION,
  formatPlatform,
  parsePlatform,
} from '../formats/oci.js';
import { buildOciLayout, planOciBuild, type OciBuildOptions, type OciBuildPlatform } from '../oci/build.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';

export const OCI_BUILD_USAGE = `slipway oci build --platform OS/ARCH[/VARIANT]=ROOTFS... -o LAYOUT [options]
  ROOTFS                  a directory, a tar or tar.gz, or a layer archive (its root/ becomes /)
  -o, --output LAYOUT     OCI image layout directory (created, or added to)
  --tag T                 ref.name of the image index in index.json (default latest)
  --annotation K=V        image index annotation (repeatable)
  --version V             org.opencontainers.image.version
  --revision R            org.opencontainers.image.revision
  --source URL            org.opencontainers.image.source
  --label K=V             config label of every image (repeatable)
  --entrypoint JSON|CMD   a JSON array, or one string for a one-element entrypoint
  --cmd JSON|ARG          the same for Cmd
  --env NAME=VALUE        config environment (repeatable)
  --workdir DIR           config WorkingDir
  --level N               gzip level 0..9 (default 6)
  --workers N             gzip threads (default: every core)
  --dry-run               check every input and print the plan; write nothing
created time and every file's mtime: SOURCE_DATE_EPOCH, else 1970-01-01`;

function list(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string');
}

/** `K=V` flags into a map; a missing '=', an empty key or a repeated key is a usage error. */
export function keyValues(values: readonly string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of values) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new SlipwayError('USAGE', `${flag} takes KEY=VALUE, got '${kv}'`, { where: flag });
    const k = kv.slice(0, eq);
    if (Object.hasOwn(out, k)) {
      throw new SlipwayError('USAGE', `${flag} '${k}' is given more than once`, { where: flag });
    }
    out[k] = kv.slice(eq + 1);
  }
  return out;
}

/** `--entrypoint '["/bin/sh","-c"]'` or `--entrypoint /app` (one element). */
export function argvFlag(v: string, flag: string): string[] {
  if (!v.trimStart().startsWith('[')) return [v];
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch (err) {
    throw new SlipwayError('USAGE', `${flag}: not a JSON array: ${(err as Error).message}`, {
      where: flag,
      cause: err,
    });
  }
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
    throw new SlipwayError('USAGE', `${flag}: expected a JSON array of strings`, { where: flag });
  }
  return parsed;
}

/** `linux/amd64=ROOTFS` (the rootfs may itself contain '='; the platform never does). */
export function platformFlag(v: string): OciBuildPlatform {
  const eq = v.indexOf('=');
  if (eq <= 0 || eq === v.length - 1) {
    throw new SlipwayError('USAGE', `--platform takes OS/ARCH[/VARIANT]=ROOTFS, got '${v}'`, {
      where: '--platform',
    });
  }
  return { platform: parsePlatform(v.slice(0, eq)), rootfs: v.slice(eq + 1) };
}

export async function ociBuildCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    {
      platform: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o' },
      tag: { type: 'string' },
      annotation: { type: 'string', multiple: true },
      version: { type: 'string' },
      revision: { type: 'string' },
      source: { type: 'string' },
      label: { type: 'string', multiple: true },
      entrypoint: { type: 'string' },
      cmd: { type: 'string' },
      env: { type: 'string', multiple: true },
      workdir: { type: 'string' },
      level: { type: 'string' },
      workers: { type: 'string' },
      'dry-run': { type: 'boolean' },
    },
    OCI_BUILD_USAGE,
  );
  if (positionals.length > 0) {
    throw new SlipwayError(
      'USAGE',
      `unexpected argument '${positionals[0] ?? ''}'\nusage: ${OCI_BUILD_USAGE}`,
    );
  }
  const output = str(values.output);
  const platforms = list(values.platform).map(platformFlag);
  if (output === undefined || platforms.length === 0) {
    throw new SlipwayError('USAGE', `--platform and -o are required\nusage: ${OCI_BUILD_USAGE}`);
  }
  const annotations = keyValues(list(values.annotation), '--annotation');
  for (const [flag, key] of [
    ['version', ANNOTATION_VERSION],
    ['revision', ANNOTATION_REVISION],
    ['source', ANNOTATION_SOURCE],
  ] as const) {
    const v = str(values[flag]);
    if (v === undefined) continue;
    if (Object.hasOwn(annotations, key)) {
      throw new SlipwayError('USAGE', `--${flag} and --annotation ${key}=… both set ${key}`, {
        where: `--${flag}`,
      });
    }
    annotations[key] = v;
  }
  const entrypoint = str(values.entrypoint);
  const cmd = str(values.cmd);
  const workingDir = str(values.workdir);
  const tag = str(values.tag);
  const level = int(values.level, '--level');
  const workers = int(values.workers, '--workers');
  const options: OciBuildOptions = {
    platforms,
    output,
    annotations,
    labels: keyValues(list(values.label), '--label'),
    env: list(values.env),
    signal: ctx.signal,
    reporter: ctx.reporter,
    ...(tag !== undefined ? { tag } : {}),
    ...(entrypoint !== undefined ? { entrypoint: argvFlag(entrypoint, '--entrypoint') } : {}),
    ...(cmd !== undefined ? { cmd: argvFlag(cmd, '--cmd') } : {}),
    ...(workingDir !== undefined ? { workingDir } : {}),
    ...(level !== undefined ? { level } : {}),
    ...(workers !== undefined ? { workers } : {}),
  };

  if (values['dry-run'] === true) {
    const plan = await planOciBuild(options);
    const lines = [
      `would write ${plan.output} (tag ${plan.tag}, created ${plan.created}):`,
      ...plan.platforms.map(
        (p) =>
          `  ${p.platform.padEnd(14)} ${p.kind.padEnd(13)} ${p.entries} entries, ${formatSize(p.contentBytes)}  ${p.rootfs}`,
      ),
      ...Object.entries(plan.annotations).map(([k, v]) => `  annotation ${k}=${v}`),
    ];
    return { data: { dryRun: true, ...plan }, human: lines.join('\n') };
  }

  const r = await buildOciLayout(options);
  const lines = r.images.map(
    (i) =>
      `${formatPlatform(i.platform).padEnd(14)} manifest ${i.manifest.digest}  layer ${formatSize(
        i.layers.reduce((n, l) => n + l.size, 0),
      )}`,
  );
  lines.push(`index ${r.index.digest} tagged '${r.tag}' in ${output}`);
  return { data: { output, ...r }, human: lines.join('\n') };
}
