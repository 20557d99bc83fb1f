export {
  assembleRepository,
  DEFAULT_VALIDITY_MS,
  type AssembleOptions,
  type AssembleResult,
} from './assemble.js';
export { verifyRepositoryZip, checkRepoZipPaths, type VerifyOptions, type VerifyResult } from './verify.js';
export { inspectRepository, type InspectResult } from './inspect.js';
export { extractRepository, type ExtractOptions } from './extract.js';
export { loadSigners, parseThresholds, parseDuration, clockFrom, resolveKeyText, KEY_ENV } from './keys.js';
export { startRepoServer } from './serve.js';
export { RepoStore } from './store.js';
export { rotateRepositoryRoot, signRepository } from './sign.js';
