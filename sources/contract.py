"""The transaction and label event contract (v1) in code.

The JSON Schema files in ``conf/contracts/`` are the source of truth on the
wire; this module mirrors them for Python use (column lists, accepted values,
frame dtypes) and offers validation and (de)serialisation helpers.

Wire conventions:

* JSON, UTF-8, one event per Kafka message; the key is ``customer_id`` for
  both transactions and labels (so a customer's events stay in one partition).
* Times are ISO-8601 strings with a zone offset; producers write UTC with
  millisecond precision (``2026-11-21T10:00:00.123+00:00``).
* Optional fields are omitted when unknown (``null`` is not allowed).
* Ground truth (``is_fraud``/``fraud_scenario`` of a transaction) never
  travels with the transaction; it arrives later as a label event.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

EventKind = Literal["transaction", "label"]

SCHEMA_VERSION = "1"

CONTRACTS_DIR: Path = Path(__file__).resolve().parent.parent / "conf" / "contracts"
TRANSACTION_SCHEMA_PATH: Path = CONTRACTS_DIR / f"transaction.v{SCHEMA_VERSION}.json"
LABEL_SCHEMA_PATH: Path = CONTRACTS_DIR / f"label.v{SCHEMA_VERSION}.json"

#: Kafka message key field, per event kind.
TRANSACTION_KEY_FIELD = "customer_id"
LABEL_KEY_FIELD = "customer_id"

TRANSACTION_REQUIRED: tuple[str, ...] = (
    "schema_version",
    "transaction_id",
    "event_time",
    "customer_id",
    "terminal_id",
    "amount",
    "currency",
)
TRANSACTION_OPTIONAL: tuple[str, ...] = (
    "card_number",
    "device_id",
    "merchant_category",
    "channel",
    "latitude",
    "longitude",
)
TRANSACTION_COLUMNS: tuple[str, ...] = TRANSACTION_REQUIRED + TRANSACTION_OPTIONAL

LABEL_REQUIRED: tuple[str, ...] = (
    "schema_version",
    "transaction_id",
    "customer_id",
    "terminal_id",
    "is_fraud",
    "reported_at",
)
LABEL_OPTIONAL: tuple[str, ...] = ()
LABEL_COLUMNS: tuple[str, ...] = LABEL_REQUIRED + LABEL_OPTIONAL

#: Ground-truth columns that simulated / handbook transaction frames carry in
#: addition to the contract columns. Never part of a transaction event.
GROUND_TRUTH_COLUMNS: tuple[str, ...] = ("is_fraud", "fraud_scenario")

ID_COLUMNS: tuple[str, ...] = ("transaction_id", "customer_id", "terminal_id")
TIME_COLUMNS: dict[EventKind, str] = {"transaction": "event_time", "label": "reported_at"}
MAX_ID_LENGTH = 64

CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm", "moto")

#: ISO 4217 codes accepted in ``currency`` (same list as the schema's enum).
ACCEPTED_CURRENCIES: frozenset[str] = frozenset(
    {
        "AED", "ARS", "AUD", "BGN", "BRL", "CAD", "CHF", "CLP", "CNY", "COP",
        "CZK", "DKK", "EGP", "EUR", "GBP", "HKD", "HUF", "IDR", "ILS", "INR",
        "ISK", "JPY", "KES", "KRW", "KZT", "MAD", "MXN", "MYR", "NGN", "NOK",
        "NZD", "PEN", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "SAR", "SEK",
        "SGD", "THB", "TRY", "TWD", "UAH", "USD", "VND", "ZAR",
    }
)  # fmt: skip
DEFAULT_CURRENCY = "EUR"

CARD_NUMBER_PATTERN = re.compile(r"^[0-9]{12,19}$")
MCC_PATTERN = re.compile(r"^[0-9]{4}$")
ISO_TIME_PATTERN = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)

#: Timestamp dtype of time columns in frames (microseconds: Spark/Delta precision).
TIMESTAMP_UNIT = "us"
TIMESTAMP_DTYPE = f"datetime64[{TIMESTAMP_UNIT}, UTC]"

#: Canonical pandas dtypes of transaction frames (contract + ground truth).
TRANSACTION_FRAME_DTYPES: dict[str, str] = {
    "schema_version": "str",
    "transaction_id": "str",
    "event_time": TIMESTAMP_DTYPE,
    "customer_id": "str",
    "terminal_id": "str",
    "amount": "float64",
    "currency": "str",
    "card_number": "str",
    "device_id": "str",
    "merchant_category": "str",
    "channel": "str",
    "latitude": "float64",
    "longitude": "float64",
    "is_fraud": "bool",
    "fraud_scenario": "int8",
}
#: Canonical pandas dtypes of label frames.
LABEL_FRAME_DTYPES: dict[str, str] = {
    "schema_version": "str",
    "transaction_id": "str",
    "customer_id": "str",
    "terminal_id": "str",
    "is_fraud": "bool",
    "reported_at": TIMESTAMP_DTYPE,
}


class FraudScenario(IntEnum):
    """Ground-truth fraud scenario codes (``fraud_scenario`` column)."""

    GENUINE = 0
    AMOUNT_OUTLIER = 1
    COMPROMISED_TERMINAL = 2
    ACCOUNT_TAKEOVER = 3
    CARD_TESTING = 4


class ContractError(ValueError):
    """An event does not satisfy the contract."""


# --------------------------------------------------------------------------- schemas


def schema_path(kind: EventKind) -> Path:
    """Path of the JSON Schema file for an event kind."""
    if kind == "transaction":
        return TRANSACTION_SCHEMA_PATH
    if kind == "label":
        return LABEL_SCHEMA_PATH
    raise ValueError(f"unknown event kind {kind!r}")


@functools.cache
def load_schema(kind: EventKind) -> dict[str, Any]:
    """Load (and cache) the JSON Schema of an event kind."""
    with schema_path(kind).open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def _is_zoned_iso_datetime(value: object) -> bool:
    if not isinstance(value, str) or not ISO_TIME_PATTERN.match(value):
        return False
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


@functools.cache
def _validator(kind: EventKind) -> Any:
    import jsonschema  # imported lazily: only validation needs it

    checker = jsonschema.FormatChecker(formats=())
    # jsonschema's own "date-time" check needs the optional rfc3339-validator
    # package; this one is stricter (offset required) and dependency free.
    checker.checks("date-time")(_is_zoned_iso_datetime)
    schema = load_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


def infer_kind(event: Mapping[str, Any]) -> EventKind:
    """Guess the event kind from its fields (labels have ``reported_at``)."""
    return "label" if "reported_at" in event and "event_time" not in event else "transaction"


def validate_event(event: Mapping[str, Any], kind: EventKind | None = None) -> list[str]:
    """Validate a wire-form event dict; return error strings (empty if valid).

    ``kind`` defaults to :func:`infer_kind`. Checks the JSON Schema plus what
    JSON Schema cannot express for Python dicts (finite numbers).
    """
    if not isinstance(event, Mapping):
        return [f"<root>: expected an object, got {type(event).__name__}"]
    kind = kind or infer_kind(event)
    errors: list[str] = []
    for err in sorted(_validator(kind).iter_errors(dict(event)), key=lambda e: list(map(str, e.path))):
        where = "/".join(str(p) for p in err.path) or "<root>"
        errors.append(f"{where}: {err.message}")
    for name, value in event.items():
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f"{name}: {value!r} is not a finite number")
    return errors


def check_event(event: Mapping[str, Any], kind: EventKind | None = None) -> None:
    """Raise :class:`ContractError` if the event is not valid."""
    errors = validate_event(event, kind)
    if errors:
        raise ContractError("; ".join(errors))


# ------------------------------------------------------------------ (de)serialisation


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return False


def format_time(value: Any) -> str:
    """Format a tz-aware timestamp as ISO-8601 UTC with milliseconds.

    Strings are parsed first (they must carry a zone). Naive values are
    rejected: the contract has no implicit zone.
    """
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ContractError(f"timestamp {value!r} has no time zone")
    return ts.tz_convert("UTC").isoformat(timespec="milliseconds")


def _jsonable(name: str, value: Any) -> Any:
    if name in ("event_time", "reported_at"):
        return format_time(value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        return value
    return str(value)


def to_event(row: Mapping[str, Any], kind: EventKind | None = None) -> dict[str, Any]:
    """Wire-form dict of a row (dict, pandas Series, ...).

    Keeps only the contract's fields for ``kind`` (ground truth and other
    extra columns are dropped), omits missing optional values, formats times,
    converts numpy scalars and fills ``schema_version`` when absent.
    """
    kind = kind or infer_kind(row)
    columns = TRANSACTION_COLUMNS if kind == "transaction" else LABEL_COLUMNS
    out: dict[str, Any] = {}
    for name in columns:
        value = row.get(name)
        if name == "schema_version" and _is_missing(value):
            value = SCHEMA_VERSION
        if _is_missing(value):
            continue
        out[name] = _jsonable(name, value)
    return out


def to_json_bytes(row: Mapping[str, Any], kind: EventKind | None = None) -> bytes:
    """Serialise a row to the compact UTF-8 JSON message value."""
    event = to_event(row, kind)
    try:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # NaN/inf in a required numeric field
        raise ContractError(f"non-finite number in event: {event!r}") from exc
    return text.encode("utf-8")


def _reject_constant(name: str) -> float:
    raise ContractError(f"non-finite number {name} in JSON event")


def from_json_bytes(data: bytes | bytearray | str, validate: bool = False) -> dict[str, Any]:
    """Parse a message value into a wire-form dict (times stay ISO strings).

    ``NaN``/``Infinity`` literals are rejected. With ``validate=True`` a
    :class:`ContractError` is raised for events that break the contract.
    """
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    try:
        event = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ContractError(f"invalid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise ContractError(f"expected a JSON object, got {type(event).__name__}")
    if validate:
        check_event(event)
    return event


def kafka_key(event: Mapping[str, Any], kind: EventKind | None = None) -> bytes:
    """Kafka message key of an event (``customer_id`` as UTF-8)."""
    kind = kind or infer_kind(event)
    field = TRANSACTION_KEY_FIELD if kind == "transaction" else LABEL_KEY_FIELD
    return str(event[field]).encode("utf-8")


def frame_to_events(df: pd.DataFrame, kind: EventKind = "transaction") -> Iterator[dict[str, Any]]:
    """Yield the wire-form dict of every row of a transaction or label frame."""
    wanted = TRANSACTION_COLUMNS if kind == "transaction" else LABEL_COLUMNS
    columns = [c for c in wanted if c in df.columns]
    time_col = TIME_COLUMNS[kind]
    sub = df[columns].copy()
    if time_col in sub.columns and isinstance(sub[time_col].dtype, pd.DatetimeTZDtype):
        sub[time_col] = sub[time_col].dt.tz_convert("UTC").map(lambda t: t.isoformat(timespec="milliseconds"))
    for record in sub.to_dict("records"):
        yield to_event(record, kind)


# ------------------------------------------------------------------------ frames


def transaction_frame_dtypes(ground_truth: bool = True) -> dict[str, str]:
    """Canonical dtypes of a transaction frame, optionally with ground truth."""
    dtypes = dict(TRANSACTION_FRAME_DTYPES)
    if not ground_truth:
        for col in GROUND_TRUTH_COLUMNS:
            dtypes.pop(col)
    return dtypes


def conform_frame(df: pd.DataFrame, kind: EventKind = "transaction", ground_truth: bool = True) -> pd.DataFrame:
    """Return ``df`` with the canonical columns (in order) and dtypes.

    Missing optional contract columns are added as all-null, a missing
    ``schema_version`` is filled; ground-truth columns are kept for
    transactions when ``ground_truth`` is true. Extra columns are dropped.
    """
    dtypes = transaction_frame_dtypes(ground_truth) if kind == "transaction" else dict(LABEL_FRAME_DTYPES)
    out: dict[str, Any] = {}
    n = len(df)
    for col, dtype in dtypes.items():
        if col in df.columns:
            series = df[col]
        elif col == "schema_version":
            series = pd.Series([SCHEMA_VERSION] * n, index=df.index)
        else:
            series = pd.Series([None] * n, index=df.index, dtype="object")
        if dtype == TIMESTAMP_DTYPE:
            series = pd.to_datetime(series, utc=True).astype(TIMESTAMP_DTYPE)
        elif dtype == "float64" and series.dtype == object:
            series = pd.to_numeric(series).astype("float64")
        else:
            series = series.astype(dtype)
        out[col] = series
    return pd.DataFrame(out, index=df.index)


def labels_known_at(labels: pd.DataFrame, as_of: Any) -> pd.DataFrame:
    """Labels already reported at ``as_of`` (``reported_at <= as_of``).

    Every transaction gets exactly one label, so the transactions listed here
    are exactly the matured ones at ``as_of``; the others are still open.
    """
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is None:
        raise ValueError("as_of must be time-zone aware")
    return labels[labels["reported_at"] <= ts]
