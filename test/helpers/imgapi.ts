/** Image manifests for the image repository's tests (formats, API, client). */
import type { ImageManifest, ImageState } from '../../src/formats/imgapi-types.js';

export const OWNER = '930896af-bf8c-48d4-885c-6573a94b1853';

/** The keys every served manifest starts with, in IMGAPI's order (then published_at when set, type, os, files, …). */
export const SERVED_HEAD = ['v', 'uuid', 'owner', 'name', 'version', 'state', 'disabled', 'public'];

/** An active, public image as published (what `import -m` reads), with `fields` over the defaults. */
export function publishedImage(uuid: string, fields: Partial<ImageManifest> = {}): ImageManifest {
  return {
    v: 2,
    uuid,
    owner: OWNER,
    name: 'base-64',
    version: '1.0.0',
    state: 'active',
    disabled: false,
    public: true,
    published_at: '2024-01-02T03:04:05Z',
    type: 'zone-dataset',
    os: 'smartos',
    files: [],
    ...fields,
  };
}

/** A state drawn like a real repository's mix (85 % active, then disabled, unactivated, creating, failed); r in [0, 1). */
export function stateFor(r: number): ImageState {
  if (r < 0.85) return 'active';
  if (r < 0.9) return 'disabled';
  if (r < 0.97) return 'unactivated';
  return r < 0.99 ? 'creating' : 'failed';
}
