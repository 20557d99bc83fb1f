#!/usr/bin/env bash
# The main job on embedded defaults: set-up, build, then
#  1. examples/rack: the whole release (releng.toml) on the parallel, cached job graph into
#     out/rack — packages, stamped zones, OS images, firmware — signed into out/rack/repo.zip
#     with a throwaway key (kept in out/rack/.slipway/ so a re-run is a no-op) and re-verified,
#     then its zone images published into a local image repository (out/rack/images), and the
#     first zone built into an OCI image (out/rack/oci) pushed to a throwaway local docker-registry;
#  2. examples/zone: a baseline and two layers packed, verified and installed into out/example/root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json
node bin/slipway.js releng examples/rack -o out/rack "$@"
bash scripts/example-images.sh out/rack
bash scripts/example-oci.sh out/rack
node bin/slipway.js demo examples/zone -o out/example "$@"
