"""The stream's in-memory history stands in for bronze only while nobody else writes bronze.

Micro-batches are fed to the processor directly (Kafka-shaped rows, no broker): the point is
what the stream inserts when another job commits to bronze between two micro-batches.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import importer, stream
from jobs.pipeline import TargetSpan, history_for
from jobs.tables import feature_params
from lakehouse.delta_io import read_table
from lakehouse.tables import LABELS, TRANSACTIONS
from sources.contract import frame_to_events, to_json_bytes
from sources.fixtures import write_handbook_fixture
from tests.integration.conftest import isolated_settings

pytestmark = pytest.mark.integration

KAFKA_SCHEMA = ("key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
                "timestampType int")


def _kafka_batch(spark, s: Settings, tx: pd.DataFrame, labels: pd.DataFrame, first_offset: int):
    events = [(e, "transaction", s.kafka.topics.transactions) for e in frame_to_events(tx, "transaction")]
    events += [(e, "label", s.kafka.topics.labels) for e in frame_to_events(labels, "label")]
    rows = [
        (str(e["customer_id"]).encode(), to_json_bytes(e, kind), topic, 0, first_offset + i, datetime.now(), 0)
        for i, (e, kind, topic) in enumerate(events)
    ]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def _labels_of(labels: pd.DataFrame, tx: pd.DataFrame) -> pd.DataFrame:
    return labels[labels["transaction_id"].isin(tx["transaction_id"])]


def test_another_writers_bronze_commit_is_seen_by_the_next_micro_batch(spark, settings: Settings,
                                                                      tmp_path: Path) -> None:
    s = isolated_settings(settings, "histguard", stream__publish_scores=False, stream__batch_checks=False)
    fixture = write_handbook_fixture(tmp_path, days=3)
    tx, labels = importer.load_file(fixture.parquet_path, importer.parse_delay("1h"))
    tx = tx.sort_values("event_time", kind="stable").reset_index(drop=True)
    day = tx["event_time"].dt.date
    live = tx[day == day.max()]
    first, second = live.iloc[: len(live) // 2], live.iloc[len(live) // 2:]
    history_file = tmp_path / "history.parquet"
    fixture.frame[fixture.frame["tx_datetime"].dt.date < day.max()].to_parquet(history_file)
    importer.run(s, importer.ImportConfig(paths=[str(history_file)], label_delay="1h"), spark)

    processor = stream.MicroBatchProcessor(s, feature_params(s), scorer=None)
    processor(_kafka_batch(spark, s, first, _labels_of(labels, first), 0), 0)
    assert processor.history[-1].bronze == len(first)

    # Another job imports ten of the next micro-batch's transactions meanwhile.
    foreign_file = tmp_path / "foreign.parquet"
    ids = set(second["transaction_id"].astype(str).head(10))
    fixture.frame[fixture.frame["transaction_id"].astype(str).isin(ids)].to_parquet(foreign_file)
    importer.run(s, importer.ImportConfig(paths=[str(foreign_file)], label_delay="1h"), spark)

    # The next micro-batch: those ten, the rest, and redeliveries of five the stream inserted itself
    # (transactions and labels alike).
    again = pd.concat([second, first.head(5)])
    processor(_kafka_batch(spark, s, again, _labels_of(labels, again), 10_000), 1)
    assert processor.history[-1].bronze == len(second) - 10

    bronze = read_table(spark, TRANSACTIONS, s.lakehouse_root).select("transaction_id").toPandas()
    assert len(bronze) == len(tx) and bronze["transaction_id"].is_unique
    stored = read_table(spark, LABELS, s.lakehouse_root).select("transaction_id").toPandas()
    assert len(stored) == len(labels) and stored["transaction_id"].is_unique
    # The history was read again: it holds the imported rows, equal to what Delta holds.
    span = TargetSpan(day.max(), day.max(), F.lit(False))
    kept = processor.feature_history.view(span)
    read = history_for(spark, s, feature_params(s), span, processor.feature_history.carry)
    assert kept[0].count() == read[0].count() == len(tx)
    for in_memory, in_delta in zip(kept, read, strict=True):
        assert in_memory.exceptAll(in_delta).count() == 0 and in_delta.exceptAll(in_memory).count() == 0
