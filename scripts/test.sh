#!/usr/bin/env bash
# The whole test suite: set-up, typecheck and build, lint, format check, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Real services for the integration tests (loopback only): started in the background while the
# build and lint run, stopped by their pid files on any exit, failed tests included. A running
# set named by $SLIPWAY_SERVICES_DIR (with ceph/env) is used as it is and left running; when it has
# no postgres/env, PostgreSQL is started into it and stopped again at the end.
own_services=0
if [ -z "${SLIPWAY_SERVICES_DIR:-}" ] || [ ! -f "$SLIPWAY_SERVICES_DIR/ceph/env" ]; then
  SLIPWAY_SERVICES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/slipway-services.XXXXXX")
  own_services=1
fi
own_postgres=0
if [ "$own_services" = 1 ] || [ ! -f "$SLIPWAY_SERVICES_DIR/postgres/env" ]; then own_postgres=1; fi
export SLIPWAY_SERVICES_DIR
services_log="$SLIPWAY_SERVICES_DIR/start.log"
postgres_log="$SLIPWAY_SERVICES_DIR/start-postgres.log"
services_pid=
postgres_pid=
stop_services() {
  if [ -n "$services_pid" ]; then wait "$services_pid" || true; fi
  if [ -n "$postgres_pid" ]; then wait "$postgres_pid" || true; fi
  if [ "$own_postgres" = 1 ]; then
    bash scripts/services/postgres.sh stop "$SLIPWAY_SERVICES_DIR/postgres" || true
    rm -f "$postgres_log"
  fi
  if [ "$own_services" = 1 ]; then
    bash scripts/services/ceph-s3.sh stop "$SLIPWAY_SERVICES_DIR/ceph" || true
    rm -rf "$SLIPWAY_SERVICES_DIR"
  fi
}
trap stop_services EXIT
trap 'exit 130' INT TERM
bash scripts/services/ceph-s3.sh start "$SLIPWAY_SERVICES_DIR/ceph" >"$services_log" 2>&1 &
services_pid=$!
bash scripts/services/postgres.sh start "$SLIPWAY_SERVICES_DIR/postgres" >"$postgres_log" 2>&1 &
postgres_pid=$!

echo "== typecheck + build"
npx tsc -p tsconfig.json
echo "== lint"
npx eslint --max-warnings 0 .
echo "== format"
npx prettier --check --log-level warn .
echo "== services"
services_ok=1
if ! wait "$services_pid"; then
  cat "$services_log" >&2
  echo "test: the S3 service (scripts/services/ceph-s3.sh) did not start" >&2
  services_ok=0
else
  cat "$services_log"
fi
services_pid=
if ! wait "$postgres_pid"; then
  cat "$postgres_log" >&2
  echo "test: the PostgreSQL service (scripts/services/postgres.sh) did not start" >&2
  services_ok=0
else
  cat "$postgres_log"
fi
postgres_pid=
[ "$services_ok" = 1 ] || exit 1
echo "== tests"
node scripts/run-tests.mjs "$@"
