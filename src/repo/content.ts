/**
 * What an artifact of each kind must contain (Omicron's upload rules,
 * specs/tuf-repo.md §5): host and trampoline archives are `t=os` with
 * `image/zfs.img` and a phase-1 ROM, RoT archives `t=rot` with both
 * archives, and every control-plane zone is a `t=layer` image with `pkg` and
 * `version`. Checked while the artifact streams past (its hash is computed
 * in the same pass), so a multi-GiB host image is read once.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { readTarStream, type ReadTarStreamResult } from '../archive/tar-read.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { OXIDE_JSON_MAX_BYTES, parseOxideJson, type OxideJson } from '../formats/oxide-json.js';
import { TarParser, type TarEntryInfo, type TarHandler } from '../formats/tar.js';

/** oxide.json is the first entry of every image, so this much of the gzip stream always holds it. */
const PREFIX_BYTES = 64 * 1024;

function contentError(message: string, where: string): SlipwayError {
  return new SlipwayError('REPO_ARTIFACT_CONTENT', message, { where });
}

/**
 * The oxide.json at the start of a gzip-compressed image, from the first
 * bytes of the file only (a cut gzip stream inflates as far as it goes).
 */
export function oxideJsonFromPrefix(prefix: Buffer, where: string): OxideJson {
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(prefix, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  } catch {
    throw contentError('not a gzip-compressed image', where);
  }
  // Filled by the parser's callbacks.
  const seen: { first?: TarEntryInfo; done: boolean } = { done: false };
  const chunks: Buffer[] = [];
  const parser = new TarParser({
    entry(e) {
      seen.first ??= e;
    },
    data(c) {
      if (!seen.done) chunks.push(Buffer.from(c));
    },
    entryEnd() {
      seen.done = true;
    },
  });
  try {
    parser.push(tar);
  } catch (err) {
    throw contentError(`not a valid image: ${(err as Error).message}`, where);
  }
  const first = seen.first;
  if (first?.path !== 'oxide.json' || first.type !== 'file' || !seen.done) {
    throw contentError('oxide.json is not the first entry', where);
  }
  if (first.size > OXIDE_JSON_MAX_BYTES) throw contentError('oxide.json is too large', where);
  try {
    return parseOxideJson(Buffer.concat(chunks), `${where}: oxide.json`);
  } catch (err) {
    throw contentError((err as Error).message, where);
  }
}

export function checkZoneIdentity(oxide: OxideJson, where: string): { pkg: string; version: string } {
  if (oxide.t !== 'layer')
    throw contentError(`a zone must be a layer image (t=layer), found t=${oxide.t}`, where);
  if (oxide.pkg === undefined || oxide.version === undefined) {
    throw contentError('a zone image must name its pkg and version in oxide.json', where);
  }
  return { pkg: oxide.pkg, version: oxide.version };
}

/** Reads only the first 64 KiB of a zone image file. */
export async function readZoneIdentity(
  file: string,
  where: string,
): Promise<{ pkg: string; version: string }> {
  let prefix: Buffer;
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const buf = Buffer.alloc(PREFIX_BYTES);
      const { bytesRead } = await fh.read(buf, 0, PREFIX_BYTES, 0);
      prefix = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fromSystemError(err, 'cannot read', file);
  }
  return checkZoneIdentity(oxideJsonFromPrefix(prefix, where), where);
}

export interface CompositeContent {
  oxide: OxideJson;
  files: string[];
  zones: { file: string; pkg: string; version: string }[];
}

/**
 * A TarHandler that records a composite's oxide.json, its file names and,
 * for each `zones/` member, the zone's identity (from the member's first
 * 64 KiB); `finish(kind)` applies the kind's rules.
 */
export class CompositeChecker implements TarHandler {
  readonly files: string[] = [];
  readonly zones: { file: string; pkg: string; version: string }[] = [];
  #oxide: OxideJson | undefined;
  #current: TarEntryInfo | undefined;
  #chunks: Buffer[] = [];
  #kept = 0;

  constructor(readonly where: string) {}

  entry(e: TarEntryInfo): void {
    if (e.index === 0 && e.path !== 'oxide.json')
      throw contentError('oxide.json is not the first entry', this.where);
    if (e.type !== 'file') throw contentError(`${e.path}: a composite holds regular files only`, this.where);
    this.#current = e;
    this.#chunks = [];
    this.#kept = 0;
    if (e.index > 0) this.files.push(e.path);
  }

  data(chunk: Buffer): void {
    const e = this.#current;
    if (e === undefined) return;
    const wanted =
      e.path === 'oxide.json' ? OXIDE_JSON_MAX_BYTES : e.path.startsWith('zones/') ? PREFIX_BYTES : 0;
    if (this.#kept >= wanted) return;
    const part = chunk.subarray(0, wanted - this.#kept);
    this.#chunks.push(Buffer.from(part));
    this.#kept += part.length;
  }

  entryEnd(): void {
    const e = this.#current;
    if (e === undefined) return;
    const data = Buffer.concat(this.#chunks);
    if (e.path === 'oxide.json') {
      try {
        this.#oxide = parseOxideJson(data, `${this.where}: oxide.json`);
      } catch (err) {
        throw contentError((err as Error).message, this.where);
      }
    } else if (e.path.startsWith('zones/')) {
      const where = `${this.where}: ${e.path}`;
      this.zones.push({ file: e.path, ...checkZoneIdentity(oxideJsonFromPrefix(data, where), where) });
    }
    this.#current = undefined;
  }

  /** Applies the rules of `kind` to what was seen. */
  finish(kind: string): CompositeContent {
    const oxide = this.#oxide;
    if (oxide === undefined) throw contentError('no oxide.json: not a composite archive', this.where);
    const has = (f: string): boolean => this.files.includes(f);
    const expect = (t: OxideJson['t']): void => {
      if (oxide.t !== t)
        throw contentError(`a ${kind} artifact must be t=${t}, found t=${oxide.t}`, this.where);
    };
    if (kind === 'host' || kind === 'trampoline') {
      expect('os');
      if (!has('image/zfs.img')) throw contentError(`a ${kind} archive must hold image/zfs.img`, this.where);
      if (!['image/gimlet.rom', 'image/cosmo.rom', 'image/rom'].some(has)) {
        throw contentError(
          `a ${kind} archive must hold a phase-1 image (image/gimlet.rom or image/cosmo.rom)`,
          this.where,
        );
      }
    } else if (kind.endsWith('_rot')) {
      expect('rot');
      for (const f of ['archive-a.zip', 'archive-b.zip']) {
        if (!has(f)) throw contentError(`an RoT archive must hold ${f}`, this.where);
      }
    } else if (kind === 'control_plane') {
      expect('control_plane');
      const bad = this.files.find((f) => !f.startsWith('zones/'));
      if (bad !== undefined)
        throw contentError(`${bad}: a control-plane archive holds only zones/`, this.where);
      if (this.zones.length === 0)
        throw contentError('a control-plane archive must hold at least one zone', this.where);
    }
    return { oxide, files: this.files, zones: this.zones };
  }
}

/** Kinds whose targets are composite archives checked by CompositeChecker. */
export function isCompositeKind(kind: string): boolean {
  return kind === 'host' || kind === 'trampoline' || kind === 'control_plane' || kind.endsWith('_rot');
}

/**
 * Streams a composite once: its sha256 and size, and its content checked
 * against `kind`'s rules. A host image's headers all precede the phase-2
 * image's data, so after them the rest is only hashed.
 */
export async function checkCompositeStream(
  source: AsyncIterable<Buffer>,
  kind: string,
  where: string,
): Promise<ReadTarStreamResult & { content: CompositeContent }> {
  const checker = new CompositeChecker(where);
  const hostLike = kind === 'host' || kind === 'trampoline';
  const r = await readTarStream(source, checker, {
    where,
    ...(hostLike
      ? {
          enough: () =>
            checker.files.includes('image/zfs.img') &&
            ['image/gimlet.rom', 'image/cosmo.rom', 'image/rom'].some((f) => checker.files.includes(f)),
        }
      : {}),
  });
  return { ...r, content: checker.finish(kind) };
}

/** checkCompositeStream over a file. */
export async function checkCompositeFile(
  file: string,
  kind: string,
  where: string,
): Promise<CompositeContent> {
  async function* read(): AsyncGenerator<Buffer> {
    try {
      for await (const c of fs.createReadStream(file, { highWaterMark: 1 << 20 })) yield c as Buffer;
    } catch (err) {
      throw fromSystemError(err, 'cannot read', file);
    }
  }
  return (await checkCompositeStream(read(), kind, where)).content;
}
