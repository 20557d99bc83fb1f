#!/usr/bin/env bash
# Ships the release's first stamped zone image as a container image too: `slipway oci build` with the
# zone's layer archive as the rootfs (its root/ becomes /), annotated with the release version, then a
# throwaway Debian docker-registry on a free loopback port (data in OUT/registry), `slipway oci push`
# under the version and `latest`, `slipway oci inspect` of what the registry serves, and the registry
# stopped by its pid.
# Usage: bash scripts/example-oci.sh OUT_DIR   (OUT_DIR holds a finished `slipway releng` run)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/rack}
sl() { node bin/slipway.js "$@"; }

version=$(node -e 'const m=require("fs").readFileSync(process.argv[1],"utf8").match(/^system_version = "(.*)"/m); console.log(m[1])' "$out/repo-manifest.toml")
zone=$(find "$out/packages/versioned" -name '*.tar.gz' | sort | head -1)
name=$(basename "$zone" .tar.gz)
tag=${version//+/_} # OCI tags allow [A-Za-z0-9_.-]: the semver build separator becomes _
SOURCE_DATE_EPOCH=0 sl --quiet oci build --platform "illumos/amd64=$zone" -o "$out/oci" --tag "$tag" \
  --version "$version" --annotation "org.opencontainers.image.title=$name"
echo "OCI layout $out/oci:$tag from $zone"

reg="$out/registry"
mkdir -p "$reg/data"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat >"$reg/config.yml" <<YAML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $(cd "$reg" && pwd)/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: example-secret}
YAML
docker-registry serve "$reg/config.yml" >"$reg/registry.log" 2>&1 &
registry=$!
trap 'kill "$registry" 2>/dev/null || true; wait "$registry" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.05
done
sl --quiet oci push "$out/oci:$tag" "127.0.0.1:$port/$name" --tag "$tag" --tag latest --insecure
sl oci inspect "127.0.0.1:$port/$name:$tag" --insecure
