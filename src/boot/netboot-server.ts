/**
 * Network boot server: the I/O around the pure state machines of
 * src/formats/netboot.ts. It opens a boot image file, checks its header, and
 * pumps frames between a raw Ethernet link and a ServerMux (one session per
 * client MAC). The link is an interface, so tests run it in memory and the
 * CLI can plug in a libpcap binding.
 */
import * as fs from 'node:fs';
import { fromSystemError, SlipwayError } from '../core/errors.js';
import { BOOTIMAGE_HEADER_SIZE, decodeBootImageHeader, isCompressed } from '../formats/bootimage.js';
import {
  createServerMux,
  NETBOOT_FILE_OFFSET,
  parseMac,
  type ServedImage,
  type ServerStatus,
} from '../formats/netboot.js';

/** One raw Ethernet interface: frames out, frames in. */
export interface RawLink {
  /** The interface's MAC address (`aa:bb:cc:dd:ee:ff`). */
  readonly mac: string;
  send(frame: Buffer): void;
  /** Registers the receiver; every frame seen on the interface goes to it. */
  receive(onFrame: (frame: Buffer) => void): void;
  close(): void;
}

export interface OpenedImage {
  image: ServedImage;
  /** Reads `length` payload bytes at payload offset `offset` (file position 4096 + offset). */
  readAt: (offset: number, length: number) => Uint8Array;
  close: () => void;
}

/**
 * Opens a boot image for serving: header valid, uncompressed, the file holds
 * the whole payload. Reads are synchronous positional reads (1 KiB each).
 */
export function openServedImage(path: string): OpenedImage {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw fromSystemError(err, 'cannot open boot image', path);
  }
  try {
    const header = Buffer.alloc(BOOTIMAGE_HEADER_SIZE);
    const got = fs.readSync(fd, header, 0, header.length, 0);
    const h = decodeBootImageHeader(header.subarray(0, got), path);
    if (isCompressed(h)) {
      throw new SlipwayError(
        'NETBOOT_IMAGE_COMPRESSED',
        'network boot serves only uncompressed boot images; rebuild it without -z/--compress',
        { where: path },
      );
    }
    if (h.dataSize !== h.imageSize) {
      throw new SlipwayError(
        'BOOTIMAGE_INVALID',
        `data size ${h.dataSize.toString()} differs from image size ${h.imageSize.toString()} in an uncompressed image`,
        { where: path },
      );
    }
    const size = BigInt(fs.fstatSync(fd).size);
    if (size < BigInt(NETBOOT_FILE_OFFSET) + h.imageSize) {
      throw new SlipwayError(
        'BOOTIMAGE_TRUNCATED',
        `file holds ${(size - BigInt(NETBOOT_FILE_OFFSET)).toString()} payload bytes, header says ${h.imageSize.toString()}`,
        { where: path },
      );
    }
    return {
      image: { targetSize: h.targetSize, imageSize: h.imageSize, sha256: h.sha256, dataset: h.dataset },
      readAt: (offset, length) => {
        const b = Buffer.alloc(length);
        let done = 0;
        while (done < length) {
          const n = fs.readSync(fd, b, done, length - done, NETBOOT_FILE_OFFSET + offset + done);
          if (n === 0) break;
          done += n;
        }
        return b.subarray(0, done);
      },
      close: () => {
        fs.closeSync(fd);
      },
    };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

export interface NetbootServeOptions {
  imagePath: string;
  link: RawLink;
  /** `'any'` (default) or the client MACs to serve. */
  clients?: 'any' | readonly string[];
  /** Resolve after this many clients sent FINISHED (the reference's "exit after one FINISHED" is 1); default: run until aborted. */
  exitAfterFinished?: number;
  /** Fail with NETBOOT_NO_CLIENT when no client says HELLO within this many ms. */
  noClientTimeoutMs?: number;
  signal?: AbortSignal;
  /** Milliseconds clock; injectable for tests. */
  now?: () => number;
  onFrameError?: (err: unknown) => void;
}

export interface NetbootServeResult {
  finished: number;
  sessions: Map<string, ServerStatus>;
}

function checkMacs(clients: 'any' | readonly string[]): 'any' | string[] {
  if (clients === 'any') return 'any';
  return clients.map((m) => {
    const p = parseMac(m);
    if (p === undefined) throw new SlipwayError('NETBOOT_INVALID_OPTION', `not a MAC address: '${m}'`);
    return p;
  });
}

/** Serves one boot image on `link` until done, aborted, or no client came in time. */
export async function serveNetboot(opts: NetbootServeOptions): Promise<NetbootServeResult> {
  const clients = checkMacs(opts.clients ?? 'any');
  if (parseMac(opts.link.mac) === undefined) {
    throw new SlipwayError('NETBOOT_INVALID_OPTION', `link has no usable MAC address: '${opts.link.mac}'`);
  }
  const now = opts.now ?? (() => Date.now());
  const opened = openServedImage(opts.imagePath);
  const mux = createServerMux({
    image: opened.image,
    serverMac: opts.link.mac,
    readAt: opened.readAt,
    clients,
  });
  const started = now();
  try {
    return await new Promise<NetbootServeResult>((resolve, reject) => {
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        opts.signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve({ finished: mux.finishedCount(), sessions: mux.sessions() });
        else
          reject(
            err instanceof Error
              ? err
              : new SlipwayError('INTERNAL', 'network boot server failed', { cause: err }),
          );
      };
      const onAbort = (): void => {
        finish();
      };
      if (opts.signal?.aborted === true) {
        finish();
        return;
      }
      opts.signal?.addEventListener('abort', onAbort);
      if (opts.noClientTimeoutMs !== undefined) {
        const ms = opts.noClientTimeoutMs;
        timers.push(
          setTimeout(() => {
            if (mux.sessions().size === 0 && mux.finishedCount() === 0) {
              finish(
                new SlipwayError(
                  'NETBOOT_NO_CLIENT',
                  `no client asked for a ramdisk within ${Math.round((now() - started) / 1000)} s`,
                ),
              );
            }
          }, ms),
        );
      }
      opts.link.receive((frame) => {
        if (settled) return;
        try {
          for (const out of mux.onFrame(frame, now())) opts.link.send(out);
        } catch (err) {
          // A send or read failure for one frame should not kill the server; report it.
          if (opts.onFrameError !== undefined) opts.onFrameError(err);
          else {
            finish(err);
            return;
          }
        }
        if (opts.exitAfterFinished !== undefined && mux.finishedCount() >= opts.exitAfterFinished) finish();
      });
    });
  } finally {
    opened.close();
  }
}
