/**
 * sha256 of a whole file on a worker thread, so it overlaps work on the main
 * thread (verifying a repository reads the zip for its own identity while the
 * targets are checked; each pass is bound by one core's sha256).
 */
import { Worker } from 'node:worker_threads';
import { fromSystemError } from '../core/errors.js';

export interface BackgroundHash {
  readonly result: Promise<string>;
  /** Stops the worker (the caller no longer needs the hash). */
  cancel(): Promise<void>;
}

export function hashFileInBackground(file: string): BackgroundHash {
  const worker = new Worker(new URL('./hash-file-worker.js', import.meta.url), { workerData: { file } });
  const result = new Promise<string>((resolve, reject) => {
    worker.once('message', (m: { sha256?: string; error?: string; code?: string }) => {
      if (m.sha256 !== undefined) resolve(m.sha256);
      else
        reject(
          fromSystemError(
            Object.assign(new Error(m.error ?? 'hash failed'), { code: m.code }),
            'cannot read',
            file,
          ),
        );
    });
    worker.once('error', (err) => {
      reject(fromSystemError(err, 'cannot read', file));
    });
  });
  // Observed here so a cancelled or abandoned hash never surfaces as an unhandled rejection.
  result.catch(() => undefined);
  return {
    result,
    cancel: async () => {
      await worker.terminate();
    },
  };
}
