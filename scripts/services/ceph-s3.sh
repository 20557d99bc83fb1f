#!/usr/bin/env bash
# A throwaway single-node Ceph cluster with an S3 endpoint (RADOS Gateway), on loopback only.
#
#   scripts/services/ceph-s3.sh start DIR [PORT]   # PORT defaults to $CEPH_S3_PORT or 7480
#   scripts/services/ceph-s3.sh stop DIR
#   scripts/services/ceph-s3.sh env DIR            # prints `export K=V` lines (eval-able)
#
# One monitor (v2:127.0.0.1:3300, so one cluster per machine), one OSD on memstore (data in
# RAM), no mgr, no cephx, and radosgw on 127.0.0.1:PORT. `start` waits until the gateway
# answers HTTP 200, creates the user `ci` with fixed test keys and writes DIR/env with
# S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION. `stop` ends each
# daemon by the pid file it wrote and removes DIR. Both are idempotent.
# Needs Debian's ceph-mon ceph-osd radosgw ceph-common curl (scripts/setup.sh installs them).
set -euo pipefail

ACCESS_KEY=slipway-ci-access-key
SECRET_KEY=slipway-ci-secret-key-0123456789abcdef
MON_ADDR=127.0.0.1:3300
DAEMONS=(client.rgw osd.0 mon.a) # stop order: gateway first, monitor last

SERVICE=ceph-s3
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
service_args "${CEPH_S3_PORT:-7480}" "$@"

pid_alive() { [ -f "$1" ] && alive "$(cat "$1")"; }

# SIGKILL to each daemon by its pid file, then wait until they are gone (ports free). The
# data is throwaway (in RAM), so nothing needs a clean shutdown, which would take 2-5 s.
stop_daemons() {
  local name pidfile pids=() pid
  for name in "${DAEMONS[@]}"; do
    pidfile="$dir/run/$name.pid"
    pid_alive "$pidfile" || continue
    pid=$(cat "$pidfile")
    kill -9 "$pid" 2>/dev/null && pids+=("$pid")
  done
  wait_gone "${pids[@]}" || log "daemons still alive after SIGKILL: ${pids[*]}"
}

do_stop() {
  [ -d "$dir" ] || return 0
  stop_daemons
  rm -rf "$dir"
}

http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null || true; }

running() {
  [ -f "$dir/env" ] || return 1
  local name
  for name in "${DAEMONS[@]}"; do pid_alive "$dir/run/$name.pid" || return 1; done
  [ "$(http_code)" = 200 ]
}

fail() {
  log "$*"
  local f
  for f in "$dir"/log/*.log; do
    [ -f "$f" ] || continue
    echo "--- tail $f" >&2
    tail -n 15 "$f" >&2
  done
  do_stop
  exit 1
}

do_start() {
  if running; then
    log "already running on 127.0.0.1:$port ($dir)"
    return 0
  fi
  do_stop # a half-started or stale cluster: clean it away first
  for tool in ceph-mon ceph-osd radosgw ceph radosgw-admin monmaptool curl uuidgen; do
    command -v "$tool" >/dev/null || {
      log "$tool not found: install Debian's ceph-mon ceph-osd radosgw ceph-common curl uuid-runtime (bash scripts/setup.sh as root)"
      exit 1
    }
  done
  if (exec 3<>/dev/tcp/127.0.0.1/3300) 2>/dev/null; then
    log "127.0.0.1:3300 is in use: another Ceph monitor runs on this machine (stop it first)"
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "127.0.0.1:$port is in use"
    exit 1
  fi
  local t0=$SECONDS fsid osd_uuid
  mkdir -p "$dir"/{run,log,mon,osd,rgw}
  fsid=$(uuidgen)
  osd_uuid=$(uuidgen)
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:$MON_ADDR
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
keyring = $dir/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
paxos propose interval = 0.05
paxos min wait = 0.01
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
[mon]
mon data = $dir/mon/\$cluster-\$id
mon cluster log file = $dir/log/cluster.log
[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd max object name len = 460
osd max object namespace len = 64
[client]
ms mon client mode = crc
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
rgw enable usage log = false
# Deleted objects' data is freed by RGW's collector after this wait (default 2 h): the store is
# in RAM and capped, and tests and benches delete what they upload.
rgw gc obj min wait = 10
rgw gc processor period = 10
EOF
  local c=(-c "$dir/ceph.conf")
  # monitor
  monmaptool --create --fsid "$fsid" --addv a "[v2:$MON_ADDR]" "$dir/monmap" >/dev/null ||
    fail "monmaptool failed"
  ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs-mon.out" 2>&1 ||
    fail "ceph-mon --mkfs failed: $(cat "$dir/log/mkfs-mon.out")"
  ceph-mon "${c[@]}" -i a </dev/null >>"$dir/log/mon-start.out" 2>&1 || fail "ceph-mon did not start"
  # OSD (memstore): register it, make its store, start it
  local id
  id=$(timeout 30 ceph "${c[@]}" osd create "$osd_uuid" 2>"$dir/log/osd-create.out") ||
    fail "ceph osd create failed: $(cat "$dir/log/osd-create.out")"
  [ "$id" = 0 ] || fail "ceph osd create returned id '$id', expected 0"
  mkdir -p "$dir/osd/ceph-0"
  ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/mkfs-osd.out" 2>&1 ||
    fail "ceph-osd --mkfs failed: $(cat "$dir/log/mkfs-osd.out")"
  ceph-osd "${c[@]}" -i 0 </dev/null >>"$dir/log/osd-start.out" 2>&1 || fail "ceph-osd did not start: $(cat "$dir/log/osd-start.out")"
  # Pools the gateway would otherwise create one by one on its first calls.
  # (one `ceph` process reading the commands from stdin: each CLI start costs ~0.2 s)
  local pool cmds="" pools=(.rgw.root default.rgw.log default.rgw.control default.rgw.meta
    default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec)
  for pool in "${pools[@]}"; do
    cmds+="osd pool create $pool 8 8"$'\n'"osd pool application enable $pool rgw"$'\n'
  done
  printf '%s' "$cmds" | timeout 60 ceph "${c[@]}" >"$dir/log/pools.out" 2>&1 ||
    fail "cannot create the gateway's pools: $(cat "$dir/log/pools.out")"
  if grep -qi error "$dir/log/pools.out"; then fail "cannot create the gateway's pools: $(cat "$dir/log/pools.out")"; fi
  # gateway
  radosgw "${c[@]}" -n client.rgw </dev/null >>"$dir/log/rgw-start.out" 2>&1 || fail "radosgw did not start"
  wait_for '[ "$(http_code)" = 200 ]' 600 || fail "radosgw did not answer HTTP 200 on 127.0.0.1:$port within 60 s"
  timeout 60 radosgw-admin "${c[@]}" user create --uid=ci --display-name="Slipway CI" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$dir/log/user-create.out" 2>&1 ||
    fail "radosgw-admin user create failed: $(cat "$dir/log/user-create.out")"
  cat >"$dir/env.tmp" <<EOF
S3_ENDPOINT=http://127.0.0.1:$port
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_REGION=us-east-1
EOF
  mv "$dir/env.tmp" "$dir/env"
  log "ready on http://127.0.0.1:$port in $((SECONDS - t0)) s ($dir)"
}

service_main
