/**
 * `slipway oci …`: OCI images. `build` is oci-build.ts; `push`, `inspect` and
 * `pull` are thin adapters to src/oci/{push,inspect,pull}.ts. Progress per
 * blob goes to ctx.reporter as tasks with byte counts.
 */
import { SlipwayError } from '../core/errors.js';
import { formatSize, parseSize } from '../core/size.js';
import { formatPlatform } from '../formats/oci.js';
import { inspectImage, parseLayoutRef, type InspectResult } from '../oci/inspect.js';
import { pullImage } from '../oci/pull.js';
import { planLayoutPush, pushLayout, type PushEvent, type PushOptions } from '../oci/push.js';
import type { RegistryAccessOptions } from '../oci/registry/client.js';
import { parseCredsFlag } from '../oci/registry/credentials.js';
import { int, parse, str, type Options } from './args.js';
import type { CliContext, CommandResult } from './context.js';
import { OCI_BUILD_USAGE, ociBuildCommand } from './oci-build.js';

const ACCESS_USAGE = `registry access (push, inspect, pull):
  --creds USER:PASS       credentials (else $SLIPWAY_REGISTRY_USER + $SLIPWAY_REGISTRY_PASSWORD, else --authfile,
                          $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json,
                          ~/.docker/config.json; else anonymous)
  --authfile FILE         a containers auth.json or docker config.json
  --ca-file FILE          extra trusted CA certificates (PEM)
  --insecure              plain http to the registry (and no TLS verification of https on its host;
                          a token server elsewhere must be https with a valid certificate to get credentials)`;

const PUSH_USAGE = `slipway oci push LAYOUT[:TAG] REGISTRY/REPO[:TAG] [--tag T]... [--from REPO] [--concurrency N]
                 [--chunk-size SIZE] [--dry-run] [access flags]
  blobs first (skipping those the registry has, mounting from --from), then manifests by digest,
  then the root under every tag (default: the target's tag, else the layout's TAG, else latest);
  re-running an interrupted push sends only what is missing`;
const INSPECT_USAGE = `slipway oci inspect REF [--raw] [--platform OS/ARCH[/VARIANT]] [access flags]
  REF: REGISTRY/REPO[:TAG|@DIGEST] or oci:LAYOUT[:TAG]; --raw prints the exact bytes`;
const PULL_USAGE = `slipway oci pull REGISTRY/REPO[:TAG|@DIGEST] -o LAYOUT [--platform OS/ARCH[/VARIANT]] [--tag T]
                 [--concurrency N] [access flags]
  every digest verified; blobs already in LAYOUT are kept; the root is tagged in index.json`;

export const OCI_USAGE = `slipway oci <command>: OCI images (multi-arch), layouts and registries
${OCI_BUILD_USAGE}

${PUSH_USAGE}

${INSPECT_USAGE}

${PULL_USAGE}

${ACCESS_USAGE}`;

const ACCESS_OPTIONS = {
  creds: { type: 'string' },
  authfile: { type: 'string' },
  'ca-file': { type: 'string' },
  insecure: { type: 'boolean' },
} as const satisfies Options;

function access(values: Record<string, unknown>, ctx: CliContext): RegistryAccessOptions {
  const creds = str(values.creds);
  if (creds !== undefined && str(values.authfile) !== undefined) {
    throw new SlipwayError('USAGE', '--creds and --authfile: give one');
  }
  const authFile = str(values.authfile);
  const caFile = str(values['ca-file']);
  return {
    ...(creds !== undefined ? { creds: parseCredsFlag(creds) } : {}),
    ...(authFile !== undefined ? { authFile } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    ...(values.insecure === true ? { insecure: true } : {}),
    signal: ctx.signal,
  };
}

function list(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string');
}

function short(digest: string): string {
  return digest.replace(/^(sha\d+:)(.{12}).*$/, '$1$2');
}

function positionalsExactly(positionals: string[], n: number, usage: string): void {
  if (positionals.length !== n) {
    throw new SlipwayError(
      'USAGE',
      `expected ${n} argument${n === 1 ? '' : 's'}, got ${positionals.length}\nusage: ${usage}`,
    );
  }
}

/** Blob events as reporter tasks: one per blob, with byte progress. */
function blobTasks(ctx: CliContext, verb: string): (e: PushEvent) => void {
  return (e) => {
    if (e.kind === 'manifest') {
      ctx.reporter.emit({
        kind: 'log',
        level: 'info',
        message: `manifest ${short(e.digest)} → ${e.reference}`,
      });
      return;
    }
    const task = `${verb} ${short(e.digest)} (${formatSize(e.size)})`;
    switch (e.kind) {
      case 'blob-start':
        ctx.reporter.emit({ kind: 'task-start', task, unit: 'bytes', total: e.size });
        break;
      case 'blob-progress':
        ctx.reporter.emit({ kind: 'task-progress', task, done: e.sent, total: e.size });
        break;
      case 'blob-done':
        ctx.reporter.emit({ kind: 'task-end', task, ok: true, detail: e.outcome });
        break;
    }
  };
}

async function push(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    {
      ...ACCESS_OPTIONS,
      tag: { type: 'string', multiple: true },
      from: { type: 'string' },
      concurrency: { type: 'string' },
      'chunk-size': { type: 'string' },
      'dry-run': { type: 'boolean' },
    },
    PUSH_USAGE,
  );
  positionalsExactly(positionals, 2, PUSH_USAGE);
  const source = positionals[0] as string;
  const { dir, ref } = parseLayoutRef(source.startsWith('oci:') ? source : `oci:${source}`);
  const concurrency = int(values.concurrency, '--concurrency');
  const chunk = str(values['chunk-size']);
  const from = str(values.from);
  const o: PushOptions = {
    layout: dir,
    ...(ref !== undefined ? { ref } : {}),
    target: positionals[1] as string,
    tags: list(values.tag),
    ...(from !== undefined ? { from } : {}),
    ...access(values, ctx),
    ...(concurrency !== undefined ? { concurrency: Math.max(1, concurrency) } : {}),
    ...(chunk !== undefined ? { chunkSize: parseSize(chunk, '--chunk-size') } : {}),
    onProgress: blobTasks(ctx, 'blob'),
  };
  if (values['dry-run'] === true) {
    const plan = await planLayoutPush(o);
    const target = `${plan.registry}/${plan.repository}`;
    const lines = [
      `would push ${plan.root.digest} (${plan.root.mediaType}) to ${target}`,
      ...plan.blobs.map((b) => `  blob      ${b.digest} ${formatSize(b.size)}`),
      ...plan.manifests.map((m) => `  manifest  ${m.descriptor.digest}`),
      ...plan.tags.map((t) => `  tag       ${target}:${t}`),
    ];
    return {
      data: {
        dryRun: true,
        registry: plan.registry,
        repository: plan.repository,
        digest: plan.root.digest,
        tags: plan.tags,
        blobs: plan.blobs,
        manifests: plan.manifests.map((m) => m.descriptor),
      },
      human: lines.join('\n'),
    };
  }
  const r = await pushLayout(o);
  const target = positionals[1] as string;
  const base = target.replace(/:[^/:]*$/, '');
  const b = r.blobs;
  return {
    data: r,
    human: [
      `pushed ${r.digest}`,
      ...r.tags.map((t) => `  ${base}:${t}`),
      `blobs: ${b.uploaded} uploaded (${formatSize(b.bytesUploaded)}), ${b.mounted} mounted, ${b.skipped} already there; ${r.manifests} manifests; ${r.requests} requests`,
    ].join('\n'),
  };
}

function inspectHuman(r: InspectResult): string {
  const lines = [
    r.reference,
    `  media type  ${r.mediaType}`,
    `  digest      ${r.digest}`,
    `  size        ${r.size}`,
  ];
  const s = r.summary;
  if (s.kind === 'index') {
    lines.push('  manifests:');
    for (const d of s.manifests ?? []) {
      const p = d.platform !== undefined ? formatPlatform(d.platform) : '-';
      lines.push(`    ${p.padEnd(16)} ${d.digest} ${formatSize(d.size)}`);
    }
  } else {
    if (r.platform !== undefined) lines.push(`  platform    ${formatPlatform(r.platform)}`);
    if (s.config !== undefined) lines.push(`  config      ${s.config.digest} ${formatSize(s.config.size)}`);
    lines.push('  layers:');
    for (const l of s.layers ?? [])
      lines.push(`    ${l.digest} ${formatSize(l.size).padStart(10)}  ${l.mediaType}`);
    if (r.totalSize !== undefined) lines.push(`  total       ${formatSize(r.totalSize)}`);
  }
  for (const [k, v] of Object.entries(s.annotations ?? {})) lines.push(`  ${k}: ${v}`);
  return lines.join('\n');
}

async function inspect(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    { ...ACCESS_OPTIONS, raw: { type: 'boolean' }, platform: { type: 'string' } },
    INSPECT_USAGE,
  );
  positionalsExactly(positionals, 1, INSPECT_USAGE);
  const platform = str(values.platform);
  const raw = values.raw === true;
  const r = await inspectImage({
    ref: positionals[0] as string,
    raw,
    ...(platform !== undefined ? { platform } : {}),
    ...access(values, ctx),
  });
  if (raw) {
    // The exact bytes the digest is over (the CLI ends the output with a newline).
    const text = Buffer.from(r.bytes).toString('utf8');
    return { data: { digest: r.digest, mediaType: r.mediaType, raw: text }, human: text };
  }
  const data: Omit<InspectResult, 'bytes'> & { bytes?: unknown } = { ...r };
  delete data.bytes;
  return { data, human: inspectHuman(r) };
}

async function pull(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    {
      ...ACCESS_OPTIONS,
      output: { type: 'string', short: 'o' },
      platform: { type: 'string' },
      tag: { type: 'string' },
      concurrency: { type: 'string' },
    },
    PULL_USAGE,
  );
  positionalsExactly(positionals, 1, PULL_USAGE);
  const output = str(values.output);
  if (output === undefined) throw new SlipwayError('USAGE', `-o LAYOUT is required\nusage: ${PULL_USAGE}`);
  const platform = str(values.platform);
  const tag = str(values.tag);
  const concurrency = int(values.concurrency, '--concurrency');
  const r = await pullImage({
    ref: positionals[0] as string,
    output,
    ...(platform !== undefined ? { platform } : {}),
    ...(tag !== undefined ? { tag } : {}),
    ...(concurrency !== undefined ? { concurrency: Math.max(1, concurrency) } : {}),
    ...access(values, ctx),
    onProgress: (e) => {
      const task = `blob ${short(e.digest)} (${formatSize(e.size)})`;
      if (e.kind === 'blob-start')
        ctx.reporter.emit({ kind: 'task-start', task, unit: 'bytes', total: e.size });
      else if (e.kind === 'blob-progress') {
        ctx.reporter.emit({ kind: 'task-progress', task, done: e.received, total: e.size });
      } else ctx.reporter.emit({ kind: 'task-end', task, ok: true, detail: e.outcome });
    },
  });
  const b = r.blobs;
  return {
    data: r,
    human: [
      `pulled ${r.reference} (${r.digest}) into ${output}${r.tag !== undefined ? ` as ${r.tag}` : ''}`,
      `blobs: ${b.fetched} fetched (${formatSize(b.bytesFetched)}), ${b.present} already there; ${r.manifests} manifests; ${r.requests} requests`,
    ].join('\n'),
  };
}

export async function ociCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'build':
      return ociBuildCommand(rest, ctx);
    case 'push':
      return push(rest, ctx);
    case 'inspect':
      return inspect(rest, ctx);
    case 'pull':
      return pull(rest, ctx);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      return { data: { usage: OCI_USAGE }, human: OCI_USAGE, exitCode: command === undefined ? 2 : 0 };
    default:
      throw new SlipwayError('USAGE', `unknown command 'oci ${command}'\n\n${OCI_USAGE}`);
  }
}
