#!/usr/bin/env bash
# Benchmark for OCI image builds: `slipway oci build` of a two-platform image (one rootfs directory
# per platform) against `tar --sort=name … | pigz -6` of the same two trees, in one run.
#
#   bash bench/oci-build.sh
#
# Environment:
#   SIZE_MB=300                        about this many MiB of files per platform
#   RUNS=2                             timed runs per command; the best (min) wall time counts
#   BENCH_DIR=/tmp/slipway-bench-oci   scratch space; the input trees in BENCH_DIR/input are kept and reused
#   LEVEL=6                            gzip level for both sides (slipway's default is 6, as pigz's)
#
# The input is generated once, deterministically: per platform ~SIZE_MB in files of 1 KiB to 4 MiB (~300 KiB on average),
# half of them random bytes (incompressible, like binaries already compressed), half text-like
# (a 32-letter alphabet, about 40% smaller gzip'd), plus some symlinks.
# Prints every timing, output sizes and slipway's peak memory, and a Markdown summary that also goes
# to bench/results/oci-build.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=oci-build.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
REPO=$(pwd)

SIZE_MB=${SIZE_MB:-300}
RUNS=${RUNS:-2}
BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench-oci}
LEVEL=${LEVEL:-6}
INPUT_FORMAT=2 # bump when the generated input changes: the input is rebuilt

case "$SIZE_MB" in '' | *[!0-9]* | 0) echo "oci-build.sh: SIZE_MB must be a positive whole number, got '$SIZE_MB'" >&2 && exit 2 ;; esac
case "$RUNS" in '' | *[!0-9]* | 0) echo "oci-build.sh: RUNS must be a positive whole number, got '$RUNS'" >&2 && exit 2 ;; esac
case "$LEVEL" in [0-9]) ;; *) echo "oci-build.sh: LEVEL must be 0..9, got '$LEVEL'" >&2 && exit 2 ;; esac

# ---------------------------------------------------------------- prerequisites
hdr "prerequisites"
if [ ! -d node_modules ]; then
  say "node_modules is missing: running scripts/setup.sh"
  bash scripts/setup.sh
fi
for tool in pigz tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "oci-build.sh: $tool is not installed (run 'bash scripts/setup.sh' as root)" >&2 && exit 1; }
done
tar --version 2>/dev/null | head -1 | grep -q 'GNU tar' || { echo "oci-build.sh: GNU tar is required (--sort=name)" >&2 && exit 1; }
say "building: npx tsc -p tsconfig.json"
if ! build_log=$(npx tsc -p tsconfig.json 2>&1); then
  # Type errors elsewhere in the tree do not stop tsc from emitting; only a missing output does.
  [ -f dist/src/oci/build.js ] || { printf '%s\n' "$build_log" >&2 && echo "oci-build.sh: the build failed" >&2 && exit 1; }
  say "(tsc reported type errors outside this benchmark's code; dist/ was still written)"
fi
say "node $(node --version), $(tar --version | head -1), pigz $(pigz --version 2>&1 | awk '{print $2}'), $(nproc) CPUs"
say "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"

# `slipway oci build` once the CLI routes it; until then the same command module, called directly.
mkdir -p "$BENCH_DIR"
if grep -qs 'ociBuildCommand' src/cli/main.ts src/cli/oci.ts; then
  SLIPWAY_OCI_BUILD=(node bin/slipway.js oci build)
  say "running: node bin/slipway.js oci build"
else
  cat >"$BENCH_DIR/oci-build-cli.mjs" <<EOF
// Written by bench/oci-build.sh while bin/slipway.js does not route 'oci build'.
import { ociBuildCommand } from '$REPO/dist/src/cli/oci-build.js';
import { CliReporter } from '$REPO/dist/src/cli/render.js';
const ctx = {
  json: false, debug: false, quiet: true, reporter: new CliReporter({ quiet: true, plain: true }),
  signal: new AbortController().signal, onFirstInterrupt: () => () => undefined, print: () => undefined,
};
const r = await ociBuildCommand(process.argv.slice(2), ctx);
console.log(r.human);
EOF
  SLIPWAY_OCI_BUILD=(node "$BENCH_DIR/oci-build-cli.mjs")
  say "running: ociBuildCommand from dist/src/cli/oci-build.js (bin/slipway.js does not route 'oci build' yet)"
fi

# ---------------------------------------------------------------- input
INPUT="$BENCH_DIR/input"
STAMP="$BENCH_DIR/input.stamp"
WANT="format $INPUT_FORMAT size $SIZE_MB"
hdr "input"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -d "$INPUT/amd64" ] && [ -d "$INPUT/arm64" ]; then
  say "reusing $INPUT"
else
  say "generating $INPUT (${SIZE_MB} MiB per platform)"
  rm -rf "$INPUT" "$STAMP"
  mkdir -p "$INPUT"
  node --input-type=module - "$INPUT" "$SIZE_MB" <<'EOF'
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
const [root, sizeMb] = process.argv.slice(2);
// KiB: mostly small files, a few large ones (about 300 KiB on average).
const SIZES = [2, 8, 4, 32, 1, 16, 64, 2, 8, 128, 4, 16, 512, 2, 32, 8, 1024, 4, 16, 4096].map((k) => k << 10);
const ALPHABET = Buffer.from('abcdefghijklmnopqrstuvwxyz \n.,;=');
// AES-CTR over zeros: fast, deterministic pseudo-random bytes for a given seed.
function bytes(seed, n) {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32)).update(Buffer.alloc(n));
}
for (const platform of ['amd64', 'arm64']) {
  const budget = Number(sizeMb) * 1024 * 1024;
  let total = 0;
  for (let i = 0; total < budget; i++) {
    const size = Math.min(SIZES[i % SIZES.length], budget - total);
    const data = bytes(`${platform}/${i}`, size);
    if (i % 2 === 1) for (let j = 0; j < data.length; j++) data[j] = ALPHABET[data[j] & 31];
    const file = path.join(root, platform, `d${String(i % 64).padStart(2, '0')}`, `f${i}.${i % 2 ? 'txt' : 'bin'}`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, data, { mode: i % 7 === 0 ? 0o755 : 0o644 });
    if (i % 10 === 0) fs.symlinkSync(path.basename(file), `${file}.link`);
    total += size;
  }
}
EOF
  printf '%s' "$WANT" >"$STAMP"
fi
for p in amd64 arm64; do
  read -r bytes files < <(find "$INPUT/$p" -type f -printf '%s\n' | awk '{ b += $1; n++ } END { printf "%d %d\n", b, n }')
  say "$p: $(human "$bytes") in $files files"
done
INPUT_BYTES=$(find "$INPUT" -type f -printf '%s\n' | awk '{ b += $1 } END { printf "%d\n", b }')

# ---------------------------------------------------------------- runs
scratch_dir "$BENCH_DIR"
ref_build() {
  for p in amd64 arm64; do
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$INPUT/$p" . |
      pigz -"$LEVEL" -p "$(nproc)" >"$OUT/ref-$p.tar.gz"
  done
}
slipway_build() {
  rm -rf "$OUT/layout"
  /usr/bin/time -f '%M' -o "$OUT/rss" "${SLIPWAY_OCI_BUILD[@]}" \
    --platform "linux/amd64=$INPUT/amd64" --platform "linux/arm64=$INPUT/arm64" \
    -o "$OUT/layout" --tag bench --level "$LEVEL"
}

hdr "build (best of $RUNS)"
say "warming the page cache"
tar -cf - -C "$INPUT" . | cat >/dev/null
REF=""
SLW=""
REF_CPU=""
SLW_CPU=""
RSS=0
for i in $(seq 1 "$RUNS"); do
  timed ref_build
  [ "$(minof "$REF" "$T")" = "$REF" ] || REF_CPU=$CPU
  REF=$(minof "$REF" "$T")
  say "run $i: reference $T s wall, $CPU s CPU"
  timed slipway_build
  [ "$(minof "$SLW" "$T")" = "$SLW" ] || SLW_CPU=$CPU
  SLW=$(minof "$SLW" "$T")
  r=$(cat "$OUT/rss")
  [ "$r" -gt "$RSS" ] && RSS=$r
  say "run $i: slipway   $T s wall, $CPU s CPU, peak RSS $((r / 1024)) MiB"
done
SLW_SAYS=$LAST_LOG
REF_SIZE=$(($(stat -c %s "$OUT/ref-amd64.tar.gz") + $(stat -c %s "$OUT/ref-arm64.tar.gz")))
SLW_SIZE=$(find "$OUT/layout/blobs/sha256" -type f -size +1M -printf '%s\n' | awk '{ b += $1 } END { printf "%d\n", b }')
RATIO=$(ratio "$SLW" "$REF")
say "reference: $REF s ($REF_CPU s CPU) -> 2 tar.gz, $(human "$REF_SIZE")"
say "slipway:   $SLW s ($SLW_CPU s CPU) -> OCI layout, layers $(human "$SLW_SIZE"), peak RSS $((RSS / 1024)) MiB"
say "slipway says:"
printf '%s\n' "$SLW_SAYS" | sed 's/^/  /'
say "ratio slipway/reference: ${RATIO}x"

# ---------------------------------------------------------------- check: same files in both
hdr "check"
CHECK_OK=1
for p in amd64 arm64; do
  layer=$(find "$OUT/layout/blobs/sha256" -type f -size +1M -printf '%s %p\n' | sort -n | awk '{ print $2 }' |
    while read -r f; do
      if cmp -s <(tar -tzf "$f" | sed 's#/$##' | LC_ALL=C sort) <(tar -tzf "$OUT/ref-$p.tar.gz" | sed 's#^\./##; s#/$##' | grep -v '^\.\?$' | LC_ALL=C sort); then
        echo "$f"
        break
      fi
    done)
  if [ -n "$layer" ]; then
    say "$p: a slipway layer lists the same $(tar -tzf "$layer" | wc -l) entries as the reference"
  else
    CHECK_OK=0
    say "$p: NO slipway layer lists the same entries as the reference"
  fi
done

# ---------------------------------------------------------------- summary
SUMMARY="$OUT/summary.md"
{
  echo "# OCI image build benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, node $(node --version), best of $RUNS runs, gzip level $LEVEL."
  echo "Input: two platforms, $(human "$INPUT_BYTES") in all (half random, half text-like bytes)."
  echo "Outputs: reference $(human "$REF_SIZE"), slipway layers $(human "$SLW_SIZE"); slipway peak RSS $((RSS / 1024)) MiB."
  echo "Same entries in both: $([ "$CHECK_OK" = 1 ] && echo yes || echo NO)."
  echo
  echo "| step | reference command | reference s | slipway s | ratio |"
  echo "| ---- | ----------------- | ----------: | --------: | ----: |"
  printf '| oci build, 2 platforms | `tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C TREE . \\| pigz -%s -p %s` per platform | %s | %s | %s× |\n' \
    "$LEVEL" "$(nproc)" "$REF" "$SLW" "$RATIO"
  echo
  echo "CPU (user+system) of those best runs: reference $REF_CPU s, slipway $SLW_CPU s."
  echo "Slipway also writes the configs, manifests, index and index.json, and hashes each layer twice (diff_id and digest)."
} >"$SUMMARY"
hdr "summary"
cat "$SUMMARY"
mkdir -p bench/results
cp "$SUMMARY" bench/results/oci-build.md
say ""
say "written to $REPO/bench/results/oci-build.md"
[ "$CHECK_OK" = 1 ] || { echo "oci-build.sh: the outputs differ (see check above)" >&2 && exit 1; }
