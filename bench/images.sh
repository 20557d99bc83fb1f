#!/usr/bin/env bash
# Benchmark for the image repository server (`slipway images serve`, specs/imgapi.md), in one run:
#   1. ListImages latency over IMAGES images, SQLite (+ files) and PostgreSQL: a filtered first page
#      (`/images?name=~foo&channel=dev&state=active`, Accept-Version ~2) RUNS times in a row on one
#      keep-alive connection, p50/p99 from the client (target p99 < 50 ms); an unfiltered first page
#      and a deep marker page for information. Every page is checked against the expected images.
#   2. GetImageFile of a FILE_MIB file (uploaded once through the API: create → PUT file → activate)
#      with `wrk -t2 -cWRK_CONNECTIONS -dWRK_DURATION` against nginx (sendfile on) serving the same
#      bytes from disk (a hard link to the stored blob). Target: ≥ 0.8× nginx's bytes/s.
#   3. A DURATION-second mixed load from CLIENTS concurrent clients (bench/images-load.ts): lists,
#      gets, 64 KiB–4 MiB downloads and uploads; afterwards every upload is re-downloaded and checked
#      by sha1; zero errors expected; the server's peak RSS (VmRSS every 500 ms) must stay < 512 MiB.
#
#   bash bench/images.sh
#
# Environment:
#   BENCH_DIR=/tmp/slipway-bench-images  scratch space; the FILE_MIB input file is kept and reused,
#                                        the repositories are made afresh every run
#   IMAGES=100000        images seeded into each store (openStores().meta.createMany)
#   FILE_MIB=1024        size of the GetImageFile test file
#   DURATION=60          seconds of mixed load (per store)
#   CLIENTS=200          concurrent clients of the mixed load
#   RUNS=300             sequential requests per ListImages query
#   WRK_DURATION=20      seconds of each wrk run; WRK_CONNECTIONS=64 its connections
#   FILE_WORKERS=2       also measure GetImageFile from `images serve --workers N` (1: skip)
#   MIX=list=30,get=30,download=30,upload=10   weights of the mixed load's operations
#   POSTGRES=1           0: SQLite only (no PostgreSQL cluster)
#   LOAD_POSTGRES=1      0: the mixed load against SQLite only
#   PG_PORT=55442        port of the PostgreSQL cluster the script starts (scripts/services/postgres.sh)
#   NGINX_PORT=18089     port of the reference nginx (127.0.0.1)
#   STRICT=1             exit 1 when a target is missed
#   KEEP=1               keep the repositories (BENCH_DIR/sqlite, BENCH_DIR/pg-blobs) afterwards
#
# Needs wrk, nginx, curl and (unless POSTGRES=0) Debian's postgresql:
#   apt-get install wrk nginx-light postgresql
# Servers, nginx and PostgreSQL are started by the script and stopped by pid when it ends, also on
# failure or interrupt. Logs stay in BENCH_DIR/logs. Prints every measurement and a Markdown summary
# that also goes to bench/results/images-<date>.md. Wrong pages, errors under load or a failed
# re-download make the script exit 1 whatever STRICT says.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=images.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
REPO=$(pwd)

BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench-images}
IMAGES=${IMAGES:-100000}
FILE_MIB=${FILE_MIB:-1024}
DURATION=${DURATION:-60}
CLIENTS=${CLIENTS:-200}
RUNS=${RUNS:-300}
WRK_DURATION=${WRK_DURATION:-20}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
FILE_WORKERS=${FILE_WORKERS:-2}
MIX=${MIX:-list=30,get=30,download=30,upload=10}
POSTGRES=${POSTGRES:-1}
LOAD_POSTGRES=${LOAD_POSTGRES:-1}
PG_PORT=${PG_PORT:-55442}
NGINX_PORT=${NGINX_PORT:-18089}
STRICT=${STRICT:-0}
KEEP=${KEEP:-0}

whole() {
  case "$2" in '' | *[!0-9]*) echo "images.sh: $1 must be a whole number, got '$2'" >&2 && exit 2 ;; esac
}
for v in IMAGES FILE_MIB DURATION CLIENTS RUNS WRK_DURATION WRK_CONNECTIONS PG_PORT NGINX_PORT; do whole "$v" "${!v}"; done
for v in POSTGRES LOAD_POSTGRES STRICT KEEP; do
  case "${!v}" in 0 | 1) ;; *) echo "images.sh: $v must be 0 or 1, got '${!v}'" >&2 && exit 2 ;; esac
done
[ "$IMAGES" -ge 1000 ] || { echo "images.sh: IMAGES must be at least 1000" >&2 && exit 2; }
[ "$FILE_MIB" -ge 1 ] && [ "$DURATION" -ge 1 ] && [ "$CLIENTS" -ge 1 ] && [ "$RUNS" -ge 1 ] &&
  [ "$WRK_DURATION" -ge 1 ] && [ "$WRK_CONNECTIONS" -ge 2 ] || {
  echo "images.sh: FILE_MIB, DURATION, CLIENTS, RUNS, WRK_DURATION must be ≥ 1 and WRK_CONNECTIONS ≥ 2" >&2
  exit 2
}
[ "$POSTGRES" = 1 ] || LOAD_POSTGRES=0

# Tenths are enough here (overrides lib.sh's milliseconds).
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
LOAD_JS=dist/bench/images-load.js
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- prerequisites
hdr "prerequisites"
if [ ! -d node_modules ]; then
  say "node_modules is missing: running scripts/setup.sh"
  bash scripts/setup.sh
fi
missing=()
for tool in wrk nginx curl sha1sum; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
PG_BIN=
if [ "$POSTGRES" = 1 ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || missing+=("postgresql")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "images.sh: missing ${missing[*]}; as root: apt-get install wrk nginx-light postgresql (or POSTGRES=0)" >&2
  exit 1
fi
say "building: npx tsc -p tsconfig.json"
if ! build_log=$(npx tsc -p tsconfig.json 2>&1); then
  printf '%s\n' "$build_log" >&2
  echo "images.sh: the build failed (above); nothing was measured." >&2
  exit 1
fi
[ -f "$LOAD_JS" ] || { echo "images.sh: $LOAD_JS was not built (is bench/ in tsconfig's include?)" >&2 && exit 1; }
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
WRK_VERSION=$({ wrk -v 2>&1 || true; } | head -1 | awk '{ print $1, $2 }')
PG_VERSION=$([ -n "$PG_BIN" ] && "$PG_BIN/postgres" --version | sed 's/^postgres //' || echo "not used")
say "node $(node --version), $WRK_VERSION, $NGINX_VERSION, PostgreSQL $PG_VERSION, $(nproc) CPUs, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM"
say "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (client and servers share the machine; other load shows up in the numbers)"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"

# ---------------------------------------------------------------- scratch, processes, cleanup
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
SQ="$BENCH_DIR/sqlite"     # --data of the SQLite server: images.sqlite + blobs/
PGB="$BENCH_DIR/pg-blobs"  # --data of the PostgreSQL server (blobs/ only)
PG_DIR="$BENCH_DIR/pg"     # the cluster (scripts/services/postgres.sh)
NGX="$BENCH_DIR/nginx"
LOGS="$BENCH_DIR/logs"
OUT="$BENCH_DIR/out"       # vars and fragments of this run
SERVER_PIDS=()
NGINX_PID=
PG_STARTED=0
PG_PID=

alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# stop_pid PID SIGNAL SECONDS: the signal, then SIGKILL when it is still there after SECONDS.
stop_pid() {
  local pid=$1 sig=$2 limit=$3 i
  alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    echo "images.sh: pid $pid still alive $limit s after SIG$sig: SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  local pid
  for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid" TERM 15; done
  [ -z "$NGINX_PID" ] || stop_pid "$NGINX_PID" QUIT 10
  # postgres.sh stop ends the postmaster by the pid in its pid file (SIGQUIT, then SIGKILL).
  if [ "$PG_STARTED" = 1 ]; then
    bash scripts/services/postgres.sh stop "$PG_DIR"
    if [ -n "$PG_PID" ] && alive "$PG_PID"; then kill -9 "$PG_PID" 2>/dev/null; fi
  fi
  if [ "$KEEP" = 0 ]; then rm -rf "$SQ" "$PGB" "$NGX/root"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Seconds of CPU (user + system) used so far by the given processes.
cpu_of() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  awk -v t="$t" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz }'
}

# start_server NAME DATA_DIR [FLAGS…]: a real `slipway images serve` process on a free port.
# Sets SERVER_PID and SERVER_URL.
start_server() {
  local name=$1 data=$2 i port=
  shift 2
  node bin/slipway.js images serve --host 127.0.0.1 --port 0 --data "$data" "$@" \
    >"$LOGS/server-$name.out" 2>"$LOGS/server-$name.log" &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  for ((i = 0; i < 300; i++)); do
    port=$(sed -n 's/.*(bound port \([0-9]*\)).*/\1/p' "$LOGS/server-$name.out")
    [ -z "$port" ] || break
    alive "$SERVER_PID" || break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "images.sh: 'slipway images serve' ($name) did not start:" >&2
    cat "$LOGS/server-$name.out" "$LOGS/server-$name.log" >&2
    exit 1
  fi
  SERVER_URL="http://127.0.0.1:$port"
  local ping_pid
  ping_pid=$(curl -sS -f "$SERVER_URL/ping" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pid))')
  [ "$ping_pid" = "$SERVER_PID" ] || { echo "images.sh: $SERVER_URL/ping answers pid $ping_pid, started $SERVER_PID" >&2 && exit 1; }
  say "$name: $(cat "$LOGS/server-$name.out") (pid $SERVER_PID)"
}
stop_server() {
  local pid=$1 keep=() p
  stop_pid "$pid" TERM 15
  for p in "${SERVER_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  SERVER_PIDS=("${keep[@]}")
}
# 5xx answers and warnings in a server's log, on one line.
server_problems() {
  local log="$LOGS/server-$1.log" n5 nw
  n5=$(grep -c ' status=5[0-9][0-9] ' "$log" || true)
  nw=$(grep -v -e ' http method=' -e 'finishing in-flight requests' "$log" | grep -c . || true)
  printf '%s 5xx answers, %s other log lines' "$n5" "$nw"
}

rm -rf "$SQ" "$PGB" "$NGX" "$LOGS" "$OUT"
mkdir -p "$SQ" "$PGB" "$LOGS" "$OUT" "$BENCH_DIR/input"

# ---------------------------------------------------------------- the GetImageFile input
INPUT="$BENCH_DIR/input/file-${FILE_MIB}MiB.bin"
FILE_BYTES=$((FILE_MIB * 1048576))
if [ -f "$INPUT" ] && [ -s "$INPUT.sha1" ] && [ "$(stat -c %s "$INPUT")" = "$FILE_BYTES" ]; then
  say "reusing $INPUT"
else
  say "writing $INPUT ($FILE_MIB MiB of /dev/urandom; not timed)"
  head -c "$FILE_BYTES" /dev/urandom >"$INPUT.tmp"
  sha1sum "$INPUT.tmp" | cut -d' ' -f1 >"$INPUT.sha1"
  mv "$INPUT.tmp" "$INPUT"
fi
FILE_SHA1=$(cat "$INPUT.sha1")

# ---------------------------------------------------------------- PostgreSQL and seeding
if [ "$POSTGRES" = 1 ]; then
  hdr "PostgreSQL (scripts/services/postgres.sh start $PG_DIR $PG_PORT)"
  PG_STARTED=1
  bash scripts/services/postgres.sh stop "$PG_DIR"
  bash scripts/services/postgres.sh start "$PG_DIR" "$PG_PORT"
  eval "$(bash scripts/services/postgres.sh env "$PG_DIR")"
  PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
  say "postmaster pid $PG_PID, $PG_URL"
fi

hdr "seeding $IMAGES images (openStores().meta.createMany; not part of any target)"
t0=$(now)
node "$LOAD_JS" seed --sqlite "$SQ/images.sqlite" --blobs "$SQ/blobs" --count "$IMAGES" --info "$OUT/info-sqlite.json" |
  tee "$OUT/seed-sqlite.txt"
SEED_SQLITE=$(secs "$t0" "$(now)")
say "SQLite: $SEED_SQLITE s in all, $(du -m "$SQ/images.sqlite" | cut -f1) MiB database"
SEED_PG=—
if [ "$POSTGRES" = 1 ]; then
  t0=$(now)
  node "$LOAD_JS" seed --postgres "$PG_URL" --blobs "$PGB/blobs" --count "$IMAGES" --info "$OUT/info-pg.json" |
    tee "$OUT/seed-pg.txt"
  SEED_PG=$(secs "$t0" "$(now)")
  say "PostgreSQL: $SEED_PG s in all (with VACUUM ANALYZE)"
fi

# ---------------------------------------------------------------- 1. ListImages latency
hdr "1. ListImages over $IMAGES images: $RUNS sequential requests per query, one keep-alive connection"
start_server sqlite "$SQ"
say "SQLite + files:"
node "$LOAD_JS" latency --url "$SERVER_URL" --info "$OUT/info-sqlite.json" --runs "$RUNS" --prefix LAT_SQLITE --vars "$OUT/lat-sqlite.vars"
# shellcheck disable=SC1091
. "$OUT/lat-sqlite.vars"
SQLITE_URL=$SERVER_URL
SQLITE_PID=$SERVER_PID

# ---------------------------------------------------------------- 2. GetImageFile
hdr "2. GetImageFile of a $FILE_MIB MiB file: slipway (SQLite server) vs nginx (sendfile) on the same bytes"
json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];console.log(typeof v==="object"?JSON.stringify(v):v)})' "$1"; }
BIG_UUID=$(curl -sS -f -X POST -H 'Content-Type: application/json' -H 'Accept-Version: ~2' \
  -d '{"name":"bench-big-file","version":"1.0.0","owner":"930896af-bf8c-48d4-885c-6573a94b1100","type":"other","os":"other","public":true}' \
  "$SQLITE_URL/images" | json_field uuid)
say "created image $BIG_UUID; PUT file (curl -T, sha1 given)…"
t0=$(now)
put_files=$(curl -sS -f -X PUT -T "$INPUT" -H 'Content-Type: application/octet-stream' \
  "$SQLITE_URL/images/$BIG_UUID/file?compression=none&sha1=$FILE_SHA1" | json_field files)
UPLOAD_S=$(secs "$t0" "$(now)")
UPLOAD_MBPS=$(mbps "$FILE_BYTES" "$UPLOAD_S")
case "$put_files" in *"\"sha1\":\"$FILE_SHA1\""*"\"size\":$FILE_BYTES"*) ;; *) echo "images.sh: PUT answered files $put_files" >&2 && exit 1 ;; esac
state=$(curl -sS -f -X POST -H 'Content-Type: application/json' -d '{}' "$SQLITE_URL/images/$BIG_UUID?action=activate" | json_field state)
[ "$state" = active ] || { echo "images.sh: activate answered state $state" >&2 && exit 1; }
say "AddImageFile: $FILE_MIB MiB in $UPLOAD_S s ($UPLOAD_MBPS MB/s, with sha1/md5 and fsync); activated"
BLOB=$(find "$SQ/blobs" -type f -path "*$BIG_UUID/file-*")
[ "$(printf '%s\n' "$BLOB" | wc -l)" = 1 ] && [ -f "$BLOB" ] || { echo "images.sh: cannot find the blob of $BIG_UUID" >&2 && exit 1; }
mkdir -p "$NGX/root" "$NGX/logs" "$NGX/tmp"
ln "$BLOB" "$NGX/root/big.bin"
if (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null; then
  echo "images.sh: 127.0.0.1:$NGINX_PORT is in use (set NGINX_PORT)" >&2
  exit 1
fi
{
  # Workers as root only when we are root: the blob (and its hard link) may be readable by root only.
  [ "$(id -u)" != 0 ] || echo 'user root;'
  cat <<EOF
worker_processes auto;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path $NGX/tmp/body;
  proxy_temp_path $NGX/tmp/proxy;
  fastcgi_temp_path $NGX/tmp/fastcgi;
  uwsgi_temp_path $NGX/tmp/uwsgi;
  scgi_temp_path $NGX/tmp/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $NGX/root;
  }
}
EOF
} >"$NGX/nginx.conf"
nginx -e "$NGX/logs/error.log" -p "$NGX" -c "$NGX/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
for ((i = 0; i < 100; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && break
  alive "$NGINX_PID" || break
  sleep 0.1
done
alive "$NGINX_PID" || { echo "images.sh: nginx did not start:" >&2 && cat "$NGX/logs/error.log" >&2 && exit 1; }
NGINX_URL="http://127.0.0.1:$NGINX_PORT/big.bin"
SLW_FILE_URL="$SQLITE_URL/images/$BIG_UUID/file"
say "nginx (master pid $NGINX_PID, $(pgrep -P "$NGINX_PID" | wc -l) workers): $NGINX_URL -> hard link of the blob"

# Both serve the file intact (and the page cache holds it): one full download each, sha1 checked.
for u in "$NGINX_URL" "$SLW_FILE_URL"; do
  got=$(curl -sS -f "$u" | sha1sum | cut -d' ' -f1)
  [ "$got" = "$FILE_SHA1" ] || { echo "images.sh: $u served sha1 $got, expected $FILE_SHA1" >&2 && exit 1; }
done
say "both serve the file intact (sha1 of a full download checked)"

# One full download at a time, for information: best of 3 (curl's average speed).
single() {
  local best=0 i line code size speed
  for i in 1 2 3; do
    line=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$1")
    read -r code size speed <<<"$line"
    [ "$code" = 200 ] && [ "$size" = "$FILE_BYTES" ] || { echo "images.sh: $1: status $code, $size bytes" >&2 && exit 1; }
    best=$(awk -v a="$best" -v b="$speed" 'BEGIN { print (b > a ? b : a) }')
  done
  awk -v b="$best" 'BEGIN { printf "%.0f", b / 1e6 }'
}
SINGLE_NGINX=$(single "$NGINX_URL")
SINGLE_SLW=$(single "$SLW_FILE_URL")
say "one download at a time (curl, best of 3): nginx $SINGLE_NGINX MB/s, slipway $SINGLE_SLW MB/s"

# wrk_run NAME URL PIDS…: wrk's bytes/s as MB/s (10^6) in WRK_MBPS, and the servers' CPU share.
wrk_run() {
  local name=$1 url=$2 log="$OUT/wrk-$1.txt" c0 c1 value unit
  shift 2
  c0=$(cpu_of "$@")
  wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_DURATION}s" --timeout 600s "$url" >"$log" 2>&1 || {
    cat "$log" >&2
    echo "images.sh: wrk against $name failed" >&2
    exit 1
  }
  c1=$(cpu_of "$@")
  sed 's/^/    /' "$log"
  value=0 unit=B
  read -r value unit < <(sed -n 's/^Transfer\/sec: *\([0-9.]*\)\([KMGT]*B\).*/\1 \2/p' "$log") || true
  WRK_MBPS=$(awk -v v="$value" -v u="$unit" 'BEGIN { m = 1; if (u == "KB") m = 1024; if (u == "MB") m = 1048576; if (u == "GB") m = 1073741824; if (u == "TB") m = 1099511627776; printf "%.0f", v * m / 1e6 }')
  WRK_REQS=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$log")
  WRK_CPU=$(awk -v a="$c0" -v b="$c1" -v d="$WRK_DURATION" 'BEGIN { printf "%.0f", (b - a) / d * 100 }')
  WRK_ERRORS=$(grep -E 'Socket errors|Non-2xx' "$log" | paste -sd';' || true)
  say "  $name: $WRK_MBPS MB/s, $WRK_REQS full downloads completed, server CPU $WRK_CPU% of one core${WRK_ERRORS:+; $WRK_ERRORS}"
}
say "wrk -t2 -c$WRK_CONNECTIONS -d${WRK_DURATION}s (bytes/s counts every byte read, complete downloads or not):"
wrk_run nginx "$NGINX_URL" "$NGINX_PID" $(pgrep -P "$NGINX_PID")
WRK_NGINX=$WRK_MBPS WRK_NGINX_REQS=$WRK_REQS WRK_NGINX_CPU=$WRK_CPU WRK_NGINX_ERR=$WRK_ERRORS
wrk_run slipway "$SLW_FILE_URL" "$SQLITE_PID"
WRK_SLW=$WRK_MBPS WRK_SLW_REQS=$WRK_REQS WRK_SLW_CPU=$WRK_CPU WRK_SLW_ERR=$WRK_ERRORS
# The same with the server's --workers: Node has no sendfile and serves about 1 GB/s per core, so
# a machine's cores come through processes sharing the port (the server keeps no state of its own).
WRK_SLWW=
if [ "$FILE_WORKERS" -gt 1 ]; then
  node bin/slipway.js images serve --host 127.0.0.1 --port 0 --data "$SQ" --workers "$FILE_WORKERS" \
    >"$LOGS/server-workers.out" 2>"$LOGS/server-workers.log" &
  WORKERS_PID=$!
  SERVER_PIDS+=("$WORKERS_PID")
  wport=
  for ((i = 0; i < 300; i++)); do
    wport=$(sed -n 's/.*(bound port \([0-9]*\)).*/\1/p' "$LOGS/server-workers.out")
    [ -z "$wport" ] || break
    sleep 0.1
  done
  [ -n "$wport" ] || { cat "$LOGS/server-workers.out" "$LOGS/server-workers.log" >&2 && exit 1; }
  wurl="http://127.0.0.1:$wport/images/$BIG_UUID/file"
  got=$(curl -sS -f "$wurl" | sha1sum | cut -d' ' -f1)
  [ "$got" = "$FILE_SHA1" ] || { echo "images.sh: $wurl served sha1 $got" >&2 && exit 1; }
  wrk_run "slipway --workers $FILE_WORKERS" "$wurl" "$WORKERS_PID" $(pgrep -P "$WORKERS_PID")
  WRK_SLWW=$WRK_MBPS WRK_SLWW_CPU=$WRK_CPU
  stop_server "$WORKERS_PID"
fi
FILE_RATIO=$(ratio "$WRK_SLW" "$WRK_NGINX")
say "ratio slipway/nginx: ${FILE_RATIO}x (target >= 0.8x); one download at a time: $(ratio "$SINGLE_SLW" "$SINGLE_NGINX")x"
stop_pid "$NGINX_PID" QUIT 10
NGINX_PID=
stop_server "$SQLITE_PID"
SQLITE_PROBLEMS_1=$(server_problems sqlite)

# ---------------------------------------------------------------- 3. mixed load (+ PostgreSQL latency)
# run_load NAME DATA_DIR INFO PREFIX [FLAGS…]: a fresh server process over the same repository.
run_load() {
  local name=$1 data=$2 info=$3 prefix=$4
  shift 4
  start_server "load-$name" "$data" "$@"
  node "$LOAD_JS" load --url "$SERVER_URL" --info "$info" --duration "$DURATION" --clients "$CLIENTS" \
    --pid "$SERVER_PID" --mix "$MIX" --prefix "$prefix" --label "$name" \
    --vars "$OUT/load-$name.vars" --md "$OUT/load-$name.md"
  stop_server "$SERVER_PID"
  # shellcheck disable=SC1090
  . "$OUT/load-$name.vars"
}
hdr "3. mixed load, SQLite + files: $CLIENTS clients for $DURATION s"
run_load sqlite "$SQ" "$OUT/info-sqlite.json" LOAD_SQLITE
LOAD_SQLITE_PROBLEMS=$(server_problems load-sqlite)
say "server log: $LOAD_SQLITE_PROBLEMS"

if [ "$POSTGRES" = 1 ]; then
  hdr "1. ListImages over $IMAGES images, PostgreSQL"
  start_server pg "$PGB" --postgres "$PG_URL"
  node "$LOAD_JS" latency --url "$SERVER_URL" --info "$OUT/info-pg.json" --runs "$RUNS" --prefix LAT_PG --vars "$OUT/lat-pg.vars"
  # shellcheck disable=SC1091
  . "$OUT/lat-pg.vars"
  stop_server "$SERVER_PID"
  PG_PROBLEMS_1=$(server_problems pg)
  if [ "$LOAD_POSTGRES" = 1 ]; then
    hdr "3. mixed load, PostgreSQL + files: $CLIENTS clients for $DURATION s"
    run_load pg "$PGB" "$OUT/info-pg.json" LOAD_PG --postgres "$PG_URL"
    LOAD_PG_PROBLEMS=$(server_problems load-pg)
    say "server log: $LOAD_PG_PROBLEMS"
  fi
fi

# ---------------------------------------------------------------- summary
met() { if "$1" "$2" "$3"; then echo "$4: met"; else echo "$4: MISSED"; fi; }
MISSED=0
FAILED=()
lat_row() { # STORE PREFIX: the target row of the filtered page
  local p99 p50 ok
  p99=$(eval "echo \$${2}_FILTERED_P99") p50=$(eval "echo \$${2}_FILTERED_P50") ok=$(eval "echo \$${2}_FILTERED_OK")
  lt "$p99" 50 || MISSED=1
  [ "$ok" = 1 ] || FAILED+=("ListImages $1 returned a wrong filtered page")
  printf '| ListImages `%s`, %s, p99 (p50) | — | %s ms (%s) | — | %s |\n' \
    '/images?name=~foo&channel=dev&state=active' "$1" "$p99" "$p50" "$(met lt "$p99" 50 'p99 < 50 ms')$([ "$ok" = 1 ] || echo ', WRONG PAGE')"
}
info_rows() { # STORE PREFIX
  local k label
  for k in UNFILTERED MARKER; do
    case $k in
      UNFILTERED) label='`/images` (no filter: dev, active, first 1000)' ;;
      MARKER) label='`/images?marker=<image at 90 % of dev>&limit=1000`' ;;
    esac
    [ "$(eval "echo \$${2}_${k}_OK")" = 1 ] || FAILED+=("ListImages $1 returned a wrong $k page")
    printf '| (info) ListImages %s, %s, p99 (p50) | — | %s ms (%s) | — | —%s |\n' "$label" "$1" \
      "$(eval "echo \$${2}_${k}_P99")" "$(eval "echo \$${2}_${k}_P50")" "$([ "$(eval "echo \$${2}_${k}_OK")" = 1 ] || echo ', WRONG PAGE')"
  done
}
load_rows() { # STORE PREFIX
  local errors uploaded verified rss hwm
  errors=$(eval "echo \$${2}_ERRORS_ALL") uploaded=$(eval "echo \$${2}_UPLOADED") verified=$(eval "echo \$${2}_VERIFIED")
  rss=$(eval "echo \$${2}_PEAK_RSS_MIB") hwm=$(eval "echo \$${2}_HWM_MIB")
  [ "$errors" = 0 ] || FAILED+=("$errors errors under load ($1)")
  [ "$verified" = "$uploaded" ] || FAILED+=("$((uploaded - verified)) of $uploaded uploads not verified ($1)")
  lt "$rss" 512 || MISSED=1
  printf '| mixed load %s: %s ops/s; errors (incl. read-back) | — | %s of %s operations | — | %s |\n' "$1" \
    "$(eval "echo \$${2}_OPS_PER_S")" "$errors" "$(eval "echo \$${2}_OPS")" "$([ "$errors" = 0 ] && echo '0: met' || echo '0: FAILED')"
  printf '| mixed load %s: uploads re-downloaded, sha1 verified | — | %s / %s | — | %s |\n' "$1" "$verified" "$uploaded" \
    "$([ "$verified" = "$uploaded" ] && echo 'all: met' || echo 'all: FAILED')"
  printf '| mixed load %s: server peak RSS (VmRSS / 500 ms) | — | %s MiB (VmHWM %s) | — | %s |\n' "$1" "$rss" "$hwm" "$(met lt "$rss" 512 '< 512 MiB')"
}
ge "$FILE_RATIO" 0.8 || MISSED=1
SUMMARY="$OUT/summary.md"
{
  echo "# Image repository benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, node $(node --version), $WRK_VERSION, $NGINX_VERSION," \
    "PostgreSQL $PG_VERSION; clients and servers on the same machine (loopback)."
  echo "$IMAGES images seeded per store with createMany (SQLite $SEED_SQLITE s, PostgreSQL $SEED_PG s with VACUUM ANALYZE);" \
    "every ListImages page checked against the expected images; each measurement against a fresh \`slipway images serve\` process."
  echo
  echo "| measurement | reference | slipway | ratio | target |"
  echo "| --- | --- | --- | ---: | --- |"
  lat_row SQLite LAT_SQLITE
  [ "$POSTGRES" = 0 ] || lat_row PostgreSQL LAT_PG
  info_rows SQLite LAT_SQLITE
  [ "$POSTGRES" = 0 ] || info_rows PostgreSQL LAT_PG
  printf '| GetImageFile %s MiB, `wrk -t2 -c%s -d%ss` | nginx sendfile: %s MB/s | %s MB/s | %s× | %s |\n' \
    "$FILE_MIB" "$WRK_CONNECTIONS" "$WRK_DURATION" "$WRK_NGINX" "$WRK_SLW" "$FILE_RATIO" "$(met ge "$FILE_RATIO" 0.8 '≥ 0.8×')"
  if [ -n "$WRK_SLWW" ]; then
    FILE_RATIO_W=$(ratio "$WRK_SLWW" "$WRK_NGINX")
    printf '| GetImageFile, `images serve --workers %s` (same wrk run) | nginx sendfile: %s MB/s | %s MB/s | %s× | %s |\n' \
      "$FILE_WORKERS" "$WRK_NGINX" "$WRK_SLWW" "$FILE_RATIO_W" "$(met ge "$FILE_RATIO_W" 0.8 '≥ 0.8×')"
  fi
  printf '| (info) GetImageFile, one download at a time (curl, best of 3) | nginx: %s MB/s | %s MB/s | %s× | — |\n' \
    "$SINGLE_NGINX" "$SINGLE_SLW" "$(ratio "$SINGLE_SLW" "$SINGLE_NGINX")"
  printf '| (info) AddImageFile %s MiB (`curl -T`, sha1 given) | — | %s MB/s (%s s) | — | — |\n' "$FILE_MIB" "$UPLOAD_MBPS" "$UPLOAD_S"
  load_rows SQLite LOAD_SQLITE
  [ "$LOAD_POSTGRES" = 0 ] || load_rows PostgreSQL LOAD_PG
  echo
  echo "ListImages: $RUNS sequential requests per query on one keep-alive connection after 5 warm-up requests," \
    "\`Accept-Version: ~2\`, time to the last byte at the client; the unfiltered page ($LAT_SQLITE_UNFILTERED_ROWS images) is" \
    "$((LAT_SQLITE_UNFILTERED_BYTES / 1000)) KB of pretty-printed JSON, the filtered one $LAT_SQLITE_FILTERED_ROWS images, the marker page $LAT_SQLITE_MARKER_ROWS. SQLite p90: filtered $LAT_SQLITE_FILTERED_P90 ms," \
    "unfiltered $LAT_SQLITE_UNFILTERED_P90 ms, marker $LAT_SQLITE_MARKER_P90 ms$([ "$POSTGRES" = 0 ] || echo "; PostgreSQL p90: filtered $LAT_PG_FILTERED_P90 ms, unfiltered $LAT_PG_UNFILTERED_P90 ms, marker $LAT_PG_MARKER_P90 ms")."
  echo
  echo "GetImageFile: wrk's Transfer/sec (every byte read, whether or not a download completed) as 10^6 B/s;" \
    "full downloads completed in the window: nginx $WRK_NGINX_REQS, slipway $WRK_SLW_REQS." \
    "Server CPU during wrk: nginx (master + workers) $WRK_NGINX_CPU%, slipway $WRK_SLW_CPU% of one core." \
    "The file is a hard link of the stored blob, in the page cache for both.$([ -z "$WRK_NGINX_ERR$WRK_SLW_ERR" ] || echo " wrk reported: nginx ${WRK_NGINX_ERR:-none}; slipway ${WRK_SLW_ERR:-none}.")"
  echo
  echo "### Mixed load, SQLite + files"
  echo
  cat "$OUT/load-sqlite.md"
  echo
  echo "Server log: $LOAD_SQLITE_PROBLEMS (ListImages and GetImageFile servers: $SQLITE_PROBLEMS_1)."
  if [ "$LOAD_POSTGRES" = 1 ]; then
    echo
    echo "### Mixed load, PostgreSQL + files"
    echo
    cat "$OUT/load-pg.md"
    echo
    echo "Server log: $LOAD_PG_PROBLEMS (ListImages server: $PG_PROBLEMS_1)."
  fi
  echo
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} >"$SUMMARY"
hdr "summary"
cat "$SUMMARY"
mkdir -p bench/results
RESULT="bench/results/images-$(date -u +%Y-%m-%d).md"
cp "$SUMMARY" "$RESULT"
say ""
say "written to $REPO/$RESULT (logs in $LOGS)"

if [ "${#FAILED[@]}" -gt 0 ]; then
  printf 'images.sh: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
if [ "$STRICT" = 1 ] && [ "$MISSED" = 1 ]; then
  echo "images.sh: a target was missed (STRICT=1)" >&2
  exit 1
fi
