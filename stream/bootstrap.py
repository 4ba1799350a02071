"""Seed the keyed state on a new checkpoint from what bronze already holds.

A lakehouse with history (an import, the demo's simulated weeks, a stream restarted on a lost
checkpoint) gives the state processor, once, the bronze transactions and fraud labels inside the
retention behind the newest event: its ``initialState``. Nothing is read back from Delta after.
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
from stream.state import routed_labels, routed_transactions

log = logging.getLogger("aegis.stream.bootstrap")


def is_new_checkpoint(checkpoint: Path) -> bool:
    """Whether a query on this checkpoint would start from scratch (no micro-batch planned yet)."""
    offsets = checkpoint / "offsets"
    return not offsets.is_dir() or not any(offsets.iterdir())


def initial_state(spark: SparkSession, settings: Settings, plan: StatePlan) -> DataFrame | None:
    """Routed bronze rows inside the retention behind bronze's newest event; None when bronze is empty."""
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
    return routed
