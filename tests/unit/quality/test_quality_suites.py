"""Suite JSON -> gx ExpectationSuite mapping, bounds and result shaping: pure checks, no Spark."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import great_expectations as gx
import pytest
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)

from features.catalog import declare_features
from features.spec import Aggregation
from features.table import features_table
from lakehouse.tables import SCORES, TRANSACTIONS, VALIDATION_RESULTS
from quality.nightly import NightlyQualityReport, QualityGateError
from quality.rules import SUITES_DIR, load_suite, resolve_bound
from quality.suites import META_NAME, SUITE_NAMES, build_suite, class_name, expectation_class, to_gx
from quality.validate import (
    _between,
    _mostly_ok,
    observed_json,
    result_row,
    rows_from_gx,
    stream_supported,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: Bounds written as text in the suite files (ISO times, ``now±...``), resolved by hand for NOW. Numeric
#: bounds must reach gx unchanged; a new text bound needs its row here.
RESOLVED_TEXT_BOUNDS = {
    ("transactions", "values_to_be_between(event_time)", "min_value"): datetime(2000, 1, 1, 0, 0, tzinfo=UTC),
    ("transactions", "values_to_be_between(event_time)", "max_value"): datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
}
CONTRACT_COLUMNS = {
    "transactions": set(TRANSACTIONS.column_names),
    "features": set(features_table().column_names),
    "scores": set(SCORES.column_names),
}


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_every_entry_maps_to_the_gx_class_with_its_kwargs(name: str) -> None:
    raw = json.loads((SUITES_DIR / f"{name}.json").read_text())
    entries = load_suite(name)
    suite = build_suite(name, NOW)
    assert isinstance(suite, gx.ExpectationSuite) and suite.name == name
    assert len(suite.expectations) == len(entries)
    # The file's own entries come last, after any the suite's contract implies, in file order.
    from_file = entries[len(entries) - len(raw["expectations"]):]
    assert [(e.type, e.kwargs) for e in from_file] == [(r["type"], r["kwargs"]) for r in raw["expectations"]]
    by_index = {e.meta["index"]: e for e in suite.expectations}
    for i, exp in enumerate(entries):
        gx_exp = by_index[i]
        assert type(gx_exp).__name__ == class_name(exp.type) and gx_exp.expectation_type == exp.type
        for key, value in exp.kwargs.items():
            expected = RESOLVED_TEXT_BOUNDS[(name, exp.name, key)] if isinstance(value, str) and key in (
                "min_value", "max_value") else value
            assert getattr(gx_exp, key) == expected, (name, i, key)
        assert gx_exp.meta[META_NAME] == exp.name
        assert gx_exp.meta["critical"] is exp.critical and gx_exp.meta["batch_only"] is exp.batch_only


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_suite_columns_exist_in_the_table_contract(name: str) -> None:
    columns = {e.kwargs["column"] for e in load_suite(name) if "column" in e.kwargs}
    assert columns <= CONTRACT_COLUMNS[name], columns - CONTRACT_COLUMNS[name]


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_expectation_names_are_unique(name: str) -> None:
    names = [e.name for e in load_suite(name)]
    assert len(names) == len(set(names))


def test_relative_and_iso_bounds_are_resolved() -> None:
    suite = build_suite("transactions", NOW)
    event_time = next(e for e in suite.expectations if e.meta[META_NAME] == "values_to_be_between(event_time)")
    assert event_time.min_value == datetime(2000, 1, 1, tzinfo=UTC)
    assert event_time.max_value == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert resolve_bound("now", NOW) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert resolve_bound("now-2h", NOW) == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert resolve_bound("now+30m", NOW) == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert resolve_bound("now-1d", NOW) == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    assert resolve_bound("1970-01-01T00:00:00+00:00") == datetime(1970, 1, 1, tzinfo=UTC)
    assert resolve_bound(0) == 0 and resolve_bound(0.5) == 0.5 and resolve_bound(None) is None


def test_unknown_types_and_repeated_names_are_refused(tmp_path: Path) -> None:
    assert expectation_class("expect_column_values_to_not_be_null") is gx.expectations.ExpectColumnValuesToNotBeNull
    with pytest.raises(ValueError, match="expect_column_values_to_be_purple"):
        expectation_class("expect_column_values_to_be_purple")
    entry = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}
    (tmp_path / "twice.json").write_text(json.dumps({"name": "twice", "expectations": [entry, entry]}))
    with pytest.raises(ValueError, match="unique"):
        build_suite("twice", NOW, tmp_path)


def test_features_suite_covers_every_declared_feature() -> None:
    suite = load_suite("features")
    not_null = {e.kwargs["column"] for e in suite if e.type == "expect_column_values_to_not_be_null"}
    ranges = {e.kwargs["column"]: e.kwargs for e in suite if e.type == "expect_column_values_to_be_between"}
    sets = {e.kwargs["column"]: e.kwargs["value_set"] for e in suite if e.type == "expect_column_values_to_be_in_set"}
    for f in declare_features():
        assert f.name in not_null, f.name
        if f.aggregation == Aggregation.FRAUD_RATE:
            assert (ranges[f.name]["min_value"], ranges[f.name]["max_value"]) == (0, 1)
        elif f.aggregation in (Aggregation.CYCLIC_SIN, Aggregation.CYCLIC_COS):
            assert (ranges[f.name]["min_value"], ranges[f.name]["max_value"]) == (-1, 1)
        elif f.aggregation in (Aggregation.COUNT, Aggregation.SUM, Aggregation.STD):
            assert ranges[f.name]["min_value"] == 0
        elif f.aggregation in (Aggregation.FLAG, Aggregation.IS_NEW_TERMINAL):
            assert sets[f.name] == [0, 1]
    assert all(e.critical for e in suite if e.kwargs.get("column") in not_null)


def test_scores_suite_has_the_gating_rules() -> None:
    critical = {e.name for e in load_suite("scores") if e.critical}
    assert {"values_to_be_between(score)", "values_to_be_in_set(decision)", "values_to_not_be_null(model_version)",
            "values_to_be_unique(transaction_id)"} <= critical


def test_stream_checks_support_every_transactions_expectation() -> None:
    assert all(stream_supported(e) for e in load_suite("transactions"))


def test_mostly_and_bounds_follow_gx_semantics() -> None:
    assert _mostly_ok(0, 10, None) and not _mostly_ok(1, 10, None)
    assert _mostly_ok(1, 10, 0.9) and not _mostly_ok(2, 10, 0.9)
    assert _mostly_ok(0, 0, 1.0)
    assert _between(5, 0, 10) and _between(5, None, None) and not _between(11, 0, 10)
    assert not _between(None, 0, 10) and not _between(float("nan"), 0, 10)


def test_result_rows_fit_the_validation_results_contract() -> None:
    row = result_row("scores", "values_to_be_between(score)", False, True,
                     {"unexpected_count": 1, "observed_value": float("nan"), "partial_unexpected_list": [1.5] * 9,
                      "ignored": 1}, "run-1", NOW, date(2026, 2, 28), None)
    assert list(row) == VALIDATION_RESULTS.column_names
    assert row["validation_date"] == NOW.date() and row["data_date"] == date(2026, 2, 28)
    observed = json.loads(row["observed"])
    assert observed == {"unexpected_count": 1, "observed_value": "nan", "unexpected_examples": [1.5] * 5}
    assert json.loads(observed_json({"observed_value": {"min": datetime(2026, 1, 1)}})) == {
        "observed_value": {"min": "2026-01-01T00:00:00"}}


def _gx_result(exp: gx.expectations.Expectation, success: bool, result: dict, error: str | None = None):
    info = {"raised_exception": error is not None, "exception_message": error, "exception_traceback": None}
    return ExpectationValidationResult(success=success, expectation_config=exp.configuration, result=result,
                                       exception_info=info)


def test_gx_results_map_back_to_suite_entries_in_file_order() -> None:
    suite = build_suite("scores", NOW)
    ordered = sorted(suite.expectations, key=lambda e: e.meta["index"])
    results = [_gx_result(e, True, {"unexpected_count": 0}) for e in reversed(ordered)]
    results[0] = _gx_result(ordered[-1], False, {"observed_value": 0}, error="boom")
    validation = ExpectationSuiteValidationResult(success=False, results=results, suite_name="scores")
    rows = rows_from_gx(validation, "scores", "run-1", NOW, data_date=date(2026, 2, 28))
    assert [r["expectation"] for r in rows] == [e.meta[META_NAME] for e in ordered]
    assert rows[-1]["success"] is False and json.loads(rows[-1]["observed"])["error"] == "boom"
    assert all(r["success"] for r in rows[:-1])
    assert [r["critical"] for r in rows] == [e.meta["critical"] for e in ordered]


def test_nightly_report_names_failed_critical_expectations() -> None:
    rows = [
        result_row("scores", "values_to_be_between(score)", False, True, {}, "r", NOW),
        result_row("scores", "values_to_not_be_null(model_name)", False, False, {}, "r", NOW),
        result_row("features", "values_to_not_be_null(amount)", True, True, {}, "r", NOW),
    ]
    report = NightlyQualityReport(NOW.date(), "r", rows)
    assert report.failed_critical == ["scores: values_to_be_between(score)"]
    assert report.failed_warnings == ["scores: values_to_not_be_null(model_name)"]
    assert not report.ok
    with pytest.raises(QualityGateError, match=r"scores: values_to_be_between\(score\)"):
        report.raise_for_critical()
    assert NightlyQualityReport(NOW.date(), "r", rows[1:]).raise_for_critical()["failed_critical"] == []


def test_to_gx_keeps_mostly_and_value_sets() -> None:
    exp = next(e for e in load_suite("transactions") if e.name == "values_to_be_in_set(channel)")
    gx_exp = to_gx(exp, 3, NOW)
    assert gx_exp.mostly == 1.0 and list(gx_exp.value_set) == ["pos", "ecom", "atm", "moto"]
    assert gx_exp.meta == {META_NAME: exp.name, "critical": False, "batch_only": False, "index": 3}
