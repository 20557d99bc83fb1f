#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback only, for the metadata store's tests.
#
#   scripts/services/postgres.sh start DIR [PORT]   # PORT defaults to $PG_PORT or 55432
#   scripts/services/postgres.sh stop DIR
#   scripts/services/postgres.sh env DIR            # prints `export PG_URL=…` (eval-able)
#
# initdb into DIR/data (as the `postgres` user when run as root: PostgreSQL refuses to run as
# root), one postmaster on 127.0.0.1:PORT with its unix socket in DIR, a role `slipway` with a
# password (and CREATEDB, so tests can make a fresh database each) owning a database `slipway`.
# Durability is off (fsync, synchronous_commit, full_page_writes): the data is throwaway.
# `start` waits until the server accepts connections and writes DIR/env with PG_URL; `stop`
# ends the postmaster by its pid file (SIGQUIT = immediate shutdown, then SIGKILL) and removes
# DIR. Both are idempotent. Needs Debian's postgresql (scripts/setup.sh installs it).
set -euo pipefail

DB_USER=slipway
DB_PASSWORD=slipway-ci-password
DB_NAME=slipway

SERVICE=postgres
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
service_args "${PG_PORT:-55432}" "$@"

# The server's binaries: Debian keeps them out of PATH, under /usr/lib/postgresql/<major>/bin.
bindir=
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) ""; do
  if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
    bindir=$d
    break
  fi
done
if [ -z "$bindir" ] && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
  bindir=$(dirname "$(command -v initdb)")
fi

# Commands that touch the cluster run as its owner: `postgres` when we are root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The postmaster's pid: the first line of its pid file.
postmaster_pid() { [ -f "$dir/data/postmaster.pid" ] && head -n 1 "$dir/data/postmaster.pid"; }

ready() { as_owner "$bindir/pg_isready" -q -h "$dir" -p "$port" -d postgres -U postgres 2>/dev/null; }

running() {
  local pid
  [ -f "$dir/env" ] || return 1
  pid=$(postmaster_pid) || return 1
  alive "$pid" && ready
}

do_stop() {
  [ -d "$dir" ] || return 0
  local pid
  if pid=$(postmaster_pid) && [ -n "$pid" ] && alive "$pid"; then
    # SIGQUIT: immediate shutdown (the postmaster ends its backends and exits, no checkpoint).
    kill -QUIT "$pid" 2>/dev/null || true
    if ! wait_gone "$pid"; then
      log "postmaster $pid still alive after SIGQUIT: SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
      wait_gone "$pid" || true
    fi
  fi
  rm -rf "$dir"
}

fail() {
  log "$*"
  if [ -f "$dir/log" ]; then
    echo "--- tail $dir/log" >&2
    tail -n 20 "$dir/log" >&2
  fi
  do_stop
  exit 1
}

# As root, the cluster's owner must be able to reach DIR: give `postgres` search (x, not read)
# permission on the ancestors we own that it cannot pass, e.g. a 0700 `mktemp -d` directory.
open_path_for_owner() {
  [ "$(id -u)" = 0 ] || return 0
  local p=$1
  while [ "$p" != / ] && [ -n "$p" ]; do
    if [ -d "$p" ] && ! runuser -u postgres -- test -x "$p" && [ "$(stat -c %u "$p")" = 0 ]; then
      chmod o+x "$p"
      log "gave other users search permission on $p (for the postgres user)"
    fi
    p=$(dirname "$p")
  done
  runuser -u postgres -- test -x "$1" || fail "the postgres user cannot reach $1"
}

do_start() {
  if running; then
    log "already running on 127.0.0.1:$port ($dir)"
    return 0
  fi
  do_stop # a half-started or stale cluster: clean it away first
  [ -n "$bindir" ] || {
    log "initdb/pg_ctl not found: install Debian's postgresql (bash scripts/setup.sh as root)"
    exit 1
  }
  if [ "$(id -u)" = 0 ] && ! getent passwd postgres >/dev/null; then
    log "running as root but there is no postgres user (install Debian's postgresql)"
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "127.0.0.1:$port is in use (another PostgreSQL? set PG_PORT or pass a port)"
    exit 1
  fi
  local t0=$SECONDS
  mkdir -p "$dir"
  chmod 0700 "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  open_path_for_owner "$dir"
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.out" 2>&1 ||
    fail "initdb failed: $(cat "$dir/initdb.out")"
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >"$dir/pg_ctl.out" 2>&1 || fail "pg_ctl start failed: $(cat "$dir/pg_ctl.out")"
  wait_for ready 300 || fail "the server does not accept connections on 127.0.0.1:$port"
  as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres >"$dir/psql.out" 2>&1 <<EOF ||
CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
CREATE DATABASE $DB_NAME OWNER $DB_USER;
EOF
    fail "cannot create the role and database: $(cat "$dir/psql.out")"
  # env is written by the invoking user (root may not own DIR's contents; the file is tiny).
  cat >"$dir/env.tmp" <<EOF
PG_URL=postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$port/$DB_NAME
EOF
  mv "$dir/env.tmp" "$dir/env"
  log "ready on 127.0.0.1:$port in $((SECONDS - t0)) s ($dir)"
}

service_main
