#!/usr/bin/env bash
# The main job on embedded defaults: set-up, build, then `slipway demo` on examples/zone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json
node bin/slipway.js demo examples/zone -o out/example "$@"
