/**
 * Image metadata in PostgreSQL (the at-scale store; a pg Pool). Same schema
 * and list semantics as the SQLite store (meta-sql.ts), with jsonb
 * manifests, text columns in the "C" collation (byte order, like SQLite) and
 * covering indexes (INCLUDE). Any number of server replicas share one
 * database: writes are conditional on the revision (`UPDATE … WHERE uuid = $1
 * AND revision = $2`), and the schema migrates on open under an advisory
 * lock, so replicas starting together do not race.
 *
 * `pg` is loaded when a store is opened, not when this module is.
 */
import type { Pool, PoolClient } from 'pg';
import { SlipwayError } from '../core/errors.js';
import type { ListFilter, StoredImage } from '../formats/imgapi-types.js';
import {
  channelsOf,
  dependentsQuery,
  imageColumns,
  LIST_COLUMNS,
  listQuery,
  postgresDialect,
  SELECT_COLUMNS,
  type SelectedRow,
  storedImageFromRow,
  tagsOf,
  type ImageColumns,
} from './meta-sql.js';
import type { MetadataStore } from './types.js';

export interface PostgresMetadataStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
}

const LIST_COLUMNS_DDL = `activated boolean NOT NULL,
  disabled boolean NOT NULL,
  state text NOT NULL,
  public boolean NOT NULL,
  type text NOT NULL,
  os text NOT NULL,
  owner text NOT NULL,
  name text NOT NULL,
  version text NOT NULL`;

/** Schema versions in order; slipway_schema.version says how many have been applied. */
const MIGRATIONS: string[] = [
  `CREATE TABLE IF NOT EXISTS images (
  uuid text COLLATE "C" NOT NULL PRIMARY KEY,
  revision integer NOT NULL,
  published_at text COLLATE "C",
  ${LIST_COLUMNS_DDL},
  origin text,
  manifest jsonb NOT NULL,
  file_key text,
  file_md5 text,
  icon_key text,
  icon_content_type text
);
CREATE INDEX IF NOT EXISTS images_list ON images (published_at NULLS FIRST, uuid) INCLUDE (${LIST_COLUMNS.join(', ')});
CREATE INDEX IF NOT EXISTS images_origin ON images (origin) WHERE origin IS NOT NULL;
CREATE TABLE IF NOT EXISTS image_channels (
  uuid text COLLATE "C" NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
  channel text COLLATE "C" NOT NULL,
  published_at text COLLATE "C",
  ${LIST_COLUMNS_DDL},
  PRIMARY KEY (uuid, channel)
);
CREATE INDEX IF NOT EXISTS image_channels_list ON image_channels (channel, published_at NULLS FIRST, uuid) INCLUDE (${LIST_COLUMNS.join(', ')});
CREATE TABLE IF NOT EXISTS image_tags (
  uuid text COLLATE "C" NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
  key text COLLATE "C" NOT NULL,
  value text COLLATE "C" NOT NULL,
  PRIMARY KEY (uuid, key)
);
CREATE INDEX IF NOT EXISTS image_tags_value ON image_tags (key, value, uuid);`,
];

/** Any constant: the advisory lock that serializes migrations of one database. */
const MIGRATION_LOCK = 0x534c5057; // 'SLPW'

const IMAGE_COLUMNS = [
  'uuid',
  'published_at',
  ...LIST_COLUMNS,
  'origin',
  'manifest',
  'file_key',
  'file_md5',
  'icon_key',
  'icon_content_type',
] as const;

const PG_TYPES: Record<(typeof IMAGE_COLUMNS)[number], string> = {
  uuid: 'text',
  published_at: 'text',
  activated: 'boolean',
  disabled: 'boolean',
  state: 'text',
  public: 'boolean',
  type: 'text',
  os: 'text',
  owner: 'text',
  name: 'text',
  version: 'text',
  origin: 'text',
  manifest: 'text', // cast to jsonb in the statement
  file_key: 'text',
  file_md5: 'text',
  icon_key: 'text',
  icon_content_type: 'text',
};

/** Columns as parallel arrays, one element per row: `INSERT … SELECT … FROM unnest($1::text[], …)`. */
function columnArrays<K extends string>(keys: readonly K[], rows: Record<K, unknown>[]): unknown[][] {
  return keys.map((k) => rows.map((r) => r[k]));
}

const INSERT_IMAGES = `INSERT INTO images (revision, ${IMAGE_COLUMNS.join(', ')})
SELECT 1, ${IMAGE_COLUMNS.map((c) => (c === 'manifest' ? 'u.manifest::jsonb' : `u.${c}`)).join(', ')}
FROM unnest(${IMAGE_COLUMNS.map((c, i) => `$${i + 1}::${PG_TYPES[c]}[]`).join(', ')}) AS u(${IMAGE_COLUMNS.join(', ')})
ON CONFLICT (uuid) DO NOTHING RETURNING uuid`;

const CHANNEL_COLUMNS = ['uuid', 'channel', 'published_at', ...LIST_COLUMNS] as const;
const CHANNEL_TYPES: Record<(typeof CHANNEL_COLUMNS)[number], string> = { ...PG_TYPES, channel: 'text' };
const INSERT_CHANNELS = `INSERT INTO image_channels (${CHANNEL_COLUMNS.join(', ')})
SELECT * FROM unnest(${CHANNEL_COLUMNS.map((c, i) => `$${i + 1}::${CHANNEL_TYPES[c]}[]`).join(', ')})`;

const INSERT_TAGS =
  'INSERT INTO image_tags (uuid, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])';

const UPDATE_COLUMNS = IMAGE_COLUMNS.filter((c) => c !== 'uuid');
const UPDATE_IMAGE = `UPDATE images SET revision = revision + 1, ${UPDATE_COLUMNS.map(
  (c, i) => `${c} = $${i + 3}${c === 'manifest' ? '::jsonb' : ''}`,
).join(', ')} WHERE uuid = $1 AND revision = $2`;

/** Rows per INSERT in createMany (each statement's arrays stay a few MB). */
const BULK_BATCH = 2000;

interface ChildRows {
  channels: Record<(typeof CHANNEL_COLUMNS)[number], unknown>[];
  tags: { uuid: string; key: string; value: string }[];
}

function childRows(images: { columns: ImageColumns; image: StoredImage }[]): ChildRows {
  const out: ChildRows = { channels: [], tags: [] };
  for (const { columns: c, image } of images) {
    for (const channel of channelsOf(image.manifest)) out.channels.push({ ...c, channel });
    for (const [key, value] of tagsOf(image.manifest)) out.tags.push({ uuid: c.uuid, key, value });
  }
  return out;
}

async function insertChildren(client: PoolClient, rows: ChildRows): Promise<void> {
  if (rows.channels.length > 0)
    await client.query(INSERT_CHANNELS, columnArrays(CHANNEL_COLUMNS, rows.channels));
  if (rows.tags.length > 0) {
    await client.query(INSERT_TAGS, columnArrays(['uuid', 'key', 'value'] as const, rows.tags));
  }
}

/** Inserts the images whose uuids are new (and their channels and tags); returns the inserted uuids. */
async function insertImages(client: PoolClient, images: StoredImage[]): Promise<Set<string>> {
  const prepared = images.map((image) => ({ columns: imageColumns(image), image }));
  const res = await client.query<{ uuid: string }>(
    INSERT_IMAGES,
    columnArrays(
      IMAGE_COLUMNS,
      prepared.map((p) => p.columns),
    ),
  );
  const inserted = new Set(res.rows.map((r) => r.uuid));
  // A uuid twice in one batch: only its first occurrence was inserted.
  const seen = new Set<string>();
  const fresh = prepared.filter((p) => {
    if (!inserted.has(p.columns.uuid) || seen.has(p.columns.uuid)) return false;
    seen.add(p.columns.uuid);
    return true;
  });
  await insertChildren(client, childRows(fresh));
  return inserted;
}

function wrap(err: unknown, action: string): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SlipwayError('IO', `PostgreSQL: cannot ${action}: ${message}`, { cause: err });
}

export class PostgresMetadataStore implements MetadataStore {
  readonly kind = 'postgres' as const;
  readonly #pool: Pool;
  #closed = false;

  private constructor(pool: Pool) {
    this.#pool = pool;
  }

  static async open(options: PostgresMetadataStoreOptions): Promise<PostgresMetadataStore> {
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection that breaks (server restart) must not crash the process; the pool drops it.
    pool.on('error', () => undefined);
    const store = new PostgresMetadataStore(pool);
    try {
      await store.#migrate();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw wrap(err, `open ${redactUrl(options.url)}`);
    }
    return store;
  }

  async #migrate(): Promise<void> {
    await this.#tx(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS slipway_schema (version integer NOT NULL)');
      const res = await client.query<{ version: number }>('SELECT version FROM slipway_schema');
      let version = res.rows[0]?.version ?? 0;
      if (res.rows.length === 0) await client.query('INSERT INTO slipway_schema (version) VALUES (0)');
      if (version > MIGRATIONS.length) {
        throw new SlipwayError(
          'IO',
          `the database has schema version ${version}, newer than this Slipway knows (${MIGRATIONS.length})`,
        );
      }
      for (; version < MIGRATIONS.length; version++) {
        await client.query(MIGRATIONS[version] ?? '');
        await client.query('UPDATE slipway_schema SET version = $1', [version + 1]);
      }
    });
  }

  /** Runs `fn` in a transaction on one pooled connection: COMMIT when it resolves, ROLLBACK when it throws. */
  async #tx<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    this.#check();
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  #check(): void {
    if (this.#closed) throw new SlipwayError('INTERNAL', 'the PostgreSQL metadata store is closed');
  }

  async get(uuid: string): Promise<StoredImage | undefined> {
    this.#check();
    try {
      const res = await this.#pool.query<SelectedRow>(
        `SELECT ${SELECT_COLUMNS} FROM images i WHERE i.uuid = $1`,
        [uuid],
      );
      const row = res.rows[0];
      return row === undefined ? undefined : storedImageFromRow(row);
    } catch (err) {
      throw wrap(err, `read image ${uuid}`);
    }
  }

  async list(filter: ListFilter): Promise<StoredImage[]> {
    this.#check();
    const { sql, params } = listQuery(filter, postgresDialect);
    try {
      const res = await this.#pool.query<SelectedRow>(sql, params);
      return res.rows.map(storedImageFromRow);
    } catch (err) {
      throw wrap(err, 'list images');
    }
  }

  async create(image: StoredImage): Promise<boolean> {
    try {
      const inserted = await this.#tx((client) => insertImages(client, [image]));
      return inserted.has(image.manifest.uuid);
    } catch (err) {
      throw wrap(err, `create image ${image.manifest.uuid}`);
    }
  }

  /** Inserts every image whose uuid is new (revision 1), with multi-row inserts in one transaction; returns how many. */
  async createMany(images: StoredImage[]): Promise<number> {
    try {
      return await this.#tx(async (client) => {
        let count = 0;
        for (let i = 0; i < images.length; i += BULK_BATCH) {
          count += (await insertImages(client, images.slice(i, i + BULK_BATCH))).size;
        }
        return count;
      });
    } catch (err) {
      throw wrap(err, 'create images');
    }
  }

  async update(image: StoredImage, expectedRevision: number): Promise<boolean> {
    const c = imageColumns(image);
    try {
      return await this.#tx(async (client) => {
        // The row lock makes a concurrent update of the same image wait, then see the new revision.
        const res = await client.query(UPDATE_IMAGE, [
          c.uuid,
          expectedRevision,
          ...UPDATE_COLUMNS.map((k) => c[k]),
        ]);
        if (res.rowCount !== 1) return false;
        await client.query('DELETE FROM image_channels WHERE uuid = $1', [c.uuid]);
        await client.query('DELETE FROM image_tags WHERE uuid = $1', [c.uuid]);
        await insertChildren(client, childRows([{ columns: c, image }]));
        return true;
      });
    } catch (err) {
      throw wrap(err, `update image ${c.uuid}`);
    }
  }

  async delete(uuid: string, expectedRevision: number): Promise<boolean> {
    this.#check();
    try {
      // image_channels and image_tags go with it (ON DELETE CASCADE).
      const res = await this.#pool.query('DELETE FROM images WHERE uuid = $1 AND revision = $2', [
        uuid,
        expectedRevision,
      ]);
      return res.rowCount === 1;
    } catch (err) {
      throw wrap(err, `delete image ${uuid}`);
    }
  }

  async dependents(uuid: string, channel?: string): Promise<string[]> {
    this.#check();
    const { sql, params } = dependentsQuery(uuid, channel, postgresDialect);
    try {
      const res = await this.#pool.query<{ uuid: string }>(sql, params);
      return res.rows.map((r) => r.uuid);
    } catch (err) {
      throw wrap(err, `find the dependents of ${uuid}`);
    }
  }

  /** The plan of list(filter) (EXPLAIN ANALYZE), for tests and tuning. */
  async explainList(filter: ListFilter, analyze = false): Promise<string[]> {
    const { sql, params } = listQuery(filter, postgresDialect);
    const res = await this.#pool.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN ${analyze ? '(ANALYZE, BUFFERS) ' : ''}${sql}`,
      params,
    );
    return res.rows.map((r) => r['QUERY PLAN']);
  }

  /** Refreshes the planner's statistics and the visibility map (after a bulk import). */
  async analyze(): Promise<void> {
    this.#check();
    await this.#pool.query('VACUUM (ANALYZE) images, image_channels, image_tags');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'the database';
  }
}
