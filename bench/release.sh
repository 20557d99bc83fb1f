#!/usr/bin/env bash
# Benchmark for `release upload` (object storage half, src/release/s3-upload.ts), in one run on the
# same input against a local Ceph RADOS Gateway:
#   1. a release of MIB MiB in FILES artifacts, built once by the real `slipway release build` in a
#      throwaway product repository (release.toml, version.json, `release tag`; its one job
#      hard-links the pre-generated artifacts into {work}, so the build is quick and not timed):
#      the build's files/ (the artifacts, the source tarball every build makes, a .sha256 beside
#      each, manifest.json) uploaded by Debian's awscli, `aws s3 cp --recursive files/ s3://A/…`,
#      against `node bin/slipway.js release upload --env bench --noconfirm` into bucket B (the
#      whole command: checks of the tag, the build and the git remote, hashing and checking every
#      file, uploads with sha256 metadata, reading each object back, the git push of branch and
#      tag to a local bare repository, latest.json last). Target: ≤ 1.0×.
#   2. the no-op re-upload: the same command again, which must send no object (every file is
#      hashed again to be checked against the manifest; then one listing and one HeadObject per
#      file, and a git push with nothing to push).
#
#   bash bench/release.sh
#
# Environment:
#   MIB=1024          size of the artifacts together (split evenly over FILES files)
#   FILES=20          number of artifacts (the build adds its source tarball, a few KiB)
#   RUNS=1            timed runs of each upload; the best (min) wall time counts
#   CONCURRENCY=4     files uploaded at once by Slipway (`release upload --concurrency`); its part
#                     size and parts in flight are the CLI's defaults (no flag for them)
#   BENCH_DIR=/tmp/slipway-bench-release   scratch space; the input is kept and reused (the
#                     product repository and its build go in BENCH_DIR/out, on the same file
#                     system, so the build's artifacts are hard links to the input)
#   STRICT=1          exit 1 when the target is missed
#
# The S3 service: the running one named by $SLIPWAY_SERVICES_DIR/ceph/env when there is one (as
# scripts/test.sh leaves it), else a cluster started here with scripts/services/ceph-s3.sh into
# BENCH_DIR/ceph (port $CEPH_S3_PORT, default 7480) and stopped again at the end. Its env file
# gives the endpoint and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_REGION, exported for both
# tools. That cluster keeps objects in RAM (memstore) capped by `memstore device bytes` (1 GiB),
# too little for a 1 GiB release: the script raises the cap through the OSD's admin socket for
# the run (one copy of the input, plus what is stored already, plus a margin) and puts the old
# value back at the end. Only one copy is stored at a time: awscli's bucket is removed, and RGW's
# garbage collector run (`radosgw-admin gc process --include-all`), before Slipway's upload, and
# so on. Each run uploads into a new, empty bucket B (the releases_bucket of the environment
# `bench`, removed again after the run) and pushes to a new bare git repository.
#
# Needs Debian's awscli (/usr/bin/aws; another `aws` earlier in PATH is not used), git, and the
# Ceph packages of scripts/setup.sh. Prints every run and a Markdown summary that also goes to
# bench/results/release-<date>.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=release.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
REPO=$(pwd)

MIB=${MIB:-1024}
FILES=${FILES:-20}
RUNS=${RUNS:-1}
CONCURRENCY=${CONCURRENCY:-4}
BENCH_DIR=${BENCH_DIR:-/tmp/slipway-bench-release}
STRICT=${STRICT:-0}
VERSION=1.0.0
INPUT_FORMAT=2 # bump when the generated input changes: it is rebuilt
AWS_CLI=/usr/bin/aws
SLIPWAY=(node "$REPO/bin/slipway.js")

for v in MIB FILES RUNS CONCURRENCY; do
  case "${!v}" in '' | *[!0-9]* | 0) echo "release.sh: $v must be a positive whole number, got '${!v}'" >&2 && exit 2 ;; esac
done
case "$STRICT" in 0 | 1) ;; *) echo "release.sh: STRICT must be 0 or 1, got '$STRICT'" >&2 && exit 2 ;; esac

# ---------------------------------------------------------------- prerequisites
hdr "prerequisites"
if [ ! -d node_modules ]; then
  say "node_modules is missing: running scripts/setup.sh"
  bash scripts/setup.sh
fi
for tool in "$AWS_CLI" git ceph radosgw-admin; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "release.sh: $tool is not installed; run 'bash scripts/setup.sh' as root (Debian's awscli and ceph packages)." >&2
    exit 1
  }
done
say "building: npx tsc -p tsconfig.json"
if ! build_log=$(npx tsc -p tsconfig.json 2>&1); then
  printf '%s\n' "$build_log" >&2
  echo "release.sh: the build failed (above); nothing was measured." >&2
  exit 1
fi
[ -f dist/src/cli/main.js ] || { echo "release.sh: dist/src/cli/main.js was not built" >&2 && exit 1; }
# The upload's part size and parts in flight: the CLI has no flag for them, so its defaults.
read -r PART_MIB QUEUE < <(node --input-type=module -e \
  'const m = await import(process.argv[1]); console.log(m.DEFAULT_PART_SIZE / 1048576, m.DEFAULT_QUEUE_SIZE)' \
  "$REPO/dist/src/release/s3-upload.js")
[ -n "${QUEUE:-}" ] || { echo "release.sh: cannot read the upload defaults of dist/src/release/s3-upload.js" >&2 && exit 1; }
AWS_VERSION=$("$AWS_CLI" --version 2>&1 | awk '{ print $1 }')
say "node $(node --version), $AWS_VERSION, $(ceph --version | awk '{ print "ceph", $3 }'), $(nproc) CPUs"
say "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (client and store share the machine)"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
OUT="$BENCH_DIR/out"
rm -rf "$OUT"
mkdir -p "$OUT"

# ---------------------------------------------------------------- the S3 service
OWN_CEPH=0
if [ -n "${SLIPWAY_SERVICES_DIR:-}" ] && [ -f "$SLIPWAY_SERVICES_DIR/ceph/env" ]; then
  CEPH_DIR=$SLIPWAY_SERVICES_DIR/ceph
  hdr "S3: the running cluster in $CEPH_DIR"
else
  CEPH_DIR=$BENCH_DIR/ceph
  hdr "S3: starting a cluster (scripts/services/ceph-s3.sh start $CEPH_DIR)"
  OWN_CEPH=1
fi
CONF=$CEPH_DIR/ceph.conf
ASOK=$CEPH_DIR/run/osd.0.asok
ORIG_CAP=
BUCKETS=()

# Removes a bucket with everything in it, then lets RGW's garbage collector free the tails of the
# multipart objects at once (it waits two hours by default), so memstore gets its RAM back.
remove_bucket() {
  timeout 300 "$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3 rb --force "s3://$1" >/dev/null 2>&1 || true
  timeout 300 radosgw-admin -c "$CONF" gc process --include-all >/dev/null 2>&1 || true
}
cleanup() {
  set +e
  local b
  for b in "${BUCKETS[@]}"; do remove_bucket "$b"; done
  if [ -n "$ORIG_CAP" ]; then
    # Only when what is stored now fits well under the old cap: else the OSD would be full at once.
    # The OSD refreshes its usage every few seconds: wait up to 20 s for the deletions to show.
    local used i
    for ((i = 0; i < 40; i++)); do
      used=$(osd_stat stat_bytes_used 2>/dev/null || echo "$ORIG_CAP")
      [ $((used + 268435456)) -ge "$ORIG_CAP" ] || break
      sleep 0.5
    done
    if [ $((used + 268435456)) -lt "$ORIG_CAP" ]; then
      timeout 10 ceph --admin-daemon "$ASOK" config set memstore_device_bytes "$ORIG_CAP" >/dev/null 2>&1 &&
        say "memstore device bytes put back to $(human "$ORIG_CAP")"
    else
      say "memstore device bytes left at the raised value: $(human "$used") stored, more than the old cap $(human "$ORIG_CAP") allows"
    fi
  fi
  if [ "$OWN_CEPH" = 1 ]; then bash scripts/services/ceph-s3.sh stop "$CEPH_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$OWN_CEPH" = 1 ]; then bash scripts/services/ceph-s3.sh start "$CEPH_DIR"; fi
set -a
# shellcheck disable=SC1091
. "$CEPH_DIR/env"
set +a
export AWS_DEFAULT_REGION=${AWS_REGION:-us-east-1}
# awscli with its defaults (8 MiB parts, 10 requests in flight) and nothing from ~/.aws.
export AWS_CONFIG_FILE="$OUT/no-aws-config" AWS_SHARED_CREDENTIALS_FILE="$OUT/no-aws-credentials"
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
unset AWS_PROFILE AWS_SESSION_TOKEN
say "endpoint $S3_ENDPOINT"

json_get() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv.slice(1))v=v[k];console.log(v)})' "$@"; }
osd_stat() { timeout 10 ceph --admin-daemon "$ASOK" perf dump | json_get osd "$1"; }
ORIG_CAP=$(timeout 10 ceph --admin-daemon "$ASOK" config get memstore_device_bytes | json_get memstore_device_bytes)
USED=$(osd_stat stat_bytes_used)
TOTAL_BYTES=$((MIB * 1048576))
# One copy of the input at a time, plus what is stored already, plus a quarter and 256 MiB of margin
# (RGW's own objects, the OSD's full ratio of 0.95).
NEED=$((USED + TOTAL_BYTES + TOTAL_BYTES / 4 + 268435456))
if [ "$NEED" -gt "$ORIG_CAP" ]; then
  timeout 10 ceph --admin-daemon "$ASOK" config set memstore_device_bytes "$NEED" >/dev/null
  say "memstore device bytes: $(human "$ORIG_CAP") → $(human "$NEED") for this run ($(human "$USED") stored already; put back at the end)"
else
  ORIG_CAP=
fi

# ---------------------------------------------------------------- input
# FILES artifacts of AES-128-CTR keystream (of zeros, keyed by the file's index: the same bytes
# every run, incompressible) totalling MIB MiB, named as the release's: demo-VERSION-partNN.tar.xz.
INPUT="$BENCH_DIR/input"
STAMP="format=$INPUT_FORMAT mib=$MIB files=$FILES version=$VERSION"
if [ -f "$INPUT/.stamp" ] && [ "$(cat "$INPUT/.stamp")" = "$STAMP" ]; then
  say "reusing the input in $INPUT ($STAMP)"
else
  hdr "input: $FILES artifacts, $MIB MiB in all (AES-CTR keystream: deterministic, incompressible)"
  rm -rf "$INPUT"
  mkdir -p "$INPUT/files"
  node -e '
    const crypto = require("node:crypto"), fs = require("node:fs"), path = require("node:path");
    const [dir, mib, count, version] = process.argv.slice(1);
    const total = Number(mib) * 1048576, n = Number(count), base = Math.floor(total / n);
    const zeros = Buffer.alloc(4 * 1048576);
    for (let i = 1; i <= n; i++) {
      const key = crypto.createHash("sha256").update(`slipway-bench-release-${i}`).digest();
      const cipher = crypto.createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32));
      const fd = fs.openSync(path.join(dir, `demo-${version}-part${String(i).padStart(2, "0")}.tar.xz`), "w");
      for (let left = i === n ? total - base * (n - 1) : base; left > 0; ) {
        const k = Math.min(left, zeros.length);
        fs.writeSync(fd, cipher.update(zeros.subarray(0, k)));
        left -= k;
      }
      fs.closeSync(fd);
    }' "$INPUT/files" "$MIB" "$FILES" "$VERSION"
  echo "$STAMP" >"$INPUT/.stamp"
fi
ARTIFACTS=()
for ((i = 1; i <= FILES; i++)); do ARTIFACTS+=("$(printf 'demo-%s-part%02d.tar.xz' "$VERSION" "$i")"); done
for a in "${ARTIFACTS[@]}"; do
  [ -f "$INPUT/files/$a" ] || { echo "release.sh: $INPUT/files/$a is missing: remove $INPUT/.stamp" >&2 && exit 1; }
done

# ---------------------------------------------------------------- the product repository and its build
# Not timed: a product "demo" whose release.toml has one build job (hard links of the input, or
# copies — reflinks where the file system has them — when links cannot be made) and the
# environment `bench` (this S3 endpoint, bucket B, the git remote a local bare repository).
# No release-note fragments, so no `release prepare`: `tag` does not need one.
hdr "product repository: release.toml, release tag, release build"
PRODUCT="$OUT/product"
GIT_REMOTE="$OUT/remote.git"
B="slipway-bench-slw-$$"
export GIT_AUTHOR_NAME="Slipway bench" GIT_AUTHOR_EMAIL="bench@slipway.invalid"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
# Nothing from ~/.gitconfig or /etc/gitconfig (commit or tag signing, hooks, another default branch).
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
toml_str() { node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$1"; }
ARTIFACT_LIST=$(printf '"demo-{version}-part%02d.tar.xz", ' $(seq 1 "$FILES"))
mkdir -p "$PRODUCT"
cat >"$PRODUCT/release.toml" <<TOML
# A throwaway product for bench/release.sh.
[product]
name = "demo"
display_name = "Demo"
version_file = "version.json"

[notes]
fragments = "doc/rl-next"
authors = "doc/change-authors.yml"
output_dir = "doc/release-notes"

[build]
out = "out/release/{version}"

[[build.jobs]]
name = "artifacts"
command = ["sh", "-c", "cp -l -- \"\$0\"/* \"\$1\"/ 2>/dev/null || cp --reflink=auto -- \"\$0\"/* \"\$1\"/", $(toml_str "$INPUT/files"), "{work}"]
artifacts = [${ARTIFACT_LIST%, }]

[environments.bench]
git_remote = "origin"
confirm = false

[environments.bench.s3]
endpoint = $(toml_str "$S3_ENDPOINT")
region = $(toml_str "$AWS_DEFAULT_REGION")
releases_bucket = "$B"
TOML
printf '{\n  "version": "%s",\n  "release_name": "Bench",\n  "official_release": false\n}\n' "$VERSION" >"$PRODUCT/version.json"
echo "/out/" >"$PRODUCT/.gitignore"
git -c init.defaultBranch=main init -q "$PRODUCT"
git -C "$PRODUCT" add -A
git -C "$PRODUCT" commit -q -m "demo: a product for bench/release.sh"
git -C "$PRODUCT" remote add origin "$GIT_REMOTE"
"${SLIPWAY[@]}" --quiet release tag -C "$PRODUCT"
t0=$(now)
"${SLIPWAY[@]}" --quiet release build -C "$PRODUCT" | sed -n 1p
say "built in $(secs "$t0" "$(now)") s (not timed)"
BUILD="$PRODUCT/out/release/$VERSION"
linked=$(stat -c %h "$BUILD/files/${ARTIFACTS[0]}")
say "artifacts: $([ "$linked" -gt 1 ] && echo "hard links to the input" || echo "copies of the input")"
NFILES=$(find "$BUILD/files" -type f | wc -l)
say "$BUILD/files: $NFILES files ($FILES artifacts, the source tarball, .sha256 files, manifest.json), $(human "$(du -sb "$BUILD/files" | cut -f1)")"
cat "$BUILD/files"/* >/dev/null # in the page cache for both

# ls_sizes BUCKET: "key size" lines of everything in it, sorted.
ls_sizes() { "$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3 ls --recursive "s3://$1/" | awk '{ print $4, $3 }' | sort; }
new_bucket() {
  "$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3 mb "s3://$1" >/dev/null
  BUCKETS+=("$1")
}
drop_bucket() {
  local keep=() b
  remove_bucket "$1"
  for b in "${BUCKETS[@]}"; do [ "$b" = "$1" ] || keep+=("$b"); done
  BUCKETS=("${keep[@]}")
}
# upload_counts: "UPLOADED SKIPPED" from the summary line of `release upload` in $LAST_LOG.
upload_counts() {
  local line
  line=$(printf '%s\n' "$LAST_LOG" | grep -E '^released .* object\(s\) uploaded' | tail -1) ||
    { echo "release.sh: no 'released …' line in the output of release upload:" >&2 && printf '%s\n' "$LAST_LOG" >&2 && exit 1; }
  printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) object\(s\) uploaded .*, ([0-9]+) unchanged.*/\1 \2/'
}
PREFIX="demo/demo-$VERSION"
EXPECTED=$(cd "$BUILD/files" && find . -type f -printf "$PREFIX/%P %s\n" | sort)
UPLOAD=("${SLIPWAY[@]}" release upload -C "$PRODUCT" --env bench --noconfirm --concurrency "$CONCURRENCY")

# ---------------------------------------------------------------- runs
AWS_BEST= SLW_BEST= NOOP_BEST=
for ((run = 1; run <= RUNS; run++)); do
  hdr "run $run of $RUNS"
  A="slipway-bench-aws-$$-$run"
  new_bucket "$A"
  timed "$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3 cp --recursive --only-show-errors "$BUILD/files" "s3://$A/$PREFIX/"
  say "aws s3 cp --recursive:      $T s ($CPU s CPU)"
  AWS_BEST=$(minof "$AWS_BEST" "$T")
  [ "$(ls_sizes "$A")" = "$EXPECTED" ] || { echo "release.sh: bucket $A does not hold the build" >&2 && exit 1; }
  drop_bucket "$A"

  # A new bucket and a new git remote: every run publishes the release for the first time.
  new_bucket "$B"
  rm -rf "$GIT_REMOTE"
  git init -q --bare "$GIT_REMOTE"
  timed "${UPLOAD[@]}"
  read -r up skipped < <(upload_counts)
  say "slipway release upload:     $T s ($CPU s CPU; $up objects uploaded, $skipped unchanged)"
  SLW_BEST=$(minof "$SLW_BEST" "$T")
  [ "$(ls_sizes "$B" | grep -v '^demo/latest.json ')" = "$EXPECTED" ] ||
    { echo "release.sh: bucket $B does not hold the build" >&2 && exit 1; }
  ls_sizes "$B" | grep -q '^demo/latest.json ' || { echo "release.sh: bucket $B has no demo/latest.json" >&2 && exit 1; }
  [ "$(git -C "$GIT_REMOTE" rev-parse "refs/tags/$VERSION")" = "$(git -C "$PRODUCT" rev-parse "refs/tags/$VERSION")" ] ||
    { echo "release.sh: the tag $VERSION was not pushed to $GIT_REMOTE" >&2 && exit 1; }
  # An independent client sees the sha256 metadata.
  first=$(cut -d' ' -f1 "$BUILD/files/${ARTIFACTS[0]}.sha256")
  meta=$("$AWS_CLI" --endpoint-url "$S3_ENDPOINT" s3api head-object --bucket "$B" --key "$PREFIX/${ARTIFACTS[0]}" | json_get Metadata sha256)
  [ "$meta" = "$first" ] || { echo "release.sh: sha256 metadata $meta, expected $first" >&2 && exit 1; }

  timed "${UPLOAD[@]}"
  read -r up skipped < <(upload_counts)
  [ "$up" = 0 ] || { echo "release.sh: the no-op re-upload sent $up objects" >&2 && exit 1; }
  say "slipway no-op re-upload:    $T s ($CPU s CPU; $skipped unchanged, 0 sent)"
  NOOP_BEST=$(minof "$NOOP_BEST" "$T")
  drop_bucket "$B"
done

# ---------------------------------------------------------------- summary
RATIO=$(ratio "$SLW_BEST" "$AWS_BEST")
MBPS_AWS=$(awk -v b="$TOTAL_BYTES" -v s="$AWS_BEST" 'BEGIN { printf "%.0f", b / s / 1e6 }')
MBPS_SLW=$(awk -v b="$TOTAL_BYTES" -v s="$SLW_BEST" 'BEGIN { printf "%.0f", b / s / 1e6 }')
if le "$RATIO" 1.0; then MET="≤ 1.0×: met"; else MET="≤ 1.0×: MISSED"; fi
SUMMARY="$OUT/summary.md"
{
  echo "# Release upload benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, node $(node --version), $AWS_VERSION, $(ceph --version | awk '{ print "ceph", $3 }')" \
    "(one OSD on memstore, radosgw on loopback; client and store share the machine). Best of $RUNS run(s)."
  echo
  echo "| measurement | awscli | slipway | ratio | target |"
  echo "| --- | --- | --- | ---: | --- |"
  printf '| upload %s MiB in %s artifacts (%s files: + source tarball, .sha256 files, manifest.json) | `aws s3 cp --recursive`: %s s (%s MB/s) | `release upload`: %s s (%s MB/s) | %s× | %s |\n' \
    "$MIB" "$FILES" "$NFILES" "$AWS_BEST" "$MBPS_AWS" "$SLW_BEST" "$MBPS_SLW" "$RATIO" "$MET"
  printf '| no-op re-upload (nothing sent) | — | %s s | — | — |\n' "$NOOP_BEST"
  echo
  echo "Slipway: \`node bin/slipway.js release upload --env bench --noconfirm --concurrency $CONCURRENCY\` in a product repository" \
    "on its release tag, of a build made by \`release build\` (not timed); the time is the whole command: Node's start, reading" \
    "release.toml, the checks of the tag, the build and the git remote, then $CONCURRENCY files at once;" \
    "files up to $((PART_MIB * QUEUE)) MiB (part size × parts in flight) go whole in one PutObject whose SigV4 payload hash is the" \
    "sha256 from the plan (checked by the store), bigger ones in $PART_MIB MiB parts, $QUEUE in flight per file; hashing every file against manifest.json and the" \
    ".sha256 files before anything is sent, checking each file unchanged (inode, size, mtime, ctime) before its upload" \
    "completes, reading every object back (HeadObject: size and sha256 metadata), the git push of branch and tag (to a local bare repository) and latest.json last." \
    "awscli with its defaults (8 MiB parts, 10 requests in flight), no checksums of its own beyond SigV4's, of the same files/ directory." \
    "The no-op re-upload is the same command again: it hashes the whole build again (the check against the manifest), then lists and reads metadata, and pushes nothing new: nothing is sent."
} >"$SUMMARY"
hdr "summary"
cat "$SUMMARY"
mkdir -p bench/results
RESULT="bench/results/release-$(date -u +%Y-%m-%d).md"
cp "$SUMMARY" "$RESULT"
say ""
say "written to $REPO/$RESULT"
if [ "$STRICT" = 1 ] && ! le "$RATIO" 1.0; then
  echo "release.sh: the target was missed (STRICT=1)" >&2
  exit 1
fi
