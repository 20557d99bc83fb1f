#!/usr/bin/env bash
# Benchmark for `slipway package`: examples/rack scaled up to 20 zones and ~1 GB of
# real binaries, built cold, again with no change, after touching one file and
# after changing one file — against the same archives made one by one with
# `tar | pigz` in a shell loop, in the same run.
# Usage: bash bench/package.sh   (env: BENCH_DIR, ZONES=20, MB_PER_ZONE=50)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || bash scripts/setup.sh
command -v pigz >/dev/null || { echo "pigz is missing: run 'bash scripts/setup.sh' as root" >&2; exit 1; }
npx tsc -p tsconfig.json

BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench-package}
ZONES=${ZONES:-20}
MB=${MB_PER_ZONE:-50}
work="$BENCH_DIR/rack"
stamp="$BENCH_DIR/stamp-$ZONES-$MB"

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

if [ ! -f "$stamp" ]; then
  rm -rf "$BENCH_DIR"; mkdir -p "$work"
  # Real binaries: regular files from /usr/lib, dealt round-robin into the zones until each holds ~MB.
  mapfile -t files < <(find /usr/lib/x86_64-linux-gnu /usr/lib/jvm /usr/lib/llvm-14 -type f -size +100k 2>/dev/null | sort)
  declare -a fill
  i=0
  for f in "${files[@]}"; do
    z=$(( i % ZONES )); i=$((i + 1))
    d="$work/zones/z$z/lib"
    size=${fill[$z]:-0}
    [ "$size" -ge $((MB * 1024 * 1024)) ] && continue
    mkdir -p "$d"; cp "$f" "$d/$(basename "$f").$i" 2>/dev/null || continue
    fill[$z]=$(( size + $(stat -c %s "$f") ))
    done_all=1
    for ((k = 0; k < ZONES; k++)); do [ "${fill[$k]:-0}" -lt $((MB * 1024 * 1024)) ] && done_all=0 && break; done
    [ $done_all = 1 ] && break
  done
  {
    for ((z = 0; z < ZONES; z++)); do
      printf '[package.zone%d]\nservice_name = "zone%d"\nsource.type = "local"\nsource.paths = [{ from = "zones/z%d", to = "/opt/oxide/zone%d" }]\noutput.type = "zone"\n\n' "$z" "$z" "$z" "$z"
    done
  } > "$work/package-manifest.toml"
  touch "$stamp"
fi
total=$(du -sb "$work/zones" | cut -f1)
echo "input: $ZONES zones, $(echo "scale=1; $total / 1048576" | bc) MiB"
# warm the page cache
tar -cf - -C "$work" zones | cat > /dev/null

out="$BENCH_DIR/out"; ref="$BENCH_DIR/ref"
rm -rf "$out" "$ref"; mkdir -p "$ref"
t=$(now)
for ((z = 0; z < ZONES; z++)); do
  tar --sort=name --mtime=@1153704088 --owner=0 --group=0 --numeric-owner -cf - -C "$work/zones/z$z" . | pigz -p2 -1 > "$ref/zone$z.tar.gz"
done
ref_cold=$(since "$t")

slip() { node bin/slipway.js package -m "$work/package-manifest.toml" -o "$out" --quiet >/dev/null; }
t=$(now); slip; cold=$(since "$t")
t=$(now); slip; noop=$(since "$t")
touch "$(find "$work/zones/z0" -type f | head -1)"
t=$(now); slip; touched=$(since "$t")
f=$(find "$work/zones/z1" -type f | head -1); cp "$f" "$f.orig"; printf 'x' >> "$f"
t=$(now); slip; changed=$(since "$t")
mv "$f.orig" "$f"

ratio=$(echo "scale=2; $cold / $ref_cold" | bc)
cat <<TXT

| build | seconds | note |
| --- | ---: | --- |
| tar \| pigz -p2 -1, one zone after another | $ref_cold | reference |
| slipway package, cold | $cold | ratio $ratio× (target ≤ 0.7×) |
| slipway package, no change | $noop | target < 0.5 s |
| slipway package, one file touched (mtime only) | $touched | rehashes that file, rebuilds nothing |
| slipway package, one file changed | $changed | rebuilds one zone |
TXT
