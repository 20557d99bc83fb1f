/**
 * The real services the integration tests run against, started by
 * scripts/test.sh through scripts/services/… under $SLIPWAY_SERVICES_DIR.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** How to get the services when a test finds them missing. */
export const START_SERVICES_HINT =
  'run the tests with `bash scripts/test.sh` (it starts the services), or start them yourself: ' +
  '`export SLIPWAY_SERVICES_DIR=$(mktemp -d) && bash scripts/services/ceph-s3.sh start "$SLIPWAY_SERVICES_DIR/ceph"` ' +
  '(needs Debian packages ceph-mon ceph-osd radosgw ceph-common: `bash scripts/setup.sh` as root); ' +
  'PostgreSQL likewise: `bash scripts/services/postgres.sh start "$SLIPWAY_SERVICES_DIR/postgres"` (Debian package postgresql)';

/** KEY=VALUE lines; blank lines and # comments ignored. */
function readEnvFile(file: string): Record<string, string> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) continue;
    env[t.slice(0, eq).replace(/^export\s+/, '')] = t.slice(eq + 1);
  }
  return env;
}

/**
 * The S3 service's environment (S3_ENDPOINT, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_REGION) from `$SLIPWAY_SERVICES_DIR/ceph/env`,
 * or undefined when no S3 service is running.
 */
export function s3Env(): Record<string, string> | undefined {
  const dir = process.env.SLIPWAY_SERVICES_DIR;
  if (dir === undefined || dir === '') return undefined;
  const env = readEnvFile(path.join(dir, 'ceph', 'env'));
  if (env?.S3_ENDPOINT === undefined || env.AWS_ACCESS_KEY_ID === undefined) return undefined;
  return env;
}

/**
 * The PostgreSQL service's environment (PG_URL: a role that may create
 * databases, and its own database) from `$SLIPWAY_SERVICES_DIR/postgres/env`,
 * or undefined when no PostgreSQL service is running.
 */
export function postgresEnv(): Record<string, string> | undefined {
  const dir = process.env.SLIPWAY_SERVICES_DIR;
  if (dir === undefined || dir === '') return undefined;
  const env = readEnvFile(path.join(dir, 'postgres', 'env'));
  if (env?.PG_URL === undefined) return undefined;
  return env;
}
