#!/usr/bin/env bash
# Benchmark for signed update repositories, in one run on the same input: about 2 GiB of artifacts
# as a real build leaves them (composite OS archives, a control-plane archive of layer-image zones,
# SP/RoT firmware), all `file` sources of one tufaceous manifest, then
#   slipway repo assemble MANIFEST OUT.zip -k KEY   vs  sha256sum of every artifact + zip -0 -q -r
#   slipway repo verify OUT.zip                     vs  sha256sum of the extracted targets
#   slipway releng examples/rack                    cold and no-op (no reference)
#
#   bash bench/repo.sh
#
# Environment:
#   RUNS=3                             timed runs per command; the best (min) wall time counts
#   BENCH_DIR=/tmp/slipway-bench-repo  scratch space; the input in BENCH_DIR/input is kept and reused
#   TOTAL_MIB=2048                     about this much input (the split below scales with it)
#   STRICT=1                           exit 1 when a target is missed
#   TAR_DIR_ENTRIES=1                  composites made by `tar … oxide.json image` with its directory
#                                      entries (image/, zones/); by default regular files only
#
# Prints the input, every timing (with slipway's own [task] times), and a Markdown summary that
# also goes to bench/results/repo-<date>.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=repo.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
REPO=$(pwd)

RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench-repo}
TOTAL_MIB=${TOTAL_MIB:-2048}
STRICT=${STRICT:-0}
TAR_DIR_ENTRIES=${TAR_DIR_ENTRIES:-0}
INPUT_FORMAT=1 # bump when the shape of the generated input changes: the input is rebuilt

case "$RUNS" in '' | *[!0-9]* | 0) echo "repo.sh: RUNS must be a positive whole number, got '$RUNS'" >&2 && exit 2 ;; esac
case "$TAR_DIR_ENTRIES" in 0 | 1) ;; *) echo "repo.sh: TAR_DIR_ENTRIES must be 0 or 1, got '$TAR_DIR_ENTRIES'" >&2 && exit 2 ;; esac
case "$TOTAL_MIB" in '' | *[!0-9]*) echo "repo.sh: TOTAL_MIB must be a whole number, got '$TOTAL_MIB'" >&2 && exit 2 ;; esac
[ "$TOTAL_MIB" -ge 16 ] || { echo "repo.sh: TOTAL_MIB must be at least 16" >&2 && exit 2; }

sl() { node bin/slipway.js "$@"; }

# ---------------------------------------------------------------- prerequisites
hdr "prerequisites"
if [ ! -d node_modules ]; then
  say "node_modules is missing: running scripts/setup.sh"
  bash scripts/setup.sh
fi
for tool in pigz zip unzip sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "repo.sh: $tool is not installed; run 'bash scripts/setup.sh' as root (or apt-get install $tool)." >&2
    exit 1
  }
done
say "building: npx tsc -p tsconfig.json"
if ! build_log=$(npx tsc -p tsconfig.json 2>&1); then
  printf '%s\n' "$build_log" >&2
  echo "repo.sh: the build failed (above); nothing was measured." >&2
  exit 1
fi
say "node $(node --version), $(zip -v | sed -n 2p | sed 's/^ *//;s/ by.*//'), $(sha256sum --version | head -1), $(nproc) CPUs"
say "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (timings are wall clock; other load on the machine shows up in them)"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"

# ---------------------------------------------------------------- input
# $IN/manifest.toml and $IN/artifacts/* (every artifact a `file` source, relative to the manifest).
# Sizes in units of U = TOTAL_MIB/2048 MiB (1 MiB by default), each plus a distinct multiple of
# 4 KiB so that no two random files have the same size either:
#   host        t=os composite: image/gimlet.rom 4U + image/zfs.img 1024U, tar | pigz -1
#   trampoline  t=os composite: image/gimlet.rom 4U + image/zfs.img  256U
#   control_plane  t=control_plane composite of 4 zones, each `slipway layer pack` of 128U
#                  of random files (64U + 48U + 16U + a small text file)
#   *_sp, *_rot_bootloader  plain random files of 16U (6 files)
#   *_rot       t=rot composites: archive-a.zip 24U + archive-b.zip 24U (3 files)
# Random data throughout (head -c … /dev/urandom), so nothing compresses and every file differs.
IN="$BENCH_DIR/input"
STAMP="$IN/stamp"
U=$((TOTAL_MIB * 512)) # bytes
SEQ=0
# rand FILE UNITS: UNITS*U random bytes plus a distinct multiple of 4 KiB.
rand() {
  SEQ=$((SEQ + 1))
  mkdir -p "$(dirname "$1")"
  head -c $(($2 * U + SEQ * 4096)) /dev/urandom >"$1"
}
# composite OUT.tar.gz TYPE DIR: oxide.json first, then every other entry of DIR, ustar, root-owned.
composite() {
  local out=$1 t=$2 dir=$3
  printf '{"v":"1","t":"%s"}\n' "$t" >"$dir/oxide.json"
  local rest=() e
  if [ "$TAR_DIR_ENTRIES" = 1 ]; then
    # `tar … oxide.json image`: tar recurses and writes an `image/` directory entry too.
    while IFS= read -r -d '' e; do rest+=("${e#./}"); done < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 ! -name oxide.json -print0 | LC_ALL=C sort -z)
  else
    # Regular files only, as tufaceous writes composites (`slipway repo verify` rejects other entries).
    while IFS= read -r -d '' e; do rest+=("${e#./}"); done < <(cd "$dir" && find . -mindepth 1 -type f ! -path ./oxide.json -print0 | LC_ALL=C sort -z)
  fi
  tar --format=ustar --owner=0 --group=0 -cf - -C "$dir" oxide.json "${rest[@]}" | pigz -1 >"$out"
  # oxide.json must be the first entry
  [ "$(tar -tzf "$out" | head -1)" = oxide.json ] || { echo "repo.sh: $out: oxide.json is not first" >&2 && exit 1; }
  rm -rf "$dir"
}
# "name size" of every artifact: what the stamp records.
listing() { (cd "$1" && find artifacts -type f -printf '%p %s\n' | LC_ALL=C sort); }

SP_KINDS="gimlet_sp psc_sp switch_sp gimlet_rot_bootloader psc_rot_bootloader switch_rot_bootloader"
ROT_KINDS="gimlet_rot psc_rot switch_rot"
plan_line="format $INPUT_FORMAT total $TOTAL_MIB dir-entries $TAR_DIR_ENTRIES"

build_input() {
  local tmp="$IN.tmp" st="$IN.tmp/stage" a="$IN.tmp/artifacts" k z
  rm -rf "$tmp"
  mkdir -p "$st" "$a"
  say "host: t=os composite (zfs.img $((1024 * U / 1048576)) MiB), pigz -1"
  rand "$st/host/image/gimlet.rom" 4
  rand "$st/host/image/zfs.img" 1024
  composite "$a/host.tar.gz" os "$st/host"
  say "trampoline: t=os composite (zfs.img $((256 * U / 1048576)) MiB)"
  rand "$st/trampoline/image/gimlet.rom" 4
  rand "$st/trampoline/image/zfs.img" 256
  composite "$a/trampoline.tar.gz" os "$st/trampoline"
  say "control_plane: 4 zones of $((128 * U / 1048576)) MiB, each 'slipway layer pack … --pkg NAME --version 1.0.0'"
  mkdir -p "$st/control-plane/zones"
  for z in nexus oximeter crucible clickhouse; do
    rand "$st/zone-$z/opt/oxide/$z/bin/$z" 64
    rand "$st/zone-$z/opt/oxide/$z/lib/lib$z.so" 48
    rand "$st/zone-$z/opt/oxide/$z/share/$z.db" 16
    printf 'zone %s\n' "$z" >"$st/zone-$z/opt/oxide/$z/README"
    sl layer pack "$st/zone-$z" -o "$st/control-plane/zones/$z.tar.gz" --pkg "$z" --version 1.0.0 --quiet >/dev/null
    rm -rf "$st/zone-$z"
  done
  composite "$a/control-plane.tar.gz" control_plane "$st/control-plane"
  say "SP and RoT bootloader images: 6 plain files; RoT: 3 t=rot composites"
  for k in $SP_KINDS; do rand "$a/${k//_/-}.bin" 16; done
  for k in $ROT_KINDS; do
    rand "$st/$k/archive-a.zip" 24
    rand "$st/$k/archive-b.zip" 24
    composite "$a/${k//_/-}.tar.gz" rot "$st/$k"
  done
  rmdir "$st"
  {
    echo '# Generated by bench/repo.sh: every artifact a file as a real build leaves it.'
    echo 'system_version = "1.0.0"'
    entry() { printf '\n[[artifact.%s]]\nname = "%s"\nversion = "1.0.0"\nsource = { kind = "file", path = "artifacts/%s" }\n' "$1" "$2" "$3"; }
    entry host host host.tar.gz
    entry trampoline trampoline trampoline.tar.gz
    entry control_plane control-plane control-plane.tar.gz
    for k in $SP_KINDS; do entry "$k" "${k//_/-}" "${k//_/-}.bin"; done
    for k in $ROT_KINDS; do entry "$k" "${k//_/-}" "${k//_/-}.tar.gz"; done
  } >"$tmp/manifest.toml"
  printf '%s\n%s\n' "$plan_line" "$(listing "$tmp")" >"$tmp/stamp"
  rm -rf "$IN"
  mv "$tmp" "$IN"
}

mkdir -p "$BENCH_DIR"
hdr "input"
if [ -f "$STAMP" ] && [ -f "$IN/manifest.toml" ] && [ "$(sed -n 1p "$STAMP")" = "$plan_line" ] &&
  [ "$(sed -n '2,$p' "$STAMP")" = "$(listing "$IN")" ]; then
  say "reusing $IN"
else
  say "building $IN ($TOTAL_MIB MiB; not timed)"
  t0=$(now)
  build_input
  say "built in $(secs "$t0" "$(now)") s"
fi
IN_BYTES=$(find "$IN/artifacts" -type f -printf '%s\n' | awk '{ b += $1 } END { printf "%d", b }')
IN_FILES=$(find "$IN/artifacts" -type f | wc -l)
say "manifest: $IN/manifest.toml"
say "artifacts: $IN_FILES files, $(human "$IN_BYTES") ($IN_BYTES bytes)"
(cd "$IN/artifacts" && find . -type f -printf '  %-32P %s\n' | LC_ALL=C sort)

KEYFILE="$BENCH_DIR/key"
if [ ! -s "$KEYFILE" ]; then
  sl repo keygen --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).key+"\n"))' >"$KEYFILE.tmp"
  chmod 600 "$KEYFILE.tmp"
  mv "$KEYFILE.tmp" "$KEYFILE"
fi
KEY=$(cat "$KEYFILE")
case "$KEY" in ed25519:*) ;; *) echo "repo.sh: $KEYFILE does not hold an ed25519: key" >&2 && exit 1 ;; esac

# ---------------------------------------------------------------- scratch outputs
scratch_dir "$BENCH_DIR"
SLW_ZIP="$OUT/repo.zip"
REF_ZIP="$OUT/ref.zip"
UNZIPPED="$OUT/unzipped"
RELENG_OUT="$BENCH_DIR/releng"

# slipway's own "[task] done in Xs" lines of the last log, on one line.
tasks() { printf '%s\n' "$LAST_LOG" | sed -n 's/.*✓ \[\(.*\)\] done in \(.*\)$/\1 \2/p' | paste -sd';' | sed 's/;/; /g'; }

ref_assemble() {
  (cd "$IN" && sha256sum artifacts/* >/dev/null && zip -0 -q -r "$REF_ZIP" artifacts)
}
slipway_assemble() {
  sl repo assemble "$IN/manifest.toml" "$SLW_ZIP" -k "$KEY"
}
clear_assemble() { rm -f "$REF_ZIP" "$SLW_ZIP" "$SLW_ZIP.sha256.txt"; }
ref_verify() {
  sha256sum "$UNZIPPED"/repo/targets/* >/dev/null
}
# Not the targets' references, shown for information: coreutils' sha256sum here may not use the
# CPU's SHA extensions, OpenSSL (like node) does, so these are the stronger baselines.
HAVE_OPENSSL=0
command -v openssl >/dev/null 2>&1 && HAVE_OPENSSL=1
ossl_assemble() {
  (cd "$IN" && openssl dgst -sha256 artifacts/* >/dev/null && zip -0 -q -r "$REF_ZIP" artifacts)
}
ossl_verify() {
  openssl dgst -sha256 "$UNZIPPED"/repo/targets/* >/dev/null
}
slipway_verify() {
  sl repo verify "$SLW_ZIP"
}

# ---------------------------------------------------------------- assemble
hdr "assemble (best of $RUNS, page cache warm, outputs removed before each run)"
say "warm-up (untimed): both commands once"
clear_assemble
ref_assemble
if ! warm_log=$(slipway_assemble 2>&1); then
  printf '%s\n' "$warm_log" >&2
  echo "repo.sh: FAILED: node bin/slipway.js repo assemble $IN/manifest.toml $SLW_ZIP -k <key>" >&2
  exit 1
fi
clear_assemble
ASM_REF=""
ASM_SLW=""
ASM_REF_CPU=""
ASM_SLW_CPU=""
ASM_SLW_TASKS=""
ASM_OSSL=""
FSYNC_BEST=""
for i in $(seq 1 "$RUNS"); do
  if [ "$HAVE_OPENSSL" = 1 ]; then
    rm -f "$REF_ZIP"
    timed ossl_assemble
    ASM_OSSL=$(minof "$ASM_OSSL" "$T")
    say "run $i: (info: openssl dgst -sha256 + zip -0: $T s wall, $CPU s CPU)"
  fi
  rm -f "$REF_ZIP"
  timed ref_assemble
  [ "$(minof "$ASM_REF" "$T")" = "$ASM_REF" ] || ASM_REF_CPU=$CPU
  ASM_REF=$(minof "$ASM_REF" "$T")
  say "run $i: reference $T s wall, $CPU s CPU"
  # slipway fsyncs its output before renaming it into place; zip does not. Shown apart, not counted.
  t0=$(now)
  sync "$REF_ZIP"
  FS=$(secs "$t0" "$(now)")
  FSYNC_BEST=$(minof "$FSYNC_BEST" "$FS")
  say "        (sync ref.zip afterwards: $FS s, not counted)"
  rm -f "$SLW_ZIP" "$SLW_ZIP.sha256.txt"
  timed slipway_assemble
  if [ "$(minof "$ASM_SLW" "$T")" != "$ASM_SLW" ]; then
    ASM_SLW_CPU=$CPU
    ASM_SLW_TASKS=$(tasks)
  fi
  ASM_SLW=$(minof "$ASM_SLW" "$T")
  say "run $i: slipway   $T s wall, $CPU s CPU  [$(tasks)]"
done
REF_ZIP_SIZE=$(stat -c %s "$REF_ZIP")
SLW_ZIP_SIZE=$(stat -c %s "$SLW_ZIP")
ASM_RATIO=$(ratio "$ASM_SLW" "$ASM_REF")
say "reference: $ASM_REF s ($ASM_REF_CPU s CPU) -> ref.zip  $(human "$REF_ZIP_SIZE")"
say "slipway:   $ASM_SLW s ($ASM_SLW_CPU s CPU) -> repo.zip $(human "$SLW_ZIP_SIZE")"
say "slipway says: $(printf '%s\n' "$LAST_LOG" | grep -v '^[0-9T:.-]*Z ' | head -3 | paste -sd' ')"
say "ratio slipway/reference: ${ASM_RATIO}x (target <= 1.2x)"
ZIP_SHA=$(sha256sum "$SLW_ZIP" | cut -d' ' -f1)
if [ "$(cat "$SLW_ZIP.sha256.txt")" = "$ZIP_SHA" ]; then
  say "repo.zip.sha256.txt matches sha256sum of repo.zip"
else
  echo "repo.sh: repo.zip.sha256.txt ($(cat "$SLW_ZIP.sha256.txt")) differs from sha256sum ($ZIP_SHA)" >&2
  exit 1
fi

# ---------------------------------------------------------------- verify
hdr "verify (best of $RUNS, page cache warm)"
say "extracting repo.zip once (unzip -q, untimed) for the reference"
rm -rf "$UNZIPPED"
mkdir -p "$UNZIPPED"
unzip -q "$SLW_ZIP" -d "$UNZIPPED"
NTARGETS=$(find "$UNZIPPED/repo/targets" -type f | wc -l)
# Each target is stored under <sha256>.<name>: the reference's sums must match the names.
BAD=$(cd "$UNZIPPED/repo/targets" && sha256sum -- * | awk '{ n = $2; sub(/\..*/, "", n); if (n != $1) print $2 }')
[ -z "$BAD" ] || { echo "repo.sh: targets whose sha256 differs from their name: $BAD" >&2 && exit 1; }
say "$NTARGETS targets, each stored under its sha256"
say "warm-up (untimed): both commands once"
ref_verify
VER_ERROR=""
if ! warm_log=$(slipway_verify 2>&1); then
  # Recorded in the summary (and the script fails at the end); releng is still measured.
  printf '%s\n' "$warm_log" >&2
  VER_ERROR=$(printf '%s\n' "$warm_log" | grep -m1 '^error' || printf '%s\n' "$warm_log" | tail -1)
  echo "repo.sh: FAILED: node bin/slipway.js repo verify $SLW_ZIP (not timed; carrying on)" >&2
fi
VER_REF=""
VER_SLW=""
VER_REF_CPU=""
VER_SLW_CPU=""
VER_SLW_TASKS=""
VER_OSSL=""
for i in $(seq 1 "$RUNS"); do
  if [ "$HAVE_OPENSSL" = 1 ]; then
    timed ossl_verify
    VER_OSSL=$(minof "$VER_OSSL" "$T")
    say "run $i: (info: openssl dgst -sha256: $T s wall, $CPU s CPU)"
  fi
  timed ref_verify
  [ "$(minof "$VER_REF" "$T")" = "$VER_REF" ] || VER_REF_CPU=$CPU
  VER_REF=$(minof "$VER_REF" "$T")
  say "run $i: reference $T s wall, $CPU s CPU"
  [ -z "$VER_ERROR" ] || continue
  timed slipway_verify
  if [ "$(minof "$VER_SLW" "$T")" != "$VER_SLW" ]; then
    VER_SLW_CPU=$CPU
    VER_SLW_TASKS=$(tasks)
  fi
  VER_SLW=$(minof "$VER_SLW" "$T")
  say "run $i: slipway   $T s wall, $CPU s CPU  [$(tasks)]"
done
say "reference: $VER_REF s ($VER_REF_CPU s CPU)"
if [ -z "$VER_ERROR" ]; then
  VER_RATIO=$(ratio "$VER_SLW" "$VER_REF")
  say "slipway:   $VER_SLW s ($VER_SLW_CPU s CPU)"
  say "slipway says: $(printf '%s\n' "$LAST_LOG" | grep -v '^[0-9T:.-]*Z ' | head -1)"
  say "ratio slipway/reference: ${VER_RATIO}x (target <= 1.3x)"
else
  VER_SLW="FAILED"
  VER_RATIO="—"
  say "slipway:   FAILED: $VER_ERROR"
fi
rm -rf "$UNZIPPED"

# ---------------------------------------------------------------- releng
hdr "releng examples/rack (best of $RUNS; cold = output directory removed first, no-op = run again)"
RL_COLD=""
RL_NOOP=""
for i in $(seq 1 "$RUNS"); do
  rm -rf "$RELENG_OUT"
  timed sl releng examples/rack -o "$RELENG_OUT"
  RL_COLD=$(minof "$RL_COLD" "$T")
  say "run $i: cold  $T s wall, $CPU s CPU"
  timed sl releng examples/rack -o "$RELENG_OUT"
  RL_NOOP=$(minof "$RL_NOOP" "$T")
  say "run $i: no-op $T s wall, $CPU s CPU  ($(printf '%s\n' "$LAST_LOG" | grep -o 'cache hits: .*' | head -1))"
done
RL_ZIP_SIZE=$(stat -c %s "$RELENG_OUT/repo.zip")

# ---------------------------------------------------------------- summary
status() { if le "$1" "$2"; then echo "≤ $2×: met"; else echo "≤ $2×: MISSED"; fi; }
ASM_STATUS=$(status "$ASM_RATIO" 1.2)
if [ -z "$VER_ERROR" ]; then VER_STATUS=$(status "$VER_RATIO" 1.3); else VER_STATUS="≤ 1.3×: FAILED"; fi
if lt "$RL_NOOP" 1; then NOOP_STATUS="< 1 s: met"; else NOOP_STATUS="< 1 s: MISSED"; fi
SUMMARY="$OUT/summary.md"
{
  echo "# Update repository benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, node $(node --version), best of $RUNS runs, page cache warm."
  fsize() { human "$(stat -c %s "$IN/artifacts/$1")"; }
  echo "Input: $IN_FILES artifact files, $(human "$IN_BYTES") of random data, all \`file\` sources of one manifest:" \
    "host (t=os) $(fsize host.tar.gz), trampoline $(fsize trampoline.tar.gz), control plane (4 layer-image zones)" \
    "$(fsize control-plane.tar.gz), 6 SP/bootloader images of $(fsize gimlet-sp.bin), 3 t=rot composites of $(fsize gimlet-rot.tar.gz)."
  echo "Outputs: repo.zip $(human "$SLW_ZIP_SIZE"), ref.zip $(human "$REF_ZIP_SIZE"); examples/rack repo.zip $(human "$RL_ZIP_SIZE")."
  echo
  echo "| step | reference command | reference s | slipway s | ratio | target |"
  echo "| --- | --- | ---: | ---: | ---: | --- |"
  printf '| repo assemble | `sha256sum artifacts/*` + `zip -0 -q -r REF.zip artifacts` | %s | %s | %s× | %s |\n' \
    "$ASM_REF" "$ASM_SLW" "$ASM_RATIO" "$ASM_STATUS"
  printf '| repo verify | `sha256sum repo/targets/*` (extracted once, untimed) | %s | %s | %s%s | %s |\n' \
    "$VER_REF" "$VER_SLW" "$VER_RATIO" "$([ -z "$VER_ERROR" ] && echo '×')" "$VER_STATUS"
  printf '| releng examples/rack, cold | — | — | %s | — | — |\n' "$RL_COLD"
  printf '| releng examples/rack, no-op | — | — | %s | — | %s |\n' "$RL_NOOP" "$NOOP_STATUS"
  if [ "$HAVE_OPENSSL" = 1 ]; then
    printf '| (info) repo assemble | `openssl dgst -sha256 artifacts/*` + `zip -0 -q -r` | %s | %s | %s× | — |\n' \
      "$ASM_OSSL" "$ASM_SLW" "$(ratio "$ASM_SLW" "$ASM_OSSL")"
    if [ -z "$VER_ERROR" ]; then
      printf '| (info) repo verify | `openssl dgst -sha256 repo/targets/*` | %s | %s | %s× | — |\n' \
        "$VER_OSSL" "$VER_SLW" "$(ratio "$VER_SLW" "$VER_OSSL")"
    else
      printf '| (info) repo verify | `openssl dgst -sha256 repo/targets/*` | %s | FAILED | — | — |\n' "$VER_OSSL"
    fi
  fi
  echo
  [ -z "$VER_ERROR" ] || echo "\`slipway repo verify OUT.zip\` failed: \`$VER_ERROR\`"
  [ -z "$VER_ERROR" ] || echo
  echo "CPU (user+system) of the best runs: assemble reference $ASM_REF_CPU s, slipway $ASM_SLW_CPU s;" \
    "verify reference $VER_REF_CPU s$([ -n "$VER_ERROR" ] || echo ", slipway $VER_SLW_CPU s")."
  echo "slipway's tasks in its best assemble run: $ASM_SLW_TASKS$([ -n "$VER_ERROR" ] || echo "; verify: $VER_SLW_TASKS")."
  echo "slipway fsyncs repo.zip before renaming it into place; \`zip\` does not: \`sync ref.zip\` after the" \
    "reference took $FSYNC_BEST s at best (not counted above)."
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} >"$SUMMARY"
hdr "summary"
cat "$SUMMARY"
mkdir -p bench/results
RESULT="bench/results/repo-$(date -u +%Y-%m-%d).md"
cp "$SUMMARY" "$RESULT"
say ""
say "written to $REPO/$RESULT"

if [ -n "$VER_ERROR" ]; then
  echo "repo.sh: slipway repo verify failed on this input: $VER_ERROR" >&2
  exit 1
fi
if [ "$STRICT" = 1 ] && { ! le "$ASM_RATIO" 1.2 || ! le "$VER_RATIO" 1.3 || ! lt "$RL_NOOP" 1; }; then
  echo "repo.sh: a target was missed (STRICT=1)" >&2
  exit 1
fi
