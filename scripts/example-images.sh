#!/usr/bin/env bash
# Publishes the release's stamped zone images into a local image repository and lists it:
# `slipway images serve` on a free loopback port with SQLite + files under OUT/images, then
# `slipway images import` of each zone (manifest: name = zone, version = release version,
# channel dev), `slipway images list --latest`, and the server stopped by its pid.
# Usage: bash scripts/example-images.sh OUT_DIR   (OUT_DIR holds a finished `slipway releng` run)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/rack}
data="$out/images"
mkdir -p "$data"
sl() { node bin/slipway.js "$@"; }

log="$data/serve.log"
# Started directly (not through the sl function) so that $! is the server's own pid.
node bin/slipway.js --json images serve --data "$data" --port 0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  url=$(sed -n 's/.*"listening": *"\([^"]*\)".*/\1/p' "$log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { cat "$log" >&2; echo "example-images: the server did not start" >&2; exit 1; }
export SLIPWAY_IMAGES_URL=$url
echo "image repository at $url/ui/ (data in $data)"

version=$(node -e 'const m=require("fs").readFileSync(process.argv[1],"utf8").match(/^system_version = "(.*)"/m); console.log(m[1])' "$out/repo-manifest.toml")
for zone in "$out"/packages/versioned/*.tar.gz; do
  name=$(basename "$zone" .tar.gz)
  manifest="$data/$name.imgmanifest"
  # A fresh uuid per publication; the owner is a fixed example account.
  node -e '
    const [file, name, version, out] = process.argv.slice(1);
    const fs = require("fs"), crypto = require("crypto");
    const data = fs.readFileSync(file);
    const m = { v: 2, uuid: crypto.randomUUID(), owner: "00000000-0000-4000-8000-000000000001", name, version,
      state: "active", disabled: false, public: true, published_at: new Date().toISOString(),
      type: "other", os: "illumos", description: `${name} zone image from slipway releng`,
      files: [{ sha1: crypto.createHash("sha1").update(data).digest("hex"), size: data.length, compression: "gzip" }] };
    fs.writeFileSync(out, JSON.stringify(m, null, 2));' "$zone" "$name" "$version" "$manifest"
  sl --quiet images -C dev import -m "$manifest" -f "$zone"
done
sl images -C dev list --latest
