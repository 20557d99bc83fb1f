#!/usr/bin/env bash
# The whole test suite: set-up, typecheck and build, lint, format check, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Real services for the integration tests (loopback only): started in the background while the
# build and lint run, stopped by their pid files on any exit, failed tests included. A running
# set named by $SLIPWAY_SERVICES_DIR (with ceph/env) is used as it is and left running.
own_services=0
if [ -z "${SLIPWAY_SERVICES_DIR:-}" ] || [ ! -f "$SLIPWAY_SERVICES_DIR/ceph/env" ]; then
  SLIPWAY_SERVICES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/slipway-services.XXXXXX")
  own_services=1
fi
export SLIPWAY_SERVICES_DIR
services_log="$SLIPWAY_SERVICES_DIR/start.log"
services_pid=
stop_services() {
  if [ -n "$services_pid" ]; then wait "$services_pid" || true; fi
  if [ "$own_services" = 1 ]; then
    bash scripts/services/ceph-s3.sh stop "$SLIPWAY_SERVICES_DIR/ceph" || true
    rm -rf "$SLIPWAY_SERVICES_DIR"
  fi
}
trap stop_services EXIT
trap 'exit 130' INT TERM
bash scripts/services/ceph-s3.sh start "$SLIPWAY_SERVICES_DIR/ceph" >"$services_log" 2>&1 &
services_pid=$!

echo "== typecheck + build"
npx tsc -p tsconfig.json
echo "== lint"
npx eslint --max-warnings 0 .
echo "== format"
npx prettier --check --log-level warn .
echo "== services"
if ! wait "$services_pid"; then
  services_pid=
  cat "$services_log" >&2
  echo "test: the S3 service (scripts/services/ceph-s3.sh) did not start" >&2
  exit 1
fi
services_pid=
cat "$services_log"
echo "== tests"
node scripts/run-tests.mjs "$@"
