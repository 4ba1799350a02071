"""Row-level rules derived from the expectation suites in conf/expectations (the one place rules live).

Row-level expectations (not null, between, in set, regex, length) are compiled to Spark
predicates; a row failing any of them is quarantined with the names of the failed rules.
Batch-level expectations (uniqueness, means) are left to Great Expectations (quality.validate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from conf.settings import CONF_DIR
from quality.records import CARD_FIELD, EventKind, load_contract

SUITES_DIR = CONF_DIR / "expectations"
ROW_LEVEL = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_column_value_lengths_to_be_between",
}


@dataclass(frozen=True)
class Expectation:
    """One expectation of a suite, as written in conf/expectations/<suite>.json."""

    type: str
    kwargs: dict[str, Any]
    critical: bool
    batch_only: bool

    @property
    def name(self) -> str:
        short = self.type.removeprefix("expect_column_").removeprefix("expect_")
        return f"{short}({self.kwargs.get('column', '')})"

    @property
    def row_level(self) -> bool:
        return self.type in ROW_LEVEL and not self.batch_only


def contract_expectations(kind: EventKind) -> list[Expectation]:
    """The row-level expectations a contract implies for its bronze columns (one truth for allowed values).

    ``required`` -> not null; ``minLength``/``maxLength`` -> value lengths; ``const``/``enum`` -> in
    set; ``pattern`` -> regex; ``minimum``/``maximum`` and a time field's ``x-aegis-time-range`` ->
    between. The card number is tokenized before bronze, so it has none. Required fields are critical.
    """
    contract = load_contract(kind)
    out: list[Expectation] = []
    for spec in contract.fields:
        if spec.name == CARD_FIELD:
            continue
        prop = contract.property(spec.name)
        critical = spec.name in contract.required

        def add(kind_: str, **kwargs: Any) -> None:
            out.append(Expectation(kind_, {"column": spec.name, **kwargs}, critical, False))  # noqa: B023

        if critical:
            add("expect_column_values_to_not_be_null")
        if "minLength" in prop or "maxLength" in prop:
            add("expect_column_value_lengths_to_be_between", min_value=prop.get("minLength"),
                max_value=prop.get("maxLength"))
        if "const" in prop:
            add("expect_column_values_to_be_in_set", value_set=[prop["const"]])
        if "enum" in prop:
            add("expect_column_values_to_be_in_set", value_set=list(prop["enum"]))
        if "pattern" in prop and not spec.is_time:
            add("expect_column_values_to_match_regex", regex=prop["pattern"])
        if "minimum" in prop or "maximum" in prop:
            add("expect_column_values_to_be_between", min_value=prop.get("minimum"), max_value=prop.get("maximum"))
        if spec.is_time:
            time_range = contract.time_ranges[spec.name]
            add("expect_column_values_to_be_between", min_value=time_range.minimum, max_value=time_range.maximum)
    return out


def load_suite(name: str, suites_dir: Path = SUITES_DIR) -> list[Expectation]:
    """Read a suite file; fail naming the file on a malformed entry.

    A suite whose ``meta.contract`` names an event kind starts with that contract's row-level
    expectations (:func:`contract_expectations`); its file then holds only batch-level ones.
    """
    path = suites_dir / f"{name}.json"
    data = json.loads(path.read_text())
    contract = data.get("meta", {}).get("contract")
    out = contract_expectations(contract) if contract else []
    for i, raw in enumerate(data["expectations"]):
        if "type" not in raw or "kwargs" not in raw:
            raise ValueError(f"{path}: expectation #{i} needs 'type' and 'kwargs'")
        meta = raw.get("meta", {})
        expectation = Expectation(raw["type"], raw["kwargs"], bool(meta.get("critical")), bool(meta.get("batch_only")))
        if contract and expectation.row_level:
            raise ValueError(f"{path}: expectation #{i} ({expectation.name}) is row-level; this suite takes its "
                             f"row-level rules from the {contract} contract (edit conf/contracts instead)")
        out.append(expectation)
    return out


def resolve_bound(value: Any, now: datetime | None = None) -> Any:
    """Bounds like 'now+1d' are relative to validation time; ISO strings become datetimes."""
    if isinstance(value, str) and value.startswith("now"):
        current = now or datetime.now(UTC)
        rest = value[3:]
        if not rest:
            return current
        sign = 1 if rest[0] == "+" else -1
        amount, unit = int(rest[1:-1]), rest[-1]
        delta = {"d": timedelta(days=amount), "h": timedelta(hours=amount), "m": timedelta(minutes=amount)}[unit]
        return current + sign * delta
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def failure_predicate(exp: Expectation, now: datetime | None = None) -> Column:
    """A column that is true when the row violates ``exp`` (nulls only fail not-null rules)."""
    column = F.col(exp.kwargs["column"])
    kw = exp.kwargs
    if exp.type == "expect_column_values_to_not_be_null":
        return column.isNull()
    if exp.type == "expect_column_values_to_be_between":
        low, high = resolve_bound(kw.get("min_value"), now), resolve_bound(kw.get("max_value"), now)
        bad = F.lit(False)
        if low is not None:
            bad = bad | (column < F.lit(low))
        if high is not None:
            bad = bad | (column > F.lit(high))
        if isinstance(low, int | float) or isinstance(high, int | float):
            bad = bad | F.isnan(column)
        return column.isNotNull() & bad
    if exp.type == "expect_column_values_to_be_in_set":
        return column.isNotNull() & ~column.isin(list(kw["value_set"]))
    if exp.type == "expect_column_values_to_match_regex":
        return column.isNotNull() & ~column.rlike(kw["regex"])
    if exp.type == "expect_column_value_lengths_to_be_between":
        length = F.length(column)
        return column.isNotNull() & ((length < kw["min_value"]) | (length > kw["max_value"]))
    raise ValueError(f"{exp.type} is not a row-level expectation")


def failed_rules_column(suite: list[Expectation], now: datetime | None = None) -> Column:
    """An array<string> column with the names of the row-level rules the row fails."""
    checks = [F.when(failure_predicate(e, now), F.lit(e.name)) for e in suite if e.row_level]
    return F.filter(F.array(*checks), lambda x: x.isNotNull())
