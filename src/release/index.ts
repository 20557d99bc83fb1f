/** `slipway release`: prepare, tag, build, upload (specs/release-process.md). */
export {
  parseReleaseConfig,
  parseVersionFile,
  markOfficial,
  environmentOf,
  expandTags,
  expandTemplate,
  isNewestRelease,
  compareVersions,
  RELEASE_CONFIG_FILE,
  type ReleaseConfig,
  type VersionInfo,
  type EnvironmentConfig,
  type RegistryTarget,
  type BuildJobConfig,
  type NotesConfig,
} from './config.js';
export {
  CATEGORIES,
  parseAuthors,
  parseFragment,
  renderEntries,
  renderReleaseNotes,
  insertSummaryEntry,
  pluralList,
  isoDate,
  type Author,
  type Fragment,
  type NoteEntry,
} from './notes.js';
export { Git, type GitOptions, type GitResult } from './git.js';
export {
  openWorkspace,
  requireCleanTree,
  requireOnTag,
  type Workspace,
  type WorkspaceOptions,
} from './workspace.js';
export {
  prepareRelease,
  formatPreparePlan,
  type PrepareOptions,
  type PreparePlan,
  type PrepareResult,
} from './prepare.js';
export { tagRelease, formatTagPlan, type TagOptions, type TagPlan, type TagResult } from './tag.js';
export { buildRelease, outputDir, type BuildOptions, type BuildResult } from './build.js';
export {
  planBuild,
  formatBuildPlan,
  planPublish,
  formatPublishPlan,
  renderManifest,
  renderLatest,
  checksumLine,
  type BuildPlan,
  type PublishPlan,
} from './plan.js';
export {
  uploadRelease,
  formatUploadStepPlan,
  CONFIRMATION_PHRASE,
  DEFAULT_ENVIRONMENT,
  type UploadOptions,
  type UploadStepResult,
} from './publish.js';
