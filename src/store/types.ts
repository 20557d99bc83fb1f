/**
 * The stores behind the image repository (DESIGN.md: SQLite + files by
 * default, PostgreSQL + S3 at scale). The server is stateless over them: two
 * processes over the same PostgreSQL + S3 serve the same repository, so
 * every write is conditional on the revision it read.
 */
import type { Readable } from 'node:stream';
import type { ListFilter, StoredImage } from '../formats/imgapi-types.js';

export interface MetadataStore {
  readonly kind: 'sqlite' | 'postgres';
  get(uuid: string): Promise<StoredImage | undefined>;
  /**
   * Images matching `filter`, sorted by (published_at, uuid) in `filter.sort`
   * order, at most `filter.limit`, with published_at ≥ markerPublishedAt
   * (inclusive) when set. Images without published_at sort first (asc).
   * When `filter.markerUuid` is set too (the marker was an image, whose
   * published_at is markerPublishedAt) and the sort is ascending, images
   * published at that same instant that sort before the marker uuid are left
   * out as well: the page starts at the marker, which paging clients drop, so
   * runs of equal published_at across pages are listed once.
   */
  list(filter: ListFilter): Promise<StoredImage[]>;
  /** Inserts a new image (revision 1); false when the uuid exists. */
  create(image: StoredImage): Promise<boolean>;
  /**
   * Bulk import (seeding, migrations between stores): inserts each image
   * whose uuid is new, like create(), in few transactions; returns how many
   * were inserted.
   */
  createMany?(images: StoredImage[]): Promise<number>;
  /** Replaces the image if its stored revision is `expectedRevision`; the new revision is expected + 1. */
  update(image: StoredImage, expectedRevision: number): Promise<boolean>;
  /** Deletes the image if its stored revision is `expectedRevision`. */
  delete(uuid: string, expectedRevision: number): Promise<boolean>;
  /** uuids of images whose origin is `uuid` (in `channel` when given). */
  dependents(uuid: string, channel?: string): Promise<string[]>;
  close(): Promise<void>;
}

export interface BlobPutResult {
  size: number;
  /** hex */
  sha1: string;
  /** base64 (as Content-MD5 carries it) */
  md5: string;
}

export interface BlobStore {
  readonly kind: 'fs' | 's3';
  /**
   * Stores `body` under `key`, visible only once complete (never a partial
   * object under `key`); fails without leaving one when the body is longer
   * than `maxBytes`, differs from `expectedLength`, or the stream errors.
   */
  put(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: { maxBytes: number; expectedLength?: number; contentType?: string; signal?: AbortSignal },
  ): Promise<BlobPutResult>;
  /**
   * A byte range (inclusive end; an end past the object is clamped to its
   * last byte; a start past it fails with INVALID_ARGUMENT) or the whole
   * object; undefined when absent. `size` is the whole object's size.
   */
  get(
    key: string,
    range?: { start: number; end: number },
  ): Promise<{ body: Readable; size: number } | undefined>;
  head(key: string): Promise<{ size: number } | undefined>;
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}
