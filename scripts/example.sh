#!/usr/bin/env bash
# The main job on embedded defaults: set-up, build, then
#  1. examples/rack: an Omicron package manifest built on the parallel, cached job graph into out/rack;
#  2. examples/zone: a baseline and two layers packed, verified and installed into out/example/root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json
node bin/slipway.js package -m examples/rack/package-manifest.toml -t standard -o out/rack "$@"
node bin/slipway.js demo examples/zone -o out/example "$@"
