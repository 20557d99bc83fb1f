/** The worker of hash-file.ts: streams one file through sha256 in 1 MiB reads. */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

const { file } = workerData as { file: string };
try {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  parentPort?.postMessage({ sha256: h.digest('hex') });
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  parentPort?.postMessage({ error: e.message, code: e.code });
}
