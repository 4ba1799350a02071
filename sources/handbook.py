"""The handbook benchmark data: validation and conversion to the event contract.

The handbook schema (one row per transaction, see ``shared/data/handbook``)::

    transaction_id int64, tx_datetime naive timestamp (UTC), customer_id int64,
    terminal_id int64, tx_amount float64, tx_time_seconds int64,
    tx_time_days int64, tx_fraud int8, tx_fraud_scenario int8

:func:`from_handbook` turns such a frame into contract-shaped transactions
(ids as decimal strings, currency EUR, tz-aware UTC ``event_time``, ground
truth kept in ``is_fraud``/``fraud_scenario``) plus one label per row.
:func:`validate_frame` checks a frame in either accepted schema (handbook or
contract) and raises :class:`SourceDataError` naming the problem columns and
the first offending rows. Everything here is pure pandas (no Spark).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sources.contract import (
    ACCEPTED_CURRENCIES,
    CARD_NUMBER_PATTERN,
    CHANNELS,
    DEFAULT_CURRENCY,
    ISO_TIME_PATTERN,
    MAX_ID_LENGTH,
    MCC_PATTERN,
    SCHEMA_VERSION,
    TIMESTAMP_DTYPE,
    TRANSACTION_COLUMNS,
    TRANSACTION_REQUIRED,
    conform_frame,
)

__all__ = [
    "CONTRACT_FRAME_REQUIRED",
    "HANDBOOK_DTYPES",
    "HANDBOOK_OPTIONAL",
    "HANDBOOK_REQUIRED",
    "Problem",
    "SourceDataError",
    "detect_schema",
    "from_handbook",
    "read_handbook",
    "to_handbook",
    "validate_frame",
]

FrameSchema = Literal["handbook", "contract"]

#: Column dtypes of the handbook schema (as in the benchmark Parquet files).
HANDBOOK_DTYPES: dict[str, str] = {
    "transaction_id": "int64",
    "tx_datetime": "datetime64[ns]",
    "customer_id": "int64",
    "terminal_id": "int64",
    "tx_amount": "float64",
    "tx_time_seconds": "int64",
    "tx_time_days": "int64",
    "tx_fraud": "int8",
    "tx_fraud_scenario": "int8",
}
HANDBOOK_REQUIRED: tuple[str, ...] = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "tx_fraud",
    "tx_fraud_scenario",
)
#: Derived columns: checked when present, not needed for conversion.
HANDBOOK_OPTIONAL: tuple[str, ...] = ("tx_time_seconds", "tx_time_days")
#: Columns a contract-shaped transaction frame must have (schema_version may
#: be absent from a frame: it is filled on conversion / serialisation).
CONTRACT_FRAME_REQUIRED: tuple[str, ...] = tuple(c for c in TRANSACTION_REQUIRED if c != "schema_version")

_HANDBOOK_ONLY = frozenset(HANDBOOK_DTYPES) - {"transaction_id", "customer_id", "terminal_id"}
_CONTRACT_ONLY = frozenset(TRANSACTION_COLUMNS) - {"transaction_id", "customer_id", "terminal_id"}
_MAX_ROWS_SHOWN = 5
#: Default delay between a handbook transaction and its label.
DEFAULT_LABEL_DELAY = pd.Timedelta(days=7)


@dataclass(frozen=True)
class Problem:
    """One validation finding: columns concerned, what is wrong, sample rows."""

    columns: tuple[str, ...]
    issue: str
    rows: tuple[tuple[Any, Any], ...] = ()
    count: int = 0

    def __str__(self) -> str:
        names = ", ".join(self.columns)
        head = f"column{'s' if len(self.columns) > 1 else ''} {names}: {self.issue}"
        if not self.count:
            return head
        shown = ", ".join(f"{idx}={_show(v)}" for idx, v in self.rows)
        return f"{head} ({self.count} row{'s' if self.count > 1 else ''}; first rows: {shown})"


class SourceDataError(ValueError):
    """A source frame is not in an accepted schema or holds invalid values."""

    def __init__(self, schema: FrameSchema | None, problems: list[Problem]) -> None:
        self.schema = schema
        self.problems = problems
        what = f"{schema} frame" if schema else "frame"
        lines = [f"invalid {what}: {len(problems)} problem{'s' if len(problems) > 1 else ''}"]
        lines += [f"- {p}" for p in problems]
        super().__init__("\n".join(lines))

    @property
    def columns(self) -> set[str]:
        """All columns named by the problems."""
        return {c for p in self.problems for c in p.columns}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return "null"
    return str(value)


def _problem(column: str, issue: str, series: pd.Series, mask: np.ndarray | pd.Series) -> Problem | None:
    mask = np.asarray(mask, dtype=bool)
    count = int(mask.sum())
    if not count:
        return None
    bad = series[mask].iloc[:_MAX_ROWS_SHOWN]
    return Problem((column,), issue, tuple(zip(bad.index.tolist(), bad.tolist(), strict=True)), count)


# --------------------------------------------------------------------------- value checks


def _is_integral(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    if isinstance(value, float | np.floating):
        return math.isfinite(value) and float(value).is_integer()
    return False


def _check_int_ids(df: pd.DataFrame, col: str) -> list[Problem]:
    s = df[col]
    null = s.isna().to_numpy()
    out = [_problem(col, "null ids", s, null)]
    if not (pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)):
        wrong = ~null & ~np.array([_is_integral(v) for v in s.tolist()], dtype=bool)
        p = _problem(col, f"wrong type: expected integer ids, dtype is {s.dtype}", s, wrong)
        if p is None and not pd.api.types.is_float_dtype(s.dtype):
            p = Problem((col,), f"wrong type: expected integer ids, dtype is {s.dtype}")
        out.append(p)
    return [p for p in out if p]


def _check_str_ids(df: pd.DataFrame, col: str) -> list[Problem]:
    s = df[col]
    values = s.tolist()
    null = s.isna().to_numpy()
    is_str = np.array([isinstance(v, str) for v in values], dtype=bool)
    empty = is_str & np.array([isinstance(v, str) and not v.strip() for v in values], dtype=bool)
    long = is_str & np.array([isinstance(v, str) and len(v) > MAX_ID_LENGTH for v in values], dtype=bool)
    out = [
        _problem(col, "null ids", s, null | empty),
        _problem(col, f"wrong type: expected string ids, dtype is {s.dtype}", s, ~null & ~is_str),
        _problem(col, f"ids longer than {MAX_ID_LENGTH} characters", s, long),
    ]
    return [p for p in out if p]


def _check_amount(df: pd.DataFrame, col: str) -> list[Problem]:
    s = df[col]
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        numeric = pd.to_numeric(s, errors="coerce")
        wrong = s.notna().to_numpy() & numeric.isna().to_numpy()
        p = _problem(col, f"wrong type: expected numbers, dtype is {s.dtype}", s, wrong)
        return [p or Problem((col,), f"wrong type: expected numbers, dtype is {s.dtype}")]
    v = s.to_numpy(dtype="float64", na_value=np.nan)
    out = [
        _problem(col, "NaN/null amounts", s, np.isnan(v)),
        _problem(col, "infinite amounts", s, np.isinf(v)),
        _problem(col, "negative amounts", s, v < 0),
    ]
    return [p for p in out if p]


def _check_time(df: pd.DataFrame, col: str, need_zone: bool) -> list[Problem]:
    s = df[col]
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        out = [_problem(col, "null timestamps", s, s.isna())]
        if need_zone and not isinstance(s.dtype, pd.DatetimeTZDtype):
            out.append(Problem((col,), "naive timestamps: the contract needs a time zone (tz-aware UTC)"))
        return [p for p in out if p]
    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return [Problem((col,), f"wrong type: expected timestamps, dtype is {s.dtype}")]
    values = s.tolist()
    null = s.isna().to_numpy()
    parsed = pd.to_datetime(s.where(~null), errors="coerce", utc=True, format="ISO8601")
    bad = ~null & parsed.isna().to_numpy()
    if need_zone:
        bad |= ~null & ~np.array([isinstance(v, str) and bool(ISO_TIME_PATTERN.match(v)) for v in values])
    out = [
        _problem(col, "null timestamps", s, null),
        _problem(col, "unparseable timestamps" + (" (ISO-8601 with zone offset)" if need_zone else ""), s, bad),
    ]
    return [p for p in out if p]


def _check_duplicates(df: pd.DataFrame, col: str) -> list[Problem]:
    s = df[col]
    dup = s.duplicated(keep=False).to_numpy() & s.notna().to_numpy()
    p = _problem(col, "duplicate transaction ids", s, dup)
    return [p] if p else []


def _check_flag(df: pd.DataFrame, col: str) -> list[Problem]:
    s = df[col]
    if pd.api.types.is_bool_dtype(s.dtype):
        return []
    ok = np.array([isinstance(v, bool | np.bool_) or (_is_integral(v) and int(v) in (0, 1)) for v in s.tolist()])
    p = _problem(col, f"wrong values: expected 0/1 flags, dtype is {s.dtype}", s, ~ok)
    return [p] if p else []


def _check_int(df: pd.DataFrame, col: str) -> list[Problem]:
    s = df[col]
    if pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any():
        return []
    bad = ~np.array([_is_integral(v) for v in s.tolist()], dtype=bool)
    p = _problem(col, f"wrong type: expected integers, dtype is {s.dtype}", s, bad)
    return [p] if p else []


def _check_set(df: pd.DataFrame, col: str, allowed: Iterable[str], what: str, optional: bool) -> list[Problem]:
    s = df[col]
    allowed_set = set(allowed)
    null = s.isna().to_numpy()
    bad = np.array([v not in allowed_set for v in s.tolist()], dtype=bool) & ~null
    out = [_problem(col, what, s, bad)]
    if not optional:
        out.append(_problem(col, "null values in a required column", s, null))
    return [p for p in out if p]


def _check_pattern(df: pd.DataFrame, col: str, pattern: Any, what: str) -> list[Problem]:
    s = df[col]
    null = s.isna().to_numpy()
    bad = ~null & ~np.array([isinstance(v, str) and bool(pattern.match(v)) for v in s.tolist()], dtype=bool)
    p = _problem(col, what, s, bad)
    return [p] if p else []


def _check_range(df: pd.DataFrame, col: str, lo: float, hi: float) -> list[Problem]:
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return [Problem((col,), f"wrong type: expected numbers, dtype is {s.dtype}")]
    v = s.to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isnan(v) & ~((v >= lo) & (v <= hi))
    p = _problem(col, f"values outside [{lo:g}, {hi:g}]", s, bad)
    return [p] if p else []


# --------------------------------------------------------------------------- schemas


def detect_schema(df: pd.DataFrame) -> FrameSchema | None:
    """Which accepted schema a frame is in: ``handbook``, ``contract`` or None."""
    cols = set(df.columns)
    if all(c in cols for c in HANDBOOK_REQUIRED):
        return "handbook"
    if all(c in cols for c in CONTRACT_FRAME_REQUIRED):
        return "contract"
    return None


def _missing_columns_problem(df: pd.DataFrame) -> tuple[FrameSchema | None, Problem]:
    cols = set(df.columns)
    hb_missing = tuple(c for c in HANDBOOK_REQUIRED if c not in cols)
    ct_missing = tuple(c for c in CONTRACT_FRAME_REQUIRED if c not in cols)
    hb_hits, ct_hits = len(cols & _HANDBOOK_ONLY), len(cols & _CONTRACT_ONLY)
    if hb_hits > ct_hits:
        return "handbook", Problem(hb_missing, "missing required columns of the handbook schema")
    if ct_hits > hb_hits:
        return "contract", Problem(ct_missing, "missing required columns of the contract schema")
    issue = (
        "frame matches neither accepted schema: handbook schema misses "
        f"{', '.join(hb_missing)}; contract schema misses {', '.join(ct_missing)}"
    )
    return None, Problem(tuple(dict.fromkeys(hb_missing + ct_missing)), issue)


def _handbook_problems(df: pd.DataFrame) -> list[Problem]:
    problems: list[Problem] = []
    for col in ("transaction_id", "customer_id", "terminal_id"):
        problems += _check_int_ids(df, col)
    problems += _check_time(df, "tx_datetime", need_zone=False)
    problems += _check_amount(df, "tx_amount")
    problems += _check_flag(df, "tx_fraud")
    problems += _check_int(df, "tx_fraud_scenario")
    for col in HANDBOOK_OPTIONAL:
        if col in df.columns:
            problems += _check_int(df, col)
    problems += _check_duplicates(df, "transaction_id")
    return problems


def _contract_problems(df: pd.DataFrame) -> list[Problem]:
    problems: list[Problem] = []
    for col in ("transaction_id", "customer_id", "terminal_id"):
        problems += _check_str_ids(df, col)
    problems += _check_time(df, "event_time", need_zone=True)
    problems += _check_amount(df, "amount")
    problems += _check_set(df, "currency", ACCEPTED_CURRENCIES, "unknown ISO 4217 currency codes", False)
    if "schema_version" in df.columns:
        problems += _check_set(df, "schema_version", [SCHEMA_VERSION], f"schema_version is not {SCHEMA_VERSION!r}",
                               False)  # fmt: skip
    if "channel" in df.columns:
        problems += _check_set(df, "channel", CHANNELS, f"channel not one of {', '.join(CHANNELS)}", True)
    if "card_number" in df.columns:
        problems += _check_pattern(df, "card_number", CARD_NUMBER_PATTERN, "card numbers must be 12-19 digits")
    if "merchant_category" in df.columns:
        problems += _check_pattern(df, "merchant_category", MCC_PATTERN, "merchant categories must be 4 digits")
    if "latitude" in df.columns:
        problems += _check_range(df, "latitude", -90, 90)
    if "longitude" in df.columns:
        problems += _check_range(df, "longitude", -180, 180)
    if "is_fraud" in df.columns:
        problems += _check_flag(df, "is_fraud")
    problems += _check_duplicates(df, "transaction_id")
    return problems


def validate_frame(df: pd.DataFrame) -> None:
    """Check a handbook- or contract-shaped transaction frame.

    The schema is detected from the columns. Raises :class:`SourceDataError`
    listing every problem: missing required columns (saying which schema the
    frame resembles, or that it matches neither), wrong types, unparseable or
    null timestamps, negative/NaN/infinite amounts, null ids, duplicate
    transaction ids (and, for contract frames, out-of-contract values). Each
    problem names its columns and shows up to 5 offending rows as
    ``index=value``.
    """
    if not isinstance(df, pd.DataFrame):
        raise SourceDataError(None, [Problem((), f"expected a pandas DataFrame, got {type(df).__name__}")])
    schema = detect_schema(df)
    if schema is None:
        guess, problem = _missing_columns_problem(df)
        raise SourceDataError(guess, [problem])
    problems = _handbook_problems(df) if schema == "handbook" else _contract_problems(df)
    if problems:
        raise SourceDataError(schema, problems)


# --------------------------------------------------------------------------- conversion


def from_handbook(
    df: pd.DataFrame,
    label_delay: pd.Timedelta | str = DEFAULT_LABEL_DELAY,
    *,
    validate: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert a handbook frame to ``(transactions, labels)`` in the contract.

    Transactions: contract columns (ids as decimal strings of the ints,
    ``currency`` EUR, ``event_time`` = ``tx_datetime`` as UTC, optional
    columns null) plus ground truth ``is_fraud``/``fraud_scenario``; row
    order kept, index reset. Labels: one per row, fraud or not, with
    ``reported_at = event_time + label_delay``, sorted by ``reported_at``.
    """
    delay = pd.Timedelta(label_delay)
    if delay < pd.Timedelta(0):
        raise ValueError("label_delay must be >= 0")
    if validate:
        validate_frame(df)
        if detect_schema(df) != "handbook":
            raise SourceDataError("contract", [Problem((), "expected the handbook schema, got a contract frame")])
    src = df.reset_index(drop=True)
    event_time = pd.to_datetime(src["tx_datetime"], utc=True, format="ISO8601").astype(TIMESTAMP_DTYPE)
    ids = {c: src[c].astype("int64").astype("str") for c in ("transaction_id", "customer_id", "terminal_id")}
    tx = conform_frame(
        pd.DataFrame(
            {
                "schema_version": SCHEMA_VERSION,
                **ids,
                "event_time": event_time,
                "amount": src["tx_amount"].astype("float64"),
                "currency": DEFAULT_CURRENCY,
                "is_fraud": src["tx_fraud"].astype("int64").astype(bool),
                "fraud_scenario": src["tx_fraud_scenario"].astype("int8"),
            }
        )
    )
    labels = conform_frame(
        pd.DataFrame(
            {
                "schema_version": SCHEMA_VERSION,
                **ids,
                "is_fraud": tx["is_fraud"],
                "reported_at": event_time + delay,
            }
        ),
        kind="label",
    )
    labels = labels.sort_values("reported_at", kind="stable").reset_index(drop=True)
    return tx, labels


def _int_ids(ids: pd.Series) -> pd.Series:
    """Integer ids: the digits of each id when that is one-to-one, else ranks."""
    digits = ids.astype("str").str.replace(r"\D", "", regex=True)
    if (digits.str.len() > 0).all() and (digits.str.len() <= 18).all():
        as_int = digits.astype("int64")
        if pd.DataFrame({"i": ids, "n": as_int}).drop_duplicates()["n"].is_unique:
            return as_int
    codes, _ = pd.factorize(ids, sort=True)
    return pd.Series(codes.astype("int64"), index=ids.index)


def to_handbook(transactions: pd.DataFrame, origin: Any = None) -> pd.DataFrame:
    """Contract-shaped transactions (e.g. from the simulator) in the handbook schema.

    Rows are sorted by event time; ``transaction_id`` is the row number,
    customer/terminal ids the digits of the string ids (or ranks if those are
    not one-to-one); ``tx_datetime`` naive UTC; ``tx_time_seconds``/``days``
    count from ``origin`` (default: midnight UTC of the first event). Ground
    truth comes from ``is_fraud``/``fraud_scenario`` (0 when absent).
    """
    tx = transactions.sort_values("event_time", kind="stable").reset_index(drop=True)
    when = pd.to_datetime(tx["event_time"], utc=True).dt.tz_localize(None).astype("datetime64[ns]")
    start = pd.Timestamp(origin) if origin is not None else when.min().floor("D")
    if start.tzinfo is not None:
        start = start.tz_convert("UTC").tz_localize(None)
    seconds = ((when - start) // pd.Timedelta(seconds=1)).astype("int64")
    fraud = tx["is_fraud"] if "is_fraud" in tx.columns else pd.Series(False, index=tx.index)
    scenario = tx["fraud_scenario"] if "fraud_scenario" in tx.columns else pd.Series(0, index=tx.index)
    out = pd.DataFrame(
        {
            "transaction_id": np.arange(len(tx), dtype="int64"),
            "tx_datetime": when,
            "customer_id": _int_ids(tx["customer_id"]),
            "terminal_id": _int_ids(tx["terminal_id"]),
            "tx_amount": tx["amount"].astype("float64"),
            "tx_time_seconds": seconds,
            "tx_time_days": seconds // 86_400,
            "tx_fraud": fraud.astype(bool).astype("int8"),
            "tx_fraud_scenario": scenario.astype("int8"),
        }
    )
    return out.astype(HANDBOOK_DTYPES)


def read_handbook(path: str | Path) -> pd.DataFrame:
    """Read a handbook-schema Parquet or CSV file (CSV types restored)."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".csv.gz"):
        df = pd.read_csv(path)
        if "tx_datetime" in df.columns:
            df["tx_datetime"] = pd.to_datetime(df["tx_datetime"], format="ISO8601").astype("datetime64[ns]")
        for col, dtype in HANDBOOK_DTYPES.items():
            if col in df.columns and col != "tx_datetime":
                with contextlib.suppress(TypeError, ValueError):  # else left as read: validate_frame tells
                    df[col] = df[col].astype(dtype)
        return df
    raise ValueError(f"unsupported handbook file type: {path.name} (expected .parquet or .csv)")
