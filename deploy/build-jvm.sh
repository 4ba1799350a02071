#!/usr/bin/env bash
# Build Aegis' own JVM module (jvm/: the stream's keyed feature state) into a cache folder.
#
#   deploy/build-jvm.sh <cache_dir>     ->  <cache_dir>/aegis-jars/aegis-state.jar
#
# Idempotent: the jar is rebuilt only when jvm/pom.xml or a source under jvm/src changed
# (a stamp holds their sha256). FORCE=1 rebuilds. Env: MVN (default: mvn).
set -euo pipefail
[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 <cache_dir>" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
mkdir -p "$1/aegis-jars"
out="$(cd "$1/aegis-jars" && pwd)"
sha="$(cd "$repo/jvm" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)"
if [[ -z "${FORCE:-}" && -f "$out/.stamp-$sha" && -f "$out/aegis-state.jar" ]]; then
    echo "build-jvm: aegis-state.jar up to date (sources sha256 $sha)"
    exit 0
fi
command -v "${MVN:-mvn}" >/dev/null || { echo "build-jvm: ERROR: Maven not found" >&2; exit 1; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "${MVN:-mvn}" -q -B -Dstyle.color=never -f "$repo/jvm/pom.xml" package >"$log" 2>&1; then
    sed -E 's/\x1b\[[0-9;]*m//g' "$log" >&2
    echo "build-jvm: ERROR: Maven failed to build jvm/ (output above)" >&2
    exit 1
fi
rm -f "$out"/.stamp-*
cp "$repo/jvm/target/aegis-state.jar" "$out/aegis-state.jar.tmp"
mv "$out/aegis-state.jar.tmp" "$out/aegis-state.jar"
touch "$out/.stamp-$sha"
echo "build-jvm: built $out/aegis-state.jar"
