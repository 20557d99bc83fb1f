/**
 * Pushes an image (or multi-arch index) from an OCI layout to a registry:
 * plan (pure: what goes where, in which order), then apply. Order: every blob
 * (parallel: HEAD to skip, mount from `from`, else upload), then each child
 * manifest by digest (children before parents), then the root under every tag
 * (specs/oci.md: a parent before its children is MANIFEST_BLOB_UNKNOWN).
 * Resuming an interrupted push is running it again: HEAD finds what the
 * registry already has.
 */
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { SlipwayError } from '../core/errors.js';
import { parseReference, type Descriptor, type ImageReference } from '../formats/oci.js';
import { OciLayout, type LayoutGraph } from './layout.js';
import {
  DEFAULT_CHUNK_SIZE,
  connect,
  type RegistryAccessOptions,
  type UploadOutcome,
} from './registry/client.js';

export interface PushOptions extends RegistryAccessOptions {
  layout: string;
  /** ref.name in the layout's index.json; default the only entry. */
  ref?: string;
  /** REGISTRY/REPO (a `:TAG` here is one more tag). */
  target: string;
  /** Tags for the root; default the target's tag, else `ref`, else `latest`. */
  tags: string[];
  /** A repository on the same registry to mount blobs from. */
  from?: string;
  concurrency?: number;
  chunkSize?: number;
  onProgress?: (e: PushEvent) => void;
}

export type PushEvent =
  | { kind: 'blob-start'; digest: string; size: number }
  | { kind: 'blob-progress'; digest: string; size: number; sent: number }
  | { kind: 'blob-done'; digest: string; size: number; outcome: UploadOutcome | 'skipped' }
  | { kind: 'manifest'; digest: string; reference: string; mediaType: string };

export interface PushResult {
  digest: string;
  tags: string[];
  blobs: { uploaded: number; mounted: number; skipped: number; bytesUploaded: number };
  manifests: number;
  requests: number;
}

export interface PushPlan {
  registry: string;
  repository: string;
  root: Descriptor;
  tags: string[];
  from?: string;
  blobs: Descriptor[];
  /** Child manifests, pushed by digest, children first. */
  manifests: { descriptor: Descriptor; bytes: Uint8Array }[];
  /** The root's bytes, pushed under each tag. */
  rootBytes: Uint8Array;
}

const TAG_RE = /^\w[\w.-]{0,127}$/;

/** The registry/repository of a push target (`REGISTRY/REPO[:TAG]`; a digest makes no sense here). */
export function parseTarget(target: string): ImageReference {
  const ref = parseReference(target);
  if (ref.digest !== undefined) {
    throw new SlipwayError(
      'OCI_INVALID',
      `push target '${target}' names a digest; give REGISTRY/REPO[:TAG]`,
      {
        where: 'target',
      },
    );
  }
  return ref;
}

/** Tags for the root: explicit ones, else the target's tag, else the layout ref, else `latest`; checked, deduplicated. */
export function pushTags(tags: readonly string[], targetTag?: string, layoutRef?: string): string[] {
  const chosen =
    tags.length > 0
      ? [...tags, ...(targetTag !== undefined ? [targetTag] : [])]
      : targetTag !== undefined
        ? [targetTag]
        : layoutRef !== undefined && TAG_RE.test(layoutRef)
          ? [layoutRef]
          : ['latest'];
  for (const t of chosen) {
    if (!TAG_RE.test(t)) {
      throw new SlipwayError('OCI_INVALID', `bad tag '${t}' (letters, digits, '_', '.', '-'; at most 128)`, {
        where: 'tag',
      });
    }
  }
  return [...new Set(chosen)];
}

/** The push plan from a walked layout (pure). */
export function planPush(
  target: ImageReference,
  root: Descriptor,
  graph: LayoutGraph,
  tags: string[],
  from?: string,
): PushPlan {
  const last = graph.manifests[graph.manifests.length - 1];
  if (last === undefined || last.descriptor.digest !== root.digest) {
    throw new SlipwayError('INTERNAL', 'layout walk did not end at its root');
  }
  return {
    registry: target.registry,
    repository: target.repository,
    root,
    tags,
    ...(from !== undefined && from !== target.repository ? { from } : {}),
    blobs: graph.blobs,
    manifests: graph.manifests.slice(0, -1).map((m) => ({ descriptor: m.descriptor, bytes: m.bytes })),
    rootBytes: last.bytes,
  };
}

/** Reads the layout and plans the push without touching the network (`--dry-run`). */
export async function planLayoutPush(o: PushOptions): Promise<PushPlan> {
  const target = parseTarget(o.target);
  const layout = await OciLayout.open(o.layout);
  const root = await layout.resolve(o.ref);
  const graph = await layout.walk(root);
  for (const b of graph.blobs) {
    const size = await layout.blobSize(b.digest);
    if (size !== b.size) {
      throw new SlipwayError(
        'OCI_LAYOUT_INVALID',
        size === undefined
          ? `blob ${b.digest} is missing from the layout`
          : `blob ${b.digest} is ${size} bytes, its descriptor says ${b.size}`,
        { where: layout.blobPath(b.digest) },
      );
    }
  }
  return planPush(target, root, graph, pushTags(o.tags, target.tag, o.ref), o.from);
}

/** Runs `fn` over items with at most `n` at once; stops starting new ones after the first failure. */
export async function runPool<T>(
  items: readonly T[],
  n: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== undefined) throw failed.err;
}

export async function pushLayout(o: PushOptions): Promise<PushResult> {
  const plan = await planLayoutPush(o);
  const layout = await OciLayout.open(o.layout);
  const client = connect(plan.registry, plan.repository, o);
  const emit = o.onProgress ?? ((): void => undefined);
  const blobs = { uploaded: 0, mounted: 0, skipped: 0, bytesUploaded: 0 };
  const repo = plan.repository;
  try {
    await client.probe();
    await runPool(plan.blobs, o.concurrency ?? 4, async (b) => {
      emit({ kind: 'blob-start', digest: b.digest, size: b.size });
      if (await client.blobExists(repo, b, 'push')) {
        blobs.skipped++;
        emit({ kind: 'blob-done', digest: b.digest, size: b.size, outcome: 'skipped' });
        return;
      }
      const file = layout.blobPath(b.digest);
      const outcome = await client.uploadBlob(
        repo,
        b,
        // createReadStream's `end` is inclusive, so an empty range needs its own empty stream.
        (start, end) =>
          end > start
            ? fs.createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 20 })
            : Readable.from([]),
        {
          ...(plan.from !== undefined ? { from: plan.from } : {}),
          chunkSize: o.chunkSize ?? DEFAULT_CHUNK_SIZE,
          onProgress: (sent) => {
            emit({ kind: 'blob-progress', digest: b.digest, size: b.size, sent });
          },
        },
      );
      if (outcome === 'mounted') blobs.mounted++;
      else {
        blobs.uploaded++;
        blobs.bytesUploaded += b.size;
      }
      emit({ kind: 'blob-done', digest: b.digest, size: b.size, outcome });
    });
    for (const m of plan.manifests) {
      await client.putManifest(repo, m.descriptor.digest, m.bytes, m.descriptor.mediaType);
      emit({
        kind: 'manifest',
        digest: m.descriptor.digest,
        reference: m.descriptor.digest,
        mediaType: m.descriptor.mediaType,
      });
    }
    for (const tag of plan.tags) {
      await client.putManifest(repo, tag, plan.rootBytes, plan.root.mediaType);
      emit({ kind: 'manifest', digest: plan.root.digest, reference: tag, mediaType: plan.root.mediaType });
    }
    return {
      digest: plan.root.digest,
      tags: plan.tags,
      blobs,
      manifests: plan.manifests.length + 1,
      requests: client.requests,
    };
  } finally {
    client.close();
  }
}
