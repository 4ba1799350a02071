#!/usr/bin/env bash
# Resolve Aegis' JVM packages with Maven into a cache folder (idempotent).
#
#   deploy/fetch-jars.sh <cache_dir>
#
#   deploy/spark/pom.xml -> <cache_dir>/spark-jars/  (Delta Lake + Spark's Kafka source/sink,
#                                                     minus everything pyspark already ships)
#   deploy/kafka/pom.xml -> <cache_dir>/kafka-libs/  (a KRaft Kafka broker)
#
# Each folder gets a stamp file named after the sha256 of its pom; when the stamp is there
# (and the jars it lists still are), the folder is left alone: no Maven, no network.
# A changed pom is resolved into a fresh folder which then replaces the old one, so jars
# dropped from a pom do not linger. FORCE=1 re-resolves regardless.
#
# Env: MVN (default: mvn), PYTHON (a python with pyspark, for the duplicate check;
# default: the repo's .venv/bin/python, else python3), FORCE=1.
set -euo pipefail

usage() { echo "usage: $0 <cache_dir>" >&2; exit 2; }
[[ $# -eq 1 && -n "$1" ]] || usage

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
mkdir -p "$1"
cache="$(cd "$1" && pwd)"
mvn_bin="${MVN:-mvn}"

log() { printf 'fetch-jars: %s\n' "$*"; }
die() { printf 'fetch-jars: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# Strip "-<version>[-classifier].jar": kafka-clients-3.9.2.jar -> kafka-clients.
artifact_names() { sed -E 's/-[0-9][^-]*(-[A-Za-z0-9_.]+)*\.jar$//' | sort -u; }

pyspark_jars_dir() {
    local py="${PYTHON:-}"
    if [[ -z "$py" ]]; then
        if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py="python3"; fi
    fi
    "$py" - <<'EOF' 2>/dev/null || true
import os, pyspark
print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))
EOF
}

# Fail if a resolved Spark jar duplicates (by artifact name) one the pyspark wheel ships.
check_no_pyspark_duplicates() {
    local dir="$1" pyjars dups
    pyjars="$(pyspark_jars_dir)"
    if [[ -z "$pyjars" || ! -d "$pyjars" ]]; then
        log "warning: pyspark not importable, skipped the duplicate-jar check"
        return 0
    fi
    dups="$(comm -12 <(ls "$dir" | grep '\.jar$' | artifact_names) \
                     <(ls "$pyjars" | grep '\.jar$' | artifact_names))"
    if [[ -n "$dups" ]]; then
        printf 'fetch-jars: ERROR: %s\n' "these artifacts are already shipped in $pyjars;" \
            "exclude them in the pom: $(echo "$dups" | tr '\n' ' ')" >&2
        return 1
    fi
    log "spark-jars: no artifact duplicates pyspark/jars ($(ls "$pyjars" | grep -c '\.jar$') jars checked)"
}

# resolve <name> <pom> <out_dir> <check_fn or "">
resolve() {
    local name="$1" pom="$2" out="$3" check="$4"
    local sha stamp tmp t0 mvn_log n
    [[ -f "$pom" ]] || die "missing $pom"
    sha="$(sha256sum "$pom" | cut -d' ' -f1)"
    stamp="$out/.stamp-$sha"

    if [[ -z "${FORCE:-}" && -f "$stamp" ]]; then
        local ok=1 jar
        while IFS= read -r jar; do
            [[ -z "$jar" || -f "$out/$jar" ]] || { ok=0; break; }
        done <"$stamp"
        if [[ $ok -eq 1 ]]; then
            n="$(grep -c . "$stamp" || true)"
            log "$name: up to date ($n jars in $out, pom sha256 ${sha:0:12})"
            return 0
        fi
        log "$name: stamp present but jars missing, resolving again"
    fi

    command -v "$mvn_bin" >/dev/null 2>&1 || die "Maven ('$mvn_bin') not found; install Maven 3.8+"
    t0="$(now)"
    tmp="$out.tmp.$$"
    current_tmp="$tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    mvn_log="$tmp.mvn.log"
    log "$name: resolving $(realpath --relative-to="$repo" "$pom") with Maven ..."
    if ! "$mvn_bin" -q -B -Dstyle.color=never -f "$pom" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
            >"$mvn_log" 2>&1; then
        sed -E 's/\x1b\[[0-9;]*m//g' "$mvn_log" >&2
        rm -rf "$tmp" "$mvn_log"
        die "$name: Maven failed for $pom (output above)"
    fi
    rm -f "$mvn_log"
    n="$(find "$tmp" -maxdepth 1 -name '*.jar' | wc -l)"
    [[ "$n" -gt 0 ]] || { rm -rf "$tmp"; die "$name: Maven copied no jars"; }
    if [[ -n "$check" ]]; then
        "$check" "$tmp" || { rm -rf "$tmp"; die "$name: check failed, nothing changed in $out"; }
    fi
    (cd "$tmp" && ls -1 -- *.jar) >"$tmp/.stamp-$sha"
    rm -rf "$out"
    mv "$tmp" "$out"
    current_tmp=""
    log "$name: resolved $n jars into $out in $(elapsed "$t0")"
}

# An interrupted run leaves no half-filled folder behind.
current_tmp=""
trap '[[ -z "$current_tmp" ]] || rm -rf "$current_tmp" "$current_tmp.mvn.log"' EXIT

# One run at a time per cache folder (parallel `make` targets).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache/.fetch-jars.lock"
    flock 9
fi

resolve spark-jars "$here/spark/pom.xml" "$cache/spark-jars" check_no_pyspark_duplicates
resolve kafka-libs "$here/kafka/pom.xml" "$cache/kafka-libs" ""
