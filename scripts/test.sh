#!/usr/bin/env bash
# The whole test suite: set-up, typecheck and build, lint, format check, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== typecheck + build"
npx tsc -p tsconfig.json
echo "== lint"
npx eslint --max-warnings 0 .
echo "== format"
npx prettier --check --log-level warn .
echo "== tests"
node scripts/run-tests.mjs "$@"
