/**
 * `slipway images …`: an image repository client in the manner of
 * updates-imgadm (specs/imgapi.md "The updates-imgadm CLI conventions"),
 * a thin adapter from flags to src/images/client.ts; `serve` is
 * images-serve.ts.
 */
import { buildOrigin, compatibility, publishOrigin, releaseImages } from '../images/origin.js';
import { clockFrom } from '../repo/index.js';
import { formatCompat } from '../images/origin-rules.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { formatSize } from '../core/size.js';
import type { ImageManifest } from '../formats/imgapi-types.js';
import { ImagesClient, type OnProgress } from '../images/client.js';
import { parseSshPrivateKey } from '../images/http-signature.js';
import { parse, str, type Options } from './args.js';
import type { CliContext, CommandResult } from './context.js';
import { imagesServeCommand, IMAGES_SERVE_USAGE } from './images-serve.js';

export const IMAGES_USAGE = `slipway images [-C CHANNEL] [--url URL] [--user USER] [--key FILE] <command>
  ping
  list [FIELD=VALUE]... [--latest] [-a] [-j] [-H] [-o COL,...] [-s FIELD,...] [-l LIMIT] [-m MARKER]
  get UUID
  get-file UUID [-o FILE]
  create -m MANIFEST                       (prints the new image's uuid)
  add-file UUID -f FILE [-c gzip|bzip2|xz|none] [-s SHA1]
  activate | disable | enable UUID
  update UUID FIELD=VALUE...
  delete UUID [--force-all-channels]
  channels [-j] [-H] [-o COL,...]
  channel-add CHANNEL UUID...
  import -m MANIFEST -f FILE               (admin import + add-file + activate; deletes the image on failure)
  build-origin DEF.toml [-o OUT_DIR]       (origin image: base image + a layer; name/version from git; no server)
  publish -m MANIFEST -f FILE [--to CHANNEL] (import into the branch's channel: release-YYYYMMDD → staging, main → dev, else experimental)
  release UUID... [--with-origins]         (add to release, staging, experimental, support once the origin chain is there)
  compat [-j]                              (which component builds run on which origin images, from the repository's data)
${IMAGES_SERVE_USAGE}
URL, USER and KEY default to $SLIPWAY_IMAGES_URL, $SLIPWAY_IMAGES_USER and $SLIPWAY_IMAGES_KEY; KEY is an
OpenSSH or PEM private key file whose public half the server holds for USER (HTTP Signature auth).
list columns: uuid name version flags os published (flags: I = has origin, P = public, X = not active);
--sort=-FIELD sorts descending; the default sort is published_at,name`;

const GLOBAL_OPTIONS = {
  channel: { type: 'string', short: 'C' },
  url: { type: 'string' },
  user: { type: 'string' },
  key: { type: 'string' },
} as const satisfies Options;

const GLOBAL_WITH_VALUE = new Set(['-C', '--channel', '--url', '--user', '--key']);

const COMMAND_OPTIONS: Record<string, Options> = {
  ping: {},
  list: {
    latest: { type: 'boolean' },
    all: { type: 'boolean', short: 'a' },
    json: { type: 'boolean', short: 'j' },
    'skip-header': { type: 'boolean', short: 'H' },
    output: { type: 'string', short: 'o' },
    sort: { type: 'string', short: 's' },
    limit: { type: 'string', short: 'l' },
    marker: { type: 'string', short: 'm' },
  },
  get: {},
  'get-file': { output: { type: 'string', short: 'o' } },
  'build-origin': { output: { type: 'string', short: 'o' } },
  publish: {
    manifest: { type: 'string', short: 'm' },
    file: { type: 'string', short: 'f' },
    to: { type: 'string' },
  },
  release: { 'with-origins': { type: 'boolean' } },
  compat: { json: { type: 'boolean', short: 'j' } },
  create: { manifest: { type: 'string', short: 'm' } },
  'add-file': {
    file: { type: 'string', short: 'f' },
    compression: { type: 'string', short: 'c' },
    sha1: { type: 'string', short: 's' },
  },
  activate: {},
  disable: {},
  enable: {},
  update: {},
  delete: { 'force-all-channels': { type: 'boolean' } },
  channels: {
    json: { type: 'boolean', short: 'j' },
    'skip-header': { type: 'boolean', short: 'H' },
    output: { type: 'string', short: 'o' },
  },
  'channel-add': {},
  import: { manifest: { type: 'string', short: 'm' }, file: { type: 'string', short: 'f' } },
};

const COMMAND_USAGE: Record<string, string> = Object.fromEntries(
  IMAGES_USAGE.split('\n')
    .filter((l) => /^ {2}[a-z]/.test(l))
    .map((l) => l.trim())
    .flatMap((l) => {
      const head = l.split(' ')[0] ?? '';
      return head === 'activate'
        ? ['activate', 'disable', 'enable'].map((c) => [c, `slipway images ${c} UUID`])
        : [[head, `slipway images ${l.replace(/\s{2,}\(.*\)$/, '')}`]];
    }),
);

/** The command word: the first argument that is neither a flag nor the value of a global flag. */
function splitCommand(argv: string[]): { command: string | undefined; rest: string[]; before: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (GLOBAL_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return { command: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)], before: argv.slice(0, i) };
  }
  return { command: undefined, rest: argv, before: argv };
}

function readKey(value: string): ReturnType<typeof parseSshPrivateKey> {
  if (value.includes('-----BEGIN')) return parseSshPrivateKey(value, '$SLIPWAY_IMAGES_KEY');
  let text: string;
  try {
    text = fs.readFileSync(value, 'utf8');
  } catch (err) {
    throw fromSystemError(err, 'cannot read the private key', value);
  }
  return parseSshPrivateKey(text, value);
}

function clientOf(values: Record<string, unknown>, ctx: CliContext): ImagesClient {
  const env = process.env;
  const url = str(values.url) ?? env.SLIPWAY_IMAGES_URL;
  if (url === undefined || url === '') {
    throw new SlipwayError('USAGE', 'which image repository? pass --url URL or set SLIPWAY_IMAGES_URL');
  }
  const user = str(values.user) ?? (env.SLIPWAY_IMAGES_USER || undefined);
  const keyValue = str(values.key) ?? (env.SLIPWAY_IMAGES_KEY || undefined);
  if (keyValue !== undefined && user === undefined) {
    throw new SlipwayError(
      'USAGE',
      'a signing key needs a user: pass --user USER or set SLIPWAY_IMAGES_USER',
    );
  }
  const privateKey = keyValue !== undefined ? readKey(keyValue) : undefined;
  return new ImagesClient({
    url,
    ...(user !== undefined ? { user } : {}),
    ...(privateKey !== undefined ? { privateKey } : {}),
    ...(str(values.channel) !== undefined ? { channel: str(values.channel) } : {}),
    signal: ctx.signal,
  });
}

function readJsonFile(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw fromSystemError(err, `cannot read the ${what}`, file);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `${file}: the ${what} is not JSON: ${(err as Error).message}`,
      {
        where: file,
        cause: err,
      },
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SlipwayError('INVALID_ARGUMENT', `${file}: the ${what} must be a JSON object`, { where: file });
  }
  return value as Record<string, unknown>;
}

/** Reports a transfer as a task with byte progress on ctx.reporter. */
function transferTask(
  ctx: CliContext,
  task: string,
): { onProgress: OnProgress; end: (ok: boolean, detail?: string) => void } {
  let started = false;
  return {
    onProgress: (done, total) => {
      if (!started) {
        started = true;
        ctx.reporter.emit({
          kind: 'task-start',
          task,
          unit: 'bytes',
          ...(total !== undefined ? { total } : {}),
        });
      }
      ctx.reporter.emit({ kind: 'task-progress', task, done, ...(total !== undefined ? { total } : {}) });
    },
    end: (ok, detail) => {
      if (!started) return;
      ctx.reporter.emit({ kind: 'task-end', task, ok, ...(detail !== undefined ? { detail } : {}) });
    },
  };
}

async function withTransfer<T>(
  ctx: CliContext,
  task: string,
  fn: (onProgress: OnProgress) => Promise<T>,
): Promise<T> {
  const t = transferTask(ctx, task);
  try {
    const r = await fn(t.onProgress);
    t.end(true);
    return r;
  } catch (err) {
    t.end(false);
    throw err;
  }
}

function oneUuid(positionals: string[], command: string): string {
  const uuid = positionals[0];
  if (uuid === undefined || positionals.length !== 1) {
    throw new SlipwayError(
      'USAGE',
      `${command} takes one image UUID\nusage: ${COMMAND_USAGE[command] ?? ''}`,
    );
  }
  return uuid;
}

function noArgs(positionals: string[], command: string): void {
  if (positionals.length > 0) {
    throw new SlipwayError(
      'USAGE',
      `unexpected arguments: ${positionals.join(' ')}\nusage: ${COMMAND_USAGE[command] ?? ''}`,
    );
  }
}

const describeImage = (m: ImageManifest): string => `${m.uuid} (${m.name}, ${m.version}, state=${m.state})`;

// ---- tables (updates-imgadm's tabula conventions)

const LIST_FIELDS = [
  'uuid',
  'owner',
  'name',
  'version',
  'state',
  'disabled',
  'public',
  'published',
  'published_at',
  'published_date',
  'type',
  'os',
  'nic_driver',
  'disk_driver',
  'cpu_type',
  'image_size',
  'generate_passwords',
  'description',
  'origin',
  'flags',
  'size',
  'homepage',
  'channels',
];

function cell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function columnsOf(spec: string | undefined, defaults: string[], valid: string[]): string[] {
  if (spec === undefined) return defaults;
  const cols = spec.split(',').map((c) => c.trim().toLowerCase());
  for (const c of cols) {
    if (!valid.includes(c)) {
      throw new SlipwayError('USAGE', `unknown column '${c}'; columns: ${valid.join(', ')}`);
    }
  }
  return cols;
}

export function renderTable(rows: Record<string, unknown>[], columns: string[], skipHeader = false): string {
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  if (!skipHeader) cells.unshift(columns.map((c) => c.toUpperCase()));
  const widths = columns.map((_, i) => Math.max(0, ...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Sorts by comma-separated fields, each optionally `-field` for descending; missing values first. */
export function sortRows<T extends Record<string, unknown>>(rows: T[], spec: string): T[] {
  const keys = spec
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '')
    .map((f) => (f.startsWith('-') ? { field: f.slice(1), dir: -1 } : { field: f, dir: 1 }));
  const cmp = (a: unknown, b: unknown): number => {
    if (a === b) return 0;
    if (a === undefined || a === null) return -1;
    if (b === undefined || b === null) return 1;
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    const sa = cell(a);
    const sb = cell(b);
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  };
  return [...rows].sort((x, y) => {
    for (const k of keys) {
      const c = cmp(x[k.field], y[k.field]) * k.dir;
      if (c !== 0) return c;
    }
    return 0;
  });
}

/** `--latest`: per owner+name, the image with the largest published_at. */
export function latestImages(images: readonly ImageManifest[]): ImageManifest[] {
  const best = new Map<string, ImageManifest>();
  for (const m of images) {
    const k = `${m.owner}:${m.name}`;
    const cur = best.get(k);
    if (cur === undefined || (m.published_at ?? '') > (cur.published_at ?? '')) best.set(k, m);
  }
  return [...best.values()];
}

/** The derived columns of `list`: flags (I origin, P public, X not active), published, published_date, size. */
export function listRow(m: ImageManifest): Record<string, unknown> {
  const flags = `${m.origin !== undefined ? 'I' : ''}${m.public ? 'P' : ''}${m.state !== 'active' ? 'X' : ''}`;
  return {
    ...m,
    flags: flags === '' ? undefined : flags,
    published: m.published_at?.replace(/\.\d+Z$/, 'Z'),
    published_date: m.published_at?.slice(0, 10),
    size: m.files[0]?.size,
    channels: m.channels?.join(','),
  };
}

/** `FIELD=VALUE` arguments of `update`: values are JSON when they parse, `''` is null, `a.b=…` sets a key of object a. */
export function fieldsFromArgs(args: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new SlipwayError('USAGE', `invalid FIELD=VALUE argument: '${arg}'`);
    const key = arg.slice(0, eq);
    const raw = arg.slice(eq + 1);
    let v: unknown = null;
    if (raw !== '') {
      try {
        v = JSON.parse(raw);
      } catch {
        v = raw;
      }
    }
    const dot = key.indexOf('.');
    if (dot > 0) {
      const top = key.slice(0, dot);
      const cur = out[top];
      const obj =
        typeof cur === 'object' && cur !== null && !Array.isArray(cur)
          ? (cur as Record<string, unknown>)
          : {};
      obj[key.slice(dot + 1)] = v;
      out[top] = obj;
    } else out[key] = v;
  }
  return out;
}

/**
 * Object values of `update` merged into the image's current objects: keys
 * set to null are removed, others set (updates-imgadm's mergeImageAttributes).
 */
export function mergeFields(
  current: Record<string, unknown>,
  fields: Record<string, unknown>,
): Record<string, unknown> {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  return Object.fromEntries(
    Object.entries(fields).map(([k, v]) => {
      const cur = current[k];
      if (!isObject(v) || !isObject(cur)) return [k, v];
      const merged = Object.entries({ ...cur, ...v }).filter(([, x]) => x !== null);
      return [k, Object.fromEntries(merged)];
    }),
  );
}

// ---- commands

async function list(
  client: ImagesClient,
  values: Record<string, unknown>,
  positionals: string[],
): Promise<CommandResult> {
  const filters: Record<string, string> = {};
  if (values.all === true) filters.state = 'all';
  if (str(values.marker) !== undefined) filters.marker = str(values.marker) ?? '';
  if (str(values.limit) !== undefined) filters.limit = str(values.limit) ?? '';
  for (const arg of positionals) {
    const eq = arg.indexOf('=');
    if (eq <= 0)
      throw new SlipwayError('USAGE', `invalid filter: '${arg}' (must be of the form FIELD=VALUE)`);
    filters[arg.slice(0, eq)] = arg.slice(eq + 1);
  }
  let images = await client.listImages(filters);
  if (values.latest === true) images = latestImages(images);
  const rows = sortRows(images.map(listRow), str(values.sort) ?? 'published_at,name');
  const byUuid = new Map(images.map((m) => [m.uuid, m]));
  const sorted = rows.map((r) => byUuid.get(String(r.uuid)) ?? (r as unknown as ImageManifest));
  if (values.json === true) return { data: sorted, human: JSON.stringify(sorted, null, 2) };
  const defaults =
    filters.state !== undefined
      ? ['uuid', 'name', 'version', 'flags', 'os', 'state', 'published']
      : ['uuid', 'name', 'version', 'flags', 'os', 'published'];
  const columns = columnsOf(str(values.output), defaults, LIST_FIELDS);
  return { data: sorted, human: renderTable(rows, columns, values['skip-header'] === true) };
}

async function getFile(
  client: ImagesClient,
  uuid: string,
  output: string | undefined,
  ctx: CliContext,
): Promise<CommandResult> {
  let out = output;
  if (out === undefined) {
    const m = await client.getImage(uuid);
    const ext = { gzip: '.gz', bzip2: '.bz2', xz: '.xz', none: '' }[m.files[0]?.compression ?? 'none'];
    out = `${uuid}-file${ext}`;
  }
  const target = out;
  const r = await withTransfer(ctx, `download ${uuid}`, (onProgress) =>
    client.getImageFile(uuid, target, { onProgress }),
  );
  return { data: r, human: `Saved "${r.path}" (${formatSize(r.size)}, sha1 ${r.sha1}).` };
}

function compressionOf(file: string, given: string | undefined): string {
  if (given !== undefined) return given;
  const ext = path.extname(file).toLowerCase();
  const inferred = (
    { '.gz': 'gzip', '.tgz': 'gzip', '.bz2': 'bzip2', '.xz': 'xz' } as Record<string, string>
  )[ext];
  if (inferred === undefined) {
    throw new SlipwayError(
      'USAGE',
      `cannot tell the compression of ${file} from its name: pass -c gzip|bzip2|xz|none`,
    );
  }
  return inferred;
}

async function channelAdd(client: ImagesClient, positionals: string[]): Promise<CommandResult> {
  const [channel, ...uuids] = positionals;
  if (channel === undefined || uuids.length === 0) {
    throw new SlipwayError(
      'USAGE',
      `channel-add takes a channel and image UUIDs\nusage: ${COMMAND_USAGE['channel-add'] ?? ''}`,
    );
  }
  const done: ImageManifest[] = [];
  const failed: { uuid: string; error: Error }[] = [];
  for (const uuid of uuids) {
    try {
      done.push(await client.channelAdd(uuid, channel));
    } catch (err) {
      if (!(err instanceof SlipwayError) || err.code === 'INTERRUPTED') throw err;
      failed.push({ uuid, error: err });
    }
  }
  const lines = done.map((m) => `Added image ${m.uuid} (${m.name}@${m.version}) to "${channel}" channel`);
  if (failed.length > 0) {
    const first = failed[0]?.error;
    throw new SlipwayError(
      first instanceof SlipwayError ? first.code : 'IMAGES_API_ERROR',
      [
        `could not add ${failed.length} of ${uuids.length} images to "${channel}" channel:`,
        ...failed.map((f) => `  ${f.uuid}: ${f.error.message}`),
        ...lines.map((l) => `  ${l}`),
      ].join('\n'),
      { cause: first },
    );
  }
  return { data: done, human: lines.join('\n') };
}

async function buildOriginCommand(
  positionals: string[],
  values: Record<string, unknown>,
): Promise<CommandResult> {
  const def = positionals[0];
  if (def === undefined || positionals.length !== 1)
    throw new SlipwayError('USAGE', 'build-origin takes DEF.toml');
  const r = await buildOrigin(def, { out: str(values.output) ?? 'out/origin', now: clockFrom(process.env) });
  return {
    data: r,
    human: `${r.manifest.name} ${r.manifest.version} (uuid ${r.manifest.uuid}, origin ${r.manifest.origin ?? '-'})\n  ${r.manifestFile}\n  ${r.file}`,
  };
}

export async function imagesCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const { command, rest, before } = splitCommand(argv);
  if (command === 'serve') {
    if (before.length > 0) {
      throw new SlipwayError('USAGE', `${before.join(' ')}: client flags do not apply to 'images serve'`);
    }
    return imagesServeCommand(rest, ctx);
  }
  if (command === undefined || command === 'help') {
    throw new SlipwayError('USAGE', `usage: ${IMAGES_USAGE}`);
  }
  const commandOptions = COMMAND_OPTIONS[command];
  if (commandOptions === undefined) {
    throw new SlipwayError('USAGE', `unknown images command '${command}'\nusage: ${IMAGES_USAGE}`);
  }
  const { values, positionals } = parse(
    rest,
    { ...GLOBAL_OPTIONS, ...commandOptions },
    COMMAND_USAGE[command] ?? IMAGES_USAGE,
  );
  if (command === 'build-origin') return buildOriginCommand(positionals, values);
  const client = clientOf(values, ctx);
  switch (command) {
    case 'publish': {
      noArgs(positionals, command);
      const manifestFile = str(values.manifest);
      const file = str(values.file);
      if (manifestFile === undefined || file === undefined) {
        throw new SlipwayError('USAGE', 'publish needs -m MANIFEST and -f FILE (from build-origin)');
      }
      const to = str(values.to);
      const r = await withTransfer(ctx, `upload ${path.basename(file)}`, () =>
        publishOrigin(
          manifestFile,
          file,
          (ch) => client.withChannel(ch),
          to !== undefined ? { channel: to } : {},
        ),
      );
      return { data: r, human: `Published ${r.uuid} to ${r.channel}` };
    }
    case 'release': {
      if (positionals.length === 0) throw new SlipwayError('USAGE', 'release needs at least one UUID');
      const plan = await releaseImages(positionals, (ch) => client.withChannel(ch), {
        withOrigins: values['with-origins'] === true,
      });
      return {
        data: plan,
        human: plan
          .map(
            (p) =>
              `${p.uuid} → ${p.channel}${p.added.length > 0 ? ` (with origins ${p.added.join(', ')})` : ''}`,
          )
          .join('\n'),
      };
    }
    case 'compat': {
      const rows = await compatibility(client.withChannel('*'));
      return { data: rows, human: values.json === true ? JSON.stringify(rows, null, 2) : formatCompat(rows) };
    }
    case 'ping': {
      noArgs(positionals, command);
      const pong = await client.ping();
      return { data: pong, human: JSON.stringify(pong, null, 2) };
    }
    case 'list':
      return list(client, values, positionals);
    case 'get': {
      const m = await client.getImage(oneUuid(positionals, command));
      return { data: m, human: JSON.stringify(m, null, 2) };
    }
    case 'get-file':
      return getFile(client, oneUuid(positionals, command), str(values.output), ctx);
    case 'create': {
      noArgs(positionals, command);
      const file = str(values.manifest);
      if (file === undefined)
        throw new SlipwayError('USAGE', `create needs -m MANIFEST\nusage: ${COMMAND_USAGE.create ?? ''}`);
      const m = await client.createImage(readJsonFile(file, 'manifest'));
      return { data: m, human: m.uuid };
    }
    case 'add-file': {
      const uuid = oneUuid(positionals, command);
      const file = str(values.file);
      if (file === undefined)
        throw new SlipwayError('USAGE', `add-file needs -f FILE\nusage: ${COMMAND_USAGE['add-file'] ?? ''}`);
      const compression = compressionOf(file, str(values.compression));
      const sha1 = str(values.sha1);
      const m = await withTransfer(ctx, `upload ${path.basename(file)}`, (onProgress) =>
        client.addImageFile(uuid, file, { compression, ...(sha1 !== undefined ? { sha1 } : {}), onProgress }),
      );
      return { data: m, human: `Added file "${file}" (compression "${compression}") to image ${uuid}` };
    }
    case 'activate': {
      const m = await client.activate(oneUuid(positionals, command));
      return { data: m, human: `Activated image ${describeImage(m)}` };
    }
    case 'disable': {
      const m = await client.disable(oneUuid(positionals, command));
      return { data: m, human: `Disabled image ${describeImage(m)}` };
    }
    case 'enable': {
      const m = await client.enable(oneUuid(positionals, command));
      return { data: m, human: `Enabled image ${describeImage(m)}` };
    }
    case 'update': {
      const [uuid, ...args] = positionals;
      if (uuid === undefined || args.length === 0) {
        throw new SlipwayError(
          'USAGE',
          `update takes an image UUID and FIELD=VALUE pairs\nusage: ${COMMAND_USAGE.update ?? ''}`,
        );
      }
      const fields = fieldsFromArgs(args);
      // Object values (tags.x=…, requirements.y=…) merge into the image's current ones, as updates-imgadm does.
      const hasObjects = Object.values(fields).some((v) => typeof v === 'object' && v !== null);
      const body = hasObjects
        ? mergeFields((await client.getImage(uuid)) as unknown as Record<string, unknown>, fields)
        : fields;
      const m = await client.update(uuid, body);
      return { data: m, human: `Updated image ${describeImage(m)}` };
    }
    case 'delete': {
      const uuid = oneUuid(positionals, command);
      const force = values['force-all-channels'] === true;
      await client.deleteImage(uuid, { forceAllChannels: force });
      const from = force
        ? ' from all channels'
        : client.channel !== undefined
          ? ` from "${client.channel}" channel`
          : '';
      return {
        data: { uuid, deleted: true, forceAllChannels: force },
        human: `Deleted image ${uuid}${from}`,
      };
    }
    case 'channels': {
      noArgs(positionals, command);
      const channels = await client.listChannels();
      if (values.json === true) return { data: channels, human: JSON.stringify(channels, null, 2) };
      const valid = ['name', 'default', 'description'];
      const columns = columnsOf(str(values.output), valid, valid);
      return {
        data: channels,
        human: renderTable(
          channels as unknown as Record<string, unknown>[],
          columns,
          values['skip-header'] === true,
        ),
      };
    }
    case 'channel-add':
      return channelAdd(client, positionals);
    case 'import': {
      noArgs(positionals, command);
      const manifestFile = str(values.manifest);
      const file = str(values.file);
      if (manifestFile === undefined || file === undefined) {
        throw new SlipwayError(
          'USAGE',
          `import needs -m MANIFEST and -f FILE\nusage: ${COMMAND_USAGE.import ?? ''}`,
        );
      }
      const manifest = readJsonFile(manifestFile, 'manifest');
      const m = await withTransfer(ctx, `upload ${path.basename(file)}`, (onProgress) =>
        client.importImage(manifest, file, { onProgress }),
      );
      return { data: m, human: `Imported image ${describeImage(m)}` };
    }
    default:
      throw new SlipwayError('USAGE', `unknown images command '${command}'\nusage: ${IMAGES_USAGE}`);
  }
}
