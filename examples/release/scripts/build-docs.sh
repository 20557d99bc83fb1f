#!/bin/sh
# "Renders" the manual: copies the Markdown sources (a real product would run mdbook here).
set -eu
out=$1
mkdir -p "$out"
cp -R doc/manual/src/. "$out/"
