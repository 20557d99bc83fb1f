/**
 * Raw Ethernet on a named interface, for network boot. Node has no raw
 * sockets; we use libpcap through the `cap` binding (built from source
 * against Debian's libpcap-dev by `npm ci`), loaded only when a network boot
 * command runs. It is an optional dependency: without it, or without the
 * privileges to open the interface, the commands fail with
 * NETBOOT_LINK_UNAVAILABLE and everything else still works.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SlipwayError } from '../core/errors.js';
import { NETBOOT_ETHERTYPE } from '../formats/netboot.js';
import type { RawLink } from './netboot-server.js';

interface CapInstance {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  setMinBytes?: (n: number) => void;
  on(event: 'packet', cb: (nbytes: number, truncated: boolean) => void): void;
  send(buffer: Buffer, size: number): void;
  close(): void;
}

function unavailable(iface: string, why: string, cause?: unknown): SlipwayError {
  return new SlipwayError('NETBOOT_LINK_UNAVAILABLE', `cannot open raw Ethernet on '${iface}': ${why}`, {
    where: iface,
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** Opens `iface` for frames of the netboot ethertype (our own sent frames filtered out). */
export function openRawLink(iface: string): RawLink {
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(iface)) throw unavailable(iface, 'not an interface name');
  let mac: string;
  try {
    mac = readFileSync(`/sys/class/net/${iface}/address`, 'utf8').trim().toLowerCase();
  } catch (err) {
    throw unavailable(iface, 'no such interface', err);
  }
  let Cap: new () => CapInstance;
  try {
    const require = createRequire(import.meta.url);
    ({ Cap } = require('cap') as { Cap: new () => CapInstance });
  } catch (err) {
    throw unavailable(
      iface,
      "the optional 'cap' module (libpcap) is not installed; run 'bash scripts/setup.sh' as root",
      err,
    );
  }
  const cap = new Cap();
  const buffer = Buffer.alloc(65535);
  try {
    // libpcap also shows us our own frames: keep only the netboot ethertype from others.
    cap.open(
      iface,
      `ether proto 0x${NETBOOT_ETHERTYPE.toString(16)} and not ether src ${mac}`,
      16 * 1024 * 1024,
      buffer,
    );
  } catch (err) {
    throw unavailable(iface, `${(err as Error).message} (raw sockets need root or CAP_NET_RAW)`, err);
  }
  cap.setMinBytes?.(0);
  let onFrame: ((frame: Buffer) => void) | undefined;
  cap.on('packet', (n) => {
    onFrame?.(Buffer.from(buffer.subarray(0, n)));
  });
  return {
    mac,
    send: (frame) => {
      cap.send(frame, frame.length);
    },
    receive: (cb) => {
      onFrame = cb;
    },
    close: () => {
      cap.close();
    },
  };
}
