"""Contract checks for whole frames of historical data (the importer's Parquet and CSV files).

The handbook and contract schemas are checked in ``sources.handbook``; this adds what the stream's
record check also enforces, so an import cannot put at rest what the stream would refuse: no card
number outside ``card_number`` and times inside the contract's range.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from quality.pan import find_pans
from quality.records import CARD_FIELD, READABLE_FROM, READABLE_UNTIL, load_contract

_CANDIDATE = r"\d[\d \-]{10,}\d"
SAMPLE = 5


def card_number_problems(df: pd.DataFrame) -> list[str]:
    """One line per column (other than ``card_number``) holding card numbers, with masked examples."""
    problems = []
    for column in df.columns:
        if column == CARD_FIELD or not (df[column].dtype == object or pd.api.types.is_string_dtype(df[column])
                                        or pd.api.types.is_integer_dtype(df[column])):
            continue
        text = df[column].astype("string")
        candidates = text[text.str.contains(_CANDIDATE, regex=True, na=False)]
        hits = [(index, pan.masked) for index, value in candidates.items() for pan in find_pans(str(value))]
        if hits:
            shown = ", ".join(f"row {i}: {masked}" for i, masked in hits[:SAMPLE])
            problems.append(f"column {column!r}: card number outside card_number in {len(hits)} rows ({shown})")
    return problems


def time_range_problems(values: pd.Series, column: str, kind: str, now: datetime | None = None) -> list[str]:
    """A line when ``values`` (tz-aware) leave the contract's range for ``column`` (or the readable range)."""
    contract = load_contract("transaction" if kind == "transaction" else "label")
    time_range = contract.time_ranges.get(column)
    low, high = time_range.bounds(now or datetime.now(UTC)) if time_range else (READABLE_FROM, READABLE_UNTIL)
    low, high = low or READABLE_FROM, high or READABLE_UNTIL
    outside = values[(values < low) | (values > high)]
    if outside.empty:
        return []
    shown = ", ".join(f"row {i}: {v}" for i, v in outside.head(SAMPLE).items())
    return [f"column {column!r}: {len(outside)} times outside {low.isoformat()} .. {high.isoformat()} ({shown})"]
