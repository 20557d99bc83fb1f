/**
 * `oci inspect`: what a reference points at, from a registry
 * (`REGISTRY/REPO:TAG|@DIGEST`) or a local layout (`oci:DIR[:TAG]`). `raw`
 * gives the exact bytes (what a digest is computed over); otherwise a summary:
 * media type, digest, and for an index its platforms, for a manifest its
 * platform (from the config), config and layers with sizes. `platform`
 * selects one child of an index.
 */
import { SlipwayError } from '../core/errors.js';
import {
  MAX_CONFIG_BYTES,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_MANIFEST,
  checkDescriptor,
  digestOf,
  formatPlatform,
  formatReference,
  parseConfig,
  parsePlatform,
  parseReference,
  referenceTarget,
  type Descriptor,
  type Platform,
} from '../formats/oci.js';
import { OciLayout } from './layout.js';
import {
  MEDIA_TYPE_DOCKER_LIST,
  MEDIA_TYPE_DOCKER_MANIFEST,
  connect,
  type RegistryAccessOptions,
  type RegistryClient,
} from './registry/client.js';

export interface InspectOptions extends RegistryAccessOptions {
  ref: string;
  raw?: boolean;
  /** `os/arch[/variant]`: inspect that child of an index. */
  platform?: string;
}

export interface ManifestSummary {
  kind: 'index' | 'manifest';
  mediaType: string;
  /** Index: its entries. */
  manifests?: Descriptor[];
  /** Manifest: its config and layers. */
  config?: Descriptor;
  layers?: Descriptor[];
  annotations?: Record<string, string>;
}

export interface InspectResult {
  reference: string;
  digest: string;
  mediaType: string;
  size: number;
  /** The exact bytes served (base64 in JSON output is the CLI's business). */
  bytes: Uint8Array;
  summary: ManifestSummary;
  /** A manifest's platform, read from its config. */
  platform?: Platform;
  /** A manifest's config plus layers. */
  totalSize?: number;
  requests: number;
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (typeof x === 'string') out[k] = x;
  return out;
}

/** Reads a manifest or index of any supported type (OCI, Docker v2), leniently: only the fields we show. */
export function summarize(bytes: Uint8Array, mediaTypeHint: string): ManifestSummary {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new SlipwayError('OCI_INVALID', `$: not valid JSON: ${(err as Error).message}`, { where: '$' });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new SlipwayError('OCI_INVALID', '$: expected an object', { where: '$' });
  }
  const o = v as Record<string, unknown>;
  const mediaType = typeof o['mediaType'] === 'string' ? o['mediaType'] : mediaTypeHint;
  const annotations = stringMap(o['annotations']);
  const base = annotations !== undefined && Object.keys(annotations).length > 0 ? { annotations } : {};
  if (
    Array.isArray(o['manifests']) ||
    mediaType === MEDIA_TYPE_INDEX ||
    mediaType === MEDIA_TYPE_DOCKER_LIST
  ) {
    const list = Array.isArray(o['manifests']) ? o['manifests'] : [];
    return {
      kind: 'index',
      mediaType,
      manifests: list.map((d, i) => checkDescriptor(d, `$.manifests[${i}]`)),
      ...base,
    };
  }
  if (o['config'] === undefined || !Array.isArray(o['layers'])) {
    throw new SlipwayError('OCI_INVALID', `$: neither an image index nor an image manifest (${mediaType})`, {
      where: '$',
    });
  }
  return {
    kind: 'manifest',
    mediaType,
    config: checkDescriptor(o['config'], '$.config'),
    layers: o['layers'].map((d, i) => checkDescriptor(d, `$.layers[${i}]`)),
    ...base,
  };
}

/** The index entry for a platform (exact os/arch, and variant when asked); OCI_NOT_FOUND listing what there is. */
export function selectPlatform(manifests: Descriptor[], want: Platform, where: string): Descriptor {
  const hit = manifests.find(
    (d) =>
      d.platform !== undefined &&
      d.platform.os === want.os &&
      d.platform.architecture === want.architecture &&
      (want.variant === undefined || d.platform.variant === want.variant),
  );
  if (hit !== undefined) return hit;
  const have = manifests
    .map((d) => (d.platform !== undefined ? formatPlatform(d.platform) : d.digest))
    .join(', ');
  throw new SlipwayError(
    'OCI_NOT_FOUND',
    `${where} has no image for ${formatPlatform(want)} (it has: ${have || 'none'})`,
    {
      where,
    },
  );
}

/** Where manifests and blobs come from: a registry repository or a local layout. */
export interface ImageSource {
  name: string;
  /** The root's bytes, media type and digest. */
  root(): Promise<{ bytes: Uint8Array; mediaType: string; digest: string }>;
  manifest(desc: Descriptor): Promise<Uint8Array>;
  smallBlob(desc: Descriptor, cap: number): Promise<Uint8Array>;
  requests(): number;
  close(): void;
}

function registrySource(
  client: RegistryClient,
  repository: string,
  target: string,
  name: string,
): ImageSource {
  return {
    name,
    root: () => client.getManifest(repository, target),
    manifest: async (desc) => {
      const m = await client.getManifest(repository, desc.digest);
      if (m.bytes.byteLength !== desc.size) {
        throw new SlipwayError(
          'OCI_DIGEST_MISMATCH',
          `${name}: manifest ${desc.digest} is ${m.bytes.byteLength} bytes, its descriptor says ${desc.size}`,
        );
      }
      return m.bytes;
    },
    smallBlob: async (desc, cap) => {
      if (desc.size > cap)
        throw new SlipwayError('OCI_INVALID', `${name}: blob ${desc.digest} is larger than ${cap} bytes`);
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of await client.getBlob(repository, desc)) {
        n += (c as Buffer).byteLength;
        if (n > desc.size) break;
        chunks.push(c as Buffer);
      }
      const bytes = Buffer.concat(chunks);
      const got = digestOf(bytes);
      if (bytes.byteLength !== desc.size || got !== desc.digest) {
        throw new SlipwayError(
          'OCI_DIGEST_MISMATCH',
          `${name}: blob ${desc.digest} arrived as ${got} (${bytes.byteLength} bytes)`,
        );
      }
      return bytes;
    },
    requests: () => client.requests,
    close: () => {
      client.close();
    },
  };
}

async function layoutSource(dir: string, ref: string | undefined): Promise<ImageSource> {
  const layout = await OciLayout.open(dir);
  const name = `oci:${dir}${ref !== undefined ? `:${ref}` : ''}`;
  return {
    name,
    root: async () => {
      const desc = await layout.resolve(ref);
      return { bytes: await layout.readBytes(desc), mediaType: desc.mediaType, digest: desc.digest };
    },
    manifest: (desc) => layout.readBytes(desc),
    smallBlob: (desc, cap) => layout.readBytes(desc, cap),
    requests: () => 0,
    close: () => undefined,
  };
}

/** `oci:DIR[:TAG]` → dir and tag (a ':' followed by a '/' belongs to the path). */
export function parseLayoutRef(s: string): { dir: string; ref?: string } {
  const rest = s.slice('oci:'.length);
  const colon = rest.lastIndexOf(':');
  if (colon > 0 && !rest.slice(colon + 1).includes('/') && rest.slice(colon + 1) !== '') {
    return { dir: rest.slice(0, colon), ref: rest.slice(colon + 1) };
  }
  return { dir: rest };
}

/** An ImageSource for a reference: `oci:DIR[:TAG]`, else a registry reference. */
export async function openSource(ref: string, o: RegistryAccessOptions): Promise<ImageSource> {
  if (ref.startsWith('oci:')) {
    const { dir, ref: tag } = parseLayoutRef(ref);
    return layoutSource(dir, tag);
  }
  const r = parseReference(ref);
  return registrySource(
    connect(r.registry, r.repository, o),
    r.repository,
    referenceTarget(r),
    formatReference(r),
  );
}

export async function inspectImage(o: InspectOptions): Promise<InspectResult> {
  const source = await openSource(o.ref, o);
  try {
    const root = await source.root();
    let bytes = root.bytes;
    let mediaType = root.mediaType;
    let digest = root.digest;
    let summary = summarize(bytes, mediaType);
    if (o.platform !== undefined) {
      if (summary.kind !== 'index') {
        throw new SlipwayError(
          'OCI_NOT_FOUND',
          `${source.name} is a single image, not an index: --platform does not apply`,
        );
      }
      const child = selectPlatform(summary.manifests ?? [], parsePlatform(o.platform), source.name);
      bytes = await source.manifest(child);
      mediaType = child.mediaType;
      digest = child.digest;
      summary = summarize(bytes, mediaType);
    }
    const result: InspectResult = {
      reference: source.name,
      digest,
      mediaType: summary.mediaType,
      size: bytes.byteLength,
      bytes,
      summary,
      requests: 0,
    };
    if (!o.raw && summary.kind === 'manifest' && summary.config !== undefined) {
      result.totalSize = summary.config.size + (summary.layers ?? []).reduce((n, l) => n + l.size, 0);
      if (summary.mediaType === MEDIA_TYPE_MANIFEST || summary.mediaType === MEDIA_TYPE_DOCKER_MANIFEST) {
        const config = parseConfig(await source.smallBlob(summary.config, MAX_CONFIG_BYTES));
        result.platform = {
          os: config.os,
          architecture: config.architecture,
          ...(config.variant !== undefined ? { variant: config.variant } : {}),
        };
      }
    }
    result.requests = source.requests();
    return result;
  } finally {
    source.close();
  }
}
