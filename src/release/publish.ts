/**
 * `slipway release upload`: on the release tag only; production (an
 * environment with `confirm`) asks for the typed phrase. The S3 part is
 * s3-upload.ts (release files, manifest, docs, stale docs, then latest.json);
 * the container images (every registry target, multi-arch index) and the git
 * push of the branch and tag run in its `beforeLatest` hook, so latest.json
 * is the very last write: nobody sees a release before all of it is out,
 * and a re-run after any failure finishes the job (everything is idempotent).
 *
 * The git remote is read before anything is published, because a push refused after the S3
 * upload would fail the same way on every re-run: the remote's branch must be an ancestor of
 * the local one, and the remote's tag VERSION, when there is one, must be the local tag. A
 * release re-tagged with `release tag --force-tag` after its tag was pushed has a different tag
 * there: upload refuses it (RELEASE_TAG_EXISTS naming the remote) unless given `--force-tag`
 * too, and then replaces only that tag, only if the remote still holds the object it saw
 * (`git push --force-with-lease`), so a tag someone else moved meanwhile is never clobbered.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { info, type Reporter, silentReporter } from '../core/events.js';
import { pushLayout, type PushResult } from '../oci/push.js';
import { environmentOf, isNewestRelease } from './config.js';
import { outputDir } from './build.js';
import { LATEST_FILE, formatPublishPlan, planPublish, type PublishPlan } from './plan.js';
import {
  applyReleaseUpload,
  formatUploadPlan,
  planReleaseUpload,
  type ReleaseUploadInput,
  type UploadPlan,
  type UploadResult,
} from './s3-upload.js';
import { openWorkspace, requireOnTag, type Workspace, type WorkspaceOptions } from './workspace.js';

export const CONFIRMATION_PHRASE = 'I want to release this to production';
export const DEFAULT_ENVIRONMENT = 'staging';

export interface UploadOptions extends WorkspaceOptions {
  /** The environment of release.toml (default: staging). */
  environment?: string;
  /** The build output (default: build.out of release.toml). */
  out?: string;
  dryRun?: boolean;
  /** Skip the typed confirmation of a `confirm` environment. */
  noconfirm?: boolean;
  /** Shows `prompt` and returns the line typed (the CLI reads stdin). */
  confirm?: (prompt: string) => Promise<string>;
  /** The branch to push (default: the one local branch that merged the tag). */
  branch?: string;
  /** Replace a different tag VERSION on the git remote (a release re-tagged with `tag --force-tag`). */
  forceTag?: boolean;
  concurrency?: number;
  signal?: AbortSignal;
  reporter?: Reporter;
}

export interface UploadStepResult {
  version: string;
  environment: string;
  dryRun: boolean;
  s3: UploadPlan;
  publish: PublishPlan;
  uploaded?: UploadResult;
  images?: { target: string; digest: string; tags: string[]; blobs: PushResult['blobs'] }[];
}

/** Both plans as `--dry-run` prints them. */
export function formatUploadStepPlan(r: Pick<UploadStepResult, 's3' | 'publish'>): string {
  return `${formatUploadPlan(r.s3).trimEnd()}\n${formatPublishPlan(r.publish)}`;
}

/** The branch to push: the one given, or the local branch whose history has the tag merged. */
async function releaseBranch(ws: Workspace, given: string | undefined): Promise<string> {
  const v = ws.version.version;
  if (given !== undefined) {
    if ((await ws.git.tryRun(['check-ref-format', `refs/heads/${given}`])).code !== 0) {
      throw new SlipwayError('INVALID_ARGUMENT', `--branch ${JSON.stringify(given)} is not a branch name`);
    }
    const ok = await ws.git.tryRun(['merge-base', '--is-ancestor', `refs/tags/${v}`, `refs/heads/${given}`]);
    if (ok.code !== 0) {
      throw new SlipwayError(
        'RELEASE_GIT_FAILED',
        `branch ${given} does not contain the tag ${v} (release tag merges it)`,
        {
          where: ws.dir,
        },
      );
    }
    return given;
  }
  const out = await ws.git.run([
    'for-each-ref',
    '--format=%(refname:short)',
    '--contains',
    `refs/tags/${v}`,
    'refs/heads/',
  ]);
  const branches = out.split('\n').filter((b) => b !== '');
  if (branches.length === 1 && branches[0] !== undefined) return branches[0];
  throw new SlipwayError(
    'RELEASE_GIT_FAILED',
    branches.length === 0
      ? `no local branch contains the tag ${v}: release tag merges it into the release branch; name it with --branch`
      : `several branches contain the tag ${v} (${branches.join(', ')}): name one with --branch`,
    { where: ws.dir },
  );
}

/**
 * Reads the remote's branch and tag (see the top of this file). Returns the remote's tag object
 * when `--force-tag` is to replace it; throws when a push would be refused.
 */
async function checkRemote(
  ws: Workspace,
  remote: string,
  branch: string,
  forceTag: boolean,
): Promise<string | undefined> {
  const v = ws.version.version;
  const tagRef = `refs/tags/${v}`;
  const branchRef = `refs/heads/${branch}`;
  const there = await ws.git.remoteRefs(remote, [tagRef, branchRef]);
  const localTag = (await ws.git.run(['rev-parse', '--verify', tagRef])).trim();
  const remoteTag = there.get(tagRef);
  let replaces: string | undefined;
  if (remoteTag !== undefined && remoteTag !== localTag) {
    if (!forceTag) {
      throw new SlipwayError(
        'RELEASE_TAG_EXISTS',
        `the git remote ${remote} has another tag ${v} (${remoteTag.slice(0, 12)}; here ${localTag.slice(0, 12)}), so its push would be refused: after \`release tag --force-tag\`, replace it with \`release upload --force-tag\``,
        { where: `${remote} ${tagRef}` },
      );
    }
    replaces = remoteTag;
  }
  const remoteBranch = there.get(branchRef);
  if (remoteBranch !== undefined) {
    // Not an ancestor, or not even known here: the remote moved on since the last fetch.
    const r = await ws.git.tryRun(['merge-base', '--is-ancestor', remoteBranch, branchRef]);
    if (r.code !== 0) {
      throw new SlipwayError(
        'RELEASE_GIT_FAILED',
        `the branch ${branch} of the git remote ${remote} (${remoteBranch.slice(0, 12)}) is not in the local ${branch}, so its push would be refused: git pull ${remote} ${branch} on ${branch}, then upload again`,
        { where: `${remote} ${branchRef}` },
      );
    }
  }
  return replaces;
}

/** latest.json of the build must be this commit's: a build from another commit is not this release. */
async function checkBuild(out: string, head: string): Promise<void> {
  const file = path.join(out, LATEST_FILE);
  let doc: unknown;
  try {
    doc = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (err) {
    throw new SlipwayError(
      'RELEASE_BUILD_INVALID',
      `no complete build at ${out} (${(err as Error).message}): run slipway release build`,
      {
        where: file,
        cause: err,
      },
    );
  }
  const commit = (doc as { commit?: unknown } | null)?.commit;
  if (commit !== head) {
    throw new SlipwayError(
      'RELEASE_BUILD_INVALID',
      `the build at ${out} is of commit ${String(commit).slice(0, 12)}, but HEAD is ${head.slice(0, 12)}: run slipway release build again`,
      { where: file },
    );
  }
}

export async function uploadRelease(options: UploadOptions = {}): Promise<UploadStepResult> {
  const reporter = options.reporter ?? silentReporter;
  const ws = await openWorkspace(options);
  const env = environmentOf(ws.config, options.environment ?? DEFAULT_ENVIRONMENT);
  const v = ws.version;
  const head = await requireOnTag(ws, 'upload');
  const out = outputDir(ws, options.out);
  await checkBuild(out, head);
  const branch = await releaseBranch(ws, options.branch);
  const replacesRemoteTag = await checkRemote(ws, env.gitRemote, branch, options.forceTag === true);
  const publish = planPublish({
    config: ws.config,
    env,
    version: v,
    out,
    newest: isNewestRelease(v.version, await ws.git.tags()),
    branch,
    ...(replacesRemoteTag !== undefined ? { replacesRemoteTag } : {}),
  });
  for (const r of publish.registries) {
    try {
      await fsp.access(path.join(r.layoutDir, 'index.json'));
    } catch (err) {
      throw new SlipwayError(
        'RELEASE_BUILD_INVALID',
        `the build has no OCI layout ${r.layout} for ${r.target} (${r.layoutDir})`,
        {
          where: r.layoutDir,
          cause: err,
        },
      );
    }
  }
  const input: ReleaseUploadInput = {
    s3: {
      region: env.s3.region,
      forcePathStyle: env.s3.forcePathStyle,
      ...(env.s3.endpoint !== undefined ? { endpoint: env.s3.endpoint } : {}),
    },
    releasesBucket: env.s3.releasesBucket,
    ...(env.s3.docsBucket !== undefined ? { docsBucket: env.s3.docsBucket } : {}),
    product: ws.config.product.name,
    version: v.version,
    major: v.major,
    official: v.official,
    buildDir: out,
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    onProgress: (e) => {
      if (e.kind === 'done' && e.action === 'uploaded') info(reporter, `uploaded s3://${e.bucket}/${e.key}`);
      else if (e.kind === 'deleted') info(reporter, `deleted s3://${e.bucket}/${e.key}`);
      else if (e.kind === 'phase') info(reporter, `${e.phase}: ${e.objects} object(s)`);
    },
  };
  const s3 = await planReleaseUpload(input);
  const base = { version: v.version, environment: env.name, s3, publish };
  if (options.dryRun === true) return { ...base, dryRun: true };

  if (env.confirm && options.noconfirm !== true) {
    const prompt = `${formatUploadStepPlan(base)}\nThis publishes ${v.version} to ${env.name}. Type "${CONFIRMATION_PHRASE}" to go on: `;
    const answer = options.confirm === undefined ? undefined : await options.confirm(prompt);
    if (answer?.trim() !== CONFIRMATION_PHRASE) {
      throw new SlipwayError(
        'RELEASE_NOT_CONFIRMED',
        `not confirmed: an upload to ${env.name} needs the phrase "${CONFIRMATION_PHRASE}" typed (or --noconfirm)`,
        { where: `environments.${env.name}` },
      );
    }
  }

  const images: NonNullable<UploadStepResult['images']> = [];
  const beforeLatest = async (): Promise<void> => {
    for (const r of publish.registries) {
      info(reporter, `push oci/${r.layout} → ${r.target}:{${r.tags.join(',')}}`);
      const pushed = await pushLayout({
        layout: r.layoutDir,
        target: r.target,
        tags: r.tags,
        insecure: r.insecure,
        ...(r.caFile !== undefined ? { caFile: r.caFile } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
      images.push({ target: r.target, digest: pushed.digest, tags: pushed.tags, blobs: pushed.blobs });
    }
    // Explicit refspecs: the branch and the tag by their full names, whatever HEAD is now.
    const g = publish.git;
    info(reporter, `git push ${g.remote} ${g.branch ?? ''} ${g.tag}`);
    await ws.git.run([
      'push',
      '--quiet',
      ...(g.replacesRemoteTag !== undefined
        ? [`--force-with-lease=refs/tags/${g.tag}:${g.replacesRemoteTag}`]
        : []),
      g.remote,
      ...(g.branch !== undefined ? [`refs/heads/${g.branch}:refs/heads/${g.branch}`] : []),
      `refs/tags/${g.tag}:refs/tags/${g.tag}`,
    ]);
  };
  const uploaded = await applyReleaseUpload({ ...input, beforeLatest }, s3);
  return { ...base, dryRun: false, uploaded, images };
}
