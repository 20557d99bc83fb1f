/**
 * The product repository a release step works in: release.toml and the
 * version file read and parsed, git at hand, and the checks the steps share
 * (clean tree, HEAD on the release tag).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { type Reporter, warn } from '../core/events.js';
import {
  parseReleaseConfig,
  parseVersionFile,
  RELEASE_CONFIG_FILE,
  type ReleaseConfig,
  type VersionInfo,
} from './config.js';
import { Git, type GitOptions } from './git.js';

export interface WorkspaceOptions extends GitOptions {
  /** The product repository (default: the current directory). */
  dir?: string;
  /** release.toml, relative to dir (default: release.toml). */
  configFile?: string;
  /** Gets the config's warnings (unknown keys) and progress. */
  reporter?: Reporter;
}

export interface Workspace {
  dir: string;
  config: ReleaseConfig;
  version: VersionInfo;
  /** The version file's text (the tag step rewrites it). */
  versionText: string;
  git: Git;
}

const MAX_CONFIG_BYTES = 1024 * 1024;

/** Reads a small text file of the repository; a missing one is RELEASE_CONFIG_INVALID naming `key`. */
export async function readRepoFile(
  dir: string,
  rel: string,
  key: string,
  configFile: string,
): Promise<string> {
  const file = path.join(dir, rel);
  let text: string;
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SlipwayError(
      'RELEASE_CONFIG_INVALID',
      `${key}: cannot read ${rel}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`,
      { where: configFile, cause: err },
    );
  }
  return text;
}

export async function openWorkspace(options: WorkspaceOptions = {}): Promise<Workspace> {
  const dir = path.resolve(options.dir ?? '.');
  const configRel = options.configFile ?? RELEASE_CONFIG_FILE;
  const configPath = path.join(dir, configRel);
  let text: string;
  try {
    text = await fsp.readFile(configPath, 'utf8');
  } catch (err) {
    throw new SlipwayError('RELEASE_CONFIG_INVALID', `cannot read ${configPath}: ${(err as Error).message}`, {
      where: configPath,
      cause: err,
    });
  }
  const config = parseReleaseConfig(text, configPath);
  for (const w of config.warnings)
    if (options.reporter !== undefined) warn(options.reporter, `${w.where}: ${w.message}`);
  const versionText = await readRepoFile(dir, config.product.versionFile, 'product.version_file', configPath);
  const version = parseVersionFile(versionText, path.join(dir, config.product.versionFile));
  return { dir, config, version, versionText, git: new Git(dir, options) };
}

/** RELEASE_DIRTY_TREE unless `git status` shows nothing (ignored files do not count). */
export async function requireCleanTree(ws: Workspace, step: string): Promise<void> {
  const status = await ws.git.status();
  if (status.length > 0) {
    const shown = status.slice(0, 10).map((l) => `  ${l}`);
    if (status.length > 10) shown.push(`  … and ${status.length - 10} more`);
    throw new SlipwayError(
      'RELEASE_DIRTY_TREE',
      `release ${step} needs a clean working tree; commit or stash these first:\n${shown.join('\n')}`,
      { where: ws.dir },
    );
  }
}

/** RELEASE_NOT_ON_TAG unless HEAD is the commit the tag VERSION names; returns HEAD. */
export async function requireOnTag(ws: Workspace, step: string): Promise<string> {
  const v = ws.version.version;
  const head = await ws.git.head();
  const tagged = await ws.git.tagCommit(v);
  if (tagged !== head) {
    const described = await ws.git.describe();
    throw new SlipwayError(
      'RELEASE_NOT_ON_TAG',
      `release ${step} runs on the release tag ${v}, but HEAD is ${described ?? head.slice(0, 12)}${tagged === undefined ? ` and there is no tag ${v} (run slipway release tag)` : ''}: git checkout ${v}`,
      { where: ws.dir },
    );
  }
  return head;
}
