/**
 * Network boot client: drives the pure client state machine of
 * src/formats/netboot.ts over a raw Ethernet link with a real clock, and
 * writes the received ramdisk image atomically. The image is assembled in
 * memory (its sha256 is checked before anything is written).
 */
import { SlipwayError } from '../core/errors.js';
import { writeFileAtomic } from '../core/atomic-file.js';
import { createClientSession, type ClientProgress } from '../formats/netboot.js';
import type { RawLink } from './netboot-server.js';

export interface NetbootFetchOptions {
  link: RawLink;
  expectedSha256: Uint8Array;
  /** Where to write the received image; omit to only return it. */
  outputPath?: string;
  /** Give up with NETBOOT_TIMEOUT when no acceptable OFFER came within this many ms (default 60 s). */
  offerTimeoutMs?: number;
  /** Give up with NETBOOT_TIMEOUT when the whole transfer takes longer (default 30 min). */
  timeoutMs?: number;
  /** How often the state machine is ticked (default 100 ms). */
  tickMs?: number;
  /** Images larger than this are refused (they are assembled in memory); default 1 GiB. */
  maxInMemory?: number;
  signal?: AbortSignal;
  onProgress?: (p: ClientProgress) => void;
  now?: () => number;
}

export interface NetbootFetchResult {
  image: Uint8Array;
  server: string;
  dataset: string;
  ramdiskSize: bigint;
  retransmits: number;
  ms: number;
}

export async function fetchNetboot(opts: NetbootFetchOptions): Promise<NetbootFetchResult> {
  if (opts.expectedSha256.length !== 32) {
    throw new SlipwayError('NETBOOT_INVALID_OPTION', 'the expected sha256 must be 32 bytes (64 hex digits)');
  }
  let session: ReturnType<typeof createClientSession>;
  try {
    session = createClientSession({
      expectedSha256: opts.expectedSha256,
      mac: opts.link.mac,
      ...(opts.maxInMemory === undefined ? {} : { maxInMemory: opts.maxInMemory }),
    });
  } catch (err) {
    throw new SlipwayError('NETBOOT_INVALID_OPTION', (err as Error).message, { cause: err });
  }
  const now = opts.now ?? (() => Date.now());
  const started = now();
  const offerTimeout = opts.offerTimeoutMs ?? 60_000;
  const timeout = opts.timeoutMs ?? 30 * 60_000;
  const tickMs = opts.tickMs ?? 100;

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: SlipwayError): void => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = (): void => {
      finish(new SlipwayError('INTERRUPTED', 'network boot client interrupted'));
    };
    const check = (): void => {
      const p = session.progress();
      opts.onProgress?.(p);
      if (p.state === 'done') finish();
      else if (p.state === 'failed') {
        const reset = p.reason?.includes('RESET') === true;
        finish(
          new SlipwayError(
            reset ? 'NETBOOT_RESET' : 'NETBOOT_CHECKSUM_MISMATCH',
            p.reason ?? 'network boot failed',
          ),
        );
      } else if (p.state === 'hello' && now() - started > offerTimeout) {
        finish(
          new SlipwayError(
            'NETBOOT_TIMEOUT',
            `no acceptable OFFER within ${Math.round(offerTimeout / 1000)} s${p.reason === undefined ? '' : ` (${p.reason})`}`,
          ),
        );
      } else if (now() - started > timeout) {
        finish(
          new SlipwayError(
            'NETBOOT_TIMEOUT',
            `transfer incomplete after ${Math.round(timeout / 1000)} s: ${p.received} of ${p.total} bytes`,
          ),
        );
      }
    };
    const send = (frames: Buffer[]): void => {
      for (const f of frames) opts.link.send(f);
    };
    const timer = setInterval(() => {
      if (settled) return;
      try {
        send(session.onTick(now()));
      } catch (err) {
        finish(new SlipwayError('NETBOOT_LINK_UNAVAILABLE', `cannot send: ${String(err)}`, { cause: err }));
        return;
      }
      check();
    }, tickMs);
    if (opts.signal?.aborted === true) {
      onAbort();
      return;
    }
    opts.signal?.addEventListener('abort', onAbort);
    opts.link.receive((frame) => {
      if (settled) return;
      try {
        send(session.onFrame(frame, now()));
      } catch (err) {
        finish(new SlipwayError('NETBOOT_LINK_UNAVAILABLE', `cannot send: ${String(err)}`, { cause: err }));
        return;
      }
      check();
    });
    send(session.onTick(now()));
  });

  const image = session.image();
  const offer = session.offer();
  const p = session.progress();
  if (image === undefined || offer === undefined || p.server === undefined) {
    throw new SlipwayError('INTERNAL', 'network boot finished without an image');
  }
  if (opts.outputPath !== undefined) await writeFileAtomic(opts.outputPath, image);
  return {
    image,
    server: p.server,
    dataset: offer.dataset,
    ramdiskSize: offer.ramdiskSize,
    retransmits: p.retransmits,
    ms: now() - started,
  };
}
