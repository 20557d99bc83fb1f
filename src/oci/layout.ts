/**
 * An OCI image layout on disk (image-layout spec): `oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>`. Blobs are content-addressed and written atomically
 * (temp file, fsync, rename), so a reader never sees a partial blob under its
 * digest and an interrupted writer leaves only a temp file that the next run
 * ignores. index.json is rewritten atomically too.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { openAtomic, writeFileAtomic } from '../core/atomic-file.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import {
  ANNOTATION_REF_NAME,
  MAX_MANIFEST_BYTES,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_MANIFEST,
  OCI_LAYOUT_BYTES,
  OCI_LAYOUT_FILE,
  digestOf,
  encodeIndex,
  parseDigest,
  parseIndex,
  parseManifest,
  verifyDigest,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from '../formats/oci.js';

export interface BlobRef {
  digest: string;
  size: number;
}

/** A manifest or index reached while walking from a root descriptor, with its verified bytes. */
export interface WalkedManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
  manifest?: ImageManifest;
  index?: ImageIndex;
}

/** Everything reachable from a root: manifests in push order (children before parents) and leaf blobs. */
export interface LayoutGraph {
  manifests: WalkedManifest[];
  blobs: Descriptor[];
}

function layoutError(where: string, message: string): SlipwayError {
  return new SlipwayError('OCI_LAYOUT_INVALID', message, { where });
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

export class OciLayout {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Fails (changing nothing) unless `dir` is absent, an empty directory, or has
   * an oci-layout file: a layout is never sprinkled into some other directory.
   */
  static async checkWritable(dir: string): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (err) {
      if (isNotFound(err)) return;
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') {
        throw layoutError(dir, `output '${dir}' exists and is not a directory`);
      }
      throw fromSystemError(err, 'cannot read directory', dir);
    }
    if (names.length > 0 && !names.includes(OCI_LAYOUT_FILE)) {
      throw layoutError(
        dir,
        `output '${dir}' is a non-empty directory that is not an OCI image layout (no oci-layout file)`,
      );
    }
  }

  /** Opens `dir` for writing, creating the layout (oci-layout, empty index.json, blobs/sha256) when absent. */
  static async create(dir: string): Promise<OciLayout> {
    await OciLayout.checkWritable(dir);
    try {
      await fsp.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    } catch (err) {
      throw fromSystemError(err, 'cannot create layout directory', dir);
    }
    const layout = new OciLayout(dir);
    const marker = path.join(dir, OCI_LAYOUT_FILE);
    if (fs.existsSync(marker)) await layout.#checkMarker();
    else await writeFileAtomic(marker, OCI_LAYOUT_BYTES);
    if (!fs.existsSync(path.join(dir, 'index.json'))) await layout.writeIndex([]);
    else await layout.readIndex();
    return layout;
  }

  /** Opens an existing layout; throws OCI_LAYOUT_INVALID unless oci-layout and index.json are valid. */
  static async open(dir: string): Promise<OciLayout> {
    const layout = new OciLayout(dir);
    await layout.#checkMarker();
    await layout.readIndex();
    return layout;
  }

  async #checkMarker(): Promise<void> {
    const file = path.join(this.dir, OCI_LAYOUT_FILE);
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if (isNotFound(err)) throw layoutError(file, 'not an OCI image layout: oci-layout is missing');
      throw fromSystemError(err, 'cannot read', file);
    }
    let version: unknown;
    try {
      version = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      throw layoutError(file, 'oci-layout is not valid JSON');
    }
    if (version !== '1.0.0') {
      throw layoutError(file, `unsupported imageLayoutVersion ${JSON.stringify(version)} (expected "1.0.0")`);
    }
  }

  /** `blobs/<alg>/<hex>` for a digest (validated, so a hostile digest cannot escape the layout). */
  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return path.join(this.dir, 'blobs', algorithm, hex);
  }

  /** The size of a stored blob, or undefined when absent. Does not re-hash. */
  async blobSize(digest: string): Promise<number | undefined> {
    try {
      const st = await fsp.stat(this.blobPath(digest));
      return st.isFile() ? st.size : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw fromSystemError(err, 'cannot stat', this.blobPath(digest));
    }
  }

  /** Stores bytes under their sha256; a blob already present with the same size is kept. */
  async putBytes(bytes: Uint8Array): Promise<BlobRef> {
    const digest = digestOf(bytes);
    const ref = { digest, size: bytes.byteLength };
    if ((await this.blobSize(digest)) === bytes.byteLength) return ref;
    await writeFileAtomic(this.blobPath(digest), bytes);
    return ref;
  }

  /**
   * Streams a blob in, hashing as it goes. With `expected`, the bytes must match its
   * digest and size (OCI_DIGEST_MISMATCH otherwise, and nothing is stored); without,
   * the blob is stored under the sha256 it turns out to have.
   */
  async putStream(source: AsyncIterable<Uint8Array>, expected?: BlobRef): Promise<BlobRef> {
    const algorithm = expected === undefined ? 'sha256' : parseDigest(expected.digest).algorithm;
    const hash = createHash(algorithm);
    // With no expected digest the final name is unknown until the end: write under a
    // temp name inside blobs/ (ignored by readers) and rename once hashed.
    const staging =
      expected === undefined
        ? path.join(this.dir, 'blobs', 'sha256', `.incoming-${randomBytes(8).toString('hex')}`)
        : this.blobPath(expected.digest);
    const out = await openAtomic(staging);
    let size = 0;
    try {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.byteLength;
        if (expected !== undefined && size > expected.size) {
          throw new SlipwayError(
            'OCI_DIGEST_MISMATCH',
            `blob ${expected.digest} is longer than its descriptor's ${expected.size} bytes`,
          );
        }
        await out.write(chunk);
      }
      const digest = `${algorithm}:${hash.digest('hex')}`;
      if (expected !== undefined && (digest !== expected.digest || size !== expected.size)) {
        throw new SlipwayError(
          'OCI_DIGEST_MISMATCH',
          `blob ${expected.digest} (${expected.size} bytes) arrived as ${digest} (${size} bytes)`,
        );
      }
      await out.commit();
      if (expected === undefined) {
        try {
          await fsp.rename(staging, this.blobPath(digest));
        } catch (err) {
          await fsp.rm(staging, { force: true });
          throw fromSystemError(err, 'cannot store blob in', this.dir);
        }
      }
      return { digest, size };
    } catch (err) {
      await out.abort();
      throw err;
    }
  }

  /** Reads a small blob (manifest, index, config) and checks its size and digest. */
  async readBytes(desc: BlobRef, maxBytes = MAX_MANIFEST_BYTES): Promise<Uint8Array> {
    const file = this.blobPath(desc.digest);
    if (desc.size > maxBytes) {
      throw layoutError(file, `blob is ${desc.size} bytes, more than the limit of ${maxBytes}`);
    }
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(file);
    } catch (err) {
      if (isNotFound(err)) throw layoutError(file, `blob ${desc.digest} is missing from the layout`);
      throw fromSystemError(err, 'cannot read', file);
    }
    if (bytes.byteLength !== desc.size || !verifyDigest(bytes, desc.digest)) {
      throw layoutError(file, `blob does not match its descriptor (${desc.digest}, ${desc.size} bytes)`);
    }
    return bytes;
  }

  /** A read stream over a stored blob (not verified here; callers hash what they send). */
  openStream(digest: string, start = 0): fs.ReadStream {
    return fs.createReadStream(this.blobPath(digest), { start, highWaterMark: 1 << 20 });
  }

  async readIndex(): Promise<ImageIndex> {
    const file = path.join(this.dir, 'index.json');
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(file);
    } catch (err) {
      if (isNotFound(err)) throw layoutError(file, 'not an OCI image layout: index.json is missing');
      throw fromSystemError(err, 'cannot read', file);
    }
    try {
      return parseIndex(bytes);
    } catch (err) {
      if (err instanceof SlipwayError) throw layoutError(file, err.message);
      throw err;
    }
  }

  /** Rewrites index.json (atomically) with these entries, in this order. */
  async writeIndex(manifests: readonly Descriptor[]): Promise<void> {
    const { bytes } = encodeIndex({ manifests: [...manifests] });
    await writeFileAtomic(path.join(this.dir, 'index.json'), bytes);
  }

  /** Adds `desc` to index.json under `refName`, replacing any entry with that name. */
  async tag(desc: Descriptor, refName: string): Promise<void> {
    const index = await this.readIndex();
    const kept = index.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] !== refName);
    const entry: Descriptor = {
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      annotations: { ...(desc.annotations ?? {}), [ANNOTATION_REF_NAME]: refName },
    };
    if (desc.platform !== undefined) entry.platform = desc.platform;
    await this.writeIndex([...kept, entry]);
  }

  /** The index.json entry named `ref` (ref.name); with no ref, the only entry. */
  async resolve(ref?: string): Promise<Descriptor> {
    const index = await this.readIndex();
    const where = path.join(this.dir, 'index.json');
    if (ref === undefined) {
      if (index.manifests.length === 1) return index.manifests[0] as Descriptor;
      const names = index.manifests.map((d) => d.annotations?.[ANNOTATION_REF_NAME] ?? d.digest);
      throw new SlipwayError(
        'OCI_NOT_FOUND',
        `the layout has ${index.manifests.length} entries; name one with :TAG (${names.join(', ') || 'none'})`,
        { where },
      );
    }
    const hit = index.manifests.find((d) => d.annotations?.[ANNOTATION_REF_NAME] === ref || d.digest === ref);
    if (hit === undefined) throw new SlipwayError('OCI_NOT_FOUND', `no entry named '${ref}'`, { where });
    return hit;
  }

  /**
   * Walks from `root` through indexes and manifests (each read and verified), returning
   * the manifests children-first (the order a registry needs them pushed) and the leaf
   * blobs (configs and layers), each once.
   */
  async walk(root: Descriptor): Promise<LayoutGraph> {
    const manifests: WalkedManifest[] = [];
    const blobs: Descriptor[] = [];
    const seen = new Set<string>();
    const visit = async (desc: Descriptor, depth: number): Promise<void> => {
      if (seen.has(desc.digest)) return;
      seen.add(desc.digest);
      if (depth > 8) throw layoutError(this.dir, 'indexes nested more than 8 deep');
      if (desc.mediaType === MEDIA_TYPE_INDEX) {
        const bytes = await this.readBytes(desc);
        const index = parseIndex(bytes);
        for (const child of index.manifests) await visit(child, depth + 1);
        manifests.push({ descriptor: desc, bytes, index });
      } else if (desc.mediaType === MEDIA_TYPE_MANIFEST) {
        const bytes = await this.readBytes(desc);
        const manifest = parseManifest(bytes);
        for (const b of [manifest.config, ...manifest.layers]) {
          if (seen.has(b.digest)) continue;
          seen.add(b.digest);
          blobs.push(b);
        }
        manifests.push({ descriptor: desc, bytes, manifest });
      } else {
        throw layoutError(this.blobPath(desc.digest), `unsupported manifest media type '${desc.mediaType}'`);
      }
    };
    await visit(root, 0);
    return { manifests, blobs };
  }

  /** Hashes every blob reachable from every index.json entry; throws OCI_LAYOUT_INVALID on the first bad one. */
  async verify(): Promise<{ manifests: number; blobs: number; bytes: number }> {
    const index = await this.readIndex();
    const blobs = new Map<string, Descriptor>();
    let manifests = 0;
    for (const entry of index.manifests) {
      const g = await this.walk(entry);
      manifests += g.manifests.length;
      for (const b of g.blobs) blobs.set(b.digest, b);
    }
    let bytes = 0;
    for (const b of blobs.values()) {
      const file = this.blobPath(b.digest);
      const { algorithm, hex } = parseDigest(b.digest);
      const hash = createHash(algorithm);
      let size = 0;
      try {
        for await (const chunk of this.openStream(b.digest)) {
          hash.update(chunk as Buffer);
          size += (chunk as Buffer).byteLength;
        }
      } catch (err) {
        if (isNotFound(err)) throw layoutError(file, `blob ${b.digest} is missing from the layout`);
        throw fromSystemError(err, 'cannot read', file);
      }
      if (size !== b.size || hash.digest('hex') !== hex) {
        throw layoutError(file, `blob does not match its descriptor (${b.digest}, ${b.size} bytes)`);
      }
      bytes += size;
    }
    return { manifests, blobs: blobs.size, bytes };
  }
}
