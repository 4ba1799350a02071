"""Seed the keyed state on a new checkpoint from what bronze already holds.

A lakehouse with history (an import, the demo's simulated weeks, a stream restarted on a lost
checkpoint) gives the state processor, once, the bronze transactions and fraud labels inside the
retention behind the newest event: its ``initialState``. Nothing is read back from Delta after.

The seed is written once, grouped per key, as Parquet beside the checkpoint and read back from
there: Spark plans a query's ``initialState`` in every micro-batch (it runs it only in the first),
and planning a Delta scan of bronze, which the cold query keeps appending to, cost ~2 s per batch.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from features.state_plan import StatePlan
from lakehouse.delta_io import read_table
from lakehouse.tables import LABELS, TRANSACTIONS
from stream.state import routed_labels, routed_transactions, seed_rows

log = logging.getLogger("aegis.stream.bootstrap")


def is_new_checkpoint(checkpoint: Path) -> bool:
    """Whether a query on this checkpoint would start from scratch (no micro-batch planned yet)."""
    offsets = checkpoint / "offsets"
    return not offsets.is_dir() or not any(offsets.iterdir())


def seed_path(checkpoint: Path) -> Path:
    """Where the seed of the query on ``checkpoint`` is kept (beside it, not inside Spark's layout)."""
    return checkpoint.with_name(f"{checkpoint.name}.seed")


def initial_state(spark: SparkSession, settings: Settings, plan: StatePlan, checkpoint: Path) -> DataFrame | None:
    """The seed of a new checkpoint: bronze's routed rows inside the retention behind its newest event,
    one row per key, materialized as Parquet beside ``checkpoint``; None when bronze is empty."""
    root = settings.lakehouse_root
    bronze = read_table(spark, TRANSACTIONS, root)
    newest = bronze.agg(F.max("event_time").alias("t")).first()
    if newest is None or newest["t"] is None:
        return None
    since = newest["t"] - timedelta(microseconds=plan.retention_us)
    tx = bronze.filter((F.col("event_date") >= F.lit(since.date())) & (F.col("event_time") > F.lit(since)))
    labels = read_table(spark, LABELS, root).filter(F.col("report_date") >= F.lit(since.date()))
    routed = routed_transactions(tx).unionByName(routed_labels(labels))
    log.info("stream: seeding the feature state from bronze events after %s", since.isoformat())
    path = seed_path(checkpoint)
    seed_rows(routed).write.mode("overwrite").parquet(str(path))
    return spark.read.parquet(str(path))
