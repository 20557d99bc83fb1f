#!/usr/bin/env bash
# A throwaway OCI registry on loopback only: Debian's docker-registry (distribution 2.8), no auth.
#
#   scripts/services/registry.sh start DIR [PORT]   # PORT defaults to a free one
#   scripts/services/registry.sh stop DIR
#   scripts/services/registry.sh env DIR            # prints `export REGISTRY=127.0.0.1:PORT` (eval-able)
#
# Our own config (services.md: Debian's default listens on every interface) with filesystem
# storage in DIR/data and deletes enabled; `start` waits until GET /v2/ answers and writes DIR/env;
# `stop` ends the registry by its pid file and removes DIR. The tests start their own registries
# (test/helpers/registry.ts, also with htpasswd or token auth); this one is for the example and
# the benchmarks. Needs Debian's docker-registry (scripts/setup.sh installs it).
set -euo pipefail

SERVICE=registry
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
service_args 0 "$@"

fail() {
  log "$*"
  [ -f "$dir/registry.log" ] && cat "$dir/registry.log" >&2
  do_stop
  exit 1
}

do_stop() {
  if [ -f "$dir/pid" ]; then
    local pid
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    wait_gone "$pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

do_start() {
  if [ -f "$dir/pid" ] && alive "$(cat "$dir/pid")"; then
    log "already running ($dir)"
    return 0
  fi
  do_stop
  command -v docker-registry >/dev/null || {
    log "docker-registry is not installed (bash scripts/setup.sh as root)"
    exit 1
  }
  [ "$port" != 0 ] || port=$(free_port)
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: throwaway-registry-secret}
YAML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/pid"
  wait_for "curl -fs http://127.0.0.1:$port/v2/ >/dev/null 2>&1" 100 ||
    fail "docker-registry does not answer on 127.0.0.1:$port"
  echo "REGISTRY=127.0.0.1:$port" >"$dir/env"
  log "ready on 127.0.0.1:$port ($dir)"
}

service_main
