/**
 * File digests remembered by (size, mtime, inode): a no-op rebuild stats its
 * inputs but never re-reads an unchanged large file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import { sha256FileSync } from '../core/digest.js';

interface Entry {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

export class DigestCache {
  readonly #file: string;
  #entries: Record<string, Entry> = {};
  #dirty = false;
  hashed = 0;

  constructor(file: string) {
    this.#file = file;
    try {
      const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      if (typeof parsed === 'object' && parsed !== null) this.#entries = parsed as Record<string, Entry>;
    } catch {
      // missing or unreadable: start empty (it is only a cache)
    }
  }

  /** sha256 of a file whose stat we already have. */
  digest(file: string, st: { size: number; mtimeMs: number; ino: number }): string {
    const key = path.resolve(file);
    const e = this.#entries[key];
    if (e?.size === st.size && e.mtimeMs === st.mtimeMs && e.ino === st.ino) return e.sha256;
    const sha256 = sha256FileSync(file);
    this.hashed++;
    this.#entries[key] = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256 };
    this.#dirty = true;
    return sha256;
  }

  /** Records a digest computed elsewhere (while the file was being archived). */
  remember(file: string, st: { size: number; mtimeMs: number; ino: number }, sha256: string): void {
    this.#entries[path.resolve(file)] = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256 };
    this.#dirty = true;
  }

  async save(): Promise<void> {
    if (!this.#dirty) return;
    fs.mkdirSync(path.dirname(this.#file), { recursive: true });
    await writeFileAtomic(this.#file, JSON.stringify(this.#entries));
    this.#dirty = false;
  }
}
