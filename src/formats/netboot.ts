/**
 * The Oxide network boot protocol (specs/boot-image.md, "Network boot
 * protocol"): raw Ethernet frames of ethertype 0x1DE0, big-endian. This
 * module is pure: a frame codec that never throws on hostile input, and the
 * server and client state machines, which take frames and the time in and
 * give frames to send back. Sockets, files and clocks live in src/boot/.
 */
import { createHash } from 'node:crypto';

export const NETBOOT_ETHERTYPE = 0x1de0;
export const NETBOOT_MAGIC = 0x1de12345;
export const ETHER_HEADER_SIZE = 14;
export const NETBOOT_HEADER_SIZE = 12;
/** Ethernet minimum frame without FCS; shorter payloads arrive padded with zeros up to it. */
export const ETHER_MIN_FRAME = 60;
export const HELLO_TEXT = "Hello!  I'd like to buy a ramdisk please.";
export const OFFER_LEN = 176;
export const READ_MAX_OFFSETS = 128;
export const READ_LEN = 8 + 8 * READ_MAX_OFFSETS;
/** The server rejects READ frames claiming more offsets than this (the spec's limit, not 128). */
export const SERVER_MAX_NOFFSETS = 160n;
export const DATA_CHUNK = 1024;
export const DATASET_FIELD = 128;
/** Image bytes start after the 4096-byte boot image header; DATA offsets are relative to the payload. */
export const NETBOOT_FILE_OFFSET = 4096;
export const MIN_RAMDISK_SIZE = 1024n * 1024n;
export const HELLO_INTERVAL_MS = 4000;
export const RETRANSMIT_MS = 1000;
export const MAX_OUTSTANDING = 128;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

export const NETBOOT_TYPES = {
  hello: 0x9001,
  offer: 0x9102,
  read: 0x9003,
  data: 0x9104,
  finished: 0x9005,
  reset: 0x9106,
} as const;

export type MessageType = keyof typeof NETBOOT_TYPES;

const TYPE_BY_CODE = new Map<number, MessageType>(
  Object.entries(NETBOOT_TYPES).map(([k, v]) => [v, k as MessageType]),
);

const U64_MAX = (1n << 64n) - 1n;

export type Message =
  | { type: 'hello' }
  | {
      type: 'offer';
      /** ramdisk_size = the image's target_size. */
      ramdiskSize: bigint;
      /** ramdisk_data_size = the image's image_size. */
      ramdiskDataSize: bigint;
      sha256: Uint8Array;
      /** The raw 128-byte field, NUL-padded (the client checks byte 127). */
      dataset: Uint8Array;
    }
  | {
      type: 'read';
      /** As sent (untrusted: may exceed 128). */
      noffsets: bigint;
      /** All 128 entries of the array, used or not. */
      offsets: bigint[];
    }
  | { type: 'data'; offset: bigint; data: Uint8Array }
  | { type: 'finished' }
  | { type: 'reset' };

/** MAC addresses as lowercase `aa:bb:cc:dd:ee:ff`. */
export interface Frame {
  dst: string;
  src: string;
  message: Message;
}

export type RejectReason =
  | 'short-frame'
  | 'wrong-ethertype'
  | 'bad-magic'
  | 'unknown-type'
  | 'bad-length'
  | 'truncated'
  | 'trailing-bytes'
  | 'bad-hello';

export type DecodeResult =
  { ok: true; frame: Frame } | { ok: false; reason: RejectReason; detail: string; src?: string };

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Normalises `AA-BB-…`/`aa:bb:…` to lowercase colon form; undefined when it is not a MAC. */
export function parseMac(text: string): string | undefined {
  const m = text.trim().toLowerCase().replace(/-/g, ':');
  return MAC_RE.test(m) ? m : undefined;
}

function macToBytes(mac: string): Buffer {
  const m = parseMac(mac);
  if (m === undefined) throw new RangeError(`not a MAC address: '${mac}'`);
  return Buffer.from(m.replace(/:/g, ''), 'hex');
}

function macFromBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** A 128-byte NUL-padded dataset field for `name` (at most 127 bytes of UTF-8). */
export function datasetField(name: string): Uint8Array {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length >= DATASET_FIELD || bytes.includes(0)) {
    throw new RangeError(`dataset name must be under ${DATASET_FIELD} bytes with no NUL`);
  }
  const f = new Uint8Array(DATASET_FIELD);
  f.set(bytes);
  return f;
}

/** The dataset name up to the first NUL (lossy UTF-8; for display only). */
export function datasetName(field: Uint8Array): string {
  const nul = field.indexOf(0);
  return Buffer.from(field.subarray(0, nul < 0 ? field.length : nul)).toString('utf8');
}

function payloadLength(m: Message): number {
  switch (m.type) {
    case 'hello':
      return HELLO_TEXT.length;
    case 'offer':
      return OFFER_LEN;
    case 'read':
      return READ_LEN;
    case 'data':
      return 8 + m.data.length;
    case 'finished':
    case 'reset':
      return 0;
  }
}

function checkU64(v: bigint, what: string): void {
  if (v < 0n || v > U64_MAX) throw new RangeError(`${what} does not fit in a u64`);
}

/**
 * The bytes of one frame. Frames shorter than the Ethernet minimum are
 * padded with zeros (as a NIC would); pass `pad: false` to get the exact bytes.
 * Throws RangeError on values that cannot be encoded (our own bugs, not input).
 */
export function encodeFrame(frame: Frame, options: { pad?: boolean } = {}): Buffer {
  const m = frame.message;
  const len = payloadLength(m);
  const total = ETHER_HEADER_SIZE + NETBOOT_HEADER_SIZE + len;
  const b = Buffer.alloc(options.pad === false ? total : Math.max(total, ETHER_MIN_FRAME));
  b.set(macToBytes(frame.dst), 0);
  b.set(macToBytes(frame.src), 6);
  b.writeUInt16BE(NETBOOT_ETHERTYPE, 12);
  b.writeUInt32BE(NETBOOT_MAGIC, 14);
  b.writeUInt32BE(NETBOOT_TYPES[m.type], 18);
  b.writeUInt32BE(len, 22);
  const p = ETHER_HEADER_SIZE + NETBOOT_HEADER_SIZE;
  switch (m.type) {
    case 'hello':
      b.write(HELLO_TEXT, p, 'ascii');
      break;
    case 'offer':
      if (m.sha256.length !== 32) throw new RangeError('sha256 must be 32 bytes');
      if (m.dataset.length !== DATASET_FIELD) throw new RangeError('dataset field must be 128 bytes');
      checkU64(m.ramdiskSize, 'ramdisk_size');
      checkU64(m.ramdiskDataSize, 'ramdisk_data_size');
      b.writeBigUInt64BE(m.ramdiskSize, p);
      b.writeBigUInt64BE(m.ramdiskDataSize, p + 8);
      b.set(m.sha256, p + 16);
      b.set(m.dataset, p + 48);
      break;
    case 'read':
      if (m.offsets.length > READ_MAX_OFFSETS) throw new RangeError('at most 128 offsets fit a READ');
      checkU64(m.noffsets, 'noffsets');
      b.writeBigUInt64BE(m.noffsets, p);
      m.offsets.forEach((o, i) => {
        checkU64(o, 'offset');
        b.writeBigUInt64BE(o, p + 8 + 8 * i);
      });
      break;
    case 'data':
      if (m.data.length > DATA_CHUNK) throw new RangeError('DATA carries at most 1024 bytes');
      checkU64(m.offset, 'offset');
      b.writeBigUInt64BE(m.offset, p);
      b.set(m.data, p + 8);
      break;
    case 'finished':
    case 'reset':
      break;
  }
  return b;
}

/** Convenience: a READ message for up to 128 offsets. */
export function readMessage(offsets: readonly (number | bigint)[]): Message {
  return { type: 'read', noffsets: BigInt(offsets.length), offsets: offsets.map((o) => BigInt(o)) };
}

function reject(reason: RejectReason, detail: string, src?: string): DecodeResult {
  return src === undefined ? { ok: false, reason, detail } : { ok: false, reason, detail, src };
}

function hex(n: number, width: number): string {
  return `0x${n.toString(16).padStart(width, '0')}`;
}

/**
 * Decodes one received frame. Never throws: hostile or foreign frames give
 * `{ ok: false, reason }`. The `len` field governs: bytes after the payload
 * are accepted only as padding up to the Ethernet minimum (60 bytes).
 */
export function decodeFrame(bytes: Uint8Array): DecodeResult {
  if (bytes.length < ETHER_HEADER_SIZE) {
    return reject('short-frame', `frame is ${bytes.length} bytes, shorter than an Ethernet header`);
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const dst = macFromBytes(b.subarray(0, 6));
  const src = macFromBytes(b.subarray(6, 12));
  const ethertype = b.readUInt16BE(12);
  if (ethertype !== NETBOOT_ETHERTYPE) {
    return reject('wrong-ethertype', `ethertype ${hex(ethertype, 4)}, expected 0x1de0`, src);
  }
  if (b.length < ETHER_HEADER_SIZE + NETBOOT_HEADER_SIZE) {
    return reject('short-frame', `frame is ${b.length} bytes, too short for the netboot header`, src);
  }
  const magic = b.readUInt32BE(14);
  if (magic !== NETBOOT_MAGIC) return reject('bad-magic', `magic ${hex(magic, 8)}, expected 0x1de12345`, src);
  const code = b.readUInt32BE(18);
  const type = TYPE_BY_CODE.get(code);
  if (type === undefined) return reject('unknown-type', `unknown message type ${hex(code, 4)}`, src);
  const len = b.readUInt32BE(22);
  const p = ETHER_HEADER_SIZE + NETBOOT_HEADER_SIZE;
  const lenOk =
    type === 'hello'
      ? len === HELLO_TEXT.length
      : type === 'offer'
        ? len === OFFER_LEN
        : type === 'read'
          ? len === READ_LEN
          : type === 'data'
            ? len >= 8 && len <= 8 + DATA_CHUNK
            : len === 0;
  if (!lenOk) return reject('bad-length', `${type.toUpperCase()} with len ${len}`, src);
  if (b.length < p + len) {
    return reject('truncated', `len ${len} but only ${b.length - p} payload bytes in the frame`, src);
  }
  if (b.length > p + len && b.length > ETHER_MIN_FRAME) {
    return reject('trailing-bytes', `${b.length - p - len} bytes after the payload`, src);
  }
  const payload = b.subarray(p, p + len);
  let message: Message;
  switch (type) {
    case 'hello':
      if (payload.toString('latin1') !== HELLO_TEXT) return reject('bad-hello', 'HELLO text differs', src);
      message = { type };
      break;
    case 'offer':
      message = {
        type,
        ramdiskSize: payload.readBigUInt64BE(0),
        ramdiskDataSize: payload.readBigUInt64BE(8),
        sha256: new Uint8Array(payload.subarray(16, 48)),
        dataset: new Uint8Array(payload.subarray(48, 176)),
      };
      break;
    case 'read': {
      const offsets: bigint[] = [];
      for (let i = 0; i < READ_MAX_OFFSETS; i++) offsets.push(payload.readBigUInt64BE(8 + 8 * i));
      message = { type, noffsets: payload.readBigUInt64BE(0), offsets };
      break;
    }
    case 'data':
      message = {
        type,
        offset: payload.readBigUInt64BE(0),
        data: new Uint8Array(payload.subarray(8)),
      };
      break;
    case 'finished':
    case 'reset':
      message = { type };
      break;
  }
  return { ok: true, frame: { dst, src, message } };
}

// ---------------------------------------------------------------------------
// Server

export interface ServedImage {
  /** target_size of the boot image: OFFER's ramdisk_size. */
  targetSize: bigint;
  /** image_size of the (uncompressed) boot image: OFFER's ramdisk_data_size and the end of DATA. */
  imageSize: bigint;
  sha256: Uint8Array;
  dataset: string;
}

export interface ServerOptions {
  image: ServedImage;
  /** The MAC of the serving interface (source of every frame we send). */
  serverMac: string;
  /** Serve only this client MAC, or `'any'`: latch onto the first HELLO's sender. */
  clientMac: string;
  /**
   * `length` bytes of the image payload at `offset` (the file adapter reads
   * file position 4096 + offset). Called only with ranges inside imageSize.
   */
  readAt: (offset: number, length: number) => Uint8Array;
}

export type ServerState = 'waiting' | 'serving' | 'finished';

export interface ServerEvent {
  kind: 'offer' | 'reset' | 'finished' | 'ignored' | 'rejected-read';
  peer: string;
  detail?: string;
}

export interface ServerStatus {
  state: ServerState;
  client: string | undefined;
  readFrames: number;
  dataFrames: number;
  /** Last few things worth logging (bounded). */
  events: ServerEvent[];
}

export interface ServerSession {
  /** Frames (encoded, ready to send) answering `frame`; `now` in milliseconds. */
  onFrame(frame: Uint8Array, now: number): Buffer[];
  status(): ServerStatus;
}

const MAX_EVENTS = 32;

function offerFrame(opts: ServerOptions, dst: string): Buffer {
  return encodeFrame({
    dst,
    src: opts.serverMac,
    message: {
      type: 'offer',
      ramdiskSize: opts.image.targetSize,
      ramdiskDataSize: opts.image.imageSize,
      sha256: opts.image.sha256,
      dataset: datasetField(opts.image.dataset),
    },
  });
}

/** Validates options up front so a bad MAC or name fails at start, not on the first frame. */
function checkServerOptions(opts: ServerOptions): void {
  if (parseMac(opts.serverMac) === undefined) throw new RangeError(`bad server MAC '${opts.serverMac}'`);
  if (opts.clientMac !== 'any' && parseMac(opts.clientMac) === undefined) {
    throw new RangeError(`bad client MAC '${opts.clientMac}'`);
  }
  if (opts.image.sha256.length !== 32) throw new RangeError('sha256 must be 32 bytes');
  datasetField(opts.image.dataset);
}

export function createServerSession(opts: ServerOptions): ServerSession {
  checkServerOptions(opts);
  const fixed = opts.clientMac === 'any' ? undefined : parseMac(opts.clientMac);
  let client: string | undefined = fixed;
  let state: ServerState = 'waiting';
  let readFrames = 0;
  let dataFrames = 0;
  const events: ServerEvent[] = [];
  const note = (e: ServerEvent): void => {
    events.push(e);
    if (events.length > MAX_EVENTS) events.shift();
  };
  const send = (dst: string, message: Message): Buffer => encodeFrame({ dst, src: opts.serverMac, message });
  const imageSize = opts.image.imageSize;

  function dataFor(dst: string, offset: bigint): Buffer {
    if (offset >= imageSize) return send(dst, { type: 'data', offset, data: new Uint8Array(0) });
    const remaining = imageSize - offset;
    const n = Number(remaining < BigInt(DATA_CHUNK) ? remaining : BigInt(DATA_CHUNK));
    const data = opts.readAt(Number(offset), n);
    return send(dst, { type: 'data', offset, data: data.subarray(0, n) });
  }

  return {
    onFrame(bytes: Uint8Array): Buffer[] {
      const r = decodeFrame(bytes);
      if (!r.ok) return [];
      const { src, message } = r.frame;
      if (client !== undefined && src !== client) return [];
      if (state === 'finished') return [];
      switch (message.type) {
        case 'hello':
          client = src;
          state = 'serving';
          note({ kind: 'offer', peer: src });
          return [offerFrame(opts, src)];
        case 'read': {
          if (state === 'waiting') {
            note({ kind: 'reset', peer: src, detail: 'READ before HELLO' });
            return [send(src, { type: 'reset' })];
          }
          if (message.noffsets > SERVER_MAX_NOFFSETS) {
            note({ kind: 'rejected-read', peer: src, detail: `noffsets ${message.noffsets.toString()}` });
            return [];
          }
          readFrames++;
          // noffsets 129..160 passes the spec's check; only 128 entries exist, so we serve those.
          const n = Math.min(Number(message.noffsets), READ_MAX_OFFSETS);
          const out: Buffer[] = [];
          for (let i = 0; i < n; i++) out.push(dataFor(src, message.offsets[i] ?? 0n));
          dataFrames += out.length;
          return out;
        }
        case 'finished':
          if (state !== 'serving') return [];
          state = 'finished';
          note({ kind: 'finished', peer: src });
          return [];
        case 'offer':
        case 'data':
        case 'reset':
          return [];
      }
    },
    status: () => ({ state, client, readFrames, dataFrames, events: events.slice() }),
  };
}

export interface ServerMuxOptions extends Omit<ServerOptions, 'clientMac'> {
  /** Which clients to serve: anyone, or a list of MACs. */
  clients: 'any' | readonly string[];
  /** Cap on concurrent sessions (bounded memory against MAC floods); default 64. */
  maxSessions?: number;
  /** Sessions silent this long (ms) may be dropped to make room; default 60 s. */
  idleMs?: number;
}

export interface ServerMux {
  onFrame(frame: Uint8Array, now: number): Buffer[];
  /** One entry per client MAC. */
  sessions(): Map<string, ServerStatus>;
  /** How many clients sent FINISHED. */
  finishedCount(): number;
}

/** Serves several clients at once, one session per client MAC. */
export function createServerMux(opts: ServerMuxOptions): ServerMux {
  const allowed =
    opts.clients === 'any'
      ? undefined
      : new Set(
          opts.clients.map((m) => {
            const p = parseMac(m);
            if (p === undefined) throw new RangeError(`bad client MAC '${m}'`);
            return p;
          }),
        );
  checkServerOptions({ ...opts, clientMac: 'any' });
  const maxSessions = opts.maxSessions ?? 64;
  const idleMs = opts.idleMs ?? 60_000;
  const sessions = new Map<string, { s: ServerSession; lastSeen: number }>();
  let finished = 0;

  function evictIdle(now: number): boolean {
    for (const [mac, e] of sessions) {
      if (now - e.lastSeen >= idleMs || e.s.status().state === 'finished') {
        sessions.delete(mac);
        return true;
      }
    }
    return false;
  }

  return {
    onFrame(bytes: Uint8Array, now: number): Buffer[] {
      const r = decodeFrame(bytes);
      if (!r.ok) return [];
      const { src, message } = r.frame;
      if (allowed !== undefined && !allowed.has(src)) return [];
      let e = sessions.get(src);
      if (e === undefined) {
        if (message.type === 'read') {
          return [encodeFrame({ dst: src, src: opts.serverMac, message: { type: 'reset' } })];
        }
        if (message.type !== 'hello') return [];
        if (sessions.size >= maxSessions && !evictIdle(now)) return [];
        e = { s: createServerSession({ ...opts, clientMac: src }), lastSeen: now };
        sessions.set(src, e);
      }
      e.lastSeen = now;
      const wasFinished = e.s.status().state === 'finished';
      const out = e.s.onFrame(bytes, now);
      if (!wasFinished && e.s.status().state === 'finished') finished++;
      // A finished client that says HELLO again (a reboot) gets a fresh session.
      if (wasFinished && message.type === 'hello') {
        const fresh = createServerSession({ ...opts, clientMac: src });
        sessions.set(src, { s: fresh, lastSeen: now });
        return fresh.onFrame(bytes, now);
      }
      return out;
    },
    sessions: () => new Map([...sessions].map(([k, v]) => [k, v.s.status()])),
    finishedCount: () => finished,
  };
}

// ---------------------------------------------------------------------------
// Client

export type ClientState = 'hello' | 'reading' | 'done' | 'failed';

export interface ClientOptions {
  expectedSha256: Uint8Array;
  /** Our MAC (source of HELLO/READ/FINISHED). */
  mac: string;
  /**
   * Where data goes. Without it, the image is assembled in memory (up to
   * `maxInMemory` bytes, default 1 GiB) and its sha256 checked at the end.
   */
  onData?: (offset: number, data: Uint8Array) => void;
  maxInMemory?: number;
}

export interface ClientProgress {
  state: ClientState;
  server: string | undefined;
  /** Image bytes expected (ramdisk_data_size), 0 before an offer. */
  total: number;
  received: number;
  outstanding: number;
  readFrames: number;
  retransmits: number;
  /** Why the client failed, or the last offer it refused. */
  reason: string | undefined;
}

export interface ClientSession {
  onFrame(frame: Uint8Array, now: number): Buffer[];
  onTick(now: number): Buffer[];
  progress(): ClientProgress;
  /** The assembled image once done (in-memory mode only). */
  image(): Uint8Array | undefined;
  /** The accepted offer, once there is one. */
  offer(): { ramdiskSize: bigint; ramdiskDataSize: bigint; dataset: string } | undefined;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Why a client refuses an offer (the spec's rules), or undefined when acceptable. */
export function offerProblem(
  m: Extract<Message, { type: 'offer' }>,
  expectedSha256: Uint8Array,
): string | undefined {
  if (m.dataset[DATASET_FIELD - 1] !== 0) return 'dataset name is not NUL-terminated';
  if (m.ramdiskSize < MIN_RAMDISK_SIZE || m.ramdiskDataSize < MIN_RAMDISK_SIZE) {
    return 'ramdisk sizes must be at least 1 MiB';
  }
  if (m.ramdiskDataSize > m.ramdiskSize) return 'data size is larger than ramdisk size';
  if (!bytesEqual(m.sha256, expectedSha256)) return 'sha256 differs from the expected checksum';
  return undefined;
}

export function createClientSession(opts: ClientOptions): ClientSession {
  const mac = parseMac(opts.mac);
  if (mac === undefined) throw new RangeError(`bad client MAC '${opts.mac}'`);
  if (opts.expectedSha256.length !== 32) throw new RangeError('expected sha256 must be 32 bytes');
  const maxInMemory = opts.maxInMemory ?? 1024 * 1024 * 1024;
  let state: ClientState = 'hello';
  let server: string | undefined;
  let reason: string | undefined;
  let lastHello = -Infinity;
  let lastFinished = -Infinity;
  let total = 0;
  let chunks = 0;
  let received = 0;
  let receivedBytes = 0;
  let have = new Uint8Array(0);
  let buffer: Uint8Array | undefined;
  let nextChunk = 0;
  let readFrames = 0;
  let retransmits = 0;
  let accepted: { ramdiskSize: bigint; ramdiskDataSize: bigint; dataset: string } | undefined;
  /** chunk index → when last requested; Map keeps insertion order = oldest request first. */
  const outstanding = new Map<number, number>();

  const send = (dst: string, message: Message): Buffer => encodeFrame({ dst, src: mac, message });

  function chunkLength(i: number): number {
    return Math.min(DATA_CHUNK, total - i * DATA_CHUNK);
  }

  function fill(now: number): Buffer[] {
    if (state !== 'reading' || server === undefined) return [];
    const want: number[] = [];
    for (const [i, at] of outstanding) {
      if (now - at < RETRANSMIT_MS) break;
      want.push(i);
      retransmits++;
    }
    for (const i of want) outstanding.delete(i);
    while (outstanding.size + want.length < MAX_OUTSTANDING && nextChunk < chunks) {
      if (have[nextChunk] === 0) want.push(nextChunk);
      nextChunk++;
    }
    const out: Buffer[] = [];
    for (let k = 0; k < want.length; k += READ_MAX_OFFSETS) {
      const batch = want.slice(k, k + READ_MAX_OFFSETS);
      for (const i of batch) outstanding.set(i, now);
      out.push(send(server, readMessage(batch.map((i) => i * DATA_CHUNK))));
      readFrames++;
    }
    return out;
  }

  function complete(now: number): Buffer[] {
    if (buffer !== undefined) {
      const sum = createHash('sha256').update(buffer).digest();
      if (!bytesEqual(sum, opts.expectedSha256)) {
        state = 'failed';
        reason = 'sha256 of the received image differs from the expected checksum';
        return [];
      }
    }
    state = 'done';
    lastFinished = now;
    return server === undefined ? [] : [send(server, { type: 'finished' })];
  }

  return {
    onTick(now: number): Buffer[] {
      if (state === 'hello') {
        if (now - lastHello < HELLO_INTERVAL_MS) return [];
        lastHello = now;
        return [send(BROADCAST_MAC, { type: 'hello' })];
      }
      return fill(now);
    },
    onFrame(bytes: Uint8Array, now: number): Buffer[] {
      const r = decodeFrame(bytes);
      if (!r.ok) return [];
      const { src, dst, message } = r.frame;
      if (dst !== mac && dst !== BROADCAST_MAC) return [];
      if (server !== undefined && src !== server) return [];
      switch (message.type) {
        case 'offer': {
          if (state !== 'hello') return [];
          const problem = offerProblem(message, opts.expectedSha256);
          if (problem === undefined && message.ramdiskDataSize > BigInt(Number.MAX_SAFE_INTEGER)) {
            reason = 'offered image is too large';
            return [];
          }
          if (problem !== undefined) {
            reason = `refused offer from ${src}: ${problem}`;
            return [];
          }
          total = Number(message.ramdiskDataSize);
          if (opts.onData === undefined && total > maxInMemory) {
            reason = `refused offer from ${src}: ${total} bytes exceed the in-memory limit`;
            return [];
          }
          server = src;
          reason = undefined;
          accepted = {
            ramdiskSize: message.ramdiskSize,
            ramdiskDataSize: message.ramdiskDataSize,
            dataset: datasetName(message.dataset),
          };
          chunks = Math.ceil(total / DATA_CHUNK);
          have = new Uint8Array(chunks);
          if (opts.onData === undefined) buffer = new Uint8Array(total);
          state = 'reading';
          return fill(now);
        }
        case 'data': {
          if (state === 'done') {
            // Late DATA after we finished: our FINISHED may have been lost; repeat it, at most 1/s.
            if (now - lastFinished < RETRANSMIT_MS || server === undefined) return [];
            lastFinished = now;
            return [send(server, { type: 'finished' })];
          }
          if (state !== 'reading') return [];
          const off = message.offset;
          if (off % BigInt(DATA_CHUNK) !== 0n || off >= BigInt(total)) return [];
          const i = Number(off / BigInt(DATA_CHUNK));
          if (have[i] !== 0 || message.data.length !== chunkLength(i)) return [];
          have[i] = 1;
          received++;
          receivedBytes += message.data.length;
          outstanding.delete(i);
          if (buffer !== undefined) buffer.set(message.data, i * DATA_CHUNK);
          else opts.onData?.(i * DATA_CHUNK, message.data);
          if (received === chunks) return complete(now);
          // Refill in batches (one READ of many offsets), not one READ per DATA.
          return outstanding.size <= MAX_OUTSTANDING / 2 ? fill(now) : [];
        }
        case 'reset':
          if (server === undefined || state === 'done') return [];
          state = 'failed';
          reason = `server ${src} sent RESET`;
          return [];
        case 'hello':
        case 'read':
        case 'finished':
          return [];
      }
    },
    progress: () => ({
      state,
      server,
      total,
      received: receivedBytes,
      outstanding: outstanding.size,
      readFrames,
      retransmits,
      reason,
    }),
    image: () => (state === 'done' ? buffer : undefined),
    offer: () => accepted,
  };
}
