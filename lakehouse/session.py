"""The Spark session factory: configure a builder from typed settings, never at import time."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from conf.settings import Settings
from lakehouse.jvm import spark_jar_paths

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
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
        )
    confs = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stateStore.providerClass": ROCKSDB_PROVIDER,
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.adaptive.enabled": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.databricks.delta.retentionDurationCheck.enabled": "true",
        # Snapshot state reconstruction with the default 50 partitions made each txnAppId append ~14 s here.
        "spark.databricks.delta.snapshotPartitions": str(spark.shuffle_partitions),
        "spark.sql.warehouse.dir": str(settings.lakehouse_root / "_warehouse"),
        "spark.driver.extraJavaOptions": f"-Xss16m -Dderby.system.home={settings.lakehouse_root / '_metastore'}",
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
    builder = configure_builder(SparkSession.builder, settings, launched_by_spark_submit)
    session = builder.appName(f"{settings.spark.app_name}-{job}").getOrCreate()
    session.sparkContext.setLogLevel(settings.spark.log_level)
    return session
