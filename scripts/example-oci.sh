#!/usr/bin/env bash
# Ships the release's first stamped zone image as a container image too: `slipway oci build` with the
# zone's layer archive as the rootfs (its root/ becomes /), annotated with the release version, then a
# throwaway Debian docker-registry on a free loopback port (scripts/services/registry.sh, in OUT/registry), `slipway oci push`
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
bash scripts/services/registry.sh start "$reg"
trap 'bash scripts/services/registry.sh stop "$reg"' EXIT
eval "$(bash scripts/services/registry.sh env "$reg")"
sl --quiet oci push "$out/oci:$tag" "$REGISTRY/$name" --tag "$tag" --tag latest --insecure
sl oci inspect "$REGISTRY/$name:$tag" --insecure
