"""Data quality on real Spark + Delta: quarantine reasons for bad records (no broker: Kafka-shaped
DataFrames), stream batch checks vs gx, and the nightly gate with Data Docs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from conf.settings import Settings
from lakehouse.delta_io import append_idempotent, read_table
from lakehouse.tables import SCORES, VALIDATION_RESULTS
from quality.bench import kafka_frame
from quality.ingest import FAILED, parse_transactions, quarantine_rows, valid_rows
from quality.nightly import QualityGateError, validate_day
from quality.rules import load_suite
from quality.validate import stream_batch_checks, validate_dataframe
from tests.support import make_settings

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
CARD = "4111111111111111"


OMIT = object()  # an optional field left out (the contract has no nulls)


def _event(tx_id: str | None, **overrides: object) -> dict:
    event = {
        "schema_version": "1", "transaction_id": tx_id, "event_time": (NOW - timedelta(minutes=5)).isoformat(),
        "customer_id": "C0000001", "terminal_id": "T0000001", "amount": 12.5, "currency": "EUR",
        "card_number": CARD, "channel": "pos", "merchant_category": "5411", "latitude": 48.1, "longitude": 11.6,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not OMIT}


def _raw(event: dict) -> bytes:
    return json.dumps(event).encode()


def _without(field: str, tx_id: str) -> bytes:
    return _raw({k: v for k, v in _event(tx_id).items() if k != field})


VALID = [_raw(_event(f"ok-{i}", amount=1.0 + i)) for i in range(5)] + [
    _raw(_event("ok-minimal", channel=OMIT, merchant_category=OMIT, latitude=OMIT, longitude=OMIT,
                card_number=OMIT)),
]
# (raw value, the reason the quarantine must give: the failed keyword and field)
BAD: dict[str, tuple[bytes | None, str]] = {
    "null customer": (_raw(_event("b-1", customer_id=None)), 'type customer_id: null is not of type "string"'),
    "missing amount": (_without("amount", "b-2"), "required amount"),
    "null id": (_raw(_event(None)), "type transaction_id"),
    "empty id": (_raw(_event("")), "minLength transaction_id"),
    "long id": (_raw(_event("x" * 65)), "maxLength transaction_id"),
    "negative amount": (_raw(_event("b-3", amount=-5)), "minimum amount"),
    "NaN amount": (_raw(_event("b-4", amount="NaN")), "type amount"),
    "Infinity amount": (_raw(_event("b-5", amount="Infinity")), "type amount"),
    "huge amount": (_raw(_event("b-6", amount=2_000_000)), "maximum amount"),
    "bare NaN token": (_raw(_event("b-7")).replace(b"12.5", b"NaN"), "invalid JSON: NaN is not a JSON number"),
    "future": (_raw(_event("b-8", event_time=(NOW + timedelta(days=400)).isoformat())),
               "x-aegis-time-range event_time"),
    "before epoch": (_raw(_event("b-9", event_time="1969-07-20T20:17:40+00:00")), "x-aegis-time-range event_time"),
    "before 2000": (_raw(_event("b-10", event_time="1999-12-31T23:59:59Z")), "x-aegis-time-range event_time"),
    "unknown currency": (_raw(_event("b-11", currency="XXX")), "enum currency"),
    "lower-case currency": (_raw(_event("b-12", currency="eur")), "pattern currency"),
    "wrong type amount": (_raw(_event("b-13", amount="twelve")), "type amount"),
    "object amount": (_raw(_event("b-14", amount={"value": 1})), "type amount"),
    "wrong type latitude": (_raw(_event("b-15", latitude="north")), "type latitude"),
    "latitude out of range": (_raw(_event("b-16", latitude=91)), "maximum latitude"),
    "unknown channel": (_raw(_event("b-17", channel="bitcoin")), "enum channel"),
    "bad MCC": (_raw(_event("b-18", merchant_category="54a1")), "pattern merchant_category"),
    "oversized": (_raw(_event("b-19", device_id="x" * 20_000)), "record larger than 16384 bytes"),
    "invalid UTF-8": (b'{"transaction_id": "\xff\xfe", "amount": 1}', "invalid UTF-8"),
    "not JSON": (b"this is not json", "invalid JSON"),
    "JSON array": (b"[1, 2, 3]", "not a JSON object"),
    "empty record": (None, "empty record"),
    "unknown field": (_raw(_event("b-20", colour="red")), "additionalProperties colour"),
    "unparseable time": (_raw(_event("b-21", event_time="yesterday")), "pattern event_time"),
    "time without zone": (_raw(_event("b-22", event_time="2026-01-01T10:00:00")), "pattern event_time"),
    "card format": (_raw(_event("b-23", card_number="4111-1111")), "pattern card_number"),
    "year 0": (_raw(_event("b-24", event_time="0000-01-01T00:00:00Z")), "format event_time"),
    "two objects": (_raw(_event("b-25")) + _raw(_event("b-26")), "one value per message"),
    "card number in device_id": (_raw(_event("b-27", device_id=CARD)), "card number outside card_number: device_id"),
}
# A producer retry (same record twice) and a conflicting re-send (same id, other amount).
DUPLICATES = [_raw(_event("dup-same")), _raw(_event("dup-same")),
              _raw(_event("dup-conflict", amount=10.0)), _raw(_event("dup-conflict", amount=99.0))]
VALUES = VALID + DUPLICATES + [v for v, _ in BAD.values()]
FIRST_BAD = len(VALID) + len(DUPLICATES)


@pytest.fixture(scope="module")
def parsed(spark) -> Iterator[DataFrame]:
    """The records above, parsed and checked like a stream micro-batch (no broker needed)."""
    checked = parse_transactions(kafka_frame(spark, VALUES), "test-card-key").persist()
    yield checked
    checked.unpersist()


def test_each_bad_record_is_quarantined_with_its_reason(parsed: DataFrame) -> None:
    rows = {r["kafka_offset"]: r for r in quarantine_rows(parsed, "stream", 7).collect()}
    for i, (label, (_, reason)) in enumerate(BAD.items()):
        row = rows.get(FIRST_BAD + i)
        assert row is not None, f"{label}: not quarantined"
        assert reason in row["reason"], (label, row["reason"])
        assert row["ingest_batch_id"] == 7 and row["source"] == "stream"
        assert row["raw_value"] is None or CARD.encode() not in bytes(row["raw_value"]), label
    assert set(rows) == set(range(FIRST_BAD, len(VALUES)))


def test_input_count_is_valid_plus_quarantined(parsed: DataFrame) -> None:
    valid = valid_rows(parsed, "stream", 7)
    quarantined = quarantine_rows(parsed, "stream", 7)
    assert valid.count() + quarantined.count() == len(VALUES)
    assert valid.count() == len(VALID) + len(DUPLICATES)
    assert valid.filter(F.size(FAILED) > 0).count() == 0


def test_the_contract_check_runs_once_per_record_when_its_result_is_filtered(spark) -> None:
    """The hot path filters valid rows straight after the check: the plan evaluates the check once."""
    valid = parse_transactions(kafka_frame(spark, VALUES), "test-card-key").filter(F.size(FAILED) == 0)
    plan = valid.select("transaction_id", "amount")._jdf.queryExecution().executedPlan().toString()
    assert plan.count("ArrowEvalPython") == 1, plan
    assert valid.count() == len(VALID) + len(DUPLICATES)


def test_duplicates_are_reported_not_lost_silently(parsed: DataFrame) -> None:
    """Both deliveries of an id pass the row rules; bronze keeps one (insert_new collapses duplicate
    deliveries, asserted end to end in test_stream), and the batch check records how many rows were
    collapsed and how many ids came with conflicting content."""
    valid_ids = [r[0] for r in valid_rows(parsed, "stream", 7).select("transaction_id").collect()]
    assert valid_ids.count("dup-same") == 2 and valid_ids.count("dup-conflict") == 2
    rows = {r["expectation"]: r for r in stream_batch_checks(parsed, load_suite("transactions"), "q", 7)}
    unique = rows["values_to_be_unique(transaction_id)"]
    observed = json.loads(unique["observed"])
    assert unique["success"] is False and unique["critical"] is True
    assert observed["duplicate_rows"] == 2 and observed["conflicting_versions"] == 1
    assert observed["element_count"] == len(VALID) + len(DUPLICATES)  # admitted rows only


def test_stream_batch_checks_report_what_the_quarantine_caught(parsed: DataFrame) -> None:
    rows = {r["expectation"]: r for r in stream_batch_checks(parsed, "transactions", "q", 7)}
    assert len(rows) == len(load_suite("transactions"))
    amount = json.loads(rows["values_to_be_between(amount)"]["observed"])
    assert amount["unexpected_count"] == 2  # negative and 2,000,000 ("NaN" and "Infinity" are no numbers)
    assert amount["observed_value"]["min"] == -5
    assert rows["values_to_be_between(amount)"]["success"] is False
    nulls = json.loads(rows["values_to_not_be_null(customer_id)"]["observed"])
    assert nulls["element_count"] == len(VALUES) and nulls["unexpected_count"] >= 1
    mean = json.loads(rows["mean_to_be_between(amount)"]["observed"])
    assert rows["mean_to_be_between(amount)"]["success"] and 1 <= mean["observed_value"] <= 100
    assert all(r["stream_batch_id"] == 7 and r["run_id"] == "q" for r in rows.values())


def test_single_aggregation_agrees_with_great_expectations(parsed: DataFrame) -> None:
    whole = parsed.drop(FAILED)  # every input row counts as admitted, as gx sees them
    ours = stream_batch_checks(whole, "transactions", "q", 7, now=NOW)
    theirs = validate_dataframe(whole, "transactions", "q", stream_batch_id=7, now=NOW)
    assert [r["expectation"] for r in ours] == [r["expectation"] for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        name = a["expectation"]
        assert a["critical"] == b["critical"] and b["stream_batch_id"] == 7
        if name == "mean_to_be_between(amount)":
            continue  # NaN amounts: gx's mean is NaN (fails); ours skips NaN (those rows are quarantined)
        assert a["success"] == b["success"], (name, a["observed"], b["observed"])
        if name.startswith(("values_to_not", "values_to_be_between", "values_to_be_in", "values_to_match", "value_")):
            assert json.loads(a["observed"])["unexpected_count"] == json.loads(b["observed"])["unexpected_count"], name


# ----------------------------------------------------------------------------------------- nightly


@pytest.fixture(scope="module")
def nightly_day(spark, settings: Settings, trained) -> date:
    """A full history day (two days ago: clear of the stream tests' live data), backfilled."""
    from jobs.backfill import BackfillConfig, backfill
    from jobs.base import JobContext

    day = datetime.now(UTC).date() - timedelta(days=2)
    backfill(JobContext(settings, spark), BackfillConfig(date_from=day, date_to=day))
    return day


def test_nightly_validates_a_day_stores_results_and_builds_data_docs(
    spark, settings: Settings, nightly_day: date
) -> None:
    report = validate_day(spark, settings, nightly_day, "quality-it-ok")
    assert report.failed_critical == [], report.summary()
    assert all(report.rows_checked[s] > 0 for s in ("transactions", "features", "scores")), report.rows_checked
    assert report.rows_checked["features"] == report.rows_checked["scores"] == report.rows_checked["transactions"]
    index = settings.path(settings.quality.data_docs_dir) / "index.html"
    assert report.data_docs_index == index and index.exists()
    assert "scores" in index.read_text() and "features" in index.read_text()
    stored = read_table(spark, VALIDATION_RESULTS, settings.lakehouse_root).filter(F.col("run_id") == "quality-it-ok")
    assert stored.count() == len(report.rows)
    assert {r[0] for r in stored.select("suite").distinct().collect()} == {"transactions", "features", "scores"}
    assert stored.filter(F.col("data_date") != F.lit(nightly_day)).count() == 0


def test_a_failed_critical_expectation_is_named(spark, settings: Settings, nightly_day: date, tmp_path: Path) -> None:
    other = make_settings(tmp_path)  # a separate lakehouse and Data Docs folder
    gold = read_table(spark, SCORES, settings.lakehouse_root).filter(F.col("event_date") == F.lit(nightly_day))
    sample = gold.limit(20).persist()
    broken = sample.limit(1).withColumn("transaction_id", F.lit("bad-score")).withColumn("score", F.lit(1.5))
    append_idempotent(sample.unionByName(broken), SCORES, other.lakehouse_root, "quality-it", 0)
    sample.unpersist()
    report = validate_day(spark, other, nightly_day, "quality-it-bad", suites=("scores",))
    assert report.failed_critical == ["scores: values_to_be_between(score)"]
    observed = json.loads(next(r for r in report.rows if r["expectation"] == "values_to_be_between(score)")["observed"])
    assert observed["unexpected_count"] == 1 and observed["unexpected_examples"] == [1.5]
    with pytest.raises(QualityGateError, match=r"values_to_be_between\(score\)"):
        report.raise_for_critical()
    assert (other.path(other.quality.data_docs_dir) / "index.html").exists()
