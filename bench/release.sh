#!/usr/bin/env bash
# Benchmark for `release upload` (object storage half, src/release/s3-upload.ts), in one run on the
# same input against a local Ceph RADOS Gateway:
#   1. a build directory of MIB MiB in FILES artifacts (+ a .sha256 beside each, manifest.json,
#      latest.json) uploaded by Debian's awscli, `aws s3 cp --recursive files/ s3://A/…`, against
#      Slipway's plan + apply of the same directory to bucket B (bench/release-upload.ts: hashes and
#      checks every file, uploads with sha256 metadata, reads each object back). Target: ≤ 1.0×.
#   2. the no-op re-upload: the same again into B, which must send no object (every file is hashed
#      again to be checked against the manifest; then one listing and one HeadObject per file).
#
#   bash bench/release.sh
#
# Environment:
#   MIB=1024          size of the artifacts together (split evenly over FILES files)
#   FILES=20          number of artifacts
#   RUNS=1            timed runs of each upload; the best (min) wall time counts
#   CONCURRENCY=4     files uploaded at once by Slipway; PART_MIB=16 its multipart part size;
#   QUEUE=4           parts of one file in flight
#   BENCH_DIR=/tmp/slipway-bench-release   scratch space; the input is kept and reused
#   STRICT=1          exit 1 when the target is missed
#
# The S3 service: the running one named by $SLIPWAY_SERVICES_DIR/ceph/env when there is one (as
# scripts/test.sh leaves it), else a cluster started here with scripts/services/ceph-s3.sh into
# BENCH_DIR/ceph (port $CEPH_S3_PORT, default 7480) and stopped again at the end. That cluster
# keeps objects in RAM (memstore) capped by `memstore device bytes` (1 GiB), too little for a
# 1 GiB release: the script raises the cap through the OSD's admin socket for the run (one copy
# of the input, plus what is stored already, plus a margin) and puts the old value back at the
# end. Only one copy is stored at a time: awscli's bucket is removed, and RGW's garbage collector
# run (`radosgw-admin gc process --include-all`), before Slipway's upload, and so on.
#
# Needs Debian's awscli (/usr/bin/aws; another `aws` earlier in PATH is not used), and the Ceph
# packages of scripts/setup.sh. Prints every run and a Markdown summary that also goes to
# bench/results/release-<date>.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=release.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
REPO=$(pwd)

MIB=${MIB:-1024}
FILES=${FILES:-20}
RUNS=${RUNS:-1}
CONCURRENCY=${CONCURRENCY:-4}
PART_MIB=${PART_MIB:-16}
QUEUE=${QUEUE:-4}
BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench-release}
STRICT=${STRICT:-0}
VERSION=1.0.0
INPUT_FORMAT=1 # bump when the generated input changes: it is rebuilt
AWS_CLI=/usr/bin/aws
DRIVER=dist/bench/release-upload.js

for v in MIB FILES RUNS CONCURRENCY PART_MIB QUEUE; do
  case "${!v}" in '' | *[!0-9]* | 0) echo "release.sh: $v must be a positive whole number, got '${!v}'" >&2 && exit 2 ;; esac
done
case "$STRICT" in 0 | 1) ;; *) echo "release.sh: STRICT must be 0 or 1, got '$STRICT'" >&2 && exit 2 ;; esac
[ "$PART_MIB" -ge 5 ] || { echo "release.sh: PART_MIB must be at least 5 (S3's minimum part size)" >&2 && exit 2; }

# ---------------------------------------------------------------- prerequisites
hdr "prerequisites"
if [ ! -d node_modules ]; then
  say "node_modules is missing: running scripts/setup.sh"
  bash scripts/setup.sh
fi
for tool in "$AWS_CLI" ceph radosgw-admin; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "release.sh: $tool is not installed; run 'bash scripts/setup.sh' as root (Debian's awscli and ceph packages)." >&2
    exit 1
  }
done
say "building: npx tsc -p tsconfig.json"
if ! build_log=$(npx tsc -p tsconfig.json 2>&1); then
  printf '%s\n' "$build_log" >&2
  echo "release.sh: the build failed (above); nothing was measured." >&2
  exit 1
fi
[ -f "$DRIVER" ] || { echo "release.sh: $DRIVER was not built (is bench/ in tsconfig's include?)" >&2 && exit 1; }
AWS_VERSION=$("$AWS_CLI" --version 2>&1 | awk '{ print $1 }')
say "node $(node --version), $AWS_VERSION, $(ceph --version | awk '{ print "ceph", $3 }'), $(nproc) CPUs"
say "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (client and store share the machine)"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
OUT="$BENCH_DIR/out"
rm -rf "$OUT"
mkdir -p "$OUT"

# ---------------------------------------------------------------- the S3 service
OWN_CEPH=0
if [ -n "${SLIPWAY_SERVICES_DIR:-}" ] && [ -f "$SLIPWAY_SERVICES_DIR/ceph/env" ]; then
  CEPH_DIR=$SLIPWAY_SERVICES_DIR/ceph
  hdr "S3: the running cluster in $CEPH_DIR"
else
  CEPH_DIR=$BENCH_DIR/ceph
  hdr "S3: starting a cluster (scripts/services/ceph-s3.sh start $CEPH_DIR)"
  OWN_CEPH=1
fi
CONF=$CEPH_DIR/ceph.conf
ASOK=$CEPH_DIR/run/osd.0.asok
ORIG_CAP=
BUCKETS=()

# Removes a bucket with everything in it, then lets RGW's garbage collector free the tails of the
# multipart objects at once (it waits two hours by default), so memstore gets its RAM back.
remove_bucket() {
  timeout 300 "$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3 rb --force "s3://$1" >/dev/null 2>&1 || true
  timeout 300 radosgw-admin -c "$CONF" gc process --include-all >/dev/null 2>&1 || true
}
cleanup() {
  set +e
  local b
  for b in "${BUCKETS[@]}"; do remove_bucket "$b"; done
  if [ -n "$ORIG_CAP" ]; then
    # Only when what is stored now fits well under the old cap: else the OSD would be full at once.
    # The OSD refreshes its usage every few seconds: wait up to 20 s for the deletions to show.
    local used i
    for ((i = 0; i < 40; i++)); do
      used=$(osd_stat stat_bytes_used 2>/dev/null || echo "$ORIG_CAP")
      [ $((used + 268435456)) -ge "$ORIG_CAP" ] || break
      sleep 0.5
    done
    if [ $((used + 268435456)) -lt "$ORIG_CAP" ]; then
      timeout 10 ceph --admin-daemon "$ASOK" config set memstore_device_bytes "$ORIG_CAP" >/dev/null 2>&1 &&
        say "memstore device bytes put back to $(human "$ORIG_CAP")"
    else
      say "memstore device bytes left at the raised value: $(human "$used") stored, more than the old cap $(human "$ORIG_CAP") allows"
    fi
  fi
  if [ "$OWN_CEPH" = 1 ]; then bash scripts/services/ceph-s3.sh stop "$CEPH_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$OWN_CEPH" = 1 ]; then bash scripts/services/ceph-s3.sh start "$CEPH_DIR"; fi
set -a
# shellcheck disable=SC1091
. "$CEPH_DIR/env"
set +a
export AWS_DEFAULT_REGION=${AWS_REGION:-us-east-1}
# awscli with its defaults (8 MiB parts, 10 requests in flight) and nothing from ~/.aws.
export AWS_CONFIG_FILE="$OUT/no-aws-config" AWS_SHARED_CREDENTIALS_FILE="$OUT/no-aws-credentials"
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
unset AWS_PROFILE AWS_SESSION_TOKEN
say "endpoint $S3_ENDPOINT"

json_get() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv.slice(1))v=v[k];console.log(v)})' "$@"; }
osd_stat() { timeout 10 ceph --admin-daemon "$ASOK" perf dump | json_get osd "$1"; }
ORIG_CAP=$(timeout 10 ceph --admin-daemon "$ASOK" config get memstore_device_bytes | json_get memstore_device_bytes)
USED=$(osd_stat stat_bytes_used)
TOTAL_BYTES=$((MIB * 1048576))
# One copy of the input at a time, plus what is stored already, plus a quarter and 256 MiB of margin
# (RGW's own objects, the OSD's full ratio of 0.95).
NEED=$((USED + TOTAL_BYTES + TOTAL_BYTES / 4 + 268435456))
if [ "$NEED" -gt "$ORIG_CAP" ]; then
  timeout 10 ceph --admin-daemon "$ASOK" config set memstore_device_bytes "$NEED" >/dev/null
  say "memstore device bytes: $(human "$ORIG_CAP") → $(human "$NEED") for this run ($(human "$USED") stored already; put back at the end)"
else
  ORIG_CAP=
fi

# ---------------------------------------------------------------- input
INPUT="$BENCH_DIR/input"
STAMP="format=$INPUT_FORMAT mib=$MIB files=$FILES version=$VERSION"
if [ -f "$INPUT/.stamp" ] && [ "$(cat "$INPUT/.stamp")" = "$STAMP" ]; then
  say "reusing the input in $INPUT ($STAMP)"
else
  hdr "input: $FILES artifacts, $MIB MiB in all (AES-CTR keystream: deterministic, incompressible)"
  rm -rf "$INPUT"
  node "$DRIVER" input --dir "$INPUT" --mib "$MIB" --files "$FILES" --version "$VERSION"
  echo "$STAMP" >"$INPUT/.stamp"
fi
NFILES=$(find "$INPUT/files" -type f | wc -l)
say "$INPUT/files: $NFILES files (artifacts, .sha256 files, manifest.json), $(human "$(du -sb "$INPUT/files" | cut -f1)")"
cat "$INPUT/files"/*.sha256 >/dev/null # in the page cache for both

# ls_sizes BUCKET: "key size" lines of everything in it, sorted.
ls_sizes() { "$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3 ls --recursive "s3://$1/" | awk '{ print $4, $3 }' | sort; }
new_bucket() {
  "$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3 mb "s3://$1" >/dev/null
  BUCKETS+=("$1")
}
drop_bucket() {
  local keep=() b
  remove_bucket "$1"
  for b in "${BUCKETS[@]}"; do [ "$b" = "$1" ] || keep+=("$b"); done
  BUCKETS=("${keep[@]}")
}
PREFIX="demo/demo-$VERSION"
EXPECTED=$(cd "$INPUT/files" && find . -type f -printf "$PREFIX/%P %s\n" | sort)

# ---------------------------------------------------------------- runs
AWS_BEST= SLW_BEST= NOOP_BEST=
VARS="$OUT/run.vars"
for ((run = 1; run <= RUNS; run++)); do
  hdr "run $run of $RUNS"
  A="slipway-bench-aws-$$-$run"
  new_bucket "$A"
  timed "$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3 cp --recursive --only-show-errors "$INPUT/files" "s3://$A/$PREFIX/"
  say "aws s3 cp --recursive:      $T s ($CPU s CPU)"
  AWS_BEST=$(minof "$AWS_BEST" "$T")
  [ "$(ls_sizes "$A")" = "$EXPECTED" ] || { echo "release.sh: bucket $A does not hold the input" >&2 && exit 1; }
  drop_bucket "$A"

  B="slipway-bench-slw-$$-$run"
  new_bucket "$B"
  : >"$VARS"
  timed node "$DRIVER" upload --build "$INPUT" --bucket "$B" --endpoint "$S3_ENDPOINT" \
    --concurrency "$CONCURRENCY" --part-mib "$PART_MIB" --queue "$QUEUE" --vars "$VARS" --prefix UP
  # shellcheck disable=SC1090
  . "$VARS"
  say "slipway plan + apply:       $T s ($CPU s CPU; plan $UP_PLAN_S s, apply $UP_APPLY_S s; $UP_UPLOADED objects)"
  SLW_BEST=$(minof "$SLW_BEST" "$T")
  [ "$(ls_sizes "$B" | grep -v '^demo/latest.json ')" = "$EXPECTED" ] ||
    { echo "release.sh: bucket $B does not hold the input" >&2 && exit 1; }
  # An independent client sees the sha256 metadata.
  first=$(head -1 "$INPUT/files/demo-$VERSION.tar.gz.sha256" | cut -d' ' -f1)
  meta=$("$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3api head-object --bucket "$B" --key "$PREFIX/demo-$VERSION.tar.gz" | json_get Metadata sha256)
  [ "$meta" = "$first" ] || { echo "release.sh: sha256 metadata $meta, expected $first" >&2 && exit 1; }

  : >"$VARS"
  timed node "$DRIVER" upload --build "$INPUT" --bucket "$B" --endpoint "$S3_ENDPOINT" \
    --concurrency "$CONCURRENCY" --part-mib "$PART_MIB" --queue "$QUEUE" --vars "$VARS" --prefix NOOP
  # shellcheck disable=SC1090
  . "$VARS"
  [ "$NOOP_UPLOADED" = 0 ] || { echo "release.sh: the no-op re-upload sent $NOOP_UPLOADED objects" >&2 && exit 1; }
  say "slipway no-op re-upload:    $T s ($CPU s CPU; plan $NOOP_PLAN_S s, apply $NOOP_APPLY_S s; $NOOP_SKIPPED skipped, 0 sent)"
  NOOP_BEST=$(minof "$NOOP_BEST" "$T")
  drop_bucket "$B"
done

# ---------------------------------------------------------------- summary
RATIO=$(ratio "$SLW_BEST" "$AWS_BEST")
MBPS_AWS=$(awk -v b="$TOTAL_BYTES" -v s="$AWS_BEST" 'BEGIN { printf "%.0f", b / s / 1e6 }')
MBPS_SLW=$(awk -v b="$TOTAL_BYTES" -v s="$SLW_BEST" 'BEGIN { printf "%.0f", b / s / 1e6 }')
if le "$RATIO" 1.0; then MET="≤ 1.0×: met"; else MET="≤ 1.0×: MISSED"; fi
SUMMARY="$OUT/summary.md"
{
  echo "# Release upload benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, node $(node --version), $AWS_VERSION, $(ceph --version | awk '{ print "ceph", $3 }')" \
    "(one OSD on memstore, radosgw on loopback; client and store share the machine). Best of $RUNS run(s)."
  echo
  echo "| measurement | awscli | slipway | ratio | target |"
  echo "| --- | --- | --- | ---: | --- |"
  printf '| upload %s MiB in %s artifacts (%s files with .sha256 and manifest.json) | `aws s3 cp --recursive`: %s s (%s MB/s) | %s s (%s MB/s) | %s× | %s |\n' \
    "$MIB" "$FILES" "$NFILES" "$AWS_BEST" "$MBPS_AWS" "$SLW_BEST" "$MBPS_SLW" "$RATIO" "$MET"
  printf '| no-op re-upload (nothing sent) | — | %s s | — | — |\n' "$NOOP_BEST"
  echo
  echo "Slipway: \`planReleaseUpload\` + \`applyReleaseUpload\` in one process (bench/release-upload.ts), $CONCURRENCY files at once;" \
    "files up to $((PART_MIB * QUEUE)) MiB (part size × parts in flight) go whole in one PutObject whose SigV4 payload hash is the" \
    "sha256 from the plan (checked by the store), bigger ones in $PART_MIB MiB parts, $QUEUE in flight per file; the time includes hashing every file against manifest.json and the" \
    ".sha256 files before anything is sent, checking each file unchanged (inode, size, mtime, ctime) before its upload" \
    "completes, reading every object back (HeadObject: size and sha256 metadata) and latest.json last." \
    "awscli with its defaults (8 MiB parts, 10 requests in flight), no checksums of its own beyond SigV4's." \
    "The no-op re-upload hashes the whole input again (the check against the manifest), then lists and reads metadata: nothing is sent."
} >"$SUMMARY"
hdr "summary"
cat "$SUMMARY"
mkdir -p bench/results
RESULT="bench/results/release-$(date -u +%Y-%m-%d).md"
cp "$SUMMARY" "$RESULT"
say ""
say "written to $REPO/$RESULT"
if [ "$STRICT" = 1 ] && ! le "$RATIO" 1.0; then
  echo "release.sh: the target was missed (STRICT=1)" >&2
  exit 1
fi
