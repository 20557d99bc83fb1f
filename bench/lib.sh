# Shared by the bench/*.sh scripts (sourced, not run). Set BENCH_NAME first (used in messages).
# Output helpers, number helpers, a scratch directory removed on exit, and `timed`.

say() { printf '%s\n' "$*"; }
hdr() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
minof() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b + 0 < a + 0) print b; else print a }'; }
ratio() { awk -v s="$1" -v r="$2" 'BEGIN { printf "%.2f", s / r }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
human() { numfmt --to=iec-i --suffix=B --format='%.1f' "$1"; }

# scratch_dir BASE: sets OUT to a fresh directory under BASE, removed when the script exits.
scratch_dir() {
  OUT=$(mktemp -d "$1/run.XXXXXX")
  trap 'rm -rf "$OUT"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Runs "$@", timed; on failure prints the command and its own output and stops.
# Sets $T (wall seconds), $CPU (user+system seconds of it and its children) and $LAST_LOG.
timed() {
  local log="$OUT/cmd.log" tf="$OUT/cmd.time" t0 t1 rc
  sync
  t0=$(now)
  set +e
  { TIMEFORMAT='%3U %3S' && time "$@" >"$log" 2>&1; } 2>"$tf"
  rc=$?
  set -e
  t1=$(now)
  if [ "$rc" != 0 ]; then
    echo "$BENCH_NAME: FAILED (exit $rc): $*" >&2
    cat "$log" >&2
    exit 1
  fi
  T=$(secs "$t0" "$t1")
  CPU=$(awk '{ printf "%.2f", $1 + $2 }' "$tf")
  LAST_LOG=$(cat "$log")
}
