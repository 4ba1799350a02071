"""A hostile producer through the real broker into the stream: nothing stops it, nothing is lost,
every record gets its exact reason, no card number is at rest anywhere, every table reads without Spark.

The corpus (tests/hostile.py) mixes poison values, each contract keyword, card numbers in every
placement and encoding, and valid events, in the same micro-batches; some records are delivered twice.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from kafka import KafkaConsumer, KafkaProducer

from analysts.catalog import catalog_tables
from analysts.local import duckdb_connection, polars_frame
from conf.settings import Settings
from jobs.backfill import BackfillConfig, backfill
from jobs.base import JobContext
from lakehouse.tables import LABELS, QUARANTINE, SCORES, TRANSACTIONS
from tests.hostile import all_card_numbers, corpus
from tests.support import isolated_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDELIVERED = ("valid", "valid-thb", "valid-label")  # producer retries: each sent twice


def _cli_overrides(s: Settings) -> list[str]:
    """``--set`` arguments that give an ``aegis`` process exactly these settings."""
    values = {
        "paths.home": s.paths.home, "paths.cache": s.cache_dir, "paths.lakehouse": s.lakehouse_root,
        "paths.checkpoints": s.checkpoint_root, "kafka.bootstrap_servers": s.kafka.bootstrap_servers,
        "kafka.broker.port": s.kafka.broker.port, "kafka.broker.controller_port": s.kafka.broker.controller_port,
        "kafka.topics.transactions": s.kafka.topics.transactions, "kafka.topics.labels": s.kafka.topics.labels,
        "kafka.topics.scores": s.kafka.topics.scores, "kafka.max_offsets_per_trigger": s.kafka.max_offsets_per_trigger,
        "stream.query_name": s.stream.query_name, "stream.metrics_port": 0,
    }
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def hostile(spark, settings: Settings, kafka_broker, trained, tmp_path_factory: pytest.TempPathFactory):
    s = isolated_settings(settings, "hostile")
    log_file = tmp_path_factory.mktemp("hostile-logs") / "stream-and-backfill.log"
    kafka_broker.ensure_topics({s.kafka.topics.transactions: 2, s.kafka.topics.labels: 2, s.kafka.topics.scores: 2})
    cases = corpus("hx", datetime.now(UTC))
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, acks="all")
    sent: dict[tuple[str, int, int], object] = {}
    for case in cases:
        topic = s.kafka.topics.transactions if case.kind == "transaction" else s.kafka.topics.labels
        for _ in range(2 if case.name in REDELIVERED else 1):
            meta = producer.send(topic, key=case.key, value=case.value).get(timeout=30)
            sent[(meta.topic, meta.partition, meta.offset)] = case
    producer.close()
    # The stream runs as a user starts it, `aegis stream`, so its whole output (Python and the JVM's
    # log4j lines) is in one file the test can grep.
    aegis = Path(sys.executable).parent / "aegis"
    with log_file.open("wb") as sink:
        done = subprocess.run([str(aegis), "--profile", "test", "--log-level", "INFO", *_cli_overrides(s),
                               "stream", "--until-idle", "--max-seconds", "300"],
                              stdout=sink, stderr=subprocess.STDOUT, timeout=600, check=False)
    scored = {r["transaction_id"] for r in _table(s, "scores").to_pylist()}  # before the backfill's
    today = datetime.now(UTC).date()
    backfill(JobContext(s, spark, run_id="hostile-backfill"),
             BackfillConfig(date_from=today - timedelta(days=1), date_to=today))
    code = done.returncode
    return {"settings": s, "cases": cases, "sent": sent, "code": code, "log": log_file, "scored": scored}


def _table(s: Settings, name: str) -> pa.Table:
    return polars_frame(s.lakehouse_root, name).collect().to_arrow()


def test_the_stream_keeps_running_and_accounts_for_every_record(hostile) -> None:
    assert hostile["code"] == 0
    s, cases, sent = hostile["settings"], hostile["cases"], hostile["sent"]
    bronze = _table(s, "transactions").to_pylist()
    labels = _table(s, "labels").to_pylist()
    quarantine = _table(s, "quarantine").to_pylist()
    valid_tx = {f"hx-{c.name}" for c in cases if c.reason is None and c.kind == "transaction"}
    valid_labels = {f"hx-{c.name}" for c in cases if c.reason is None and c.kind == "label"}
    assert sorted(r["transaction_id"] for r in bronze) == sorted(valid_tx)  # retries land once
    assert sorted(r["transaction_id"] for r in labels) == sorted(valid_labels)
    duplicates = sum(1 for c in cases if c.name in REDELIVERED)
    assert len(bronze) + len(labels) + len(quarantine) + duplicates == len(sent)
    by_offset = {(r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]): r for r in quarantine}
    for where, case in sent.items():
        if case.reason is None:
            assert where not in by_offset, (case.name, by_offset.get(where))
        else:
            row = by_offset.get(where)
            assert row is not None, f"{case.name}: not in quarantine"
            assert case.reason in row["reason"], (case.name, row["reason"])


def test_valid_events_of_the_same_batches_are_scored(hostile) -> None:
    valid = {f"hx-{c.name}" for c in hostile["cases"] if c.reason is None and c.kind == "transaction"}
    assert hostile["scored"] == valid  # by the stream, before the backfill replaced the day


def _forms(number: str) -> list[bytes]:
    return [number.encode(), number.encode("utf-16-le"), number.encode("utf-16-be")]


def test_no_card_number_at_rest_in_any_table_file_topic_or_log(hostile) -> None:
    s = hostile["settings"]
    numbers = [form for n in all_card_numbers() for form in _forms(n)]
    home = Path(s.lakehouse_root).parent
    # Every file the stream and the backfill wrote: Delta logs, checkpoints, state, and the data itself
    # (Parquet pages are compressed, so the tables are also read back value by value below).
    for path in home.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert not any(n in blob for n in numbers), path
    for name in catalog_tables():
        table = _table(s, name)
        for column in table.column_names:
            values = [v for v in table.column(column).to_pylist() if isinstance(v, str | bytes)]
            blob = b"\n".join(v.encode("utf-8", "surrogatepass") if isinstance(v, str) else v for v in values)
            assert not any(n in blob for n in numbers), (name, column)
    consumer = KafkaConsumer(s.kafka.topics.scores, bootstrap_servers=s.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    messages = b"\n".join((m.key or b"") + b" " + (m.value or b"") for m in consumer)
    consumer.close()
    assert messages and not any(n in messages for n in numbers)
    logs = hostile["log"].read_bytes()
    assert b"aegis" in logs.lower()  # the capture worked
    assert not any(n in logs for n in numbers)


def test_every_table_reads_without_spark(hostile) -> None:
    s = hostile["settings"]
    from deltalake import DeltaTable

    for contract in (TRANSACTIONS, LABELS, QUARANTINE, SCORES):
        assert DeltaTable(contract.path(s.lakehouse_root)).to_pyarrow_table().num_rows > 0, contract.name
    con = duckdb_connection(s.lakehouse_root)
    for name in catalog_tables():
        con.execute(f"SELECT * FROM aegis.{name}").to_arrow_table()
        _table(s, name)
    assert con.execute("SELECT count(*) FROM aegis.labels").fetchone()[0] == 2  # type: ignore[index]
