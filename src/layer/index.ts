export { packDirectory, packFromTar, type PackOptions, type PackResult } from './pack.js';
export { installLayers, type InstallOptions, type InstallResult } from './install.js';
export {
  verifyArchive,
  inspectArchive,
  checkEntries,
  type VerifyReport,
  type InspectReport,
  type Problem,
} from './verify.js';
export { diffArchives, diffScans, type LayerDiff, type DiffEntry } from './diff.js';
export { scanArchive, expectType, type ArchiveScan } from './scan.js';
export { InstallSimulator, layerOpFor, EMPTY_TREE, type TreeView, type LayerOp } from './rules.js';
