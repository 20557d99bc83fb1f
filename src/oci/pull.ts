/**
 * `oci pull`: copies an image or index from a registry into an OCI layout,
 * verifying every digest and size on the way (manifests by the client, blobs
 * by OciLayout.putStream, which stores nothing that does not match). Blobs the
 * layout already has are kept, so an interrupted pull resumes. The root is
 * tagged in index.json with the reference's tag (or recorded untagged for a
 * digest reference). `platform` pulls only that child of an index.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { SlipwayError } from '../core/errors.js';
import {
  ANNOTATION_REF_NAME,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_MANIFEST,
  OCI_LAYOUT_FILE,
  formatReference,
  parseIndex,
  parseManifest,
  parsePlatform,
  parseReference,
  referenceTarget,
  type Descriptor,
} from '../formats/oci.js';
import { selectPlatform } from './inspect.js';
import { OciLayout } from './layout.js';
import { runPool } from './push.js';
import { connect, type RegistryAccessOptions } from './registry/client.js';
import { isRetryableError } from './registry/transport.js';

const BLOB_ATTEMPTS = 3;
/** All manifests of one pull are held in memory until the blobs are in: a hostile index cannot make that unbounded. */
const MAX_TOTAL_MANIFEST_BYTES = 64 * 1024 * 1024;

export interface PullOptions extends RegistryAccessOptions {
  /** `REGISTRY/REPO[:TAG][@DIGEST]`. */
  ref: string;
  /** The layout directory (created when absent). */
  output: string;
  /** `os/arch[/variant]`: pull only that child of an index. */
  platform?: string;
  /** ref.name for the root in index.json; default the reference's tag. */
  tag?: string;
  concurrency?: number;
  onProgress?: (e: PullEvent) => void;
}

export type PullEvent =
  | { kind: 'blob-start'; digest: string; size: number }
  | { kind: 'blob-progress'; digest: string; size: number; received: number }
  | { kind: 'blob-done'; digest: string; size: number; outcome: 'fetched' | 'present' };

export interface PullResult {
  reference: string;
  digest: string;
  mediaType: string;
  tag?: string;
  manifests: number;
  blobs: { fetched: number; present: number; bytesFetched: number };
  requests: number;
}

/** Only OCI types can be walked and stored faithfully; a Docker manifest is refused with a clear code. */
function checkWalkable(desc: Descriptor, where: string): void {
  if (desc.mediaType !== MEDIA_TYPE_INDEX && desc.mediaType !== MEDIA_TYPE_MANIFEST) {
    throw new SlipwayError(
      'OCI_INVALID',
      `${where}: ${desc.digest} has media type '${desc.mediaType}'; only OCI images and indexes can be pulled`,
      { where },
    );
  }
}

class Counter extends Transform {
  #n = 0;
  constructor(private readonly onBytes: (total: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#n += chunk.byteLength;
    this.onBytes(this.#n);
    cb(null, chunk);
  }
}

export async function pullImage(o: PullOptions): Promise<PullResult> {
  const ref = parseReference(o.ref);
  const name = formatReference(ref);
  const repo = ref.repository;
  const client = connect(ref.registry, repo, o);
  const emit = o.onProgress ?? ((): void => undefined);
  try {
    // A bad output is refused before any network work (and nothing is written to it).
    await OciLayout.checkWritable(o.output);
    if (fs.existsSync(path.join(o.output, OCI_LAYOUT_FILE))) await OciLayout.open(o.output);
    await client.probe();
    const top = await client.getManifest(repo, referenceTarget(ref));
    let root: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.byteLength };
    checkWalkable(root, name);
    const fetched = new Map<string, Uint8Array>([[root.digest, top.bytes]]);
    if (o.platform !== undefined) {
      if (root.mediaType !== MEDIA_TYPE_INDEX) {
        throw new SlipwayError(
          'OCI_NOT_FOUND',
          `${name} is a single image, not an index: --platform does not apply`,
        );
      }
      root = selectPlatform(parseIndex(top.bytes).manifests, parsePlatform(o.platform), name);
    }

    // Manifests children-first, leaf blobs once each (like OciLayout.walk, but over the network).
    const manifests: { desc: Descriptor; bytes: Uint8Array }[] = [];
    const blobs = new Map<string, Descriptor>();
    const seen = new Set<string>();
    let manifestBytes = 0;
    const visit = async (desc: Descriptor, depth: number): Promise<void> => {
      if (seen.has(desc.digest)) return;
      seen.add(desc.digest);
      checkWalkable(desc, name);
      if (depth > 8) throw new SlipwayError('OCI_INVALID', `${name}: indexes nested more than 8 deep`);
      let bytes = fetched.get(desc.digest);
      if (bytes === undefined) {
        const m = await client.getManifest(repo, desc.digest);
        if (m.bytes.byteLength !== desc.size) {
          throw new SlipwayError(
            'OCI_DIGEST_MISMATCH',
            `${name}: manifest ${desc.digest} is ${m.bytes.byteLength} bytes, its descriptor says ${desc.size}`,
          );
        }
        bytes = m.bytes;
      }
      manifestBytes += bytes.byteLength;
      if (manifestBytes > MAX_TOTAL_MANIFEST_BYTES) {
        throw new SlipwayError(
          'OCI_INVALID',
          `${name}: its manifests add up to more than ${MAX_TOTAL_MANIFEST_BYTES} bytes`,
        );
      }
      if (desc.mediaType === MEDIA_TYPE_INDEX) {
        for (const child of parseIndex(bytes).manifests) await visit(child, depth + 1);
      } else {
        const m = parseManifest(bytes);
        for (const b of [m.config, ...m.layers]) if (!blobs.has(b.digest)) blobs.set(b.digest, b);
      }
      manifests.push({ desc, bytes });
    };
    await visit(root, 0);

    const layout = await OciLayout.create(o.output);
    // A body cut off midway (reset, timeout) is fetched again from the start, a
    // few times; putStream stores nothing until the whole blob has verified.
    const fetchBlob = async (b: Descriptor, onBytes: (n: number) => void): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          const stream = await client.getBlob(repo, b);
          const counter = new Counter(onBytes);
          stream.on('error', (err) => counter.destroy(err));
          // A refused body (wrong digest, too long) must not leave the response half read.
          counter.on('close', () => {
            if (!stream.readableEnded) stream.destroy();
          });
          await layout.putStream(stream.pipe(counter), { digest: b.digest, size: b.size });
          return;
        } catch (err) {
          if (err instanceof SlipwayError) throw err;
          if (attempt >= BLOB_ATTEMPTS || !isRetryableError(err)) {
            throw new SlipwayError(
              'OCI_UNREACHABLE',
              `${name}: blob ${b.digest}: ${(err as Error).message}`,
              {
                cause: err,
                where: ref.registry,
              },
            );
          }
        }
      }
    };
    const counts = { fetched: 0, present: 0, bytesFetched: 0 };
    await runPool([...blobs.values()], o.concurrency ?? 4, async (b) => {
      emit({ kind: 'blob-start', digest: b.digest, size: b.size });
      if ((await layout.blobSize(b.digest)) === b.size) {
        counts.present++;
        emit({ kind: 'blob-done', digest: b.digest, size: b.size, outcome: 'present' });
        return;
      }
      await fetchBlob(b, (received) => {
        emit({ kind: 'blob-progress', digest: b.digest, size: b.size, received });
      });
      counts.fetched++;
      counts.bytesFetched += b.size;
      emit({ kind: 'blob-done', digest: b.digest, size: b.size, outcome: 'fetched' });
    });
    for (const m of manifests) {
      const stored = await layout.putBytes(m.bytes);
      if (stored.digest !== m.desc.digest) {
        throw new SlipwayError(
          'OCI_INVALID',
          `${name}: manifest ${m.desc.digest} is not sha256; cannot store it`,
        );
      }
    }
    const tag = o.tag ?? (ref.digest === undefined ? (ref.tag ?? 'latest') : ref.tag);
    if (tag !== undefined) await layout.tag(root, tag);
    else {
      // A digest reference: record the root untagged (replacing an identical untagged entry).
      const index = await layout.readIndex();
      const kept = index.manifests.filter(
        (d) => d.digest !== root.digest || d.annotations?.[ANNOTATION_REF_NAME] !== undefined,
      );
      const entry: Descriptor = { mediaType: root.mediaType, digest: root.digest, size: root.size };
      if (root.platform !== undefined) entry.platform = root.platform;
      await layout.writeIndex([...kept, entry]);
    }
    return {
      reference: name,
      digest: root.digest,
      mediaType: root.mediaType,
      ...(tag !== undefined ? { tag } : {}),
      manifests: manifests.length,
      blobs: counts,
      requests: client.requests,
    };
  } finally {
    client.close();
  }
}
