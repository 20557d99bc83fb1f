/** Image manifests for the image repository's tests (formats, API, client). */
import type { ImageManifest } from '../../src/formats/imgapi-types.js';

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
