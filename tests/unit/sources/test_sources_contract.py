"""The v1 contract: schema files, code mirror, validation and (de)serialisation."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pandas as pd
import pytest

from sources import contract as c


def good_tx() -> dict[str, object]:
    return {
        "schema_version": "1",
        "transaction_id": "tx-1",
        "event_time": "2026-11-21T10:00:00.123+00:00",
        "customer_id": "C1",
        "terminal_id": "T1",
        "amount": 12.5,
        "currency": "EUR",
        "card_number": "4111111111111111",
        "device_id": "D1",
        "merchant_category": "5411",
        "channel": "pos",
        "latitude": 48.85,
        "longitude": 2.35,
    }


def good_label() -> dict[str, object]:
    return {
        "schema_version": "1",
        "transaction_id": "tx-1",
        "customer_id": "C1",
        "terminal_id": "T1",
        "is_fraud": False,
        "reported_at": "2026-11-28T10:00:00.123Z",
    }


@pytest.mark.parametrize("kind", ["transaction", "label"])
def test_schema_files_are_valid_draft_2020_12(kind: c.EventKind) -> None:
    schema = c.load_schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert c.schema_path(kind).name == f"{kind}.v1.json"


def test_code_mirrors_schema_files() -> None:
    tx = c.load_schema("transaction")
    assert tuple(tx["required"]) == c.TRANSACTION_REQUIRED
    assert tuple(tx["properties"]) == c.TRANSACTION_COLUMNS
    assert set(tx["properties"]["currency"]["enum"]) == c.ACCEPTED_CURRENCIES
    assert tuple(tx["properties"]["channel"]["enum"]) == c.CHANNELS
    assert tx["properties"]["schema_version"]["const"] == c.SCHEMA_VERSION
    label = c.load_schema("label")
    assert tuple(label["required"]) == c.LABEL_REQUIRED
    assert tuple(label["properties"]) == c.LABEL_COLUMNS
    assert set(c.TRANSACTION_FRAME_DTYPES) == set(c.TRANSACTION_COLUMNS) | set(c.GROUND_TRUTH_COLUMNS)
    assert set(c.LABEL_FRAME_DTYPES) == set(c.LABEL_COLUMNS)
    assert all(len(code) == 3 and code.isupper() for code in c.ACCEPTED_CURRENCIES)


def test_valid_events_pass() -> None:
    assert c.validate_event(good_tx()) == []
    assert c.validate_event(good_label()) == []
    minimal = {k: v for k, v in good_tx().items() if k in c.TRANSACTION_REQUIRED}
    assert c.validate_event(minimal, "transaction") == []


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("transaction_id", "", "transaction_id"),
        ("transaction_id", "x" * 65, "transaction_id"),
        ("event_time", "2026-11-21T10:00:00", "event_time"),  # no zone
        ("event_time", "2026-11-21 10:00:00+00:00", "event_time"),
        ("event_time", "2026-13-45T10:00:00+00:00", "event_time"),
        ("amount", -1.0, "amount"),
        ("amount", "12", "amount"),
        ("amount", math.inf, "amount"),
        ("amount", math.nan, "amount"),
        ("currency", "eur", "currency"),
        ("currency", "XYZ", "currency"),
        ("card_number", "4111-1111", "card_number"),
        ("card_number", "12345678901", "card_number"),
        ("merchant_category", "541", "merchant_category"),
        ("channel", "web", "channel"),
        ("latitude", 91.0, "latitude"),
        ("longitude", -181.0, "longitude"),
        ("schema_version", "2", "schema_version"),
        ("customer_id", None, "customer_id"),
        ("surprise", 1, "surprise"),
    ],
)
def test_invalid_transactions_are_reported(field: str, value: object, fragment: str) -> None:
    event = good_tx()
    event[field] = value
    errors = c.validate_event(event, "transaction")
    assert errors, f"{field}={value!r} should fail"
    assert any(fragment in e for e in errors), errors


def test_missing_required_field_is_reported() -> None:
    event = good_tx()
    del event["currency"]
    errors = c.validate_event(event)
    assert any("currency" in e and "required" in e for e in errors), errors
    label = good_label()
    label["is_fraud"] = "no"
    assert any(e.startswith("is_fraud") for e in c.validate_event(label)), c.validate_event(label)


def test_infer_kind() -> None:
    assert c.infer_kind(good_tx()) == "transaction"
    assert c.infer_kind(good_label()) == "label"


def test_json_roundtrip_and_keys() -> None:
    row = pd.Series(
        {
            **good_tx(),
            "event_time": pd.Timestamp("2026-11-21 11:00:00.123456", tz="Europe/Paris"),
            "amount": np.float64(12.5),
            "device_id": np.nan,  # missing optional -> omitted
            "latitude": None,
            "is_fraud": True,  # ground truth never travels with the transaction
            "fraud_scenario": np.int8(3),
        }
    )
    data = c.to_json_bytes(row)
    event = c.from_json_bytes(data, validate=True)
    assert event["event_time"] == "2026-11-21T10:00:00.123+00:00"
    assert "device_id" not in event and "latitude" not in event
    assert "is_fraud" not in event and "fraud_scenario" not in event
    assert event["amount"] == 12.5 and isinstance(event["amount"], float)
    assert json.loads(data) == event
    assert c.kafka_key(event) == b"C1"
    assert c.kafka_key(good_label()) == b"C1"
    label = c.from_json_bytes(c.to_json_bytes({**good_label(), "is_fraud": np.bool_(True)}))
    assert label["is_fraud"] is True and c.validate_event(label) == []


def test_schema_version_filled_when_absent() -> None:
    event = good_tx()
    del event["schema_version"]
    assert c.to_event(event)["schema_version"] == "1"


def test_serialisation_rejects_bad_values() -> None:
    with pytest.raises(c.ContractError, match="non-finite"):
        c.to_json_bytes({**good_tx(), "amount": math.inf})
    with pytest.raises(c.ContractError, match="time zone"):
        c.to_json_bytes({**good_tx(), "event_time": pd.Timestamp("2026-01-01 10:00")})
    with pytest.raises(c.ContractError, match="non-finite"):
        c.from_json_bytes(b'{"amount": NaN}')
    with pytest.raises(c.ContractError, match="invalid JSON"):
        c.from_json_bytes(b"{nope")
    with pytest.raises(c.ContractError, match="object"):
        c.from_json_bytes(b"[1, 2]")
    with pytest.raises(c.ContractError, match="currency"):
        c.from_json_bytes(c.to_json_bytes({**good_tx(), "currency": "XXX"}), validate=True)


def test_frame_helpers() -> None:
    df = pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "event_time": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]),
            "customer_id": ["C1", "C2"],
            "terminal_id": ["T1", "T2"],
            "amount": [1.0, 2.0],
            "currency": ["EUR", "USD"],
            "extra": [1, 2],
        }
    )
    tx = c.conform_frame(df, ground_truth=False)
    assert list(tx.columns) == list(c.TRANSACTION_COLUMNS)
    assert str(tx["event_time"].dtype) == c.TIMESTAMP_DTYPE
    assert tx["channel"].isna().all() and (tx["schema_version"] == "1").all()
    events = list(c.frame_to_events(tx))
    assert events[0] == {
        "schema_version": "1",
        "transaction_id": "a",
        "event_time": "2026-01-01T00:00:00.000+00:00",
        "customer_id": "C1",
        "terminal_id": "T1",
        "amount": 1.0,
        "currency": "EUR",
    }
    assert all(c.validate_event(e) == [] for e in events)
    labels = pd.DataFrame(
        {"transaction_id": ["a", "b"], "reported_at": pd.to_datetime(["2026-01-03", "2026-01-09"], utc=True)}
    )
    known = c.labels_known_at(labels, pd.Timestamp("2026-01-05", tz="UTC"))
    assert known["transaction_id"].tolist() == ["a"]
    with pytest.raises(ValueError, match="time-zone"):
        c.labels_known_at(labels, "2026-01-05")
