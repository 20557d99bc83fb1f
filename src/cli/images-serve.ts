/** `slipway images serve`: flags → ImagesConfig → startImagesServer, then serve until SIGINT/SIGTERM. */
import cluster from 'node:cluster';
import { SlipwayError } from '../core/errors.js';
import { parseSize } from '../core/size.js';
import { loadImagesConfig, type ImagesConfigLayer } from '../images/config.js';
import { startImagesServer } from '../server/imgapi-server.js';
import { openStores } from '../store/index.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';
import { serveUntilStopped } from './serve.js';

export const IMAGES_SERVE_USAGE = `  serve [--port 8080] [--host 127.0.0.1] [--data DIR] [--config FILE] [--postgres URL]
        [--s3-bucket B [--s3-endpoint URL] [--s3-prefix P] [--s3-region R]] [--auth none|signature --keys DIR]
        [--max-file-size 20GiB] [--allow-loose-origins] [--workers N]`;

const USAGE = `slipway images serve [--port N] [--host ADDR] [--data DIR] [--config FILE] [--postgres URL]
       [--s3-bucket B [--s3-endpoint URL] [--s3-prefix P] [--s3-region R]] [--auth none|signature --keys DIR]
       [--max-file-size SIZE] [--allow-loose-origins] [--workers N]
Defaults: SQLite + files under --data (./slipway-images), channels experimental, dev (default), staging,
release, support; no auth; 127.0.0.1:8080. Settings come from --config FILE, then SLIPWAY_IMAGES_* variables,
then these flags.`;

/** The flags as one configuration layer (over the file and the environment). */
export function imagesServeFlags(values: Record<string, unknown>): ImagesConfigLayer {
  const layer: ImagesConfigLayer = {};
  const port = int(values.port, '--port');
  if (port !== undefined) {
    if (port > 65535) throw new SlipwayError('USAGE', `--port takes 0 to 65535, got ${port}`);
    layer.port = port;
  }
  const host = str(values.host);
  if (host !== undefined) layer.host = host;
  const data = str(values.data);
  if (data !== undefined) layer.dataDir = data;
  const pg = str(values.postgres);
  if (pg !== undefined) layer.metadata = { kind: 'postgres', url: pg };
  const bucket = str(values['s3-bucket']);
  if (bucket !== undefined) layer.blobs = { kind: 's3', bucket };
  const s3: NonNullable<ImagesConfigLayer['s3']> = {};
  const endpoint = str(values['s3-endpoint']);
  const prefix = str(values['s3-prefix']);
  const region = str(values['s3-region']);
  if (endpoint !== undefined) s3.endpoint = endpoint;
  if (prefix !== undefined) s3.prefix = prefix;
  if (region !== undefined) s3.region = region;
  if (Object.keys(s3).length > 0) layer.s3 = s3;
  const authType = str(values.auth);
  if (authType !== undefined && authType !== 'none' && authType !== 'signature')
    throw new SlipwayError('USAGE', `--auth takes none or signature, got '${authType}'\nusage: ${USAGE}`);
  const keys = str(values.keys);
  if (authType !== undefined || keys !== undefined) {
    layer.auth = {
      ...(authType !== undefined ? { type: authType } : {}),
      ...(keys !== undefined ? { keysDir: keys } : {}),
    };
  }
  const max = str(values['max-file-size']);
  if (max !== undefined) layer.maxFileSize = parseSize(max, '--max-file-size');
  if (values['allow-loose-origins'] === true) layer.strictOrigins = false;
  return layer;
}

export async function imagesServeCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    {
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      config: { type: 'string' },
      postgres: { type: 'string' },
      's3-bucket': { type: 'string' },
      's3-endpoint': { type: 'string' },
      's3-prefix': { type: 'string' },
      's3-region': { type: 'string' },
      auth: { type: 'string' },
      keys: { type: 'string' },
      'max-file-size': { type: 'string' },
      'allow-loose-origins': { type: 'boolean' },
      workers: { type: 'string' },
    },
    USAGE,
  );
  if (positionals.length > 0)
    throw new SlipwayError(
      'USAGE',
      `serve takes no arguments, got '${positionals.join(' ')}'\nusage: ${USAGE}`,
    );
  const configFile = str(values.config);
  const { config, warnings } = loadImagesConfig({
    ...(configFile !== undefined ? { configFile } : {}),
    env: process.env,
    flags: imagesServeFlags(values),
  });
  for (const w of warnings)
    ctx.reporter.emit({ kind: 'log', level: 'warn', message: `${w.where}: ${w.message}` });

  const where = `${config.metadata.kind === 'sqlite' ? config.metadata.file : 'PostgreSQL'} + ${
    config.blobs.kind === 'fs' ? config.blobs.dir : `s3://${config.blobs.bucket}`
  }`;
  const workers = int(values.workers, '--workers') ?? 1;
  if (workers < 1 || workers > 64) throw new SlipwayError('USAGE', `--workers takes 1 to 64, got ${workers}`);
  const what = `the image repository (${where})`;
  if (cluster.isWorker) {
    // One of the primary's processes: serve quietly (the primary speaks for all of them), then
    // let go of the primary's channel so this process can exit.
    const r = await serveUntilStopped(
      { ...ctx, print: () => undefined },
      {
        start: () => startImagesServer(config, { reporter: ctx.reporter }),
        what,
        port: config.port,
        graceMs: config.closeGraceMs,
      },
    );
    cluster.worker?.disconnect();
    return { data: r.data, human: '' };
  }
  if (workers > 1) {
    // Migrations run once, here, before the workers open the same stores.
    const stores = await openStores({ metadata: config.metadata, blobs: config.blobs });
    await stores.meta.close();
    await stores.blobs.close();
    return serveWithWorkers(ctx, workers, what, config.port, config.host, config.closeGraceMs);
  }
  return serveUntilStopped(ctx, {
    start: () => startImagesServer(config, { reporter: ctx.reporter }),
    what,
    port: config.port,
    graceMs: config.closeGraceMs,
  });
}

/**
 * `--workers N`: N processes (node:cluster) accept on one port. The server
 * keeps no state outside its stores, so they serve the same repository; this
 * is how one machine uses more than one core (Node serves a file at about
 * 1 GB/s per core). A signal to the primary drains every worker.
 */
async function serveWithWorkers(
  ctx: CliContext,
  n: number,
  what: string,
  port: number,
  host: string,
  graceMs: number,
): Promise<CommandResult> {
  cluster.setupPrimary({ exec: process.argv[1] ?? '', args: process.argv.slice(2) });
  const procs = Array.from({ length: n }, () => cluster.fork());
  const exited = procs.map(
    (w) =>
      new Promise<number | null>((resolve) =>
        w.once('exit', (code) => {
          resolve(code);
        }),
      ),
  );
  let bound: number;
  try {
    bound = await new Promise<number>((resolve, reject) => {
      // Announce only once every worker accepts: before that, all connections land on the
      // first one, and a load balancer or benchmark started on the announcement would see one.
      let ready = 0;
      const onListening = (_w: unknown, address: { port: number }): void => {
        ready++;
        if (ready < n) return;
        cluster.off('listening', onListening);
        resolve(address.port);
      };
      cluster.on('listening', onListening);
      void Promise.race(exited).then((code) => {
        reject(new SlipwayError('IO', `a server worker exited (${String(code)}) before listening`));
      });
    });
  } catch (err) {
    for (const w of procs) w.kill('SIGKILL');
    throw err;
  }
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  ctx.print(
    ctx.json
      ? JSON.stringify({ listening: url, port: bound, workers: n })
      : `serving ${what} at ${url}${port === 0 ? ` (bound port ${bound})` : ''} with ${n} worker processes`,
  );
  const why = await new Promise<string>((resolve) => {
    const restore = ctx.onFirstInterrupt((sig) => {
      process.stderr.write(
        `\n${sig}: workers finish in-flight requests (up to ${Math.round(graceMs / 1000)} s)\n`,
      );
      resolve(sig);
    });
    void Promise.all(exited).then(() => {
      restore();
      resolve('workers exited');
    });
  });
  for (const w of procs) if (!w.isDead()) w.process.kill('SIGTERM');
  await Promise.all(exited);
  return { data: { url, port: bound, workers: n, stopped: why }, human: `stopped serving ${url} (${why})` };
}
