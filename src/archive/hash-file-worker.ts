/** The worker of hash-file.ts: streams one file through sha256 in 1 MiB reads. */
import { parentPort, workerData } from 'node:worker_threads';
import { sha256FileSync } from '../core/digest.js';

const { file } = workerData as { file: string };
try {
  parentPort?.postMessage({ sha256: sha256FileSync(file) });
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  parentPort?.postMessage({ error: e.message, code: e.code });
}
