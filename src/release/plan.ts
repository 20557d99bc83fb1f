/**
 * The pure halves of `release build` and `release upload`: what a build
 * produces (jobs with expanded commands, file names), the manifests it
 * writes, and the registry and git pushes of an upload. `--dry-run` prints
 * these; the steps apply them.
 *
 * The build output (the upload reads it):
 *
 *   <out>/files/<product>-<VERSION>.tar.gz   source (git archive --prefix=<product>-<VERSION>/)
 *   <out>/files/<artifact>                   each job's artifacts
 *   <out>/files/<file>.sha256                "<hex>  <file>\n" beside every file above
 *   <out>/files/manifest.json                {"product","version","major","official","commit","name","files":[{"name","size","sha256"}]}
 *   <out>/docs/                              the docs (optional)
 *   <out>/oci/<layout>/                      OCI layouts (optional)
 *   <out>/latest.json                        {"product","version","major","official","commit","manifest","manifestSha256"}
 */
import { SlipwayError } from '../core/errors.js';
import {
  expandTags,
  expandTemplate,
  type CommandVars,
  type EnvironmentConfig,
  type ReleaseConfig,
  type VersionInfo,
} from './config.js';

export const MANIFEST_FILE = 'manifest.json';
export const LATEST_FILE = 'latest.json';
export const CHECKSUM_SUFFIX = '.sha256';

export interface PlannedJob {
  name: string;
  deps: string[];
  /** argv, placeholders expanded (`slipway` → this Slipway). */
  command: string[];
  /** Final file names under files/. */
  artifacts: string[];
  docs?: string;
  /** layout name → directory under the job's work directory. */
  oci: Record<string, string>;
  /** `{work}`: where the job runs its outputs (absolute). */
  work: string;
}

export interface BuildPlan {
  product: string;
  version: string;
  major: string;
  name: string;
  official: boolean;
  commit: string;
  out: string;
  sourceTarball: string;
  jobs: PlannedJob[];
  /** Everything under files/ except the .sha256 files and the manifest, sorted. */
  files: string[];
  /** The repository's docs directory (build.docs), when set. */
  staticDocs?: string;
  layouts: string[];
}

/** `<out>/.build/`: scratch (work dirs, logs) removed after a successful build. */
export const SCRATCH_DIR = '.build';

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The build's plan. `slipway` is how this Slipway runs (argv prefix);
 * `out`, `repo` absolute.
 */
export function planBuild(args: {
  config: ReleaseConfig;
  version: VersionInfo;
  commit: string;
  repo: string;
  out: string;
  slipway: readonly string[];
}): BuildPlan {
  const { config, version: v, commit, repo, out } = args;
  const product = config.product.name;
  const tvars = { version: v.version, major: v.major, product };
  const sourceTarball = `${product}-${v.version}.tar.gz`;
  const seen = new Map<string, string>([[sourceTarball, 'the source tarball']]);
  const jobs = config.build.jobs.map((j): PlannedJob => {
    const work = `${out}/${SCRATCH_DIR}/work/${j.name}`;
    const cvars: CommandVars = { ...tvars, name: v.name, commit, work, repo };
    const argv = j.command.map((a) => expandTemplate(a, cvars));
    const command = argv[0] === 'slipway' ? [...args.slipway, ...argv.slice(1)] : argv;
    const artifacts = j.artifacts.map((a) => expandTemplate(a, tvars));
    for (const a of artifacts) {
      const other = seen.get(a);
      if (other !== undefined) {
        throw new SlipwayError(
          'RELEASE_CONFIG_INVALID',
          `build.jobs: job ${j.name} produces ${a}, as does ${other}`,
          {
            where: `${config.file}:${j.line}`,
          },
        );
      }
      seen.set(a, `job ${j.name}`);
    }
    return {
      name: j.name,
      deps: j.deps,
      command,
      artifacts,
      ...(j.docs !== undefined ? { docs: j.docs } : {}),
      oci: j.oci,
      work,
    };
  });
  return {
    product,
    version: v.version,
    major: v.major,
    name: v.name,
    official: v.official,
    commit,
    out,
    sourceTarball,
    jobs,
    files: [...seen.keys()].sort(byName),
    ...(config.build.docs !== undefined ? { staticDocs: config.build.docs } : {}),
    layouts: jobs.flatMap((j) => Object.keys(j.oci)).sort(byName),
  };
}

function quote(a: string): string {
  return a !== '' && /^[\w@%+=:,./{}-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function formatBuildPlan(plan: BuildPlan): string {
  const lines = [
    `build ${plan.product} ${plan.version}${plan.official ? ' (official)' : ''} from ${plan.commit.slice(0, 12)} into ${plan.out}`,
    `  clean ${plan.out}`,
    `  source   git archive --prefix=${plan.product}-${plan.version}/ ${plan.commit.slice(0, 12)} | gzip → files/${plan.sourceTarball}`,
  ];
  for (const j of plan.jobs) {
    lines.push(
      `  job ${j.name}${j.deps.length > 0 ? ` [after ${j.deps.join(', ')}]` : ''}: ${j.command.map(quote).join(' ')}`,
    );
    for (const a of j.artifacts) lines.push(`    → files/${a}`);
    if (j.docs !== undefined) lines.push(`    → docs/ (from ${j.docs})`);
    for (const [l, d] of Object.entries(j.oci)) lines.push(`    → oci/${l}/ (from ${d})`);
  }
  if (plan.staticDocs !== undefined) lines.push(`  docs     copy ${plan.staticDocs}/ → docs/`);
  lines.push(`  files/   ${plan.files.map((f) => `${f} ${f}${CHECKSUM_SUFFIX}`).join(' ')} ${MANIFEST_FILE}`);
  lines.push(`  ${LATEST_FILE}`);
  return lines.join('\n');
}

export interface ManifestFile {
  name: string;
  size: number;
  sha256: string;
}

/** `<hex>  <file>\n`: what `sha256sum -c` reads. */
export function checksumLine(sha256: string, file: string): string {
  return `${sha256}  ${file}\n`;
}

/** The fields manifest.json and latest.json both open with, in this order (it is part of their bytes). */
function releaseFields(
  plan: BuildPlan,
): Pick<BuildPlan, 'product' | 'version' | 'major' | 'official' | 'commit'> {
  return {
    product: plan.product,
    version: plan.version,
    major: plan.major,
    official: plan.official,
    commit: plan.commit,
  };
}

/** files/manifest.json: no timestamps, files sorted, so the same inputs give the same bytes. */
export function renderManifest(plan: BuildPlan, files: readonly ManifestFile[]): string {
  const sorted = [...files]
    .sort((a, b) => byName(a.name, b.name))
    .map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 }));
  const doc = { ...releaseFields(plan), name: plan.name, files: sorted };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** latest.json at the build's root: the pointer uploaded last. */
export function renderLatest(plan: BuildPlan, manifestSha256: string): string {
  const doc = {
    ...releaseFields(plan),
    manifest: `${plan.product}/${plan.product}-${plan.version}/${MANIFEST_FILE}`,
    manifestSha256,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export interface RegistryPush {
  target: string;
  layout: string;
  /** `<out>/oci/<layout>` */
  layoutDir: string;
  tags: string[];
  insecure: boolean;
  caFile?: string;
}

export interface PublishPlan {
  env: string;
  registries: RegistryPush[];
  git: {
    remote: string;
    branch?: string;
    tag: string;
    /**
     * The tag object the remote holds for VERSION when it differs from the local one (a release
     * re-tagged with `tag --force-tag`): replaced only with `upload --force-tag`, and then only
     * if the remote still holds exactly this object (--force-with-lease).
     */
    replacesRemoteTag?: string;
  };
}

/**
 * The upload's pushes besides S3: each registry target with its tags
 * (`latest` only for the newest release), then the branch and the tag.
 */
export function planPublish(args: {
  config: ReleaseConfig;
  env: EnvironmentConfig;
  version: VersionInfo;
  out: string;
  newest: boolean;
  branch: string | undefined;
  /** See PublishPlan.git.replacesRemoteTag. */
  replacesRemoteTag?: string;
}): PublishPlan {
  const { config, env, version: v } = args;
  return {
    env: env.name,
    registries: env.registries.map((r) => ({
      target: r.target,
      layout: r.layout,
      layoutDir: `${args.out}/oci/${r.layout}`,
      tags: expandTags(r.tags, v, config.product.name, args.newest),
      insecure: r.insecure,
      ...(r.caFile !== undefined ? { caFile: r.caFile } : {}),
    })),
    git: {
      remote: env.gitRemote,
      ...(args.branch !== undefined ? { branch: args.branch } : {}),
      tag: v.version,
      ...(args.replacesRemoteTag !== undefined ? { replacesRemoteTag: args.replacesRemoteTag } : {}),
    },
  };
}

export function formatPublishPlan(plan: PublishPlan): string {
  const lines: string[] = [];
  if (plan.registries.length > 0) {
    lines.push('registry pushes (before latest.json):');
    for (const r of plan.registries)
      lines.push(`  oci/${r.layout} → ${r.target}:{${r.tags.join(',')}}${r.insecure ? ' (insecure)' : ''}`);
  }
  const g = plan.git;
  lines.push(
    `git push ${g.remote} ${g.branch !== undefined ? `${g.branch} ` : ''}${g.tag} (before latest.json)${g.replacesRemoteTag !== undefined ? `; replaces ${g.remote}'s tag ${g.tag} (${g.replacesRemoteTag.slice(0, 12)}), --force-tag` : ''}`,
  );
  return lines.join('\n');
}
