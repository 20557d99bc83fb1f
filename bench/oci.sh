#!/usr/bin/env bash
# The OCI benchmarks in one go: `slipway oci build` vs tar | pigz (bench/oci-build.sh), then
# `slipway oci push` vs `skopeo copy --all` to a local docker-registry (bench/oci-push.sh), on the
# same generated input (two platforms, about SIZE_MB MiB of files each). Environment: see both scripts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash bench/oci-build.sh
bash bench/oci-push.sh
