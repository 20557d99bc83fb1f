import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  createClientSession,
  createServerMux,
  createServerSession,
  datasetField,
  decodeFrame,
  encodeFrame,
  readMessage,
  type ClientSession,
  type Frame,
  type Message,
  type ServerOptions,
} from '../../src/formats/netboot.js';
import { prng } from '../helpers/prng.js';

const MiB = 1024 * 1024;
const SERVER = '02:00:00:00:00:01';
const CLIENT = '02:00:00:00:00:02';
const OTHER = '02:00:00:00:00:03';
const SERVER_BYTES = [2, 0, 0, 0, 0, 1];
const CLIENT_BYTES = [2, 0, 0, 0, 0, 2];
const HELLO = "Hello!  I'd like to buy a ramdisk please.";

function must<T>(x: T | undefined): T {
  assert.ok(x !== undefined);
  return x;
}

function makeImage(size: number, seed: number): Buffer {
  const rnd = prng(seed);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

function sha(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest();
}

function serverFor(image: Buffer, clientMac: string, targetSize = 4096n * BigInt(MiB)): ServerOptions {
  return {
    image: { targetSize, imageSize: BigInt(image.length), sha256: sha(image), dataset: 'rpool/ROOT/ramdisk' },
    serverMac: SERVER,
    clientMac,
    readAt: (offset, length) => image.subarray(offset, offset + length),
  };
}

function frame(src: string, dst: string, message: Message): Buffer {
  return encodeFrame({ dst, src, message });
}

function decoded(b: Uint8Array): Frame {
  const r = decodeFrame(b);
  assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.detail}`);
  return r.frame;
}

/** A HELLO frame written byte by byte from the spec, not by the encoder. */
function specHello(): Buffer {
  return Buffer.concat([
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    Buffer.from(CLIENT_BYTES),
    Buffer.from([0x1d, 0xe0]),
    Buffer.from([0x1d, 0xe1, 0x23, 0x45]),
    Buffer.from([0x00, 0x00, 0x90, 0x01]),
    Buffer.from([0x00, 0x00, 0x00, 41]),
    Buffer.from(HELLO, 'ascii'),
  ]);
}

test('HELLO frame matches the spec byte for byte', () => {
  const expected = specHello();
  assert.equal(expected.length, 14 + 12 + 41);
  assert.equal(HELLO.length, 41);
  assert.deepEqual(
    encodeFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: CLIENT, message: { type: 'hello' } }),
    expected,
  );
  const f = decoded(expected);
  assert.deepEqual(f, { dst: 'ff:ff:ff:ff:ff:ff', src: CLIENT, message: { type: 'hello' } });
});

test('OFFER layout: sizes, sha256 and dataset at the spec offsets', () => {
  const sum = Buffer.alloc(32, 0xab);
  const b = encodeFrame({
    dst: CLIENT,
    src: SERVER,
    message: {
      type: 'offer',
      ramdiskSize: 0x1_0000_0000n,
      ramdiskDataSize: 0x40_0000n,
      sha256: sum,
      dataset: datasetField('rpool/ROOT/ramdisk'),
    },
  });
  assert.equal(b.length, 26 + 176);
  assert.deepEqual([...b.subarray(0, 6)], CLIENT_BYTES);
  assert.deepEqual([...b.subarray(6, 12)], SERVER_BYTES);
  assert.deepEqual(
    [...b.subarray(12, 26)],
    [0x1d, 0xe0, 0x1d, 0xe1, 0x23, 0x45, 0, 0, 0x91, 0x02, 0, 0, 0, 176],
  );
  const p = b.subarray(26);
  assert.deepEqual([...p.subarray(0, 8)], [0, 0, 0, 1, 0, 0, 0, 0]);
  assert.deepEqual([...p.subarray(8, 16)], [0, 0, 0, 0, 0, 0x40, 0, 0]);
  assert.deepEqual(p.subarray(16, 48), sum);
  assert.equal(p.subarray(48, 66).toString('ascii'), 'rpool/ROOT/ramdisk');
  assert.ok(p.subarray(66, 176).every((x) => x === 0));
  const f = decoded(b);
  assert.equal(f.message.type, 'offer');
  if (f.message.type === 'offer') assert.equal(f.message.ramdiskSize, 0x1_0000_0000n);
});

test('READ, DATA, FINISHED and RESET layouts', () => {
  const r = encodeFrame({ dst: SERVER, src: CLIENT, message: readMessage([0, 1024, 2048]) });
  assert.equal(r.length, 26 + 1032);
  assert.deepEqual([...r.subarray(18, 26)], [0, 0, 0x90, 0x03, 0, 0, 0x04, 0x08]);
  assert.equal(r.readBigUInt64BE(26), 3n);
  assert.equal(r.readBigUInt64BE(26 + 8 + 8 * 2), 2048n);
  assert.ok(r.subarray(26 + 8 + 8 * 3).every((x) => x === 0));

  const d = encodeFrame({
    dst: CLIENT,
    src: SERVER,
    message: { type: 'data', offset: 1024n, data: Buffer.from('xyz') },
  });
  assert.deepEqual([...d.subarray(18, 26)], [0, 0, 0x91, 0x04, 0, 0, 0, 11]);
  // 26 + 11 = 37 bytes, padded to the 60-byte Ethernet minimum
  assert.equal(d.length, 60);
  assert.equal(d.readBigUInt64BE(26), 1024n);
  const dm = decoded(d).message;
  assert.deepEqual(dm, { type: 'data', offset: 1024n, data: new Uint8Array(Buffer.from('xyz')) });

  const fin = encodeFrame({ dst: SERVER, src: CLIENT, message: { type: 'finished' } }, { pad: false });
  assert.deepEqual([...fin.subarray(14)], [0x1d, 0xe1, 0x23, 0x45, 0, 0, 0x90, 0x05, 0, 0, 0, 0]);
  const rst = encodeFrame({ dst: CLIENT, src: SERVER, message: { type: 'reset' } }, { pad: false });
  assert.deepEqual([...rst.subarray(18, 22)], [0, 0, 0x91, 0x06]);
});

test('padded minimum-size frames are accepted; the len field governs', () => {
  const fin = Buffer.alloc(60);
  fin.set([
    ...SERVER_BYTES,
    ...CLIENT_BYTES,
    0x1d,
    0xe0,
    0x1d,
    0xe1,
    0x23,
    0x45,
    0,
    0,
    0x90,
    0x05,
    0,
    0,
    0,
    0,
  ]);
  // payload area after the 12-byte header is 34 bytes of padding
  assert.equal(fin.length - 26, 34);
  assert.deepEqual(decoded(fin).message, { type: 'finished' });
  // padding beyond the minimum is not payload
  const long = Buffer.concat([fin, Buffer.alloc(10)]);
  const r = decodeFrame(long);
  assert.equal(r.ok ? 'ok' : r.reason, 'trailing-bytes');
});

test('hostile frames are rejected with a reason, never thrown', () => {
  const hello = specHello();
  const cases: [Buffer, string][] = [];
  cases.push([hello.subarray(0, 10), 'short-frame']);
  const et = Buffer.from(hello);
  et.writeUInt16BE(0x0800, 12);
  cases.push([et, 'wrong-ethertype']);
  cases.push([hello.subarray(0, 20), 'short-frame']);
  const mg = Buffer.from(hello);
  mg.writeUInt32BE(0x1de12346, 14);
  cases.push([mg, 'bad-magic']);
  const ty = Buffer.from(hello);
  ty.writeUInt32BE(0x9007, 18);
  cases.push([ty, 'unknown-type']);
  const ln = Buffer.from(hello);
  ln.writeUInt32BE(40, 22);
  cases.push([ln, 'bad-length']);
  cases.push([hello.subarray(0, hello.length - 1), 'truncated']);
  const tx = Buffer.from(hello);
  tx[26 + 6] = 0x21; // one of the two spaces
  cases.push([tx, 'bad-hello']);
  const read = encodeFrame({ dst: SERVER, src: CLIENT, message: readMessage([0]) });
  read.writeUInt32BE(1031, 22);
  cases.push([read, 'bad-length']);
  const data = encodeFrame({
    dst: CLIENT,
    src: SERVER,
    message: { type: 'data', offset: 0n, data: Buffer.alloc(1024) },
  });
  data.writeUInt32BE(8 + 1025, 22);
  cases.push([data, 'bad-length']);
  const data2 = Buffer.from(data);
  data2.writeUInt32BE(7, 22);
  cases.push([data2, 'bad-length']);
  const offer = encodeFrame({
    dst: CLIENT,
    src: SERVER,
    message: {
      type: 'offer',
      ramdiskSize: 0n,
      ramdiskDataSize: 0n,
      sha256: Buffer.alloc(32),
      dataset: new Uint8Array(128),
    },
  });
  offer.writeUInt32BE(175, 22);
  cases.push([offer, 'bad-length']);
  for (const [b, reason] of cases) {
    const r = decodeFrame(b);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.reason, reason, r.detail);
  }
});

test('server: HELLO gets an OFFER from the image header values', () => {
  const image = makeImage(MiB, 1);
  const s = createServerSession(serverFor(image, CLIENT));
  const out = s.onFrame(specHello(), 0);
  assert.equal(out.length, 1);
  const f = decoded(must(out[0]));
  assert.equal(f.dst, CLIENT);
  assert.equal(f.src, SERVER);
  assert.deepEqual(f.message, {
    type: 'offer',
    ramdiskSize: 4096n * BigInt(MiB),
    ramdiskDataSize: BigInt(MiB),
    sha256: new Uint8Array(sha(image)),
    dataset: datasetField('rpool/ROOT/ramdisk'),
  });
  assert.equal(s.status().state, 'serving');
});

test('server: READ before HELLO gets RESET', () => {
  const s = createServerSession(serverFor(makeImage(MiB, 1), 'any'));
  const out = s.onFrame(frame(CLIENT, SERVER, readMessage([0])), 0);
  assert.equal(out.length, 1);
  assert.deepEqual(decoded(must(out[0])), { dst: CLIENT, src: SERVER, message: { type: 'reset' } });
  const mux = createServerMux({ ...serverFor(makeImage(MiB, 1), 'any'), clients: 'any' });
  assert.equal(
    decoded(must(mux.onFrame(frame(CLIENT, SERVER, readMessage([0])), 0)[0])).message.type,
    'reset',
  );
});

test('server: frames from other MACs are ignored; `any` latches onto the first HELLO', () => {
  const image = makeImage(MiB, 1);
  const fixed = createServerSession(serverFor(image, CLIENT));
  assert.deepEqual(fixed.onFrame(frame(OTHER, 'ff:ff:ff:ff:ff:ff', { type: 'hello' }), 0), []);
  assert.equal(fixed.status().state, 'waiting');
  const any = createServerSession(serverFor(image, 'any'));
  assert.equal(any.onFrame(specHello(), 0).length, 1);
  assert.equal(any.status().client, CLIENT);
  assert.deepEqual(any.onFrame(frame(OTHER, 'ff:ff:ff:ff:ff:ff', { type: 'hello' }), 0), []);
  assert.deepEqual(any.onFrame(frame(OTHER, SERVER, readMessage([0])), 0), []);
});

test('server: READ with 161 offsets is rejected, 160 is served; DATA is 4096+offset, short at the end', () => {
  const image = makeImage(MiB + 100, 2);
  const s = createServerSession(serverFor(image, CLIENT));
  s.onFrame(specHello(), 0);
  const bad = { type: 'read', noffsets: 161n, offsets: new Array<bigint>(128).fill(0n) } as const;
  assert.deepEqual(s.onFrame(frame(CLIENT, SERVER, bad), 0), []);
  assert.equal(s.status().events.at(-1)?.kind, 'rejected-read');
  const ok = s.onFrame(frame(CLIENT, SERVER, { ...bad, noffsets: 160n }), 0);
  assert.equal(ok.length, 128);

  // Only the first noffsets entries are read (zero gaps after them are not requests).
  const out = s.onFrame(frame(CLIENT, SERVER, readMessage([MiB, 2048, MiB + 100, 5 * MiB])), 0).map(decoded);
  assert.equal(out.length, 4);
  const msgs = out.map((f) => f.message);
  assert.deepEqual(msgs[0], { type: 'data', offset: BigInt(MiB), data: new Uint8Array(image.subarray(MiB)) });
  assert.deepEqual(msgs[1], {
    type: 'data',
    offset: 2048n,
    data: new Uint8Array(image.subarray(2048, 3072)),
  });
  assert.deepEqual(msgs[2], { type: 'data', offset: BigInt(MiB + 100), data: new Uint8Array(0) });
  assert.deepEqual(msgs[3], { type: 'data', offset: BigInt(5 * MiB), data: new Uint8Array(0) });
  s.onFrame(frame(CLIENT, SERVER, { type: 'finished' }), 0);
  assert.equal(s.status().state, 'finished');
});

test('server: the file adapter contract is image-relative (file position 4096 + offset)', () => {
  // A whole boot image file: 4096-byte header then the payload.
  const payload = makeImage(MiB, 3);
  const file = Buffer.concat([Buffer.alloc(4096, 0xee), payload]);
  const opts = serverFor(payload, CLIENT);
  const s = createServerSession({ ...opts, readAt: (o, n) => file.subarray(4096 + o, 4096 + o + n) });
  s.onFrame(specHello(), 0);
  const d = decoded(must(s.onFrame(frame(CLIENT, SERVER, readMessage([0])), 0)[0]));
  assert.deepEqual(d.message, { type: 'data', offset: 0n, data: new Uint8Array(payload.subarray(0, 1024)) });
});

test('client: HELLO every 4 s until an acceptable OFFER', () => {
  const image = makeImage(MiB, 4);
  const c = createClientSession({ expectedSha256: sha(image), mac: CLIENT });
  assert.deepEqual(c.onTick(0), [specHello()]);
  assert.deepEqual(c.onTick(3999), []);
  assert.equal(c.onTick(4000).length, 1);
  const offer = (over: Partial<Extract<Message, { type: 'offer' }>>): Buffer =>
    frame(SERVER, CLIENT, {
      type: 'offer',
      ramdiskSize: 4n * BigInt(MiB),
      ramdiskDataSize: BigInt(MiB),
      sha256: sha(image),
      dataset: datasetField('rpool/ROOT/ramdisk'),
      ...over,
    });
  const unterminated = new Uint8Array(128).fill(0x41);
  for (const bad of [
    { sha256: Buffer.alloc(32) },
    { dataset: unterminated },
    { ramdiskSize: BigInt(MiB) - 1n },
    { ramdiskDataSize: BigInt(MiB) - 1n },
    { ramdiskSize: BigInt(MiB), ramdiskDataSize: BigInt(MiB) + 1n },
  ]) {
    assert.deepEqual(c.onFrame(offer(bad), 4000), []);
    assert.equal(c.progress().state, 'hello');
    assert.match(c.progress().reason ?? '', /refused offer/);
  }
  assert.equal(c.onTick(8000).length, 1);
  const reads = c.onFrame(offer({}), 8000).map(decoded);
  assert.equal(c.progress().state, 'reading');
  assert.equal(reads.length, 1);
  const m = must(reads[0]).message;
  assert.equal(must(reads[0]).dst, SERVER);
  assert.ok(m.type === 'read');
  if (m.type === 'read') {
    assert.equal(m.noffsets, 128n);
    assert.deepEqual(
      m.offsets,
      Array.from({ length: 128 }, (_, i) => BigInt(i * 1024)),
    );
  }
  // No more HELLOs, no new READs until a second passes, then the same offsets again.
  assert.deepEqual(c.onTick(8999), []);
  const again = c.onTick(9000).map(decoded);
  assert.equal(again.length, 1);
  assert.equal(c.progress().retransmits, 128);
  // RESET from the server gives up.
  c.onFrame(frame(SERVER, CLIENT, { type: 'reset' }), 9001);
  assert.equal(c.progress().state, 'failed');
});

const macs = [CLIENT, OTHER];

/** Joins client(s) and a server (mux) on one simulated segment, dropping frames by a seeded PRNG. */
function simulate(
  clients: ClientSession[],
  server: { onFrame(f: Uint8Array, now: number): Buffer[] },
  dropRate: number,
  seed: number,
  limitMs: number,
): { now: number; dropped: number; sent: number } {
  const rnd = prng(seed);
  let queue: { to: 'server' | number; bytes: Buffer }[] = [];
  let dropped = 0;
  let sent = 0;
  const push = (to: 'server' | number, frames: Buffer[]): void => {
    for (const bytes of frames) {
      sent++;
      if (rnd() < dropRate) dropped++;
      else queue.push({ to, bytes });
    }
  };
  let now = 0;
  const done = (): boolean =>
    clients.every((c) => c.progress().state === 'done' || c.progress().state === 'failed');
  while (!done() && now <= limitMs) {
    for (const c of clients) push('server', c.onTick(now));
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      for (const { to, bytes } of batch) {
        if (to === 'server') {
          // Replies go to whichever client the frame is addressed to.
          for (const reply of server.onFrame(bytes, now)) {
            const dst = decoded(reply).dst;
            clients.forEach((c, i) => {
              if (dst === macs[i]) push(i, [reply]);
            });
          }
        } else {
          push('server', must(clients[to]).onFrame(bytes, now));
        }
      }
    }
    now += 50;
  }
  return { now, dropped, sent };
}

test('a 4 MiB image crosses a 5% lossy link intact', () => {
  const image = makeImage(4 * MiB, 5);
  const server = createServerSession(serverFor(image, 'any'));
  const client = createClientSession({ expectedSha256: sha(image), mac: CLIENT });
  const r = simulate([client], server, 0.05, 42, 600_000);
  const p = client.progress();
  assert.equal(p.state, 'done', p.reason);
  assert.ok(r.dropped > 0, 'the link dropped frames');
  assert.ok(p.retransmits > 0);
  assert.equal(p.received, 4 * MiB);
  assert.deepEqual(sha(must(client.image())), sha(image));
  assert.equal(client.offer()?.dataset, 'rpool/ROOT/ramdisk');
});

test('a lossless transfer ends with the server FINISHED; odd sizes work; onData streams', () => {
  const image = makeImage(MiB + 4 * 1024 + 17, 6);
  const server = createServerSession(serverFor(image, CLIENT));
  const sink = Buffer.alloc(image.length);
  let writes = 0;
  const client = createClientSession({
    expectedSha256: sha(image),
    mac: CLIENT,
    onData: (o, d) => {
      writes++;
      sink.set(d, o);
    },
  });
  simulate([client], server, 0, 1, 60_000);
  assert.equal(client.progress().state, 'done');
  assert.equal(server.status().state, 'finished');
  assert.equal(writes, Math.ceil(image.length / 1024));
  assert.deepEqual(sink, image);
  assert.equal(client.image(), undefined);
});

test('two clients at once through the mux', () => {
  const image = makeImage(2 * MiB, 7);
  const mux = createServerMux({ ...serverFor(image, 'any'), clients: [CLIENT, OTHER] });
  const a = createClientSession({ expectedSha256: sha(image), mac: CLIENT });
  const b = createClientSession({ expectedSha256: sha(image), mac: OTHER });
  simulate([a, b], mux, 0.02, 9, 600_000);
  assert.equal(a.progress().state, 'done');
  assert.equal(b.progress().state, 'done');
  assert.deepEqual(sha(must(a.image())), sha(image));
  assert.deepEqual(sha(must(b.image())), sha(image));
  assert.equal(mux.sessions().size, 2);
});

test('mux ignores MACs not on its list and caps sessions', () => {
  const image = makeImage(MiB, 8);
  const mux = createServerMux({ ...serverFor(image, 'any'), clients: [CLIENT] });
  assert.deepEqual(mux.onFrame(frame(OTHER, 'ff:ff:ff:ff:ff:ff', { type: 'hello' }), 0), []);
  const capped = createServerMux({ ...serverFor(image, 'any'), clients: 'any', maxSessions: 1 });
  assert.equal(capped.onFrame(frame(CLIENT, 'ff:ff:ff:ff:ff:ff', { type: 'hello' }), 0).length, 1);
  assert.deepEqual(capped.onFrame(frame(OTHER, 'ff:ff:ff:ff:ff:ff', { type: 'hello' }), 1), []);
  // after the idle time, the slot is reused
  assert.equal(capped.onFrame(frame(OTHER, 'ff:ff:ff:ff:ff:ff', { type: 'hello' }), 60_001).length, 1);
});

test('fuzz: random and mutated frames never make either machine throw', () => {
  const image = makeImage(MiB, 10);
  const rnd = prng(1234);
  const server = createServerSession(serverFor(image, 'any'));
  const mux = createServerMux({ ...serverFor(image, 'any'), clients: 'any' });
  const client = createClientSession({ expectedSha256: sha(image), mac: CLIENT });
  client.onTick(0);
  const seeds: Buffer[] = [
    specHello(),
    frame(CLIENT, SERVER, readMessage([0, 1024, MiB * 2])),
    frame(SERVER, CLIENT, {
      type: 'offer',
      ramdiskSize: 4n * BigInt(MiB),
      ramdiskDataSize: BigInt(MiB),
      sha256: sha(image),
      dataset: datasetField('x'),
    }),
    frame(SERVER, CLIENT, { type: 'data', offset: 0n, data: image.subarray(0, 1024) }),
    frame(CLIENT, SERVER, { type: 'finished' }),
    frame(SERVER, CLIENT, { type: 'reset' }),
  ];
  for (let i = 0; i < 20_000; i++) {
    let b: Buffer;
    if (rnd() < 0.3) {
      b = Buffer.alloc(Math.floor(rnd() * 1200));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
      if (rnd() < 0.5 && b.length >= 26) b.set([0x1d, 0xe0, 0x1d, 0xe1, 0x23, 0x45], 12);
    } else {
      b = Buffer.from(must(seeds[Math.floor(rnd() * seeds.length)]));
      const flips = 1 + Math.floor(rnd() * 4);
      for (let k = 0; k < flips && b.length > 0; k++)
        b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      if (rnd() < 0.2) b = b.subarray(0, Math.floor(rnd() * b.length));
    }
    decodeFrame(b);
    server.onFrame(b, i);
    mux.onFrame(b, i);
    client.onFrame(b, i);
    client.onTick(i);
  }
  assert.ok(true);
});
