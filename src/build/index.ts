export {
  buildPackages,
  stampPackage,
  listPackages,
  planPackage,
  type PackageBuildOptions,
  type PackageBuildResult,
} from './packages.js';
export {
  planGraph,
  runGraph,
  summarize,
  type Job,
  type JobContext,
  type GraphReport,
  type Plan,
} from './graph.js';
export { download, fetchCached, hashFile } from './fetch.js';
