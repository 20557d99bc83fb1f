/**
 * `slipway images build-origin | publish | release | compat`: origin images
 * the way triton-origin-image makes them — a base image plus a layer holding
 * the package set — published to the channel their branch selects and
 * released to the release channels once their whole origin chain is there.
 * The rules are pure in origin-rules.ts; this file does the I/O (git, the
 * layer archive, the repository through ImagesClient).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import { MultiDigest } from '../core/digest.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import type { ImageManifest } from '../formats/imgapi-types.js';
import { packDirectory } from '../layer/index.js';
import type { ImagesClient } from './client.js';
import {
  ORIGIN_TAG,
  RELEASE_CHANNELS,
  channelForBranch,
  compatTable,
  isOriginImage,
  originChain,
  originImageName,
  originVersionStamp,
  parseOriginDefinition,
  type CompatRow,
  type GitStamp,
} from './origin-rules.js';

function git(dir: string, args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
}

/** Branch, commit and dirtiness of the checkout holding `dir`. */
export function gitStamp(dir: string): GitStamp {
  try {
    let branch = git(dir, ['rev-parse', '--abbrev-ref', 'HEAD']);
    // CI checkouts are often detached: the branch then comes from the environment.
    if (branch === 'HEAD') branch = process.env.BRANCH ?? process.env.GITHUB_REF_NAME ?? 'detached';
    return {
      branch,
      commit: git(dir, ['rev-parse', 'HEAD']),
      dirty: git(dir, ['status', '--porcelain']) !== '',
    };
  } catch (err) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `origin images are stamped from git, but ${dir} is not in a git checkout`,
      {
        where: dir,
        cause: err,
      },
    );
  }
}

async function digestsOf(file: string): Promise<{ sha1: string; size: number }> {
  const h = new MultiDigest(['sha1']);
  try {
    for await (const c of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  } catch (err) {
    throw fromSystemError(err, 'cannot read', file);
  }
  return { sha1: h.digest().sha1 ?? '', size: h.length };
}

export interface BuiltOrigin {
  manifestFile: string;
  file: string;
  manifest: ImageManifest;
}

/**
 * Writes `<out>/<name>-<version>.imgmanifest` and `<out>/<name>-<version>.tar.gz`
 * (a layer archive of the package set); the manifest is the one `publish`
 * imports (state active, published_at kept, files[0] with the sha1).
 */
export async function buildOrigin(
  defFile: string,
  options: { out: string; now: Date; git?: GitStamp },
): Promise<BuiltOrigin> {
  let text: string;
  try {
    text = await fsp.readFile(defFile, 'utf8');
  } catch (err) {
    throw fromSystemError(err, 'cannot read', defFile);
  }
  const def = parseOriginDefinition(text, defFile);
  const dir = path.dirname(path.resolve(defFile));
  const stamp = options.git ?? gitStamp(dir);
  const name = originImageName(def);
  const version = originVersionStamp(stamp, options.now);
  const base = `${name}-${version}`;
  await fsp.mkdir(options.out, { recursive: true });
  const file = path.join(options.out, `${base}.tar.gz`);
  const layer = path.resolve(dir, def.layer);
  let st: fs.Stats;
  try {
    st = await fsp.stat(layer);
  } catch (err) {
    throw fromSystemError(err, 'cannot read the package set', layer);
  }
  if (st.isDirectory()) await packDirectory(layer, file, { type: 'layer', pkg: name, version });
  else await fsp.copyFile(layer, file);
  const { sha1, size } = await digestsOf(file);
  const manifest: ImageManifest = {
    v: 2,
    uuid: randomUUID(),
    owner: def.owner,
    name,
    version,
    state: 'active',
    disabled: false,
    public: false,
    published_at: options.now.toISOString(),
    type: def.type,
    os: def.os,
    files: [{ sha1, size, compression: 'gzip' }],
    ...(def.description !== undefined ? { description: def.description } : {}),
    ...(def.homepage !== undefined ? { homepage: def.homepage } : {}),
    ...(def.requirements !== undefined ? { requirements: def.requirements } : {}),
    origin: def.base,
    tags: {
      ...def.tags,
      [ORIGIN_TAG]: true,
      branch: stamp.branch,
      timestamp: version.split('-').at(-2) ?? '',
      git: stamp.commit,
    },
  };
  const manifestFile = path.join(options.out, `${base}.imgmanifest`);
  await writeFileAtomic(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
  return { manifestFile, file, manifest };
}

function readManifest(file: string): ImageManifest {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ImageManifest;
  } catch (err) {
    throw new SlipwayError('INVALID_ARGUMENT', `cannot read manifest ${file}: ${(err as Error).message}`, {
      where: file,
    });
  }
}

/** Imports a built origin image into the channel its branch selects. */
export async function publishOrigin(
  manifestFile: string,
  file: string,
  client: (channel: string) => ImagesClient,
  options: { channel?: string } = {},
): Promise<{ uuid: string; channel: string }> {
  const m = readManifest(manifestFile);
  const branch = typeof m.tags?.branch === 'string' ? m.tags.branch : 'unknown';
  const channel = options.channel ?? channelForBranch(branch);
  await client(channel).importImage(m, file);
  return { uuid: m.uuid, channel };
}

/**
 * Adds each image to release, staging, experimental and support after
 * checking that its whole origin chain is in each (with `withOrigins`, the
 * missing ancestors are added first, root first).
 */
export async function releaseImages(
  uuids: readonly string[],
  client: (channel: string) => ImagesClient,
  options: { withOrigins?: boolean } = {},
): Promise<{ uuid: string; channel: string; added: string[] }[]> {
  const all = client('*');
  const cache = new Map<string, ImageManifest | undefined>();
  const fetchImage = async (uuid: string): Promise<ImageManifest | undefined> => {
    if (!cache.has(uuid)) cache.set(uuid, await all.getImage(uuid).catch(() => undefined));
    return cache.get(uuid);
  };
  const plan: { uuid: string; channel: string; added: string[] }[] = [];
  for (const uuid of uuids) {
    // Resolve the chain (the lookup is async, the rule is not).
    let cur: string | undefined = uuid;
    while (cur !== undefined && !cache.has(cur)) cur = (await fetchImage(cur))?.origin;
    const { chain, missing, cycle } = originChain(uuid, (u) => cache.get(u));
    if (missing !== undefined || cycle === true) {
      throw new SlipwayError(
        'INVALID_ARGUMENT',
        cycle === true
          ? `the origin chain of ${uuid} has a cycle`
          : `image ${missing ?? ''} in the origin chain of ${uuid} is not in the repository`,
      );
    }
    for (const channel of RELEASE_CHANNELS) {
      const ancestors = chain.slice(1).reverse();
      const absent = ancestors.filter((a) => !(a.channels ?? []).includes(channel));
      if (absent.length > 0 && options.withOrigins !== true) {
        throw new SlipwayError(
          'INVALID_ARGUMENT',
          `cannot release ${uuid} to ${channel}: its origin chain is not there (${absent.map((a) => `${a.name} ${a.version} ${a.uuid}`).join(', ')}); release those first or pass --with-origins`,
        );
      }
      plan.push({ uuid, channel, added: absent.map((a) => a.uuid) });
    }
  }
  // A write names a real channel to look the image up in (never `*`): one it is already in.
  const add = async (uuid: string, target: string): Promise<void> => {
    const m = cache.get(uuid) ?? (await fetchImage(uuid));
    const from = m?.channels?.[0];
    if (m === undefined || from === undefined) {
      throw new SlipwayError(
        'INVALID_ARGUMENT',
        `image ${uuid} is in no channel: cannot add it to ${target}`,
      );
    }
    const updated = await client(from).channelAdd(uuid, target);
    cache.set(uuid, updated);
  };
  for (const step of plan) {
    for (const a of step.added) await add(a, step.channel);
    await add(step.uuid, step.channel);
  }
  return plan;
}

/** The compatibility table of a repository: generated from its manifests, never maintained by hand. */
export async function compatibility(client: ImagesClient): Promise<CompatRow[]> {
  const images = await client.listImages({ state: 'all' }, { all: true });
  return compatTable(images, isOriginImage);
}
