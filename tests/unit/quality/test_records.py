"""The strict record check on the hostile corpus, without Spark: one exact reason per record, no PAN left."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from quality.records import PAN_OUTSIDE_CARD, ContractFileError, RecordChecker, load_contract, parse_one_json_value
from tests.hostile import CARD, all_card_numbers, corpus

NOW = datetime.now(UTC)
CASES = corpus("unit", NOW)
CHECKERS = {"transaction": RecordChecker("transaction", "unit-key"), "label": RecordChecker("label")}


def _forms(number: str) -> list[bytes]:
    return [number.encode(), number.encode("utf-16-le"), number.encode("utf-16-be")]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_record_gets_its_reason_and_keeps_no_card_number(case) -> None:
    record = CHECKERS[case.kind].check(case.key, case.value, NOW)
    joined = "; ".join(record.reasons)
    if case.reason is None:
        assert record.valid, joined
        assert "card_number" not in record.values
    else:
        assert case.reason in joined, joined
        stored = [record.raw_key or b"", record.raw_value or b"", joined.encode(),
                  json.dumps(record.values, default=str).encode()]
        for number in all_card_numbers():
            for form in _forms(number):
                assert not any(form in blob for blob in stored), (number, stored)


def test_a_valid_card_number_becomes_a_token_and_last_four() -> None:
    import hashlib
    import hmac

    record = CHECKERS["transaction"].check(b"C1", next(c.value for c in CASES if c.name == "valid"), NOW)
    assert record.values["card_last4"] == "1111"
    assert record.values["card_token"] == hmac.new(b"unit-key", CARD.encode(), hashlib.sha256).hexdigest()


def test_typed_values_follow_the_contract() -> None:
    record = CHECKERS["transaction"].check(b"C1", next(c.value for c in CASES if c.name == "valid-int-amount"), NOW)
    assert record.valid and record.values["amount"] == 12.0 and isinstance(record.values["amount"], float)
    assert record.values["event_time"].tzinfo is not None and record.values["merchant_category"] == "5411"
    wrong = CHECKERS["transaction"].check(b"C1", next(c.value for c in CASES if c.name == "type-amount-string"), NOW)
    assert wrong.values["amount"] is None and wrong.values["customer_id"] == "C0000001"


def test_the_corpus_covers_every_keyword_of_the_contract() -> None:
    keywords = {"type", "required", "const", "additionalProperties", "minLength", "maxLength", "pattern", "enum",
                "minimum", "maximum", "format", "x-aegis-time-range"}
    reasons = " ".join(c.reason or "" for c in CASES)
    assert all(f"{k} " in reasons for k in keywords), keywords - {k for k in keywords if f"{k} " in reasons}
    assert sum(PAN_OUTSIDE_CARD in (c.reason or "") for c in CASES) >= 15


def test_one_json_value_per_message() -> None:
    assert parse_one_json_value(' {"a": 1} \n') == {"a": 1}
    for text, message in [('{"a": 1}{"b": 2}', "a second JSON value"), ('{"a": 1} x', "trailing data"),
                          ('{"a": 1, "a": 2}', "duplicate key a"), ("{'a': 1}", "invalid JSON")]:
        with pytest.raises(ValueError, match=message):
            parse_one_json_value(text)


def test_a_contract_outside_the_readable_time_range_is_refused(tmp_path) -> None:
    contract = json.loads(load_contract("label").path.read_text())
    contract["properties"]["reported_at"]["x-aegis-time-range"]["minimum"] = "1800-01-01T00:00:00+00:00"
    (tmp_path / "label.v1.json").write_text(json.dumps(contract))
    with pytest.raises(ContractFileError, match="must lie within 1900-01-01"):
        load_contract("label", tmp_path)
    del contract["properties"]["reported_at"]["x-aegis-time-range"]
    (tmp_path / "label.v1.json").write_text(json.dumps(contract))
    load_contract.cache_clear()
    with pytest.raises(ContractFileError, match="needs 'x-aegis-time-range'"):
        load_contract("label", tmp_path)
    load_contract.cache_clear()
