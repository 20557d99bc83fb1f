import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';

/** A fresh temp directory removed after the test file finishes. */
export function tempDir(prefix = 'slipway-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Writes a tree: { 'a/b.txt': 'text', 'bin/x': { data: '…', mode: 0o755 }, 'link': { symlink: 'target' } }. */
export type TreeSpec = Record<
  string,
  string | Buffer | { data: string | Buffer; mode: number } | { symlink: string } | { dir: true }
>;

export function writeTree(root: string, spec: TreeSpec): void {
  for (const [rel, v] of Object.entries(spec)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof v === 'string' || Buffer.isBuffer(v)) fs.writeFileSync(p, v, { mode: 0o644 });
    else if ('symlink' in v) fs.symlinkSync(v.symlink, p);
    else if ('dir' in v) fs.mkdirSync(p, { recursive: true });
    else {
      fs.writeFileSync(p, v.data);
      fs.chmodSync(p, v.mode);
    }
  }
}

/** A snapshot of everything under a directory: path → kind/mode/content or link target. */
export function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, rel: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(p, r);
      } else if (st.isSymbolicLink()) out[r] = `symlink -> ${fs.readlinkSync(p)}`;
      else if (st.isFile()) out[r] = `file ${mode} ${fs.readFileSync(p).toString('base64')}`;
      else out[r] = 'other';
    }
  };
  walk(root, '');
  return out;
}
