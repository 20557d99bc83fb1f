#!/usr/bin/env bash
# Benchmark for layer archives: `slipway layer pack` against `tar --sort=name … | pigz -p2 -1`, and
# `slipway layer install` against `tar -xzf`, on the same >= 500 MiB tree of real binaries from /usr/lib.
#
#   bash bench/layer.sh
#
# Environment:
#   RUNS=3                        timed runs per command; the best (min) wall time counts
#   BENCH_DIR=/tmp/slipway-bench  scratch space; the input tree in BENCH_DIR/tree is kept and reused
#   MIN_MIB=500                   least size of the input tree (bytes of regular files)
#   SOURCE_DIRS="…"               directories copied, in order, until MIN_MIB is reached
#   VERIFY=full|sample            sha256 of every extracted file (default) or of every 25th
#   STRICT=1                      exit 1 when a target is missed
#
# Prints the tree, every timing, the output sizes, a check that both extracted trees equal the
# input, and a Markdown summary that also goes to bench/results/layer.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=layer.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
REPO=$(pwd)

RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench}
MIN_MIB=${MIN_MIB:-500}
MAX_ENTRIES=60000 # Slipway's default entry cap is 65 536; stay well below it
SOURCE_DIRS=${SOURCE_DIRS:-/usr/lib/x86_64-linux-gnu /usr/lib/llvm-14 /usr/lib/gcc /usr/lib/jvm /usr/libexec /usr/lib}
VERIFY=${VERIFY:-full}
STRICT=${STRICT:-0}
MTIME=@1153704088

case "$RUNS" in '' | *[!0-9]* | 0) echo "layer.sh: RUNS must be a positive whole number, got '$RUNS'" >&2 && exit 2 ;; esac
case "$VERIFY" in full | sample) ;; *) echo "layer.sh: VERIFY must be 'full' or 'sample', got '$VERIFY'" >&2 && exit 2 ;; esac


# ---------------------------------------------------------------- prerequisites
hdr "prerequisites"
if [ ! -d node_modules ]; then
  say "node_modules is missing: running scripts/setup.sh"
  bash scripts/setup.sh
fi
if ! command -v pigz >/dev/null 2>&1; then
  echo "layer.sh: pigz is not installed; the reference pack needs it." >&2
  echo "          run 'bash scripts/setup.sh' as root (it installs pigz, tar and gzip)." >&2
  exit 1
fi
if ! tar --version 2>/dev/null | head -1 | grep -q 'GNU tar'; then
  echo "layer.sh: GNU tar is required (--sort=name); run 'bash scripts/setup.sh' as root." >&2
  exit 1
fi
say "building: npx tsc -p tsconfig.json"
if ! build_log=$(npx tsc -p tsconfig.json 2>&1); then
  printf '%s\n' "$build_log" >&2
  echo "layer.sh: the build failed (above); nothing was measured." >&2
  exit 1
fi
say "node $(node --version), $(tar --version | head -1), pigz $(pigz --version 2>&1 | awk '{print $2}'), $(nproc) CPUs"
say "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (timings are wall clock; other load on the machine shows up in them)"
say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"

# ---------------------------------------------------------------- input tree
TREE="$BENCH_DIR/tree"
STAMP="$BENCH_DIR/tree.stamp"
mkdir -p "$BENCH_DIR"

# Regular files we can read, directories and symlinks; sockets, fifos and devices are skipped.
list_source() {
  (cd "$1" && { find . -mindepth 1 \( -type d -o -type l -o \( -type f -readable \) \) -print0 2>/dev/null || true; })
}
# "bytes files dirs symlinks entries" of a tree (entries excludes the top directory itself).
measure() {
  (cd "$1" && find . -mindepth 1 -printf '%y %s\n') |
    awk '{ n++; if ($1 == "f") { f++; b += $2 } else if ($1 == "d") d++; else if ($1 == "l") l++ }
         END { printf "%d %d %d %d %d\n", b, f, d, l, n }'
}

# Which source directories, in order, until MIN_MIB is reached.
plan=()
plan_bytes=0
plan_entries=0
for src in $SOURCE_DIRS; do
  [ -d "$src" ] && [ -r "$src" ] || continue
  # Skip a directory that contains one already chosen, or is inside one.
  overlap=0
  for p in "${plan[@]+"${plan[@]}"}"; do
    case "$src/" in "$p"/*) overlap=1 ;; esac
    case "$p/" in "$src"/*) overlap=1 ;; esac
  done
  [ "$overlap" = 0 ] || continue
  # A file with several hard links is counted (and later kept) once.
  read -r b e < <(cd "$src" && { find . -mindepth 1 \( -type d -o -type l -o \( -type f -readable \) \) -printf '%y %i %s\n' 2>/dev/null || true; } |
    awk '$1 == "f" && seen[$2]++ { next } { n++; if ($1 == "f") b += $3 } END { printf "%d %d\n", b, n }')
  if [ $((plan_entries + e + 4)) -ge "$MAX_ENTRIES" ]; then
    say "skipping $src: its $e entries would take the tree to $MAX_ENTRIES or more"
    continue
  fi
  plan+=("$src")
  plan_bytes=$((plan_bytes + b))
  plan_entries=$((plan_entries + e))
  [ "$plan_bytes" -lt $((MIN_MIB * 1024 * 1024)) ] || break
done
if [ "$plan_bytes" -lt $((MIN_MIB * 1024 * 1024)) ]; then
  echo "layer.sh: the source directories ($SOURCE_DIRS) hold only $(human "$plan_bytes"), less than ${MIN_MIB} MiB" >&2
  exit 1
fi
plan_line="plan ${plan[*]} $plan_bytes $plan_entries"

reuse=0
if [ -d "$TREE" ] && [ -f "$STAMP" ] && [ "$(sed -n 1p "$STAMP")" = "$plan_line" ] &&
  [ "$(sed -n 2p "$STAMP")" = "tree $(measure "$TREE")" ]; then
  reuse=1
fi

hdr "input tree"
if [ "$reuse" = 1 ]; then
  say "reusing $TREE (built from ${plan[*]})"
else
  say "building $TREE from ${plan[*]}"
  rm -rf "$TREE" "$STAMP"
  mkdir -p "$TREE"
  for src in "${plan[@]}"; do
    dst="$TREE${src}" # keeps the path: TREE/usr/lib/x86_64-linux-gnu
    mkdir -p "$dst"
    list_source "$src" |
      tar -C "$src" --null --no-recursion -T - --ignore-failed-read -cf - 2>/dev/null |
      tar -C "$dst" -xpf -
  done
  # Of each set of hard links keep one name (the first by path): tar would store the others as
  # links and slipway (lstat walk) as full copies, which would compare different work.
  (cd "$TREE" && find . -type f -links +1 -printf '%i %p\n' | LC_ALL=C sort -k1,1n -k2 |
    awk 'seen[$1]++ { sub(/^[0-9]+ /, ""); print }' | xargs -d '\n' -r rm -f --)
  printf '%s\ntree %s\n' "$plan_line" "$(measure "$TREE")" >"$STAMP"
fi
read -r TREE_BYTES TREE_FILES TREE_DIRS TREE_LINKS TREE_ENTRIES < <(measure "$TREE")
say "size:    $(human "$TREE_BYTES") ($TREE_BYTES bytes in regular files; du: $(du -sh "$TREE" | cut -f1))"
say "entries: $TREE_ENTRIES ($TREE_FILES files, $TREE_DIRS directories, $TREE_LINKS symlinks)"
if [ "$TREE_ENTRIES" -ge "$MAX_ENTRIES" ]; then
  echo "layer.sh: the tree has $TREE_ENTRIES entries, not below $MAX_ENTRIES" >&2
  exit 1
fi

# ---------------------------------------------------------------- scratch outputs
scratch_dir "$BENCH_DIR"
REF_GZ="$OUT/ref.tar.gz"
SLW_GZ="$OUT/slipway.tar.gz"


ref_pack() {
  tar --sort=name --mtime="$MTIME" --owner=0 --group=0 --numeric-owner -cf - -C "$TREE" . | pigz -p2 -1 >"$REF_GZ"
}
slipway_pack() {
  node bin/slipway.js layer pack "$TREE" -o "$SLW_GZ" --quiet
}
ref_install() {
  tar -xzf "$REF_GZ" -C "$1"
}
slipway_install() {
  node bin/slipway.js layer install --quiet --root "$1" "$SLW_GZ"
}

# ---------------------------------------------------------------- pack
hdr "pack (best of $RUNS)"
say "warming the page cache (tar -cf - TREE | cat >/dev/null; GNU tar skips reading files when writing to /dev/null)"
tar -cf - -C "$TREE" . | cat >/dev/null

PACK_REF=""
PACK_SLW=""
PACK_REF_CPU=""
PACK_SLW_CPU=""
for i in $(seq 1 "$RUNS"); do
  timed ref_pack
  [ "$(minof "$PACK_REF" "$T")" = "$PACK_REF" ] || PACK_REF_CPU=$CPU
  PACK_REF=$(minof "$PACK_REF" "$T")
  say "run $i: reference $T s wall, $CPU s CPU"
  timed slipway_pack
  [ "$(minof "$PACK_SLW" "$T")" = "$PACK_SLW" ] || PACK_SLW_CPU=$CPU
  PACK_SLW=$(minof "$PACK_SLW" "$T")
  say "run $i: slipway   $T s wall, $CPU s CPU"
done
SLW_PACK_SAYS=$LAST_LOG
REF_SIZE=$(stat -c %s "$REF_GZ")
SLW_SIZE=$(stat -c %s "$SLW_GZ")
PACK_RATIO=$(ratio "$PACK_SLW" "$PACK_REF")
say "reference: $PACK_REF s ($PACK_REF_CPU s CPU) -> ref.tar.gz     $(human "$REF_SIZE") ($REF_SIZE bytes)"
say "slipway:   $PACK_SLW s ($PACK_SLW_CPU s CPU) -> slipway.tar.gz $(human "$SLW_SIZE") ($SLW_SIZE bytes)"
say "slipway says: $SLW_PACK_SAYS"
say "ratio slipway/reference: ${PACK_RATIO}x (target <= 1.0x)"
say "gzip -t: ref $(gzip -t "$REF_GZ" 2>&1 && echo ok), slipway $(gzip -t "$SLW_GZ" 2>&1 && echo ok)"

# ---------------------------------------------------------------- install
hdr "install (best of $RUNS, fresh empty directory each run)"
INST_REF=""
INST_SLW=""
INST_REF_CPU=""
INST_SLW_CPU=""
A="$OUT/fresh_a"
B="$OUT/fresh_b"
for i in $(seq 1 "$RUNS"); do
  rm -rf "$A" "$B"
  mkdir "$A" "$B"
  timed ref_install "$A"
  [ "$(minof "$INST_REF" "$T")" = "$INST_REF" ] || INST_REF_CPU=$CPU
  INST_REF=$(minof "$INST_REF" "$T")
  say "run $i: reference $T s wall, $CPU s CPU"
  timed slipway_install "$B"
  [ "$(minof "$INST_SLW" "$T")" = "$INST_SLW" ] || INST_SLW_CPU=$CPU
  INST_SLW=$(minof "$INST_SLW" "$T")
  say "run $i: slipway   $T s wall, $CPU s CPU"
done
SLW_INSTALL_SAYS=$LAST_LOG
INST_RATIO=$(ratio "$INST_SLW" "$INST_REF")
say "reference: $INST_REF s ($INST_REF_CPU s CPU)"
say "slipway:   $INST_SLW s ($INST_SLW_CPU s CPU)"
say "slipway says: $SLW_INSTALL_SAYS"
say "ratio slipway/reference: ${INST_RATIO}x (target <= 1.2x)"

# ---------------------------------------------------------------- verify (last run's trees)
hdr "verify: input tree vs reference extraction (fresh_a) vs slipway install (fresh_b)"
# Type, path and link target of every entry.
shape() { (cd "$1" && find . -mindepth 1 -printf '%y %p -> %l\n' | LC_ALL=C sort); }
# sha256 of every (or every 25th) regular file, by path.
sums() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z |
    { if [ "$VERIFY" = sample ]; then tr '\0\n' '\n\0' | awk 'NR % 25 == 1' | tr '\0\n' '\n\0'; else cat; fi; } |
    xargs -0 -r -n 256 -P "$(nproc)" sha256sum | LC_ALL=C sort -k2)
}
modes() { (cd "$1" && find . -mindepth 1 ! -type l -printf '%y %m %p\n' | LC_ALL=C sort -k3); }

VERIFY_OK=1
shape "$TREE" >"$OUT/shape.in"
shape "$A" >"$OUT/shape.a"
shape "$B" >"$OUT/shape.b"
sums "$TREE" >"$OUT/sums.in"
sums "$A" >"$OUT/sums.a"
sums "$B" >"$OUT/sums.b"
modes "$TREE" >"$OUT/modes.in"
modes "$A" >"$OUT/modes.a"
modes "$B" >"$OUT/modes.b"
for side in a b; do
  name=$([ "$side" = a ] && echo "reference (fresh_a)" || echo "slipway (fresh_b)")
  if cmp -s "$OUT/shape.in" "$OUT/shape.$side"; then
    say "$name: same entries, types and link targets as the input ($(wc -l <"$OUT/shape.$side") entries)"
  else
    VERIFY_OK=0
    say "$name: DIFFERENT entries from the input (first lines of the diff, < input, > extracted):"
    diff "$OUT/shape.in" "$OUT/shape.$side" | head -20 || true
  fi
  if cmp -s "$OUT/sums.in" "$OUT/sums.$side"; then
    say "$name: same contents ($VERIFY sha256 of $(wc -l <"$OUT/sums.$side") files)"
  else
    VERIFY_OK=0
    say "$name: DIFFERENT file contents from the input ($VERIFY sha256; first lines of the diff):"
    diff "$OUT/sums.in" "$OUT/sums.$side" | head -20 || true
  fi
  nmodes=$(diff "$OUT/modes.in" "$OUT/modes.$side" | grep -c '^>' || true)
  say "$name: $nmodes files/directories with a permission mode different from the input$([ "$side" = b ] && echo ' (slipway pack writes 0755/0644, by design)' || true)"
  if [ "$nmodes" -gt 0 ]; then
    # "type input-mode -> extracted-mode path" for the first few.
    LC_ALL=C join -1 3 -2 3 -o 1.1,1.2,2.2,1.3 "$OUT/modes.in" "$OUT/modes.$side" | awk '$2 != $3 { print "  " $1 " " $2 " -> " $3 " " $4 }' | head -5
  fi
done
if cmp -s "$OUT/sums.a" "$OUT/sums.b" && cmp -s "$OUT/shape.a" "$OUT/shape.b"; then
  say "fresh_a and fresh_b: identical entries and contents"
else
  VERIFY_OK=0
  say "fresh_a and fresh_b: DIFFER"
fi

# ---------------------------------------------------------------- summary
status() { if le "$1" "$2"; then echo "≤ $2×: met"; else echo "≤ $2×: MISSED"; fi; }
PACK_STATUS=$(status "$PACK_RATIO" 1.0)
INST_STATUS=$(status "$INST_RATIO" 1.2)
SUMMARY="$OUT/summary.md"
{
  echo "# Layer archive benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, node $(node --version), best of $RUNS runs."
  echo "Input: $(human "$TREE_BYTES") in $TREE_ENTRIES entries ($TREE_FILES files, $TREE_DIRS directories, $TREE_LINKS symlinks) from ${plan[*]}."
  echo "Archives: ref.tar.gz $(human "$REF_SIZE"), slipway.tar.gz $(human "$SLW_SIZE")."
  echo "Extracted trees equal the input: $([ "$VERIFY_OK" = 1 ] && echo "yes ($VERIFY sha256)" || echo NO)."
  echo
  echo "| step    | reference command                                                                            | reference s | slipway s | ratio | target |"
  echo "| ------- | -------------------------------------------------------------------------------------------- | ----------: | --------: | ----: | ------ |"
  printf '| pack    | `tar --sort=name --mtime=%s --owner=0 --group=0 --numeric-owner -cf - -C TREE . \\| pigz -p2 -1` | %s | %s | %s× | %s |\n' \
    "$MTIME" "$PACK_REF" "$PACK_SLW" "$PACK_RATIO" "$PACK_STATUS"
  printf '| install | `tar -xzf ref.tar.gz -C DIR` | %s | %s | %s× | %s |\n' "$INST_REF" "$INST_SLW" "$INST_RATIO" "$INST_STATUS"
  echo
  echo "CPU (user+system) of those best runs: pack reference $PACK_REF_CPU s, slipway $PACK_SLW_CPU s;" \
    "install reference $INST_REF_CPU s, slipway $INST_SLW_CPU s."
} >"$SUMMARY"
hdr "summary"
cat "$SUMMARY"
mkdir -p bench/results
cp "$SUMMARY" bench/results/layer.md
say ""
say "written to $REPO/bench/results/layer.md"

if [ "$VERIFY_OK" != 1 ]; then
  echo "layer.sh: the extracted trees differ (see verify above)" >&2
  exit 1
fi
if [ "$STRICT" = 1 ] && { ! le "$PACK_RATIO" 1.0 || ! le "$INST_RATIO" 1.2; }; then
  echo "layer.sh: a target was missed (STRICT=1)" >&2
  exit 1
fi
