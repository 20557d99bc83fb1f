#!/usr/bin/env bash
# Benchmark for OCI pushes, in one run on the same input: a two-platform layout (the trees of
# bench/oci-build.sh, about 300 MiB of files per platform, built once with `slipway oci build`) pushed to
# a fresh local Debian docker-registry (distribution 2.8) by
#   slipway oci push LAYOUT:bench 127.0.0.1:PORT/bench --insecure
#   skopeo copy --all --preserve-digests oci:LAYOUT:bench docker://127.0.0.1:PORT/bench:bench
# Each timed push goes to its own empty registry (own storage directory), so neither side finds blobs
# already there; then the no-op re-push (every blob present) is timed for both.
#
#   bash bench/oci-push.sh
#
# Environment:
#   RUNS=2                             timed runs per side; the best (min) wall time counts
#   BENCH_DIR=/tmp/slipway-bench-oci   scratch space shared with bench/oci-build.sh (its input is reused)
#   SIZE_MB=300                        per platform, when the input must be generated
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=oci-push.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

RUNS=${RUNS:-2}
BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench-oci}
SIZE_MB=${SIZE_MB:-300}
case "$RUNS" in '' | *[!0-9]* | 0) echo "oci-push.sh: RUNS must be a positive whole number, got '$RUNS'" >&2 && exit 2 ;; esac

hdr "prerequisites"
for tool in docker-registry skopeo; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "oci-push.sh: $tool is not installed; run 'bash scripts/setup.sh' as root." >&2
    exit 1
  }
done
if [ ! -d "$BENCH_DIR/input/amd64" ] || [ ! -d "$BENCH_DIR/input/arm64" ]; then
  say "no input in $BENCH_DIR/input: generating it with bench/oci-build.sh (RUNS=1)"
  RUNS=1 SIZE_MB=$SIZE_MB BENCH_DIR=$BENCH_DIR bash bench/oci-build.sh >/dev/null
fi
npx tsc -p tsconfig.json
say "node $(node --version), $(skopeo --version), docker-registry $(docker-registry --version 2>&1 | awk '{ print $3 }'), $(nproc) CPUs"
mkdir -p "$BENCH_DIR"
scratch_dir "$BENCH_DIR"

hdr "layout"
LAYOUT="$OUT/layout"
node bin/slipway.js oci build --platform "linux/amd64=$BENCH_DIR/input/amd64" \
  --platform "linux/arm64=$BENCH_DIR/input/arm64" -o "$LAYOUT" --tag bench >/dev/null
LAYOUT_BYTES=$(du -sb "$LAYOUT/blobs" | awk '{ print $1 }')
say "built $LAYOUT: $(find "$LAYOUT/blobs/sha256" -type f | wc -l) blobs, $(human "$LAYOUT_BYTES")"

# A fresh registry in its own directory (scripts/services/registry.sh); sets REG_DIR and REG_PORT.
REG_DIR=
start_registry() {
  REG_DIR=$1
  bash scripts/services/registry.sh start "$REG_DIR" 2>/dev/null
  eval "$(bash scripts/services/registry.sh env "$REG_DIR")"
  REG_PORT=${REGISTRY##*:}
}
stop_registry() {
  bash scripts/services/registry.sh stop "$REG_DIR"
  REG_DIR=
}
trap 'if [ -n "$REG_DIR" ]; then bash scripts/services/registry.sh stop "$REG_DIR"; fi; rm -rf "$OUT"' EXIT

slw_push() { node bin/slipway.js oci push "$LAYOUT:bench" "127.0.0.1:$REG_PORT/bench" --insecure; }
sko_push() {
  skopeo copy -q --all --preserve-digests "oci:$LAYOUT:bench" "docker://127.0.0.1:$REG_PORT/bench:bench" \
    --dest-tls-verify=false
}

hdr "push to an empty registry (best of $RUNS)"
SKO= SLW= SKO_NOOP= SLW_NOOP=
for i in $(seq 1 "$RUNS"); do
  start_registry "$OUT/reg-skopeo-$i"
  timed sko_push
  say "skopeo copy --all   run $i: $T s ($CPU s CPU)"
  SKO=$(minof "$SKO" "$T")
  timed sko_push
  SKO_NOOP=$(minof "$SKO_NOOP" "$T")
  stop_registry

  start_registry "$OUT/reg-slipway-$i"
  timed slw_push
  say "slipway oci push    run $i: $T s ($CPU s CPU)"
  SLW=$(minof "$SLW" "$T")
  timed slw_push
  SLW_NOOP=$(minof "$SLW_NOOP" "$T")
  # The registry holds exactly what skopeo would have put there: same index digest.
  got=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$REG_PORT/bench:bench" | sha256sum | awk '{ print $1 }')
  want=$(sha256sum <"$LAYOUT/blobs/sha256/$(node -e 'const i=require(process.argv[1]);console.log(i.manifests[0].digest.slice(7))' "$LAYOUT/index.json")" | awk '{ print $1 }')
  [ "$got" = "$want" ] || { echo "oci-push.sh: pushed index differs from the layout's" >&2 && exit 1; }
  stop_registry
done

hdr "summary"
R=$(ratio "$SLW" "$SKO")
say "push $(human "$LAYOUT_BYTES") (2 platforms): skopeo $SKO s, slipway $SLW s -> ${R}x (target <= 1.0x)"
say "no-op re-push: skopeo $SKO_NOOP s, slipway $SLW_NOOP s"
mkdir -p bench/results
{
  echo "| step | reference | ref s | slipway s | ratio | target |"
  echo "|---|---|---:|---:|---:|---|"
  echo "| oci push, 2 platforms, $(human "$LAYOUT_BYTES") | \`skopeo copy --all --preserve-digests\` | $SKO | $SLW | ${R}× | ≤ 1.0× |"
  echo "| oci push again (no-op) | same | $SKO_NOOP | $SLW_NOOP | $(ratio "$SLW_NOOP" "$SKO_NOOP")× | — |"
} | tee bench/results/oci-push.md
