/** `slipway repo serve`: flags → startRepoServer, then serve until SIGINT/SIGTERM. */
import * as fs from 'node:fs';
import { SlipwayError } from '../core/errors.js';
import { parseSize } from '../core/size.js';
import { CLOSE_GRACE_MS, startRepoServer } from '../repo/serve.js';
import { int, parse, str } from './args.js';
import type { CliContext, CommandResult } from './context.js';
import { serveUntilStopped } from './serve.js';

export const REPO_SERVE_USAGE = `  serve ZIP|DIR [--port 8080] [--host 127.0.0.1] [--tls-cert PEM --tls-key PEM]
  serve --accept-uploads STORE_DIR [--root TRUSTED_ROOT.json] [--max-upload 16GiB] [--port …] [--host …] [TLS flags]`;

const USAGE = `slipway repo serve ZIP|DIR [--port 8080] [--host 127.0.0.1] [--tls-cert PEM --tls-key PEM]
       slipway repo serve --accept-uploads STORE_DIR [--root TRUSTED_ROOT.json] [--max-upload 16GiB] [--port N] [--host H] [--tls-cert PEM --tls-key PEM]`;

function readFlagFile(file: string, flag: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new SlipwayError('NOT_FOUND', `${flag}: cannot read ${file}: ${(err as Error).message}`, {
      where: file,
    });
  }
}

export async function repoServeCommand(argv: string[], ctx: CliContext): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    {
      port: { type: 'string' },
      host: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'accept-uploads': { type: 'string' },
      root: { type: 'string' },
      'max-upload': { type: 'string' },
    },
    USAGE,
  );
  const store = str(values['accept-uploads']);
  const source = positionals[0];
  if (store === undefined ? source === undefined || positionals.length !== 1 : positionals.length !== 0) {
    throw new SlipwayError('USAGE', `serve takes ZIP|DIR, or --accept-uploads STORE_DIR\nusage: ${USAGE}`);
  }
  if (store === undefined && (values.root !== undefined || values['max-upload'] !== undefined)) {
    throw new SlipwayError('USAGE', `--root and --max-upload apply to --accept-uploads\nusage: ${USAGE}`);
  }
  const port = int(values.port, '--port') ?? 8080;
  if (port > 65535) throw new SlipwayError('USAGE', `--port takes 0 to 65535, got ${port}`);
  const host = str(values.host) ?? '127.0.0.1';
  const certFile = str(values['tls-cert']);
  const keyFile = str(values['tls-key']);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new SlipwayError('USAGE', `--tls-cert and --tls-key go together\nusage: ${USAGE}`);
  }
  const tls =
    certFile !== undefined && keyFile !== undefined
      ? { cert: readFlagFile(certFile, '--tls-cert'), key: readFlagFile(keyFile, '--tls-key') }
      : undefined;
  const rootFile = str(values.root);
  const trustedRoot = rootFile !== undefined ? readFlagFile(rootFile, '--root') : undefined;
  const maxUploadText = str(values['max-upload']);
  const maxUpload = maxUploadText !== undefined ? parseSize(maxUploadText, '--max-upload') : undefined;

  return serveUntilStopped(ctx, {
    start: () =>
      startRepoServer({
        ...(store !== undefined ? { store } : { source: source ?? '' }),
        host,
        port,
        reporter: ctx.reporter,
        ...(tls !== undefined ? { tls } : {}),
        ...(trustedRoot !== undefined ? { trustedRoot } : {}),
        ...(maxUpload !== undefined ? { maxUpload } : {}),
      }),
    what: store !== undefined ? `uploads into ${store}` : (source ?? ''),
    port,
    graceMs: CLOSE_GRACE_MS,
  });
}
