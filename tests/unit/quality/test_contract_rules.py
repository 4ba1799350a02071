"""One truth for allowed values: the transactions suite's row-level rules are the contract's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conf.settings import CONF_DIR
from quality.rules import load_suite

CONTRACT = json.loads((CONF_DIR / "contracts" / "transaction.v1.json").read_text())
PROPS = CONTRACT["properties"]
SUITE = {(e.type.removeprefix("expect_column_"), e.kwargs.get("column")): e for e in load_suite("transactions")
         if e.row_level}


def test_every_rule_is_one_the_contract_states() -> None:
    expected = {("values_to_not_be_null", name) for name in CONTRACT["required"]}
    for name, prop in PROPS.items():
        if name == "card_number":
            continue  # tokenized before bronze
        if "minLength" in prop or "maxLength" in prop:
            expected.add(("value_lengths_to_be_between", name))
        if "enum" in prop or "const" in prop:
            expected.add(("values_to_be_in_set", name))
        if "pattern" in prop and prop.get("format") != "date-time":
            expected.add(("values_to_match_regex", name))
        if "minimum" in prop or "maximum" in prop or "x-aegis-time-range" in prop:
            expected.add(("values_to_be_between", name))
    assert set(SUITE) == expected


def test_sets_ranges_lengths_and_patterns_are_equal() -> None:
    currencies = SUITE[("values_to_be_in_set", "currency")].kwargs["value_set"]
    assert sorted(currencies) == sorted(PROPS["currency"]["enum"]) and {"THB", "ISK", "AED"} <= set(currencies)
    assert SUITE[("values_to_be_in_set", "channel")].kwargs["value_set"] == ["pos", "ecom", "atm", "moto"]
    assert SUITE[("values_to_be_in_set", "schema_version")].kwargs["value_set"] == ["1"]
    amount = SUITE[("values_to_be_between", "amount")].kwargs
    assert (amount["min_value"], amount["max_value"]) == (0, 1_000_000)
    for name, low, high in (("latitude", -90, 90), ("longitude", -180, 180)):
        kwargs = SUITE[("values_to_be_between", name)].kwargs
        assert (kwargs["min_value"], kwargs["max_value"]) == (low, high)
    times = SUITE[("values_to_be_between", "event_time")].kwargs
    assert (times["min_value"], times["max_value"]) == ("2000-01-01T00:00:00+00:00", "now+1d")
    for name in ("transaction_id", "customer_id", "terminal_id", "device_id"):
        kwargs = SUITE[("value_lengths_to_be_between", name)].kwargs
        assert (kwargs["min_value"], kwargs["max_value"]) == (1, 64)
    assert SUITE[("values_to_match_regex", "merchant_category")].kwargs["regex"] == "^[0-9]{4}$"
    assert SUITE[("values_to_not_be_null", "amount")].critical
    assert not SUITE[("values_to_be_in_set", "channel")].critical


def test_a_contract_suite_refuses_its_own_row_level_rules(tmp_path: Path) -> None:
    suite = {"name": "x", "meta": {"contract": "transaction"}, "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "currency", "value_set": ["EUR"]}}]}
    (tmp_path / "x.json").write_text(json.dumps(suite))
    with pytest.raises(ValueError, match="row-level; this suite takes its row-level rules from the transaction"):
        load_suite("x", tmp_path)
