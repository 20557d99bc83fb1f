// A release upload in a process of its own, for upload.test.ts to SIGKILL midway: plans and
// applies the upload described by the JSON in argv[2] (a ReleaseUploadInput without functions;
// credentials from the environment) and prints one JSON line per event on stdout.
import {
  applyReleaseUpload,
  planReleaseUpload,
  type ReleaseUploadInput,
} from '../../src/release/s3-upload.js';

const input = JSON.parse(process.argv[2] ?? '{}') as ReleaseUploadInput;
input.onProgress = (e) => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};
const plan = await planReleaseUpload(input);
process.stdout.write(`${JSON.stringify({ kind: 'planned', upload: plan.totals.upload })}\n`);
const result = await applyReleaseUpload(input, plan);
process.stdout.write(`${JSON.stringify({ kind: 'result', ...result })}\n`);
