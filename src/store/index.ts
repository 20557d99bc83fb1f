/**
 * The image repository's stores (DESIGN.md "stores"): metadata in SQLite or
 * PostgreSQL, blobs in a directory or an S3 bucket. The PostgreSQL and S3
 * stores (and their client libraries) are loaded only when configured.
 */
import { FsBlobStore } from './blob-fs.js';
import { SqliteMetadataStore } from './meta-sqlite.js';
import type { BlobStore, MetadataStore } from './types.js';

export type { BlobPutResult, BlobStore, MetadataStore } from './types.js';
export { BlobPutError, checkBlobKey, isBlobPutError, type BlobPutFailure } from './blob-common.js';
export { normalizeTimestamp, tagValueString } from './meta-sql.js';

export type MetadataConfig = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

export type BlobConfig =
  | { kind: 'fs'; dir: string }
  | { kind: 's3'; bucket: string; prefix?: string; endpoint?: string; region?: string };

export interface StoresConfig {
  metadata: MetadataConfig;
  blobs: BlobConfig;
}

export async function openMetadataStore(config: MetadataConfig): Promise<MetadataStore> {
  switch (config.kind) {
    case 'sqlite':
      return SqliteMetadataStore.open({ file: config.file });
    case 'postgres': {
      const { PostgresMetadataStore } = await import('./meta-postgres.js');
      return PostgresMetadataStore.open({ url: config.url });
    }
  }
}

export async function openBlobStore(config: BlobConfig): Promise<BlobStore> {
  switch (config.kind) {
    case 'fs':
      return FsBlobStore.open({ dir: config.dir });
    case 's3': {
      const { S3BlobStore } = await import('./blob-s3.js');
      return S3BlobStore.open({
        bucket: config.bucket,
        ...(config.prefix !== undefined ? { prefix: config.prefix } : {}),
        ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
        ...(config.region !== undefined ? { region: config.region } : {}),
      });
    }
  }
}

/** Opens both stores (creating what is missing: SQLite file, tables, directory, bucket). */
export async function openStores(config: StoresConfig): Promise<{ meta: MetadataStore; blobs: BlobStore }> {
  const meta = await openMetadataStore(config.metadata);
  try {
    const blobs = await openBlobStore(config.blobs);
    return { meta, blobs };
  } catch (err) {
    await meta.close().catch(() => undefined);
    throw err;
  }
}
