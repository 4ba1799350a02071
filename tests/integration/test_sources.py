"""Import into real Delta tables and replay through the real broker (sources issue)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaConsumer

from conf.settings import Settings
from jobs import importer, replay
from lakehouse.delta_io import table_status
from lakehouse.tables import LABELS, TRANSACTIONS
from sources.fixtures import HandbookFixture, write_handbook_fixture
from tests.support import isolated_settings

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> HandbookFixture:
    return write_handbook_fixture(tmp_path_factory.mktemp("sources"), days=3)


@pytest.fixture(scope="module")
def imported(spark, settings: Settings, fixture: HandbookFixture) -> Settings:
    s = isolated_settings(settings, "sources")
    importer.run(s, importer.ImportConfig(paths=[str(fixture.parquet_path)]), spark)
    return s


def _versions(spark, s: Settings) -> tuple[int | None, int | None]:
    root = s.lakehouse_root
    return table_status(spark, TRANSACTIONS, root).version, table_status(spark, LABELS, root).version


def test_import_counts_match_the_file(spark, imported: Settings, fixture: HandbookFixture) -> None:
    tx = table_status(spark, TRANSACTIONS, imported.lakehouse_root)
    labels = table_status(spark, LABELS, imported.lakehouse_root)
    assert tx.rows == len(fixture.frame)
    assert labels.rows == len(fixture.frame)  # one label per handbook row, reported after the delay
    bronze = spark.read.format("delta").load(TRANSACTIONS.path(imported.lakehouse_root)).toPandas()
    assert set(bronze["transaction_id"]) == {str(i) for i in fixture.frame["transaction_id"]}
    assert bronze["amount"].sum() == pytest.approx(fixture.frame["tx_amount"].sum())


def test_reimport_of_the_same_rows_is_a_no_op(spark, imported: Settings, fixture: HandbookFixture,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    before = _versions(spark, imported)
    for path in (fixture.parquet_path, fixture.csv_path):  # the CSV holds the same rows
        importer.run(imported, importer.ImportConfig(paths=[str(path)]), spark)
        assert f"{len(fixture.frame):,} transactions read, 0 new in bronze" in capsys.readouterr().out
    assert _versions(spark, imported) == before


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda df: df.drop(columns=["tx_amount"]), "tx_amount"),
        (lambda df: df.assign(tx_amount=df["tx_amount"].where(df.index != 3, -5.0)), "tx_amount"),
        (lambda df: df.assign(tx_datetime=df["tx_datetime"].astype(str).where(df.index != 2, "yesterday")),
         "tx_datetime"),
    ],
    ids=["missing-column", "negative-amount", "bad-timestamp"],
)
def test_a_bad_file_is_refused_and_nothing_moves(spark, imported: Settings, fixture: HandbookFixture,
                                                tmp_path: Path, change, named: str) -> None:
    bad = tmp_path / "bad.parquet"
    change(fixture.frame.copy()).to_parquet(bad)
    good = fixture.parquet_path
    before = _versions(spark, imported)
    with pytest.raises(ValueError, match=named):
        # A good file first: validation of all files happens before anything is written.
        importer.run(imported, importer.ImportConfig(paths=[str(good), str(bad)]), spark)
    assert _versions(spark, imported) == before


def test_replay_keeps_per_customer_order_and_event_times(settings: Settings, kafka_broker,
                                                        fixture: HandbookFixture) -> None:
    s = isolated_settings(settings, "replay")
    kafka_broker.ensure_topics({s.kafka.topics.transactions: 3, s.kafka.topics.labels: 3})
    replay.run(s, replay.ReplayConfig(paths=[str(fixture.parquet_path)]))
    consumer = KafkaConsumer(s.kafka.topics.transactions, s.kafka.topics.labels,
                             bootstrap_servers=s.kafka.bootstrap_servers, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    by_partition: dict[tuple[str, int], list[dict]] = defaultdict(list)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record in consumer:
        event = json.loads(record.value)
        assert record.key.decode() == event["customer_id"]
        by_partition[(record.topic, record.partition)].append(event)
        if record.topic == s.kafka.topics.transactions:
            partitions_of[event["customer_id"]].add(record.partition)
    consumer.close()
    transactions = [e for (topic, _), events in by_partition.items() if topic == s.kafka.topics.transactions
                    for e in events]
    labels = [e for (topic, _), events in by_partition.items() if topic == s.kafka.topics.labels for e in events]
    assert len(transactions) == len(fixture.frame) and len(labels) == len(fixture.frame)
    assert all(len(p) == 1 for p in partitions_of.values()), "one customer, one partition"
    for (topic, _), events in by_partition.items():
        if topic == s.kafka.topics.transactions:  # in a partition, each customer's events in event-time order
            per_customer: dict[str, list[pd.Timestamp]] = defaultdict(list)
            for e in events:
                per_customer[e["customer_id"]].append(pd.Timestamp(e["event_time"]))
            assert all(times == sorted(times) for times in per_customer.values())
    expected = {str(r.transaction_id): pd.Timestamp(r.tx_datetime, tz="UTC")
                for r in fixture.frame.itertuples()}
    assert {e["transaction_id"]: pd.Timestamp(e["event_time"]) for e in transactions} == expected
    event_time = {e["transaction_id"]: pd.Timestamp(e["event_time"]) for e in transactions}
    assert all(pd.Timestamp(lab["reported_at"]) - event_time[lab["transaction_id"]] == pd.Timedelta(days=7)
               for lab in labels)
