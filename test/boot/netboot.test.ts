import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isSlipwayError } from '../../src/core/errors.js';
import { encodeBootImageHeader } from '../../src/formats/bootimage.js';
import { fetchNetboot } from '../../src/boot/netboot-client.js';
import { openServedImage, serveNetboot, type RawLink } from '../../src/boot/netboot-server.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

/** A shared in-memory Ethernet segment: frames go to every other port, asynchronously, maybe dropped. */
function segment(dropEvery = 0): { port(mac: string): RawLink } {
  const ports: { mac: string; rx?: (f: Buffer) => void; closed: boolean }[] = [];
  let n = 0;
  return {
    port(mac: string): RawLink {
      const me: { mac: string; rx?: (f: Buffer) => void; closed: boolean } = { mac, closed: false };
      ports.push(me);
      return {
        mac,
        send(frame: Buffer): void {
          n++;
          if (dropEvery > 0 && n % dropEvery === 0) return;
          for (const p of ports) {
            if (p === me || p.closed || p.rx === undefined) continue;
            const rx = p.rx;
            const copy = Buffer.from(frame);
            setImmediate(() => {
              rx(copy);
            });
          }
        },
        receive(onFrame: (f: Buffer) => void): void {
          me.rx = onFrame;
        },
        close(): void {
          me.closed = true;
        },
      };
    },
  };
}

function writeImage(dir: string, payload: Buffer, flags = 0n): string {
  const file = path.join(dir, `image-${flags.toString()}.img`);
  const header = encodeBootImageHeader({
    flags,
    dataSize: BigInt(payload.length),
    imageSize: BigInt(payload.length),
    targetSize: 4n * BigInt(MiB),
    sha256: createHash('sha256').update(payload).digest(),
    dataset: 'rpool/ROOT/ramdisk',
    name: 'ci',
  });
  fs.writeFileSync(file, Buffer.concat([header, payload]));
  return file;
}

function payloadOf(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 131 + (i >>> 10)) & 0xff;
  return b;
}

test('serve a boot image file to a client over a lossy in-memory link; the client writes it atomically', async () => {
  const dir = tempDir();
  const payload = payloadOf(MiB + 3000);
  const file = writeImage(dir, payload);
  const seg = segment(37);
  const serverLink = seg.port('02:00:00:00:00:01');
  const clientLink = seg.port('02:00:00:00:00:02');
  const ac = new AbortController();
  const served = serveNetboot({
    imagePath: file,
    link: serverLink,
    exitAfterFinished: 1,
    noClientTimeoutMs: 10_000,
    signal: ac.signal,
  });
  const out = path.join(dir, 'ramdisk.raw');
  const got = await fetchNetboot({
    link: clientLink,
    expectedSha256: createHash('sha256').update(payload).digest(),
    outputPath: out,
    tickMs: 20,
    timeoutMs: 30_000,
  });
  assert.equal(got.server, '02:00:00:00:00:01');
  assert.equal(got.dataset, 'rpool/ROOT/ramdisk');
  assert.equal(got.ramdiskSize, 4n * BigInt(MiB));
  assert.deepEqual(fs.readFileSync(out), payload);
  // The FINISHED frame may be the one the link drops (the protocol has no ack); then only abort stops the server.
  ac.abort();
  const result = await served;
  assert.ok(result.finished <= 1);
  serverLink.close();
  clientLink.close();
});

test('on a clean link the server exits after one FINISHED', async () => {
  const dir = tempDir();
  const payload = payloadOf(2 * MiB);
  const seg = segment();
  const served = serveNetboot({
    imagePath: writeImage(dir, payload),
    link: seg.port('02:00:00:00:00:01'),
    exitAfterFinished: 1,
  });
  const got = await fetchNetboot({
    link: seg.port('02:00:00:00:00:02'),
    expectedSha256: createHash('sha256').update(payload).digest(),
    tickMs: 20,
  });
  assert.deepEqual(Buffer.from(got.image), payload);
  const result = await served;
  assert.equal(result.finished, 1);
  assert.equal(result.sessions.get('02:00:00:00:00:02')?.state, 'finished');
});

test('server refuses compressed images and truncated files', () => {
  const dir = tempDir();
  const payload = payloadOf(MiB);
  assert.throws(
    () => openServedImage(writeImage(dir, payload, 1n)),
    (e) => isSlipwayError(e, 'NETBOOT_IMAGE_COMPRESSED'),
  );
  const file = writeImage(dir, payload);
  fs.truncateSync(file, 4096 + MiB - 1);
  assert.throws(
    () => openServedImage(file),
    (e) => isSlipwayError(e, 'BOOTIMAGE_TRUNCATED'),
  );
  assert.throws(
    () => openServedImage(path.join(dir, 'missing.img')),
    (e) => isSlipwayError(e, 'NOT_FOUND'),
  );
});

test('server fails with NETBOOT_NO_CLIENT when nobody says HELLO in time; bad MACs are input errors', async () => {
  const dir = tempDir();
  const file = writeImage(dir, payloadOf(MiB));
  const seg = segment();
  await assert.rejects(
    serveNetboot({ imagePath: file, link: seg.port('02:00:00:00:00:01'), noClientTimeoutMs: 50 }),
    (e) => isSlipwayError(e, 'NETBOOT_NO_CLIENT'),
  );
  await assert.rejects(
    serveNetboot({ imagePath: file, link: seg.port('02:00:00:00:00:01'), clients: ['nope'] }),
    (e) => isSlipwayError(e, 'NETBOOT_INVALID_OPTION'),
  );
});

test('client times out without an acceptable offer and writes nothing', async () => {
  const dir = tempDir();
  const payload = payloadOf(MiB);
  const file = writeImage(dir, payload);
  const seg = segment();
  const ac = new AbortController();
  const served = serveNetboot({ imagePath: file, link: seg.port('02:00:00:00:00:01'), signal: ac.signal });
  const out = path.join(dir, 'never.raw');
  await assert.rejects(
    fetchNetboot({
      link: seg.port('02:00:00:00:00:02'),
      expectedSha256: Buffer.alloc(32, 1),
      outputPath: out,
      tickMs: 10,
      offerTimeoutMs: 200,
    }),
    (e) => isSlipwayError(e, 'NETBOOT_TIMEOUT') && /sha256 differs/.test(e.message),
  );
  assert.equal(fs.existsSync(out), false);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['image-0.img']);
  ac.abort();
  assert.equal((await served).finished, 0);
});
