/**
 * Deterministic filler for `fake` sources: the same seed and size always
 * give the same bytes, and different artifacts get different seeds, so no
 * two fakes in one repository share a hash.
 */
const CHUNK = 1 << 20;

function pattern(seed: string): Buffer {
  const line = Buffer.from(`${seed}\n`, 'utf8');
  const reps = Math.max(1, Math.ceil(CHUNK / line.length));
  return Buffer.concat(Array.from({ length: reps }, () => line)).subarray(0, CHUNK);
}

/** `size` bytes of `seed\n` repeated, in chunks of at most 1 MiB. */
export function* fakeChunks(seed: string, size: number): Generator<Buffer> {
  const block = pattern(seed);
  const lineLength = Buffer.byteLength(seed) + 1;
  // Each chunk starts on a line boundary so the stream is the same however it is cut.
  const step = CHUNK - (CHUNK % lineLength);
  for (let done = 0; done < size; done += step) yield block.subarray(0, Math.min(step, size - done));
}

export function fakeBytes(seed: string, size: number): Buffer {
  return Buffer.concat([...fakeChunks(seed, size)]);
}
