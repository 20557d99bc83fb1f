/**
 * `slipway release tag`: the spec's git dance, with the real git CLI.
 *
 *   git checkout --detach                       (clean tree, on a branch)
 *   <version file: official_release = true>
 *   git commit -m 'release: VERSION "NAME"'     (the release commit, on no branch)
 *   git tag -a -m 'Release VERSION "NAME"' VERSION
 *   git checkout BRANCH
 *   git merge -s ours VERSION                   (history link; the branch's tree is unchanged)
 *   git checkout --detach VERSION               (ready for build and upload)
 *
 * The branch keeps `official_release = false`; only the tagged commit is
 * official. A failure part way puts the branch, HEAD and the tag back.
 */
import * as path from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import { SlipwayError } from '../core/errors.js';
import { markOfficial } from './config.js';
import { openWorkspace, requireCleanTree, type WorkspaceOptions } from './workspace.js';

export interface TagOptions extends WorkspaceOptions {
  dryRun?: boolean;
  /** Replace an existing tag VERSION. */
  forceTag?: boolean;
}

export interface TagPlan {
  version: string;
  branch: string;
  /** The branch head the release commit starts from. */
  base: string;
  /** Set when --force-tag replaces a tag: the commit it named. */
  replacesTag?: string;
  /** The git commands, in order (the version-file edit as a pseudo step). */
  steps: string[];
}

export interface TagResult {
  plan: TagPlan;
  dryRun: boolean;
  /** The tagged release commit, the merge commit on the branch (not on a dry run). */
  releaseCommit?: string;
  mergeCommit?: string;
}

export function formatTagPlan(plan: TagPlan): string {
  return [
    `tag ${plan.version} from ${plan.branch} (${plan.base.slice(0, 12)})${plan.replacesTag !== undefined ? `, replacing the tag on ${plan.replacesTag.slice(0, 12)}` : ''}`,
    ...plan.steps.map((s) => `  ${s}`),
  ].join('\n');
}

export async function tagRelease(options: TagOptions = {}): Promise<TagResult> {
  const ws = await openWorkspace(options);
  const { git, version: v, dir } = ws;
  await requireCleanTree(ws, 'tag');
  const branch = await git.branch();
  if (branch === undefined) {
    throw new SlipwayError(
      'RELEASE_GIT_FAILED',
      'release tag runs on the release branch, but HEAD is detached: git checkout <branch>',
      { where: dir },
    );
  }
  const base = await git.head();
  const oldTagRef = (
    await git.tryRun(['rev-parse', '--verify', '--quiet', `refs/tags/${v.version}`])
  ).stdout.trim();
  const oldTagCommit = await git.tagCommit(v.version);
  if (oldTagRef !== '' && options.forceTag !== true) {
    throw new SlipwayError(
      'RELEASE_TAG_EXISTS',
      `the tag ${v.version} exists already (on ${(oldTagCommit ?? oldTagRef).slice(0, 12)}): bump the version, or replace it with --force-tag`,
      { where: dir },
    );
  }
  const versionFile = ws.config.product.versionFile;
  const commitMessage = `release: ${v.version} "${v.name}"`;
  const tagMessage = `Release ${v.version} "${v.name}"`;
  const force = oldTagRef !== '' ? ['-f'] : [];
  const steps: string[][] = [
    ['checkout', '--quiet', '--detach'],
    ['add', '--', versionFile],
    ['commit', '--quiet', '--allow-empty', '-m', commitMessage],
    ['tag', ...force, '-a', '-m', tagMessage, v.version],
    ['checkout', '--quiet', branch],
    [
      'merge',
      '--quiet',
      '--no-edit',
      '-s',
      'ours',
      '-m',
      `Merge tag '${v.version}' into ${branch}`,
      v.version,
    ],
    ['checkout', '--quiet', '--detach', v.version],
  ];
  const plan: TagPlan = {
    version: v.version,
    branch,
    base,
    ...(oldTagCommit !== undefined ? { replacesTag: oldTagCommit } : {}),
    steps: steps.flatMap((s, i) => [
      ...(i === 1 ? [`set official_release = true in ${versionFile}`] : []),
      `git ${s.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}`,
    ]),
  };
  if (options.dryRun === true) return { plan, dryRun: true };

  let tagged = false;
  try {
    const official = markOfficial(ws.versionText, path.join(dir, versionFile));
    for (const [i, s] of steps.entries()) {
      if (i === 1) await writeFileAtomic(path.join(dir, versionFile), official);
      await git.run(s);
      if (s[0] === 'tag') tagged = true;
    }
  } catch (err) {
    // Back to where we started: the old tag (or none), the branch at its old head, checked out.
    if (tagged) {
      if (oldTagRef !== '') await git.tryRun(['update-ref', `refs/tags/${v.version}`, oldTagRef]);
      else await git.tryRun(['tag', '-d', v.version]);
    }
    await git.tryRun(['merge', '--abort']);
    await git.tryRun(['checkout', '--quiet', '-f', branch]);
    await git.tryRun(['reset', '--quiet', '--hard', base]);
    throw err;
  }
  const releaseCommit = await git.tagCommit(v.version);
  const mergeCommit = (await git.run(['rev-parse', '--verify', `refs/heads/${branch}`])).trim();
  return {
    plan,
    dryRun: false,
    ...(releaseCommit !== undefined ? { releaseCommit } : {}),
    mergeCommit,
  };
}
