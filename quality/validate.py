"""Validate DataFrames against the suites in conf/expectations; shape and store the results.

Two ways to check a batch, both derived from the same suite JSON:

* :func:`validate_dataframe` runs the suite through Great Expectations 1.x on a Spark dataframe
  asset (every expectation type, gx semantics, ~seconds per batch: for nightly/ad-hoc checks).
* :func:`stream_batch_checks` computes the batch-level picture of a micro-batch (null rates,
  rule violations with the quarantine's own predicates, min/max, mean, uniqueness, row count) in
  ONE Spark aggregation, with no gx overhead: this is what the stream calls per micro-batch.

Both return rows shaped for ``quality.validation_results`` (lakehouse.tables.VALIDATION_RESULTS);
:func:`write_results` appends them idempotently.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from lakehouse.delta_io import append_idempotent
from lakehouse.tables import VALIDATION_RESULTS
from quality.ingest import FAILED
from quality.rules import ROW_LEVEL, Expectation, failure_predicate, load_suite
from quality.suites import META_NAME, build_suite, resolved_kwargs, to_gx

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )

log = logging.getLogger("aegis.quality")

# Counts and percents without example values: gx then needs ~1 Spark job per suite instead of one
# more per column-map expectation (features: 7 jobs instead of 78, 2.5x faster). Examples are
# fetched afterwards for the failed expectations only (add_examples).
RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}
OBSERVED_KEYS = (
    "element_count", "unexpected_count", "unexpected_percent", "missing_count", "observed_value",
    "duplicate_rows", "conflicting_versions", "scope",
)
EXAMPLES = 5  # unexpected example values kept in ``observed``
EXAMPLES_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": EXAMPLES}
# Business columns of a parsed transaction: same id + different values = a conflicting duplicate.
CONTENT_COLUMNS = ("event_time", "customer_id", "terminal_id", "amount", "currency", "card_token", "device_id",
                   "merchant_category", "channel", "latitude", "longitude")
STREAM_SUPPORTED = ROW_LEVEL | {
    "expect_column_values_to_be_unique",
    "expect_column_mean_to_be_between",
    "expect_table_row_count_to_be_between",
}

_lock = threading.Lock()
_context: Any = None
_assets: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------- rows


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: non-finite floats and datetimes become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def observed_json(result: dict[str, Any]) -> str:
    """The interesting part of an expectation result (counts, observed value, a few examples) as JSON."""
    out = {k: result[k] for k in OBSERVED_KEYS if k in result}
    examples = result.get("partial_unexpected_list")
    if examples:
        out["unexpected_examples"] = list(examples)[:EXAMPLES]
    if "error" in result:
        out["error"] = str(result["error"])[:500]
    return json.dumps(_jsonable(out), sort_keys=True)


def result_row(
    suite: str, expectation: str, success: bool, critical: bool, observed: dict[str, Any], run_id: str,
    validated_at: datetime, data_date: date | None = None, stream_batch_id: int | None = None,
) -> dict[str, Any]:
    """One VALIDATION_RESULTS row."""
    return {
        "run_id": run_id,
        "suite": suite,
        "expectation": expectation,
        "success": bool(success),
        "critical": bool(critical),
        "observed": observed_json(observed),
        "stream_batch_id": stream_batch_id,
        "data_date": data_date,
        "validated_at": validated_at,
        "validation_date": validated_at.astimezone(UTC).date(),
    }


def rows_from_gx(
    validation: ExpectationSuiteValidationResult, suite: str, run_id: str, validated_at: datetime,
    data_date: date | None = None, stream_batch_id: int | None = None,
) -> list[dict[str, Any]]:
    """gx suite validation result -> VALIDATION_RESULTS rows, in suite-file order."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for res in validation.results:
        rows.append(_row_from_gx_result(res, suite, run_id, validated_at, data_date, stream_batch_id))
    return [row for _, row in sorted(rows, key=lambda item: item[0])]


def _row_from_gx_result(
    res: ExpectationValidationResult, suite: str, run_id: str, validated_at: datetime,
    data_date: date | None, stream_batch_id: int | None,
) -> tuple[int, dict[str, Any]]:
    config = res.expectation_config
    meta = dict(config.meta or {}) if config is not None else {}
    name = meta.get(META_NAME) or (config.type if config is not None else "unknown")
    observed = dict(res.result or {})
    info = res.exception_info or {}
    if info.get("raised_exception"):
        observed["error"] = info.get("exception_message") or "expectation raised"
    success = bool(res.success) and not info.get("raised_exception")
    row = result_row(suite, name, success, bool(meta.get("critical")), observed, run_id, validated_at,
                     data_date, stream_batch_id)
    return int(meta.get("index", 1_000_000)), row


def batch_results_to_df(spark: SparkSession, rows: Sequence[dict[str, Any]]) -> DataFrame:
    """Result rows as a DataFrame with the VALIDATION_RESULTS schema."""
    names = VALIDATION_RESULTS.column_names
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], VALIDATION_RESULTS.schema)


def write_results(
    spark: SparkSession, settings: Settings, rows: Sequence[dict[str, Any]], app_id: str, version: int,
    verify: bool = True,
) -> int:
    """Append the rows to quality.validation_results once per (app_id, version); returns rows written."""
    if not rows:
        return 0
    append_idempotent(batch_results_to_df(spark, rows), VALIDATION_RESULTS, settings.lakehouse_root, app_id, version,
                      verify=verify)
    return len(rows)


# ------------------------------------------------------------------------------ Great Expectations


def quiet_context(context: Any) -> Any:
    """No analytics, no progress bars (jobs log; they do not draw)."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.config.analytics_enabled = False
    return context


def _ephemeral_batch_definition(suite_name: str) -> Any:
    """A cached in-memory gx context with one Spark dataframe asset per suite (whole-dataframe batches)."""
    global _context
    with _lock:
        if _context is None:
            import great_expectations as gx

            _context = quiet_context(gx.get_context(mode="ephemeral"))
            _context.data_sources.add_spark("aegis_spark", persist=False)
        if suite_name not in _assets:
            source = _context.data_sources.get("aegis_spark")
            asset = source.add_dataframe_asset(name=suite_name)
            _assets[suite_name] = asset.add_batch_definition_whole_dataframe("whole")
        return _assets[suite_name]


def validate_dataframe(
    spark_df: DataFrame, suite_name: str, run_id: str, data_date: date | None = None,
    stream_batch_id: int | None = None, now: datetime | None = None, examples: bool = True,
) -> list[dict[str, Any]]:
    """Run the suite through gx on a Spark DataFrame; one VALIDATION_RESULTS row per expectation.

    ``observed`` is the JSON of the gx result (unexpected_count/percent, observed_value and, with
    ``examples``, up to 5 unexpected values of each failed expectation). A missing column is a
    failed expectation whose ``observed`` carries the error.
    """
    validated_at = now or datetime.now(UTC)
    suite = build_suite(suite_name, validated_at)
    batch = _ephemeral_batch_definition(suite_name).get_batch(batch_parameters={"dataframe": spark_df})
    validation = batch.validate(suite, result_format=RESULT_FORMAT)
    rows = rows_from_gx(validation, suite_name, run_id, validated_at, data_date, stream_batch_id)
    return add_examples(spark_df, suite_name, rows, validated_at) if examples else rows


def add_examples(df: DataFrame, suite_name: str, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Add ``unexpected_examples`` to the failed column-map expectations' ``observed`` (one more gx run
    over just those expectations; nothing to do when everything passed)."""
    failing = {r["expectation"] for r in rows if not r["success"] and json.loads(r["observed"]).get("unexpected_count")}
    entries = [(i, e) for i, e in enumerate(load_suite(suite_name))
               if e.name in failing and e.type != "expect_column_values_to_not_be_null"]  # nulls: nothing to show
    if not entries:
        return rows
    import great_expectations as gx

    subset = gx.ExpectationSuite(name=f"{suite_name}-examples", expectations=[to_gx(e, i, now) for i, e in entries])
    batch = _ephemeral_batch_definition(suite_name).get_batch(batch_parameters={"dataframe": df})
    found: dict[str, list[Any]] = {}
    for res in batch.validate(subset, result_format=EXAMPLES_FORMAT).results:
        values = (res.result or {}).get("partial_unexpected_list")
        if values and res.expectation_config is not None:
            found[res.expectation_config.meta[META_NAME]] = list(values)[:EXAMPLES]
    out = []
    for row in rows:
        if row["expectation"] in found:
            observed = json.loads(row["observed"])
            observed["unexpected_examples"] = _jsonable(found[row["expectation"]])
            row = {**row, "observed": json.dumps(observed, sort_keys=True)}
        out.append(row)
    return out


# ------------------------------------------------------------------ single-aggregation stream checks


def stream_supported(exp: Expectation) -> bool:
    """Whether :func:`stream_batch_checks` can evaluate the expectation in its one aggregation."""
    return exp.type in STREAM_SUPPORTED


def _exprs(exp: Expectation, i: int, df: DataFrame, admitted: Column, now: datetime) -> list[Column]:
    """Aggregate expressions for one expectation, aliased ``e{i}_<what>``."""
    def alias(c: Column, what: str) -> Column:
        return c.alias(f"e{i}_{what}")

    kw = exp.kwargs
    if exp.type == "expect_table_row_count_to_be_between":
        return [alias(F.count(F.when(admitted, 1)), "n")]
    col = F.col(kw["column"])
    if exp.type == "expect_column_values_to_be_unique":
        # collect_set instead of count_distinct: exact, and no Expand (2x cheaper here); memory is
        # O(distinct ids of one micro-batch).
        key = F.when(admitted, col)
        out = [alias(F.count(key), "n"), alias(F.size(F.collect_set(key)), "distinct")]
        content = [c for c in CONTENT_COLUMNS if c in df.columns and c != kw["column"]]
        if content:
            variant = F.when(admitted & col.isNotNull(), F.struct(col, F.xxhash64(*[F.col(c) for c in content])))
            out.append(alias(F.size(F.collect_set(variant)), "variants"))
        return out
    if exp.type == "expect_column_mean_to_be_between":
        usable = admitted & col.isNotNull() & ~F.isnan(col.cast("double"))
        return [alias(F.avg(F.when(usable, col)), "mean")]
    # Row-level: the quarantine's own predicate, over every input row.
    out = [
        alias(F.count(F.lit(1)), "n"),
        alias(F.count(F.when(col.isNull(), 1)), "missing"),
        alias(F.count(F.when(failure_predicate(exp, now), 1)), "bad"),
    ]
    if exp.type == "expect_column_values_to_be_between":
        out += [alias(F.min(col), "min"), alias(F.max(col), "max")]
    return out


def _mostly_ok(bad: int, population: int, mostly: float | None) -> bool:
    if mostly is None or population == 0:
        return bad == 0
    return (population - bad) / population >= mostly


def _between(value: Any, low: Any, high: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _evaluate(exp: Expectation, i: int, row: dict[str, Any], now: datetime) -> tuple[bool, dict[str, Any]]:
    """(success, observed) from the aggregate row, with gx's semantics for ``mostly``."""
    def get(what: str) -> Any:
        return row[f"e{i}_{what}"]

    kw = resolved_kwargs(exp, now)
    if exp.type == "expect_table_row_count_to_be_between":
        n = get("n")
        return _between(n, kw.get("min_value"), kw.get("max_value")), {"observed_value": n, "scope": "admitted"}
    if exp.type == "expect_column_values_to_be_unique":
        n, distinct = get("n"), get("distinct")
        duplicates = n - distinct
        observed: dict[str, Any] = {"element_count": n, "unexpected_count": duplicates, "duplicate_rows": duplicates,
                                    "scope": "admitted"}
        if f"e{i}_variants" in row:
            observed["conflicting_versions"] = get("variants") - distinct
        return duplicates == 0, observed
    if exp.type == "expect_column_mean_to_be_between":
        mean = get("mean")
        return _between(mean, kw.get("min_value"), kw.get("max_value")), {"observed_value": mean, "scope": "admitted"}
    n, missing, bad = get("n"), get("missing"), get("bad")
    population = n if exp.type == "expect_column_values_to_not_be_null" else n - missing
    observed = {
        "element_count": n, "missing_count": missing, "unexpected_count": bad,
        "unexpected_percent": 100.0 * bad / population if population else 0.0, "scope": "input",
    }
    if exp.type == "expect_column_values_to_be_between":
        observed["observed_value"] = {"min": get("min"), "max": get("max")}
    return _mostly_ok(bad, population, kw.get("mostly")), observed


def stream_batch_checks(
    df: DataFrame, suite: str | Sequence[Expectation], run_id: str = "", stream_batch_id: int | None = None,
    now: datetime | None = None, data_date: date | None = None,
) -> list[dict[str, Any]]:
    """Batch-level results of a micro-batch in ONE Spark aggregation (no gx), from the same suite JSON.

    ``df`` is normally the parsed batch (lakehouse.ingest.parse_transactions). Row-level expectations
    are counted over every input row with the quarantine's own predicates (so their unexpected
    counts are what the quarantine caught); batch-level ones (uniqueness, mean, row count) over the
    rows admitted to bronze (``_failed_rules`` empty) when that column is present. Uniqueness also
    reports ``conflicting_versions``: ids delivered with different content (bronze keeps one).
    Returns [] for an empty batch; expectation types it cannot aggregate are skipped (gx checks them
    nightly), a missing column is reported as a failure.
    """
    current = now or datetime.now(UTC)
    name = suite if isinstance(suite, str) else "transactions"
    entries = load_suite(suite) if isinstance(suite, str) else list(suite)
    admitted = F.size(F.col(FAILED)) == 0 if FAILED in df.columns else F.lit(True)
    planned: list[tuple[int, Expectation]] = []
    missing_rows: list[tuple[int, Expectation]] = []
    exprs: list[Column] = [F.count(F.lit(1)).alias("_rows")]
    for i, exp in enumerate(entries):
        if not stream_supported(exp):
            log.debug("stream_batch_checks: %s is left to the nightly gx validation", exp.name)
            continue
        column = exp.kwargs.get("column")
        if column is not None and column not in df.columns:
            missing_rows.append((i, exp))
            continue
        planned.append((i, exp))
        exprs += _exprs(exp, i, df, admitted, current)
    agg = df.agg(*exprs).first()
    values = agg.asDict() if agg is not None else {"_rows": 0}
    if not values["_rows"]:
        return []
    results: list[tuple[int, dict[str, Any]]] = []
    for i, exp in planned:
        success, observed = _evaluate(exp, i, values, current)
        results.append((i, result_row(name, exp.name, success, exp.critical, observed, run_id, current, data_date,
                                      stream_batch_id)))
    for i, exp in missing_rows:
        observed = {"error": f"column {exp.kwargs['column']!r} not in the batch"}
        results.append((i, result_row(name, exp.name, False, exp.critical, observed, run_id, current, data_date,
                                      stream_batch_id)))
    return [row for _, row in sorted(results, key=lambda item: item[0])]


def failed(rows: Iterable[dict[str, Any]], critical_only: bool = False) -> list[str]:
    """``suite: expectation`` of the failed rows (only critical ones with ``critical_only``)."""
    return [f"{r['suite']}: {r['expectation']}" for r in rows
            if not r["success"] and (r["critical"] or not critical_only)]
