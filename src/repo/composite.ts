/**
 * Composite artifacts (specs/tuf-repo.md): gzip tarballs in ustar format,
 * every entry root-owned with mode 0444, oxide.json first — as tufaceous'
 * CompositeTarballBuilder writes them. Also the fake zone images a fake
 * control-plane zone becomes (a `t=layer` image with pkg and version).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { fileChunks, writeTarOutput, type WriteTarResult } from '../archive/tar-write.js';
import { fromSystemError } from '../core/errors.js';
import { encodeOmicronOxideJson, encodeOxideJson } from '../formats/oxide-json.js';
import { deterministicHeader, encodeHeader, paddingFor } from '../formats/tar.js';
import { fakeChunks } from './fake.js';

export type CompositeType = 'os' | 'rot' | 'control_plane';

/** One member file: its size is known before its bytes are read. */
export interface Member {
  name: string;
  size: number;
  chunks(): Iterable<Buffer>;
}

export function fileMember(name: string, file: string): Member {
  let size: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
    size = st.size;
  } catch (err) {
    throw fromSystemError(err, 'cannot read', file);
  }
  return { name, size, chunks: () => fileChunks(file, size) };
}

export function fakeMember(name: string, seed: string, size: number): Member {
  return { name, size, chunks: () => fakeChunks(seed, size) };
}

export function memoryMember(name: string, data: Buffer): Member {
  return { name, size: data.length, chunks: () => [data] };
}

function ustarEntry(name: string, size: number, mtime: number): Buffer {
  return encodeHeader(
    deterministicHeader(name, 'file', { mode: 0o444, size, mtime, uname: 'root', gname: 'root' }),
    { format: 'ustar', deviceFields: false },
  );
}

function* tarOf(members: readonly Member[], mtime: number, hashes: string[]): Generator<Buffer> {
  for (const m of members) {
    yield ustarEntry(m.name, m.size, mtime);
    let n = 0;
    const h = createHash('sha256');
    for (const c of m.chunks()) {
      n += c.length;
      h.update(c);
      yield c;
    }
    hashes.push(h.digest('hex'));
    if (n !== m.size) {
      throw fromSystemError(
        Object.assign(new Error(`changed while being read (${n} bytes, expected ${m.size})`), {
          code: 'EIO',
        }),
        'cannot read',
        m.name,
      );
    }
    const pad = paddingFor(m.size);
    if (pad.length > 0) yield pad;
  }
}

export interface CompositeResult extends WriteTarResult {
  /** sha256 of each member in archive order (oxide.json first). */
  memberSha256: string[];
}

/** Writes a composite tarball atomically; its sha256 and its members' come from the same pass. */
export async function writeComposite(
  output: string,
  type: CompositeType,
  members: readonly Member[],
  options: { mtime: number; level?: number },
): Promise<CompositeResult> {
  const all = [memoryMember('oxide.json', encodeOxideJson({ v: '1', t: type })), ...members];
  const memberSha256: string[] = [];
  const r = await writeTarOutput(output, () => tarOf(all, options.mtime, memberSha256), {
    gzip: { level: options.level ?? 6 },
  });
  return { ...r, memberSha256 };
}

/** A fake zone image: oxide.json (t=layer, pkg, version), `root/`, and `size` bytes of filler. */
export function writeFakeZone(
  output: string,
  pkg: string,
  version: string,
  size: number,
): Promise<WriteTarResult> {
  function* entries(): Generator<Buffer> {
    const json = encodeOmicronOxideJson('layer', pkg, version);
    yield encodeHeader(deterministicHeader('oxide.json', 'file', { size: json.length }));
    yield json;
    yield paddingFor(json.length);
    yield encodeHeader(deterministicHeader('root', 'directory'));
    const name = `root/fake-${pkg}.bin`;
    yield encodeHeader(deterministicHeader(name, 'file', { size }));
    yield* fakeChunks(`slipway fake zone ${pkg} ${version}`, size);
    yield paddingFor(size);
  }
  return writeTarOutput(output, entries, { gzip: { level: 6 } });
}
