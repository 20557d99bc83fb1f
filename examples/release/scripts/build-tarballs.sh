#!/bin/sh
# Per-architecture binary tarballs, byte-reproducible: sorted entries, numeric owner 0, the
# mtime from SOURCE_DATE_EPOCH (slipway release build sets it to the commit time), gzip -n.
set -eu
version=$1
out=$2
for arch in x86_64 aarch64; do
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/share/widget"
  cp src/widget.sh "$root/bin/widget"
  chmod 0755 "$root/bin/widget"
  printf '%s %s\n' "$version" "$arch" > "$root/share/widget/VERSION"
  tar -C "$root" --sort=name --mtime="@${SOURCE_DATE_EPOCH}" --owner=0 --group=0 --numeric-owner \
    --format=gnu -cf - bin share | gzip -9n > "$out/widget-$version-$arch-linux.tar.gz"
  rm -rf "$root"
done
