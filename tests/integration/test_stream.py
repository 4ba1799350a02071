"""The streaming job end to end on the real broker, Spark, Delta and MLflow registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer
from pyspark.sql import functions as F

from conf.settings import Settings
from features.table import features_table
from jobs import features_job, simulate, stream
from lakehouse.delta_io import read_table
from lakehouse.tables import QUARANTINE, SCORES, TRANSACTIONS, VALIDATION_RESULTS
from tests.support import CUSTOMERS, TERMINALS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIVE = 300


def _valid_event(tx_id: str, **overrides: object) -> dict:
    event = {
        "schema_version": "1",
        "transaction_id": tx_id,
        "event_time": datetime.now(UTC).isoformat(),
        "customer_id": "C0000001",
        "terminal_id": "T0000001",
        "amount": 12.5,
        "currency": "EUR",
        "card_number": "4111111111111111",
    }
    event.update(overrides)
    return event


BAD_RECORDS: dict[str, bytes] = {
    "invalid JSON": b"this is not json",
    "invalid UTF-8": b'{"transaction_id": "\xff\xfe"}',
    "required customer_id": json.dumps({k: v for k, v in _valid_event("bad-1").items()
                                              if k != "customer_id"}).encode(),
    "minimum amount": json.dumps(_valid_event("bad-2", amount=-5)).encode(),
    "enum currency": json.dumps(_valid_event("bad-3", currency="XXX")).encode(),
    "x-aegis-time-range event_time": json.dumps(
        _valid_event("bad-4", event_time=(datetime.now(UTC) + timedelta(days=400)).isoformat())).encode(),
    "type amount": json.dumps(_valid_event("bad-5", amount="twelve")).encode(),
    "record larger than": json.dumps(_valid_event("bad-6", device_id="x" * 20000)).encode(),
    "additionalProperties colour": json.dumps(_valid_event("bad-7", colour="red")).encode(),
    "pattern event_time": json.dumps(_valid_event("bad-8", event_time="yesterday")).encode(),
    "pattern card_number": json.dumps(_valid_event("bad-9", card_number="4111-1111")).encode(),
}


@pytest.fixture(scope="module")
def streamed(spark, settings: Settings, kafka_broker, trained) -> dict:
    """Live simulated traffic + duplicates + bad records through one run of the stream."""
    counts = simulate.produce(settings, simulate.SimulateConfig(
        rate=0, count=LIVE, customers=CUSTOMERS, terminals=TERMINALS, seed=11, label_time_compression=1e6))
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    topic = settings.kafka.topics.transactions
    duplicate = _valid_event("dup-1")
    for _ in range(3):  # a producer retrying: three deliveries of one transaction
        producer.send(topic, key=b"C0000001", value=json.dumps(duplicate).encode())
    for raw in BAD_RECORDS.values():
        producer.send(topic, key=b"bad", value=raw)
    producer.flush()
    producer.close()
    code = stream.run(settings, stream.StreamConfig(until_idle=True, max_seconds=300, idle_seconds=5), spark)
    assert code == 0
    return {"live": counts["transaction"] + 1}


def test_every_valid_transaction_lands_once_in_bronze_silver_gold(spark, settings: Settings, streamed) -> None:
    root = settings.lakehouse_root
    bronze = read_table(spark, TRANSACTIONS, root).filter(F.col("source") == "stream")
    silver = read_table(spark, features_table(), root).filter(F.col("source") == "stream")
    gold = read_table(spark, SCORES, root).filter(F.col("source") == "stream")
    for name, table in (("bronze", bronze), ("silver", silver), ("gold", gold)):
        assert table.count() == streamed["live"], name
        assert table.select("transaction_id").distinct().count() == streamed["live"], name
    assert bronze.filter(F.col("transaction_id") == "dup-1").count() == 1
    # silver and gold rows of one transaction come from the same micro-batch and the same scoring pass.
    lineage = silver.select("transaction_id", "stream_batch_id", "computed_at").join(
        gold.select("transaction_id", F.col("stream_batch_id").alias("gold_batch"), "scored_at"), "transaction_id")
    assert lineage.count() == streamed["live"]
    assert lineage.filter(F.col("stream_batch_id").isNull()
                          | (F.col("stream_batch_id") != F.col("gold_batch"))
                          | (F.col("computed_at") != F.col("scored_at"))).count() == 0


def test_bad_records_are_quarantined_with_reasons(spark, settings: Settings, streamed) -> None:
    rows = read_table(spark, QUARANTINE, settings.lakehouse_root).collect()
    assert len(rows) == len(BAD_RECORDS)
    reasons = [r["reason"] for r in rows]
    for expected in BAD_RECORDS:
        assert sum(expected in reason for reason in reasons) >= 1, (expected, reasons)
    assert all(r["kafka_offset"] is not None and r["raw_value"] is not None for r in rows)
    assert not any(b"4111111111111111" in bytes(r["raw_value"]) for r in rows)


def test_card_numbers_never_stored_in_clear(spark, settings: Settings, streamed) -> None:
    bronze = read_table(spark, TRANSACTIONS, settings.lakehouse_root)
    row = bronze.filter(F.col("transaction_id") == "dup-1").first()
    assert row["card_last4"] == "1111"
    assert len(row["card_token"]) == 64 and "4111111111111111" not in row["card_token"]
    from jobs.importer import card_token

    assert row["card_token"] == card_token(settings.security.card_hash_key, "4111111111111111")


def test_scores_are_explained_and_versioned(spark, settings: Settings, streamed, trained) -> None:
    gold = read_table(spark, SCORES, settings.lakehouse_root).filter(F.col("source") == "stream").collect()
    for row in gold:
        assert 0.0 <= row["score"] <= 1.0
        assert row["decision"] in ("allow", "review", "block")
        assert row["model_version"] == trained["version"]
        assert abs(row["shap_expected_value"] + sum(row["shap_values"]) - row["score"]) < 1e-6
        assert len(row["top_reasons"]) == 3
        assert row["latency_ms"] is not None and row["latency_ms"] >= 0


def test_scores_topic_is_keyed_by_transaction_id(settings: Settings, streamed) -> None:
    consumer = KafkaConsumer(settings.kafka.topics.scores, bootstrap_servers=settings.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    messages = list(consumer)
    consumer.close()
    keys = {m.key.decode() for m in messages}
    assert len(keys) == streamed["live"]
    payload = json.loads(messages[0].value)
    assert payload["transaction_id"] == messages[0].key.decode()
    assert "top_reasons" in payload and "card_number" not in messages[0].value.decode()


def test_stream_and_batch_features_agree(settings: Settings, streamed) -> None:
    today = datetime.now(UTC).date()
    assert features_job.parity(settings, today - timedelta(days=1), today + timedelta(days=1)) == 0


def test_each_micro_batch_records_its_quality_results(spark, settings: Settings, streamed) -> None:
    results = (read_table(spark, VALIDATION_RESULTS, settings.lakehouse_root)
               .filter(F.col("run_id") == settings.stream.query_name).toPandas())
    per_batch = results.groupby("stream_batch_id")["expectation"].nunique()
    assert len(per_batch) >= 1 and per_batch.nunique() == 1  # the same checks for every batch
    amount = results[results["expectation"] == "values_to_be_between(amount)"]
    caught = sum(json.loads(o)["unexpected_count"] for o in amount["observed"])
    assert caught >= 1 and not amount["success"].all()  # the negative amount among BAD_RECORDS

