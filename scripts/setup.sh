#!/usr/bin/env bash
# Installs what Slipway's build and tests need on a fresh Debian 12 machine with Node 20:
# Debian packages (when run as root) and the npm dev dependencies from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests and benchmarks run against.
debs=(pigz tar gzip libpcap-dev iproute2)
# Independent readers and key tools the tests compare against (zip/unzip, python3's zipfile, ssh-keygen).
debs+=(zip unzip python3 openssh-client)
# S3: a throwaway Ceph cluster with its RADOS Gateway (scripts/services/ceph-s3.sh).
debs+=(ceph-mon ceph-osd radosgw ceph-common curl uuid-runtime)
# PostgreSQL: a throwaway cluster for the metadata store (scripts/services/postgres.sh).
debs+=(postgresql)
# The image repository's web UI is tested in a real browser (playwright-core drives it).
debs+=(chromium)
# Container registries: Debian's docker-registry (distribution 2.8), with skopeo and umoci as independent
# clients, htpasswd for Basic auth and openssl for the token server's certificate.
debs+=(docker-registry skopeo apache2-utils umoci openssl)
# Release process: real git for tags and remotes, awscli as an independent S3 client.
debs+=(git awscli)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
fi

# npm dependencies: only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
