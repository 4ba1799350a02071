"""Stream == batch on every feature of every transaction, through the real broker.

Two inputs: a multi-day slice of the handbook data replayed on a compressed clock on top of
imported history, and simulator traffic with out-of-order events inside the allowed lateness.
The stream runs features only (no scorer); the batch engine recomputes the same transactions
(``jobs.features_job.compare``, what ``aegis features parity`` prints).
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from conf.settings import Settings
from features.table import features_table
from jobs import features_job, importer, replay, simulate
from jobs.pipeline import overtaken_by_late_arrivals
from jobs.tables import feature_params
from lakehouse.delta_io import read_table
from lakehouse.tables import TRANSACTIONS
from stream.query import StreamQueries, await_queries, start
from tests.support import isolated_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HISTORY = (date(2018, 4, 1), date(2018, 4, 10))
REPLAYED = (date(2018, 4, 11), date(2018, 4, 13))
LATENESS = 7200.0


def _featurize_live(spark, s: Settings, produce) -> StreamQueries:
    """Run the stream (features only) while ``produce()`` publishes, until it is drained."""
    queries = start(spark, s, feature_params(s), scorer=None)
    try:
        # The first micro-batch seeds the state from bronze; traffic starts after it, so that it
        # spreads over several micro-batches instead of waiting for the seed in Kafka.
        while queries.is_active and not queries.hot.recentProgress:
            time.sleep(0.2)
        produce()
        await_queries(queries, max_seconds=400, until_idle=True, idle_seconds=6)
    finally:
        queries.stop()
    return queries


def _assert_parity(s: Settings, first: date, last: date) -> features_job.ParityReport:
    report = features_job.compare(s, first, last)
    assert report.ok, report
    assert report.stream_rows == report.batch_rows > 0
    return report


def _silver_stream(spark, s: Settings):
    return read_table(spark, features_table(feature_params(s)), s.lakehouse_root).filter(F.col("source") == "stream")


def test_handbook_slice_replayed_through_the_broker(spark, settings: Settings, kafka_broker, handbook_dir: Path,
                                                    tmp_path: Path) -> None:
    # Two partitions are produced a few ms apart; at ~8,600x that is minutes of event time.
    s = isolated_settings(settings, "hbparity", stream__allowed_lateness_seconds=LATENESS,
                          stream__publish_scores=False)
    kafka_broker.ensure_topics({s.kafka.topics.transactions: 2, s.kafka.topics.labels: 2})
    april = pd.read_parquet(handbook_dir / "transactions-2018-04.parquet")
    april = april[april["customer_id"] % 20 == 0]  # ~250 customers, all their traffic
    day = april["tx_datetime"].dt.date
    history, live = april[day.between(*HISTORY)], april[day.between(*REPLAYED)]
    history.to_parquet(tmp_path / "history.parquet")
    live.to_parquet(tmp_path / "live.parquet")
    importer.run(s, importer.ImportConfig(paths=[str(tmp_path / "history.parquet")]), spark)
    # Three days in about 30 s of wall clock: several micro-batches, each with history.
    speed = (REPLAYED[1] - REPLAYED[0] + timedelta(days=1)).total_seconds() / 30.0
    # The imported history reaches the stream once, as the state's initial rows (no Delta reads after).
    queries = _featurize_live(spark, s, lambda: replay.run(
        s, replay.ReplayConfig(paths=[str(tmp_path / "live.parquet")], speed=speed, label_delay="1d")))
    assert len([b for b in queries.hot_path.history if b.featurized]) >= 3

    silver = _silver_stream(spark, s).toPandas()
    assert not silver["is_late"].any()
    # Everything the frontier passed was featurized; only the last lateness window is held back.
    newest = live["tx_datetime"].max()
    due = live[live["tx_datetime"] <= newest - pd.Timedelta(seconds=LATENESS)]
    assert set(due["transaction_id"].astype(str)) <= set(silver["transaction_id"])
    assert len(silver) >= len(due) > 0.95 * len(live)
    report = _assert_parity(s, *REPLAYED)
    assert report.overtaken == 0


def test_out_of_order_events_inside_the_lateness(spark, settings: Settings, kafka_broker) -> None:
    s = isolated_settings(settings, "ooparity", stream__allowed_lateness_seconds=5.0, stream__publish_scores=False)
    kafka_broker.ensure_topics({s.kafka.topics.transactions: 2, s.kafka.topics.labels: 2})
    shuffled = simulate.SimulateConfig(rate=50, count=500, customers=40, terminals=30, seed=8,
                                       out_of_order_fraction=0.2, max_out_of_order_seconds=2.0,
                                       label_time_compression=1e6)  # labels within the run, not minutes later
    closing = shuffled.model_copy(update={"count": 400, "seed": 9, "out_of_order_fraction": 0.0})  # > 5 s

    def produce() -> None:
        simulate.produce(s, shuffled)
        simulate.produce(s, closing)  # later traffic moves the frontier past every shuffled event

    _featurize_live(spark, s, produce)
    bronze = read_table(spark, TRANSACTIONS, s.lakehouse_root).toPandas().sort_values(["kafka_partition",
                                                                                         "kafka_offset"])
    behind = (bronze.groupby("kafka_partition")["event_time"].cummax() - bronze["event_time"]).dt.total_seconds()
    assert (behind > 0).sum() >= 50, "the input must really be out of event-time order"
    silver = _silver_stream(spark, s)
    assert silver.filter(F.col("is_late")).count() == 0
    assert overtaken_by_late_arrivals(silver, feature_params(s)).count() == 0
    due = bronze[bronze["event_time"] <= bronze["event_time"].max() - pd.Timedelta(seconds=5)]
    featurized = {r[0] for r in silver.select("transaction_id").collect()}
    assert set(due["transaction_id"]) <= featurized and len(due) >= 500
    today = pd.Timestamp.now(tz="UTC").date()
    _assert_parity(s, today - timedelta(days=1), today + timedelta(days=1))
