/**
 * Tar headers and a streaming tar parser: pure code over bytes (no fs).
 *
 * Written by hand on purpose: we must reproduce, byte for byte, the GNU-style
 * headers that Rust's `tar` crate writes in `HeaderMode::Deterministic` (what
 * omicron-package produces), and read hostile archives with every field
 * checked and every size capped — neither of which tar-stream offers.
 */
import { SlipwayError } from '../core/errors.js';

export const BLOCK = 512;
/** omicron-package's (the Rust tar crate's) deterministic mtime. */
export const DETERMINISTIC_MTIME = 1153704088;

export type TarEntryType =
  'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo' | 'other';

export interface TarHeader {
  path: string;
  type: TarEntryType;
  /** The raw typeflag byte as a character ('0', '5', 'S', …). */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

const TYPE_BY_FLAG: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: a regular file everywhere that matters
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};

const FLAG_BY_TYPE: Partial<Record<TarEntryType, string>> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

// ---------------------------------------------------------------- encoding

/** Octal digits right-aligned, zero-filled, NUL-terminated: the Rust tar crate's `octal_into`. */
function octalInto(block: Buffer, offset: number, width: number, value: number): void {
  const digits = value.toString(8);
  const text = digits.padStart(width - 1, '0');
  block.write(text.slice(text.length - (width - 1)), offset, 'latin1');
  block[offset + width - 1] = 0;
}

/** Octal when it fits, else GNU base-256 (the tar crate's `num_field_wrapper_into`). */
function numberInto(block: Buffer, offset: number, width: number, value: number): void {
  if (value >= 8589934592 || (value >= 2097152 && width === 8)) {
    block.fill(0, offset, offset + width);
    let v = BigInt(value);
    for (let i = offset + width - 1; i >= offset + width - 8; i--) {
      block[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    block[offset] = (block[offset] ?? 0) | 0x80;
  } else {
    octalInto(block, offset, width, value);
  }
}

function checksumOf(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum;
}

function signedChecksumOf(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    sum += b > 127 ? b - 256 : b;
  }
  return sum;
}

function gnuHeader(): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write('ustar ', 257, 'latin1');
  h.write(' \0', 263, 'latin1');
  return h;
}

function finishChecksum(h: Buffer): Buffer {
  octalInto(h, 148, 8, checksumOf(h));
  return h;
}

/** The GNU `././@LongLink` header the tar crate emits for a name or link name over 100 bytes. */
function longLinkHeader(kind: 'L' | 'K', length: number): Buffer {
  const h = gnuHeader();
  h.write('././@LongLink', 0, 'latin1');
  octalInto(h, 100, 8, 0o644);
  numberInto(h, 108, 8, 0);
  numberInto(h, 116, 8, 0);
  numberInto(h, 136, 12, 0);
  numberInto(h, 124, 12, length + 1); // +1: the NUL, as GNU tar does
  h.write(kind, 156, 'latin1');
  return finishChecksum(h);
}

function padded(data: Buffer): Buffer {
  const rem = data.length % BLOCK;
  return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rem)]);
}

export interface EncodeOptions {
  /** Write "0000000\0" device fields (the tar crate fills them for entries made from fs metadata). */
  deviceFields?: boolean;
  /**
   * 'gnu' (default) is the crate's `Header::new_gnu()`; 'ustar' is
   * `Header::new_ustar()` (magic "ustar\0", version "00"; a long name is split
   * into the 155-byte prefix field and the 100-byte name field at a '/').
   */
  format?: 'gnu' | 'ustar';
}

function ustarHeader(): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  return h;
}

/** Splits a name for the ustar prefix/name fields, as the tar crate's set_path does. */
function ustarSplit(name: Buffer, path: string): [prefix: Buffer, rest: Buffer] {
  if (name.length <= 100) return [EMPTY, name];
  for (let i = Math.min(name.length - 1, 155); i > 0; i--) {
    if (name[i] === 0x2f && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return [name.subarray(0, i), name.subarray(i + 1)];
    }
  }
  throw new SlipwayError('TAR_NAME_TOO_LONG', `path too long for a ustar header: ${JSON.stringify(path)}`);
}

/**
 * Encodes one entry's header blocks (GNU long-name/long-link records first
 * when needed), exactly as the Rust tar crate does. The caller writes the
 * entry's data and `paddingFor(size)` after it.
 */
export function encodeHeader(h: TarHeader, options: EncodeOptions = {}): Buffer {
  const name = Buffer.from(h.path, 'utf8');
  const link = Buffer.from(h.linkname, 'utf8');
  if (name.includes(0) || link.includes(0)) {
    throw new SlipwayError('INVALID_ARGUMENT', `tar path contains a NUL byte: ${JSON.stringify(h.path)}`);
  }
  const parts: Buffer[] = [];
  const ustar = options.format === 'ustar';
  const header = ustar ? ustarHeader() : gnuHeader();
  if (ustar) {
    if (link.length > 100) throw new SlipwayError('TAR_NAME_TOO_LONG', `link too long for a ustar header`);
    const [prefix, rest] = ustarSplit(name, h.path);
    rest.copy(header, 0);
    prefix.copy(header, 345);
  } else if (name.length > 100) {
    parts.push(longLinkHeader('L', name.length), padded(Buffer.concat([name, Buffer.alloc(1)])));
    // The crate keeps the first 100 bytes (cut at a UTF-8 boundary) in the header itself.
    let cut = 100;
    while (cut > 0 && ((name[cut] ?? 0) & 0xc0) === 0x80) cut--;
    name.copy(header, 0, 0, cut);
  } else {
    name.copy(header, 0);
  }
  octalInto(header, 100, 8, h.mode);
  numberInto(header, 108, 8, h.uid);
  numberInto(header, 116, 8, h.gid);
  numberInto(header, 124, 12, h.size);
  numberInto(header, 136, 12, h.mtime);
  const flag = FLAG_BY_TYPE[h.type] ?? h.typeflag;
  header.write(flag, 156, 'latin1');
  if (link.length > 100 && !ustar) {
    parts.push(longLinkHeader('K', link.length), padded(Buffer.concat([link, Buffer.alloc(1)])));
  } else {
    link.copy(header, 157);
  }
  header.write(h.uname.slice(0, 32), 265, 'utf8');
  header.write(h.gname.slice(0, 32), 297, 'utf8');
  if (options.deviceFields ?? true) {
    octalInto(header, 329, 8, h.devmajor);
    octalInto(header, 337, 8, h.devminor);
  }
  parts.push(finishChecksum(header));
  return parts.length === 1 ? header : Buffer.concat(parts);
}

/** Zero bytes that round an entry's data up to a whole block. */
export function paddingFor(size: number): Buffer {
  const rem = size % BLOCK;
  return rem === 0 ? EMPTY : Buffer.alloc(BLOCK - rem);
}
const EMPTY = Buffer.alloc(0);

/** Two zero blocks: the end-of-archive marker (the tar crate writes no record padding). */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

/** A header with the deterministic defaults of omicron-package (uid/gid 0, fixed mtime, no names). */
export function deterministicHeader(
  path: string,
  type: TarEntryType,
  fields: Partial<Omit<TarHeader, 'path' | 'type'>> = {},
): TarHeader {
  return {
    path,
    type,
    typeflag: FLAG_BY_TYPE[type] ?? '0',
    mode: type === 'directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: DETERMINISTIC_MTIME,
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
    ...fields,
  };
}

// ---------------------------------------------------------------- decoding

const utf8 = new TextDecoder('utf-8', { fatal: true });

function cString(block: Uint8Array, offset: number, width: number): Uint8Array {
  const field = block.subarray(offset, offset + width);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

function decodeText(bytes: Uint8Array, field: string, where: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new SlipwayError('TAR_HEADER_INVALID', `${field} is not valid UTF-8`, { where });
  }
}

function parseNumber(block: Uint8Array, offset: number, width: number, field: string, where: string): number {
  const first = block[offset] ?? 0;
  if (first & 0x80) {
    if (first === 0xff) throw new SlipwayError('TAR_HEADER_INVALID', `negative ${field}`, { where });
    let v = BigInt(first & 0x7f);
    for (let i = offset + 1; i < offset + width; i++) v = (v << 8n) | BigInt(block[i] ?? 0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new SlipwayError('TAR_HEADER_INVALID', `${field} is too large`, { where });
    }
    return Number(v);
  }
  let text = '';
  for (let i = offset; i < offset + width; i++) {
    const c = block[i] ?? 0;
    if (c === 0) break;
    text += String.fromCharCode(c);
  }
  text = text.trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) {
    throw new SlipwayError('TAR_HEADER_INVALID', `${field} is not an octal number: ${JSON.stringify(text)}`, {
      where,
    });
  }
  return parseInt(text, 8);
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

export interface TarLimits {
  /** Entries (files, dirs, links; not long-name records). */
  maxEntries: number;
  /** Bytes of one entry's data. */
  maxEntrySize: number;
  /** Bytes of all entries' data together. */
  maxTotalSize: number;
  /** Bytes of a path or link name (long-name records included). */
  maxNameLength: number;
  /** Bytes of a pax extended header. */
  maxPaxSize: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = {
  maxEntries: 65_536,
  maxEntrySize: 64 * 1024 ** 3,
  maxTotalSize: 256 * 1024 ** 3,
  maxNameLength: 4096,
  maxPaxSize: 1024 * 1024,
};

export interface TarEntryInfo extends TarHeader {
  /** 0-based position among real entries. */
  index: number;
  /** Byte offset of the entry's (first) header in the tar stream. */
  offset: number;
}

export interface TarHandler {
  entry(entry: TarEntryInfo): void;
  /** A piece of the current entry's data (a view into the input: copy it to keep it). */
  data(chunk: Buffer): void;
  entryEnd(): void;
}

type State = 'header' | 'data' | 'padding' | 'meta' | 'end';

/**
 * A push parser: feed chunks with `push`, then call `end`. Calls the handler
 * synchronously; throws SlipwayError on the first bad byte. Checks every
 * header (checksum, magic, numbers, names) and enforces `limits`.
 */
export class TarParser {
  readonly #limits: TarLimits;
  readonly #handler: TarHandler;
  #state: State = 'header';
  #pending: Buffer[] = [];
  #pendingLength = 0;
  #remaining = 0; // bytes of data or padding left in the current state
  #position = 0; // bytes consumed so far
  #entries = 0;
  #total = 0;
  #zeroBlocks = 0;
  #entryOffset = -1;
  // extended metadata for the next real entry
  #longName: string | undefined;
  #longLink: string | undefined;
  #pax: Record<string, string> = {};
  #metaKind = '';
  #metaBuffer: Buffer[] = [];
  #afterData: State = 'header';

  constructor(handler: TarHandler, limits: Partial<TarLimits> = {}) {
    this.#handler = handler;
    this.#limits = { ...DEFAULT_TAR_LIMITS, ...limits };
  }

  get entries(): number {
    return this.#entries;
  }

  get bytesConsumed(): number {
    return this.#position;
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      switch (this.#state) {
        case 'end':
          // Past the end marker: only zero padding (tar record padding) may follow.
          for (let i = off; i < chunk.length; i++) {
            if (chunk[i] !== 0) {
              throw new SlipwayError('TAR_HEADER_INVALID', 'data after the end-of-archive marker', {
                where: `offset ${this.#position + (i - off)}`,
              });
            }
          }
          this.#position += chunk.length - off;
          return;
        case 'data': {
          const n = Math.min(this.#remaining, chunk.length - off);
          if (n > 0) this.#handler.data(chunk.subarray(off, off + n));
          off += n;
          this.#position += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#startPadding();
          break;
        }
        case 'meta': {
          const n = Math.min(this.#remaining, chunk.length - off);
          this.#metaBuffer.push(chunk.subarray(off, off + n));
          off += n;
          this.#position += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            this.#finishMeta();
            this.#startPadding();
          }
          break;
        }
        case 'padding': {
          const n = Math.min(this.#remaining, chunk.length - off);
          off += n;
          this.#position += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = 'header';
          break;
        }
        case 'header': {
          const need = BLOCK - this.#pendingLength;
          const avail = chunk.length - off;
          if (this.#pendingLength === 0 && avail >= BLOCK) {
            const block = chunk.subarray(off, off + BLOCK);
            off += BLOCK;
            this.#header(block);
          } else {
            const n = Math.min(need, avail);
            this.#pending.push(chunk.subarray(off, off + n));
            this.#pendingLength += n;
            off += n;
            if (this.#pendingLength === BLOCK) {
              const block = Buffer.concat(this.#pending);
              this.#pending = [];
              this.#pendingLength = 0;
              this.#header(block);
            }
          }
          break;
        }
      }
    }
  }

  /** The input is complete: anything unfinished is a truncated archive. */
  end(): void {
    if (this.#state === 'end') return;
    const what =
      this.#state === 'data'
        ? `entry data is cut short (${this.#remaining} bytes missing)`
        : this.#state === 'header' && this.#pendingLength === 0 && this.#zeroBlocks === 0
          ? 'the end-of-archive marker is missing'
          : this.#state === 'header' && this.#zeroBlocks === 1 && this.#pendingLength === 0
            ? 'the end-of-archive marker is incomplete'
            : 'the archive ends in the middle of a block';
    throw new SlipwayError('TAR_TRUNCATED', `truncated tar: ${what}`, { where: `offset ${this.#position}` });
  }

  #startPadding(): void {
    const rem = this.#dataSizeForPadding % BLOCK;
    if (this.#state === 'data') this.#handler.entryEnd();
    if (rem === 0) {
      this.#state = this.#afterData;
    } else {
      this.#state = 'padding';
      this.#remaining = BLOCK - rem;
    }
  }

  #dataSizeForPadding = 0;

  #header(block: Buffer): void {
    const at = this.#position;
    this.#position += BLOCK;
    if (isZeroBlock(block)) {
      this.#zeroBlocks++;
      if (this.#zeroBlocks === 2) this.#state = 'end';
      return;
    }
    const where = `offset ${at}`;
    if (this.#zeroBlocks > 0) {
      throw new SlipwayError('TAR_HEADER_INVALID', 'a lone zero block in the middle of the archive', {
        where,
      });
    }
    const stored = parseNumber(block, 148, 8, 'checksum', where);
    if (stored !== checksumOf(block) && stored !== signedChecksumOf(block)) {
      throw new SlipwayError('TAR_HEADER_INVALID', 'header checksum mismatch', { where });
    }
    const magic = block.toString('latin1', 257, 263);
    const ustar = magic === 'ustar\0';
    if (!ustar && magic !== 'ustar ' && magic !== '\0\0\0\0\0\0') {
      throw new SlipwayError('TAR_HEADER_INVALID', `unknown header magic ${JSON.stringify(magic)}`, {
        where,
      });
    }
    const typeflag = String.fromCharCode(block[156] ?? 0);
    const size = parseNumber(block, 124, 12, 'size', where);

    if (typeflag === 'L' || typeflag === 'K' || typeflag === 'x' || typeflag === 'g') {
      const cap =
        typeflag === 'x' || typeflag === 'g' ? this.#limits.maxPaxSize : this.#limits.maxNameLength + 1;
      if (size > cap) {
        throw new SlipwayError(
          typeflag === 'L' || typeflag === 'K' ? 'TAR_NAME_TOO_LONG' : 'TAR_HEADER_INVALID',
          typeflag === 'L' || typeflag === 'K'
            ? `a long ${typeflag === 'L' ? 'name' : 'link name'} of ${size} bytes exceeds the ${this.#limits.maxNameLength}-byte limit`
            : `a pax header of ${size} bytes exceeds the ${cap}-byte limit`,
          { where },
        );
      }
      if (this.#entryOffset === -1) this.#entryOffset = at;
      this.#metaKind = typeflag;
      this.#metaBuffer = [];
      this.#dataSizeForPadding = size;
      this.#afterData = 'header';
      if (size === 0) {
        this.#finishMeta();
        this.#state = 'header';
      } else {
        this.#state = 'meta';
        this.#remaining = size;
      }
      return;
    }

    let path: string;
    if (this.#pax.path !== undefined) path = this.#pax.path;
    else if (this.#longName !== undefined) path = this.#longName;
    else {
      const name = decodeText(cString(block, 0, 100), 'name', where);
      const prefix = ustar ? decodeText(cString(block, 345, 155), 'prefix', where) : '';
      path = prefix === '' ? name : `${prefix}/${name}`;
    }
    const linkname =
      this.#pax.linkpath ?? this.#longLink ?? decodeText(cString(block, 157, 100), 'link name', where);
    if (path === '') throw new SlipwayError('TAR_HEADER_INVALID', 'entry with an empty name', { where });
    if (
      Buffer.byteLength(path) > this.#limits.maxNameLength ||
      Buffer.byteLength(linkname) > this.#limits.maxNameLength
    ) {
      throw new SlipwayError('TAR_NAME_TOO_LONG', `name longer than ${this.#limits.maxNameLength} bytes`, {
        where,
      });
    }
    const paxSize = this.#pax.size;
    const entrySize = paxSize !== undefined ? this.#paxNumber('size', paxSize, where) : size;
    const type = TYPE_BY_FLAG[typeflag] ?? 'other';
    const header: TarEntryInfo = {
      path,
      type,
      typeflag,
      mode: parseNumber(block, 100, 8, 'mode', where),
      uid:
        this.#pax.uid !== undefined
          ? this.#paxNumber('uid', this.#pax.uid, where)
          : parseNumber(block, 108, 8, 'uid', where),
      gid:
        this.#pax.gid !== undefined
          ? this.#paxNumber('gid', this.#pax.gid, where)
          : parseNumber(block, 116, 8, 'gid', where),
      size: entrySize,
      mtime: parseNumber(block, 136, 12, 'mtime', where),
      linkname,
      uname: decodeText(cString(block, 265, 32), 'user name', where),
      gname: decodeText(cString(block, 297, 32), 'group name', where),
      devmajor: type === 'char' || type === 'block' ? parseNumber(block, 329, 8, 'devmajor', where) : 0,
      devminor: type === 'char' || type === 'block' ? parseNumber(block, 337, 8, 'devminor', where) : 0,
      index: this.#entries,
      offset: this.#entryOffset === -1 ? at : this.#entryOffset,
    };
    this.#longName = undefined;
    this.#longLink = undefined;
    this.#pax = {};
    this.#entryOffset = -1;

    this.#entries++;
    if (this.#entries > this.#limits.maxEntries) {
      throw new SlipwayError('TAR_TOO_MANY_ENTRIES', `more than ${this.#limits.maxEntries} entries`, {
        where,
      });
    }
    if (entrySize > this.#limits.maxEntrySize) {
      throw new SlipwayError(
        'TAR_ENTRY_TOO_LARGE',
        `entry '${path}' declares ${entrySize} bytes, over the ${this.#limits.maxEntrySize}-byte limit`,
        { where },
      );
    }
    this.#total += entrySize;
    if (this.#total > this.#limits.maxTotalSize) {
      throw new SlipwayError(
        'TAR_TOO_LARGE',
        `archive data exceeds the ${this.#limits.maxTotalSize}-byte limit`,
        {
          where,
        },
      );
    }
    this.#handler.entry(header);
    this.#dataSizeForPadding = entrySize;
    this.#afterData = 'header';
    if (entrySize === 0) {
      this.#handler.entryEnd();
      this.#state = 'header';
    } else {
      this.#state = 'data';
      this.#remaining = entrySize;
    }
  }

  #paxNumber(key: string, value: string, where: string): number {
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new SlipwayError('TAR_HEADER_INVALID', `pax ${key} is not a number: ${JSON.stringify(value)}`, {
        where,
      });
    }
    return Number(value);
  }

  #finishMeta(): void {
    const data = Buffer.concat(this.#metaBuffer);
    this.#metaBuffer = [];
    const where = `offset ${this.#position}`;
    if (this.#metaKind === 'L' || this.#metaKind === 'K') {
      const text = decodeText(
        cString(data, 0, data.length),
        this.#metaKind === 'L' ? 'long name' : 'long link name',
        where,
      );
      if (this.#metaKind === 'L') this.#longName = text;
      else this.#longLink = text;
    } else if (this.#metaKind === 'x') {
      this.#pax = { ...this.#pax, ...parsePax(data, where) };
    }
    // 'g' (global pax headers) carry nothing we apply.
  }
}

/** Parses pax records: "<len> <key>=<value>\n". */
export function parsePax(data: Buffer, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break;
    const space = data.indexOf(0x20, off);
    const len = space === -1 ? NaN : Number(data.toString('latin1', off, space));
    if (!Number.isInteger(len) || len <= 0 || off + len > data.length || data[off + len - 1] !== 0x0a) {
      throw new SlipwayError('TAR_HEADER_INVALID', 'malformed pax header record', { where });
    }
    const record = decodeText(data.subarray(space + 1, off + len - 1), 'pax record', where);
    const eq = record.indexOf('=');
    if (eq <= 0) throw new SlipwayError('TAR_HEADER_INVALID', 'malformed pax header record', { where });
    out[record.slice(0, eq)] = record.slice(eq + 1);
    off += len;
  }
  return out;
}
