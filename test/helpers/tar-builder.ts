/**
 * Builds tar archives byte by byte for tests, including hostile ones: the
 * headers are laid out here from the format's published offsets (name 0,
 * mode 100, uid 108, gid 116, size 124, mtime 136, chksum 148, typeflag 156,
 * linkname 157, magic 257, version 263, uname 265, gname 297), not with
 * Slipway's encoder.
 */
import { gzipSync } from 'node:zlib';

export interface RawEntry {
  name: string;
  type?: string; // typeflag character, default '0'
  data?: Buffer | string;
  /** Declared size when it should differ from data's length. */
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  /** 'gnu' (default) or 'ustar'. */
  magic?: 'gnu' | 'ustar';
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

export function rawHeader(e: RawEntry): Buffer {
  const h = Buffer.alloc(512);
  const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
  h.write(e.name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(e.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(e.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(e.size ?? data.length, 12), 124, 'latin1');
  h.write(octal(1153704088, 12), 136, 'latin1');
  h.write(e.type ?? '0', 156, 'latin1');
  if (e.linkname !== undefined) h.write(e.linkname, 157, 100, 'utf8');
  if (e.magic === 'ustar') h.write('ustar\x0000', 257, 'latin1');
  else h.write('ustar  \0', 257, 'latin1');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

/** A GNU long-name record ('L') followed by the entry. */
export function longName(name: string): RawEntry[] {
  return [{ name: '././@LongLink', type: 'L', data: Buffer.concat([Buffer.from(name), Buffer.alloc(1)]) }];
}

export function rawTar(entries: RawEntry[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
    parts.push(rawHeader(e), data, pad(data.length));
  }
  if (options.end ?? true) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const LAYER_JSON = '{"v":"1","t":"layer","pkg":"test","version":"0.0.0"}';
export const BASELINE_JSON = '{"v":"1","t":"baseline"}';

/** A gzip'd layer: oxide.json first, then the given entries. */
export function rawLayer(entries: RawEntry[], oxide = LAYER_JSON): Buffer {
  return gzipSync(rawTar([{ name: 'oxide.json', data: oxide }, ...entries]));
}
