#!/usr/bin/env bash
# Submit an Aegis job to a Spark master with the project's jars, config and code.
#
#   deploy/spark/submit.sh JOB MASTER PROFILE [job args...]
#
#   JOB      stream | backfill | train | nightly | probe (diagnostic, see below)
#   MASTER   spark://host:7077, local[2], ...
#   PROFILE  local | test | cluster (conf/<profile>.yaml; AEGIS_<SECTION>__<KEY> env vars still apply)
#
#   deploy/spark/submit.sh backfill spark://10.0.0.5:7077 cluster --from 2024-05-01 --to 2024-05-01
#   deploy/spark/submit.sh stream   spark://10.0.0.5:7077 cluster --set stream.trigger_seconds=5
#
# What it passes to spark-submit (the one place this is written down):
#   --properties-file deploy/spark/spark-defaults.conf   Delta, RocksDB state store, UTC, arrow, sizing
#   --jars <cache>/spark-jars/*.jar                      the Maven manifest deploy/spark/pom.xml,
#                                                        resolved by deploy/fetch-jars.sh, and
#          <cache>/aegis-jars/aegis-state.jar            the stream's state module (jvm/, deploy/build-jvm.sh)
#   log4j2: -Dlog4j2.configurationFile=deploy/spark/log4j2.properties (driver and executors)
#   code:   the top-level packages pyproject.toml declares ([tool.setuptools] packages, or its
#           packages.find include/exclude patterns) are zipped into
#           <stage>/aegis-<content hash>.zip and shipped with --archives ...#aegis-pkg: every
#           executor unpacks it into its working directory and its Python workers put it first on
#           sys.path (spark.executorEnv.PYTHONPATH=aegis-pkg). The driver (client mode) imports
#           the same build, unpacked once into <stage>/aegis-<hash>/, through PYTHONPATH, and runs
#           <stage>/aegis-<hash>/jobs/<JOB>.py. So driver and executors run the code of this
#           submission, never whatever the workers' checkout or site-packages hold.
#           (--archives, not --py-files: a --py-files zip would also go first on the driver's
#           path, and conf/settings.py reads its YAML files next to itself, which fails in a zip.)
#   python: the venv's interpreter for driver and executors (PYSPARK_PYTHON, spark.pyspark.python);
#           workers must have the same venv path with the same dependencies.
#
# Env:
#   AEGIS_HOME, AEGIS_PATHS__CACHE   where the jars are (same rules as conf/settings.py:
#                                    <AEGIS_HOME or repo>/.cache unless AEGIS_PATHS__CACHE is set)
#   AEGIS_VENV                       the virtualenv (default: <repo>/.venv); its pyspark is the Spark
#                                    used (SPARK_HOME is set to it)
#   AEGIS_SUBMIT_STAGE               where code builds are kept (default: <repo>/build/spark-submit;
#                                    one zip + folder per distinct code version, safe to delete)
#   AEGIS_SPARK_SUBMIT_OPTS          extra spark-submit options, word-split, placed before the job
#                                    (e.g. "--executor-memory 4g --conf spark.eventLog.enabled=true")
#
# probe: submits deploy/spark/probe.py instead of a job; it prints one JSON line telling from
# where the driver and the executors' Python workers import the Aegis packages.
set -euo pipefail

usage() {
    echo "usage: $0 stream|backfill|train|nightly|probe MASTER local|test|cluster [job args...]" >&2
    exit 2
}
die() { printf 'submit: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $# -ge 3 ]] || usage
job="$1" master="$2" profile="$3"
shift 3
case "$job" in stream | backfill | train | nightly | probe) ;; *) usage ;; esac
case "$profile" in local | test | cluster) ;; *) usage ;; esac
[[ -n "$master" ]] || usage

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${AEGIS_VENV:-$repo/.venv}"
python="$venv/bin/python"
spark_submit="$venv/bin/spark-submit"
[[ -x "$python" ]] || die "no python at $python (run \`make setup\` or set AEGIS_VENV)"
[[ -x "$spark_submit" ]] || die "no spark-submit at $spark_submit (pyspark is not installed in $venv)"
# The Spark of the venv's pyspark, whatever SPARK_HOME the caller has (its find-spark-home would
# otherwise ask the python3 on PATH, which need not have pyspark).
SPARK_HOME="$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" ||
    die "pyspark is not importable with $python"
export SPARK_HOME

# --- jars: the resolved Maven manifest -----------------------------------------------------
home="${AEGIS_HOME:-$repo}"
cache="${AEGIS_PATHS__CACHE:-.cache}"
[[ "$cache" == /* ]] || cache="$home/$cache"
jars_dir="$cache/spark-jars"
[[ -d "$jars_dir" ]] || die "$jars_dir does not exist; run \`deploy/fetch-jars.sh $cache\` (or \`make setup\`)"
shopt -s nullglob
jars=("$jars_dir"/*.jar)
shopt -u nullglob
for prefix in delta-spark_ delta-storage- spark-sql-kafka-0-10_ kafka-clients-; do
    found=0
    for jar in "${jars[@]}"; do
        [[ "$(basename "$jar")" == "$prefix"* ]] && { found=1; break; }
    done
    [[ $found -eq 1 ]] || die "no $prefix*.jar in $jars_dir; run \`deploy/fetch-jars.sh $cache\`"
done
state_jar="$cache/aegis-jars/aegis-state.jar"
[[ -f "$state_jar" ]] || die "$state_jar does not exist; run \`deploy/build-jvm.sh $cache\` (or \`make setup\`)"
jars+=("$state_jar")
jars_csv="$(IFS=,; echo "${jars[*]}")"

# --- code: one content-addressed build of the packages, zipped and unpacked ------------------
stage="${AEGIS_SUBMIT_STAGE:-$repo/build/spark-submit}"
mkdir -p "$stage"
built="$("$python" - "$repo" "$stage" <<'EOF'
import hashlib, os, shutil, sys, tomllib, zipfile
from fnmatch import fnmatch
from pathlib import Path

repo, stage = Path(sys.argv[1]), Path(sys.argv[2])
# The top-level packages pyproject.toml declares: [tool.setuptools] packages = [...] or
# [tool.setuptools.packages.find] include/exclude (flat layout, where = ["."]).
declared = tomllib.loads((repo / "pyproject.toml").read_text()).get("tool", {}).get("setuptools", {}).get("packages")
if isinstance(declared, list):
    packages = sorted({name.split(".")[0] for name in declared})
else:
    find = (declared or {}).get("find", {})
    if find.get("where", ["."]) != ["."]:
        sys.exit(f"pyproject.toml: packages.find where={find['where']} is not supported (flat layout only)")
    include, exclude = find.get("include", ["*"]), find.get("exclude", [])
    packages = sorted(
        d.name for d in repo.iterdir()
        if (d / "__init__.py").is_file() and any(fnmatch(d.name, pat) for pat in include)
        and not any(fnmatch(d.name, pat) for pat in exclude) and d.name not in ("tests", "build")
    )
missing = [pkg for pkg in packages if not (repo / pkg / "__init__.py").is_file()]
if not packages or missing:
    sys.exit(f"pyproject.toml: no importable packages found (declared {declared!r}, missing {missing})")
files = sorted(
    p for pkg in packages for p in (repo / pkg).rglob("*")
    if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
)
digest = hashlib.sha256()
for path in files:
    digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes() + b"\0")
name = f"aegis-{digest.hexdigest()[:12]}"
archive, site = stage / f"{name}.zip", stage / name
tmp_suffix = f".tmp.{os.getpid()}"
if not archive.exists():
    tmp = archive.with_name(archive.name + tmp_suffix)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(repo)), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, archive)
if not site.exists():
    tmp = site.with_name(site.name + tmp_suffix)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp)
    try:
        os.rename(tmp, site)
    except OSError:  # another submit unpacked the same build first
        shutil.rmtree(tmp, ignore_errors=True)
print(archive)
print(site)
EOF
)" || die "could not build the code archive in $stage"
archive="$(sed -n 1p <<<"$built")"
site="$(sed -n 2p <<<"$built")"

if [[ "$job" == probe ]]; then
    main="$here/probe.py"
else
    main="$site/jobs/$job.py"
fi
if [[ ! -f "$main" ]]; then
    die "no entry point $main (jobs/$job.py missing from the packaged code)"
fi

# --- launch ------------------------------------------------------------------------------
log4j="file:$here/log4j2.properties"
export PYSPARK_PYTHON="$python"
export PYSPARK_DRIVER_PYTHON="$python"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"

args=(
    --master "$master"
    --deploy-mode client
    --name "aegis-$job"
    --properties-file "$here/spark-defaults.conf"
    --jars "$jars_csv"
    --archives "$archive#aegis-pkg"
    --driver-java-options "-Dlog4j2.configurationFile=$log4j"
    # dev.aegis.fs: the local file system without shell-outs, lakehouse/session.py says why; on
    # the class path from each JVM's start, as spark-submit opens files before it adds --jars.
    --driver-class-path "$state_jar"
    --conf "spark.executor.extraClassPath=$state_jar"
    --conf "spark.hadoop.fs.file.impl=dev.aegis.fs.NioLocalFileSystem"
    --conf "spark.hadoop.fs.AbstractFileSystem.file.impl=dev.aegis.fs.NioLocalFs"
    --conf "spark.executor.extraJavaOptions=-Dlog4j2.configurationFile=$log4j"
    --conf "spark.executorEnv.PYTHONPATH=aegis-pkg"
    --conf "spark.pyspark.python=$python"
    --conf "spark.pyspark.driver.python=$python"
)
extra=()
if [[ -n "${AEGIS_SPARK_SUBMIT_OPTS:-}" ]]; then
    read -r -a extra <<<"$AEGIS_SPARK_SUBMIT_OPTS"
fi

printf 'submit: %s on %s (profile %s, code %s)\n' "$job" "$master" "$profile" "$(basename "$archive")" >&2
exec "$spark_submit" "${args[@]}" "${extra[@]}" "$main" --profile "$profile" "$@"
