"""The Spark session factory: configure a builder from typed settings, never at import time.

Local sessions log through ``deploy/spark/log4j2.properties`` (quiet Spark, Hadoop and Kafka
clients; Aegis and real problems still show), bind to 127.0.0.1 and drop the one line of JVM
start-up noise no logger controls. ``spark.log_level`` DEBUG (``aegis --log-level DEBUG``) keeps
Spark's own log4j defaults and shows everything.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from pyspark import SparkConf, SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import SparkSession

from conf.settings import Settings
from lakehouse.jvm import aegis_state_jar, spark_jar_paths

LOG4J2_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "spark" / "log4j2-local.properties"
FAIR_SCHEDULER_CONFIG = LOG4J2_CONFIG.with_name("fairscheduler.xml")
# Printed by the JVM's module system for the --add-modules flag Spark's launcher always passes;
# no logger or JVM option silences it.
_JVM_STARTUP_NOISE = (b"WARNING: Using incubator modules: jdk.incubator.vector",)
VERBOSE_LEVELS = ("DEBUG", "TRACE", "ALL")
PYSPARK_PANDAS_WARNING = "ignore:PySpark does not yet fully support pandas:FutureWarning"
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
PYTHON_DAEMON_MODULE = "lakehouse.python_daemon"
LOCAL_FILE_SYSTEM_CONFS = {
    "spark.hadoop.fs.file.impl": "dev.aegis.fs.NioLocalFileSystem",
    "spark.hadoop.fs.AbstractFileSystem.file.impl": "dev.aegis.fs.NioLocalFs",
}
ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"


def configure_builder(
    builder: SparkSession.Builder,
    settings: Settings,
    launched_by_spark_submit: bool = False,
) -> SparkSession.Builder:
    """Apply Aegis' Spark settings to ``builder`` and return it.

    Under spark-submit the master, driver memory and jars come from spark-submit itself
    (deploy/spark/submit.sh passes them), so only application-level confs are set here.
    """
    spark = settings.spark
    if not launched_by_spark_submit:
        builder = (
            builder.master(spark.master)
            .config("spark.driver.memory", spark.driver_memory)
            .config("spark.jars", ",".join(str(p) for p in spark_jar_paths(settings.cache_dir)))
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.pyspark.python", sys.executable)  # workers use this interpreter (the venv)
            # On the JVM's class path from its start: spark-submit itself opens files through the
            # local file system below, before it adds spark.jars.
            .config("spark.driver.extraClassPath", str(aegis_state_jar(settings.cache_dir)))
        )
        # Without Hadoop's native library its local file system forks `readlink` per rename and
        # `chmod` per created file (about 80 forks per micro-batch); dev.aegis.fs (jvm/) uses java.nio.
        # deploy/spark/submit.sh sets the same for spark-submit.
        for key, value in LOCAL_FILE_SYSTEM_CONFS.items():
            builder = builder.config(key, value)
    java_options = f"-Xss16m -Dderby.system.home={settings.lakehouse_root / '_metastore'}"
    quiet: dict[str, str] = {}
    if spark.log_level.upper() not in VERBOSE_LEVELS:
        log4j = f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}"
        java_options = f"{java_options} {log4j}"
        quiet = {
            "spark.executor.extraJavaOptions": log4j,
            # Python workers: PySpark's pandas-3 FutureWarning (PYTHONWARNINGS has no module pattern;
            # the message is PySpark's own). The driver filters it by module (jobs.base).
            "spark.executorEnv.PYTHONWARNINGS": PYSPARK_PANDAS_WARNING,
        }
    confs = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        # The stream's hot and cold queries share the cores through pools (weighted where the pool
        # file is at hand; a spark-submit staging copy of the code has no deploy/ folder).
        "spark.scheduler.mode": "FAIR",
        **(
            {"spark.scheduler.allocation.file": FAIR_SCHEDULER_CONFIG.as_uri()}
            if FAIR_SCHEDULER_CONFIG.is_file()
            else {}
        ),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stateStore.providerClass": ROCKSDB_PROVIDER,
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # UDF workers fork from a daemon that has the scoring libraries imported (lakehouse/python_daemon.py).
        "spark.python.daemon.module": PYTHON_DAEMON_MODULE,
        "spark.sql.adaptive.enabled": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.databricks.delta.retentionDurationCheck.enabled": "true",
        # Snapshot state reconstruction with the default 50 partitions made each txnAppId append ~14 s here.
        "spark.databricks.delta.snapshotPartitions": str(spark.shuffle_partitions),
        "spark.sql.warehouse.dir": str(settings.lakehouse_root / "_warehouse"),
        "spark.driver.extraJavaOptions": java_options,
        # The plans of the wide feature queries exceed the default 25 fields (a warning per plan).
        "spark.sql.debug.maxToStringFields": "1000",
        **quiet,
        **spark.conf,
    }
    for key, value in confs.items():
        builder = builder.config(key, value)
    return builder.appName(spark.app_name)


def create_session(settings: Settings, job: str, launched_by_spark_submit: bool = False) -> SparkSession:
    """Build (or join) the session for one job."""
    if not launched_by_spark_submit:
        # Python workers run this interpreter (the project's venv), not whatever python3 is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # Loopback only; also spares Spark's "hostname resolves to a loopback address" warning.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = configure_builder(SparkSession.builder, settings, launched_by_spark_submit)
    builder = builder.appName(f"{settings.spark.app_name}-{job}")
    if not launched_by_spark_submit and SparkContext._gateway is None:
        _launch_gateway(builder, filter_noise=settings.spark.log_level.upper() not in VERBOSE_LEVELS)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.spark.log_level)
    return session


def _launch_gateway(builder: SparkSession.Builder, filter_noise: bool) -> None:
    """Start the driver JVM the way PySpark does, its stderr relayed minus the start-up noise."""
    # The options getOrCreate() would hand to the launcher (PySpark keeps them in _options).
    conf = SparkConf(loadDefaults=False).setAll(list(builder._options.items()))
    gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE} if filter_noise else None)
    proc = getattr(gateway, "proc", None)
    if filter_noise and proc is not None and proc.stderr is not None:
        threading.Thread(
            target=_relay, args=(proc.stderr, _JVM_STARTUP_NOISE), name="aegis-jvm-stderr", daemon=True
        ).start()
    SparkContext._ensure_initialized(gateway=gateway)


def _relay(source: IO[bytes], drop: tuple[bytes, ...]) -> None:
    """Copy the JVM's stderr to ours line by line, without the lines in ``drop``."""
    target = getattr(sys.stderr, "buffer", None)
    for line in iter(source.readline, b""):
        if line.rstrip(b"\r\n") in drop:
            continue
        if target is not None:
            target.write(line)
            target.flush()
        else:
            sys.stderr.write(line.decode(errors="replace"))


def stop_session(spark: SparkSession, timeout: float = 60.0) -> None:
    """Stop the session and the driver JVM PySpark started (and with it the Python workers).

    ``spark.stop()`` alone leaves the JVM running until this interpreter exits; a caller that
    must leave no process behind (the demo) stops it here.
    """
    gateway = SparkContext._gateway
    proc: subprocess.Popen[bytes] | None = getattr(gateway, "proc", None)
    spark.stop()
    if gateway is None or proc is None:
        return
    with contextlib.suppress(Exception):
        gateway.shutdown()
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the gateway server exits when its stdin closes
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    SparkContext._gateway = None
    SparkContext._jvm = None
