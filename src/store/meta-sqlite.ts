/**
 * Image metadata in one SQLite file (the default store; better-sqlite3, WAL).
 * Several processes may open the same file: WAL lets readers run beside the
 * one writer, writes wait for each other (busy timeout), and every write is
 * conditional on the revision it read. Schema and list queries: meta-sql.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { fromSystemError, SlipwayError } from '../core/errors.js';
import type { ListFilter, StoredImage } from '../formats/imgapi-types.js';
import {
  channelsOf,
  dependentsQuery,
  imageColumns,
  LIST_COLUMNS,
  listQuery,
  SELECT_COLUMNS,
  type SelectedRow,
  sqliteDialect,
  storedImageFromRow,
  tagsOf,
  type ImageColumns,
} from './meta-sql.js';
import type { MetadataStore } from './types.js';

export interface SqliteMetadataStoreOptions {
  /** The database file (created with its directory when missing), or ':memory:'. */
  file: string;
  /** How long a write waits for another process's write to finish (default 10 s). */
  busyTimeoutMs?: number;
  /** Page cache per connection, MiB (default 64: the list indexes of ~100 000 images stay in memory). */
  cacheMiB?: number;
  /** Memory-mapped reads, MiB of the file (default 256; 0 turns it off). */
  mmapMiB?: number;
}

const LIST_COLUMNS_DDL = `activated INTEGER NOT NULL,
  disabled INTEGER NOT NULL,
  state TEXT NOT NULL,
  public INTEGER NOT NULL,
  type TEXT NOT NULL,
  os TEXT NOT NULL,
  owner TEXT NOT NULL,
  name TEXT NOT NULL,
  version TEXT NOT NULL`;

/** Schema versions in order; PRAGMA user_version says how many have been applied. */
const MIGRATIONS: string[] = [
  `CREATE TABLE images (
  uuid TEXT NOT NULL PRIMARY KEY,
  revision INTEGER NOT NULL,
  published_at TEXT,
  ${LIST_COLUMNS_DDL},
  origin TEXT,
  manifest TEXT NOT NULL,
  file_key TEXT,
  file_md5 TEXT,
  icon_key TEXT,
  icon_content_type TEXT
);
CREATE INDEX images_list ON images (published_at, uuid, ${LIST_COLUMNS.join(', ')});
CREATE INDEX images_origin ON images (origin) WHERE origin IS NOT NULL;
CREATE TABLE image_channels (
  uuid TEXT NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
  channel TEXT NOT NULL,
  published_at TEXT,
  ${LIST_COLUMNS_DDL},
  PRIMARY KEY (uuid, channel)
) WITHOUT ROWID;
CREATE INDEX image_channels_list ON image_channels (channel, published_at, uuid, ${LIST_COLUMNS.join(', ')});
CREATE TABLE image_tags (
  uuid TEXT NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (uuid, key)
) WITHOUT ROWID;
CREATE INDEX image_tags_value ON image_tags (key, value, uuid);`,
];

type Params = (string | number | null)[];

function listValues(c: ImageColumns): Params {
  return [
    c.activated ? 1 : 0,
    c.disabled ? 1 : 0,
    c.state,
    c.public ? 1 : 0,
    c.type,
    c.os,
    c.owner,
    c.name,
    c.version,
  ];
}

/** An image row's values after its uuid, in the column order of the insert and the update. */
function imageValues(c: ImageColumns): Params {
  return [
    c.published_at,
    ...listValues(c),
    c.origin,
    c.manifest,
    c.file_key,
    c.file_md5,
    c.icon_key,
    c.icon_content_type,
  ];
}

/** Rows per write transaction in createMany (other writers get a turn in between). */
const BULK_BATCH = 5000;

export class SqliteMetadataStore implements MetadataStore {
  readonly kind = 'sqlite' as const;
  readonly file: string;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #insertImage: Database.Statement;
  readonly #updateImage: Database.Statement;
  readonly #deleteImage: Database.Statement;
  readonly #insertChannel: Database.Statement;
  readonly #insertTag: Database.Statement;
  readonly #deleteChannels: Database.Statement;
  readonly #deleteTags: Database.Statement;
  readonly #getImage: Database.Statement;
  #closed = false;

  private constructor(file: string, db: Database.Database) {
    this.file = file;
    this.#db = db;
    const cols = ['published_at', ...LIST_COLUMNS];
    this.#insertImage = db.prepare(
      `INSERT INTO images (uuid, revision, ${cols.join(', ')}, origin, manifest, file_key, file_md5, icon_key, icon_content_type)
       VALUES (?, 1, ${cols.map(() => '?').join(', ')}, ?, ?, ?, ?, ?, ?) ON CONFLICT (uuid) DO NOTHING`,
    );
    this.#updateImage = db.prepare(
      `UPDATE images SET revision = revision + 1, ${cols.map((c) => `${c} = ?`).join(', ')},
       origin = ?, manifest = ?, file_key = ?, file_md5 = ?, icon_key = ?, icon_content_type = ?
       WHERE uuid = ? AND revision = ?`,
    );
    this.#deleteImage = db.prepare('DELETE FROM images WHERE uuid = ? AND revision = ?');
    this.#insertChannel = db.prepare(
      `INSERT INTO image_channels (uuid, channel, ${cols.join(', ')}) VALUES (?, ?, ${cols.map(() => '?').join(', ')})`,
    );
    this.#insertTag = db.prepare('INSERT INTO image_tags (uuid, key, value) VALUES (?, ?, ?)');
    this.#deleteChannels = db.prepare('DELETE FROM image_channels WHERE uuid = ?');
    this.#deleteTags = db.prepare('DELETE FROM image_tags WHERE uuid = ?');
    this.#getImage = db.prepare(`SELECT ${SELECT_COLUMNS} FROM images i WHERE i.uuid = ?`);
  }

  static open(options: SqliteMetadataStoreOptions): Promise<SqliteMetadataStore> {
    const file = options.file === ':memory:' ? options.file : path.resolve(options.file);
    if (file !== ':memory:') {
      try {
        fs.mkdirSync(path.dirname(file), { recursive: true });
      } catch (err) {
        return Promise.reject(fromSystemError(err, 'cannot create the directory of', file));
      }
    }
    let db: Database.Database;
    try {
      db = new Database(file, { timeout: options.busyTimeoutMs ?? 10_000 });
    } catch (err) {
      return Promise.reject(
        new SlipwayError('IO', `cannot open the SQLite database '${file}': ${(err as Error).message}`, {
          cause: err,
          where: file,
        }),
      );
    }
    try {
      db.pragma('journal_mode = WAL');
      // WAL + NORMAL: a commit survives a process crash; only an OS crash can lose the last commits.
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma(`cache_size = ${-Math.max(2, Math.floor(options.cacheMiB ?? 64)) * 1024}`);
      db.pragma(`mmap_size = ${Math.max(0, Math.floor(options.mmapMiB ?? 256)) * 1024 * 1024}`);
      migrate(db);
      return Promise.resolve(new SqliteMetadataStore(file, db));
    } catch (err) {
      db.close();
      return Promise.reject(
        new SlipwayError('IO', `cannot prepare the SQLite database '${file}': ${(err as Error).message}`, {
          cause: err,
          where: file,
        }),
      );
    }
  }

  #statement(sql: string): Database.Statement {
    let st = this.#statements.get(sql);
    if (st === undefined) {
      st = this.#db.prepare(sql);
      if (this.#statements.size > 500) this.#statements.clear();
      this.#statements.set(sql, st);
    }
    return st;
  }

  /**
   * Runs the synchronous database work `fn` as a promise: a throw (a closed
   * store, SQLITE_BUSY after the timeout, a full disk) becomes a rejection,
   * wrapped as IO naming the action.
   */
  #run<T>(action: string, fn: () => T): Promise<T> {
    try {
      if (this.#closed) {
        throw new SlipwayError('INTERNAL', `the SQLite metadata store '${this.file}' is closed`);
      }
      return Promise.resolve(fn());
    } catch (err) {
      if (err instanceof SlipwayError) return Promise.reject(err);
      const message = err instanceof Error ? err.message : String(err);
      return Promise.reject(
        new SlipwayError('IO', `SQLite '${this.file}': cannot ${action}: ${message}`, {
          cause: err,
          where: this.file,
        }),
      );
    }
  }

  #insertChildren(c: ImageColumns, image: StoredImage): void {
    const listed = [c.published_at, ...listValues(c)];
    for (const channel of channelsOf(image.manifest)) this.#insertChannel.run(c.uuid, channel, ...listed);
    for (const [key, value] of tagsOf(image.manifest)) this.#insertTag.run(c.uuid, key, value);
  }

  #insertOne(image: StoredImage): boolean {
    const c = imageColumns(image);
    const info = this.#insertImage.run(c.uuid, ...imageValues(c));
    if (info.changes === 0) return false;
    this.#insertChildren(c, image);
    return true;
  }

  get(uuid: string): Promise<StoredImage | undefined> {
    return this.#run(`read image ${uuid}`, () => {
      const row = this.#getImage.get(uuid) as SelectedRow | undefined;
      return row === undefined ? undefined : storedImageFromRow(row);
    });
  }

  list(filter: ListFilter): Promise<StoredImage[]> {
    return this.#run('list images', () => {
      const { sql, params } = listQuery(filter, sqliteDialect);
      const rows = this.#statement(sql).all(...params) as SelectedRow[];
      return rows.map(storedImageFromRow);
    });
  }

  create(image: StoredImage): Promise<boolean> {
    return this.#run(`create image ${image.manifest.uuid}`, () =>
      this.#db.transaction(() => this.#insertOne(image)).immediate(),
    );
  }

  /** Inserts every image whose uuid is new (revision 1), a few thousand per transaction; returns how many. */
  createMany(images: StoredImage[]): Promise<number> {
    return this.#run('create images', () => {
      let inserted = 0;
      const batch = this.#db.transaction((part: StoredImage[]) => {
        for (const image of part) if (this.#insertOne(image)) inserted++;
      });
      for (let i = 0; i < images.length; i += BULK_BATCH) batch.immediate(images.slice(i, i + BULK_BATCH));
      return inserted;
    });
  }

  update(image: StoredImage, expectedRevision: number): Promise<boolean> {
    return this.#run(`update image ${image.manifest.uuid}`, () => {
      const run = this.#db.transaction((): boolean => {
        const c = imageColumns(image);
        const info = this.#updateImage.run(...imageValues(c), c.uuid, expectedRevision);
        if (info.changes === 0) return false;
        this.#deleteChannels.run(c.uuid);
        this.#deleteTags.run(c.uuid);
        this.#insertChildren(c, image);
        return true;
      });
      return run.immediate();
    });
  }

  delete(uuid: string, expectedRevision: number): Promise<boolean> {
    // image_channels and image_tags go with it (ON DELETE CASCADE).
    return this.#run(`delete image ${uuid}`, () => this.#deleteImage.run(uuid, expectedRevision).changes > 0);
  }

  dependents(uuid: string, channel?: string): Promise<string[]> {
    return this.#run(`find the dependents of ${uuid}`, () => {
      const { sql, params } = dependentsQuery(uuid, channel, sqliteDialect);
      const rows = this.#statement(sql).all(...params) as { uuid: string }[];
      return rows.map((r) => r.uuid);
    });
  }

  /** The query plan of list(filter) (EXPLAIN QUERY PLAN), for tests and tuning. */
  explainList(filter: ListFilter): string[] {
    const { sql, params } = listQuery(filter, sqliteDialect);
    const rows = this.#db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
    return rows.map((r) => r.detail);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#statements.clear();
      this.#db.close();
    }
    return Promise.resolve();
  }
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new SlipwayError(
      'IO',
      `the database has schema version ${current}, newer than this Slipway knows (${MIGRATIONS.length})`,
    );
  }
  if (current === MIGRATIONS.length) return;
  db.transaction(() => {
    // Re-read inside the write lock: another process may have migrated meanwhile.
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v] ?? '');
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}
