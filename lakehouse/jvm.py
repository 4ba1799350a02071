"""Where the JVM pieces live: Spark's extra jars and the Kafka broker's libs.

The first two folders are filled by ``deploy/fetch-jars.sh <cache_dir>`` (run by ``make setup``)
from ``deploy/spark/pom.xml`` and ``deploy/kafka/pom.xml``; ``deploy/build-jvm.sh`` builds Aegis'
own module (jvm/) into the third. These helpers only look at
the file system: no network, no JVM.
"""

from __future__ import annotations

from pathlib import Path

SPARK_JARS_DIR = "spark-jars"
AEGIS_JARS_DIR = "aegis-jars"
KAFKA_LIBS_DIR = "kafka-libs"

# Jars that must be present for a folder to count as resolved (name prefixes).
_SPARK_REQUIRED = ("delta-spark_", "delta-storage-", "spark-sql-kafka-0-10_", "kafka-clients-")
_KAFKA_REQUIRED = ("kafka_2.13-", "kafka-server-", "kafka-clients-", "log4j-core-")


def _jars(folder: Path, required: tuple[str, ...], what: str) -> list[Path]:
    """Sorted ``*.jar`` files of ``folder``; FileNotFoundError if absent or incomplete."""
    hint = f"run `make setup` (or `deploy/fetch-jars.sh {folder.parent}`) to resolve them"
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found: {folder} does not exist; {hint}")
    jars = sorted(p for p in folder.iterdir() if p.suffix == ".jar" and p.is_file())
    missing = [prefix for prefix in required if not any(j.name.startswith(prefix) for j in jars)]
    if missing:
        raise FileNotFoundError(
            f"{what} incomplete in {folder}: no {', '.join(m + '*.jar' for m in missing)}; {hint}"
        )
    return jars


def spark_jar_paths(cache_dir: Path) -> list[Path]:
    """The jars to add to Spark (``spark.jars``): Delta Lake, the Kafka source/sink, Aegis' state module."""
    return [*_jars(Path(cache_dir) / SPARK_JARS_DIR, _SPARK_REQUIRED, "Spark jars"), aegis_state_jar(cache_dir)]


def aegis_state_jar(cache_dir: Path) -> Path:
    """The stream's keyed feature state (jvm/, built by ``deploy/build-jvm.sh`` in ``make setup``)."""
    jar = Path(cache_dir) / AEGIS_JARS_DIR / "aegis-state.jar"
    if not jar.is_file():
        raise FileNotFoundError(f"{jar} not found; run `make setup` (or `deploy/build-jvm.sh {cache_dir}`) to build it")
    return jar


def kafka_libs_dir(cache_dir: Path) -> Path:
    """The folder holding the Kafka broker's jars (checked to exist and be complete)."""
    folder = Path(cache_dir) / KAFKA_LIBS_DIR
    _jars(folder, _KAFKA_REQUIRED, "Kafka broker libs")
    return folder


def kafka_classpath(cache_dir: Path) -> str:
    """The broker's ``java -cp`` value: a ``<cache_dir>/kafka-libs/*`` wildcard (expanded by java)."""
    return str(kafka_libs_dir(cache_dir).resolve() / "*")
