/** Boot images: the public surface of src/boot. */
export { DEFAULT_TARGET_MIB, lookimage, mkimage } from './image.js';
export type { LookimageResult, MkimageOptions, MkimageResult } from './image.js';
