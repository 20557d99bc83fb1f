#!/usr/bin/env bash
# Benchmark for boot images, in one run on the same input: a realistic raw
# image (ext4 filled with /usr content by `mke2fs -d`), then
#   slipway boot mkimage -z   vs  pigz -z -9 -p2  and single-threaded zlib level 9 (python3)
#   slipway boot lookimage    vs  sha256sum of the raw image
#   network boot throughput over a veth pair between two namespaces (root only)
# Usage: bash bench/boot.sh   (env: BENCH_DIR, SIZE_MIB=1024, NET_MIB=256)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || bash scripts/setup.sh
command -v pigz >/dev/null || { echo "pigz is missing: run 'bash scripts/setup.sh' as root" >&2; exit 1; }
npx tsc -p tsconfig.json
BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench-boot}
SIZE=${SIZE_MIB:-1024}
NET=${NET_MIB:-256}
mkdir -p "$BENCH_DIR"
raw="$BENCH_DIR/raw-$SIZE.img"
if [ ! -f "$raw" ]; then
  mke2fs -q -t ext4 -d /usr -F "$raw" "${SIZE}M" >/dev/null 2>&1 || {
    # /usr may not fit: fill with /usr/lib instead
    rm -f "$raw"; mke2fs -q -t ext4 -d /usr/lib/x86_64-linux-gnu -F "$raw" "${SIZE}M"
  }
fi
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
sl() { node bin/slipway.js "$@" --quiet; }

t=$(now); sl boot mkimage -i "$raw" -o "$BENCH_DIR/img.z" -z >/dev/null; ours=$(since "$t")
t=$(now); pigz -z -9 -p2 -c "$raw" > "$BENCH_DIR/pigz.zz"; pigzt=$(since "$t")
t=$(now); python3 -c 'import sys,zlib; d=open(sys.argv[1],"rb").read(); open(sys.argv[2],"wb").write(zlib.compress(d,9))' "$raw" "$BENCH_DIR/py.zz"; pyt=$(since "$t")
t=$(now); sl boot lookimage "$BENCH_DIR/img.z" >/dev/null; look=$(since "$t")
sl boot mkimage -i "$raw" -o "$BENCH_DIR/img" >/dev/null
t=$(now); sl boot lookimage "$BENCH_DIR/img" >/dev/null; lookp=$(since "$t")
t=$(now); sha256sum "$raw" >/dev/null; shat=$(since "$t")

net="(needs root)"
if [ "$(id -u)" = 0 ]; then
  a=swbenchA; b=swbenchB
  ip netns del $a 2>/dev/null || true; ip netns del $b 2>/dev/null || true
  ip netns add $a; ip netns add $b
  trap 'ip netns del '$a' 2>/dev/null || true; ip netns del '$b' 2>/dev/null || true' EXIT
  ip link add swbA0 type veth peer name swbB0
  ip link set swbA0 netns $a; ip link set swbB0 netns $b
  ip -n $a link set swbA0 up; ip -n $b link set swbB0 up
  head -c $((NET * 1048576)) "$raw" > "$BENCH_DIR/net.raw"
  sl boot mkimage -i "$BENCH_DIR/net.raw" -o "$BENCH_DIR/net.img" >/dev/null
  sum=$(sha256sum "$BENCH_DIR/net.raw" | cut -d' ' -f1)
  ip netns exec $a node bin/slipway.js boot serve "$BENCH_DIR/net.img" --interface swbA0 --once --timeout 60 --quiet >/dev/null 2>&1 &
  sleep 0.5
  t=$(now)
  ip netns exec $b node bin/slipway.js boot fetch --interface swbB0 --checksum "$sum" -o "$BENCH_DIR/net.out" --quiet >/dev/null 2>&1
  nt=$(since "$t"); wait || true
  net="$(echo "scale=1; $NET / $nt" | bc) MB/s ($NET MiB in $nt s)"
fi
cat <<TXT
input: $raw ($SIZE MiB ext4)
| step | reference | reference s | slipway s | ratio | target |
| --- | --- | ---: | ---: | ---: | --- |
| mkimage -z | pigz -z -9 -p2 | $pigzt | $ours | $(ratio "$ours" "$pigzt")× | ≤ 1.1× |
| mkimage -z | zlib level 9, one thread (python3) | $pyt | $ours | $(ratio "$ours" "$pyt")× | ~0.5× |
| lookimage (compressed) | sha256sum of the raw image | $shat | $look | $(ratio "$look" "$shat")× | — |
| lookimage (plain) | sha256sum of the raw image | $shat | $lookp | $(ratio "$lookp" "$shat")× | ≤ 1.3× |
| network boot | — | — | — | — | $net |
TXT
