"""A hostile producer through the real broker into the stream: nothing stops it, nothing is lost,
every record gets its exact reason, no card number is at rest anywhere, every table reads without Spark.

The corpus (tests/hostile.py) mixes poison values, each contract keyword, card numbers in every
placement and encoding, and valid events, in the same micro-batches; some records are delivered twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from kafka import KafkaConsumer, KafkaProducer

from conf.settings import Settings
from jobs import stream
from jobs.backfill import BackfillConfig, backfill
from jobs.base import JobContext
from lakehouse.catalog import catalog_tables, duckdb_connection, polars_frame
from lakehouse.tables import LABELS, QUARANTINE, SCORES, TRANSACTIONS
from tests.hostile import all_card_numbers, corpus
from tests.integration.conftest import isolated_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDELIVERED = ("valid", "valid-thb", "valid-label")  # producer retries: each sent twice


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Python, the JVM's log4j, py4j) to ``path``, then echo it."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
    sys.stderr.write(path.read_text(errors="replace")[-20_000:])


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
    logger = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    with _output_to(log_file):
        logger.addHandler(handler)  # Aegis' own log lines, at INFO, go to the same file
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            code = stream.run(s, stream.StreamConfig(until_idle=True, max_seconds=300, idle_seconds=6), spark)
            today = datetime.now(UTC).date()
            backfill(JobContext(s, spark, run_id="hostile-backfill"),
                     BackfillConfig(date_from=today - timedelta(days=1), date_to=today))
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
    return {"settings": s, "cases": cases, "sent": sent, "code": code, "log": log_file}


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
    s, cases = hostile["settings"], hostile["cases"]
    scored = {r["transaction_id"] for r in _table(s, "scores").to_pylist() if r["source"] == "stream"}
    assert {f"hx-{c.name}" for c in cases if c.reason is None and c.kind == "transaction"} <= scored


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
