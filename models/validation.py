"""Strict validation of frames sent to the scorer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ScoringInputError", "ScoringIssues", "validate_scoring_frame"]

_MAX_ROWS_REPORTED = 5


@dataclass
class ScoringIssues:
    """Everything wrong with a scoring frame (row indices are 0-based positions)."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    non_numeric: dict[str, str] = field(default_factory=dict)
    nan_rows: dict[str, list[int]] = field(default_factory=dict)
    inf_rows: dict[str, list[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.duplicated or self.non_numeric or self.nan_rows or self.inf_rows)

    def message(self) -> str:
        """Human-readable, one problem per line."""
        lines = ["invalid scoring input:"]
        if self.missing:
            lines.append(f"  missing columns: {self.missing}")
        if self.extra:
            lines.append(f"  unexpected extra columns: {self.extra}")
        if self.duplicated:
            lines.append(f"  duplicated columns: {self.duplicated}")
        for col, dtype in self.non_numeric.items():
            lines.append(f"  column {col!r} has non-numeric dtype {dtype}")
        for label, rows_by_col in (("NaN/missing", self.nan_rows), ("infinite", self.inf_rows)):
            for col, rows in rows_by_col.items():
                lines.append(f"  column {col!r} has {label} values, first at rows {rows}")
        return "\n".join(lines)


class ScoringInputError(ValueError):
    """Raised when a scoring frame does not match the model's feature contract."""

    def __init__(self, issues: ScoringIssues) -> None:
        super().__init__(issues.message())
        self.issues = issues


def _is_numeric(dtype: object) -> bool:
    return bool(pd.api.types.is_numeric_dtype(dtype)) and not pd.api.types.is_complex_dtype(dtype)


def validate_scoring_frame(
    df: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    allow_extra: bool = False,
) -> np.ndarray:
    """Check ``df`` against ``feature_names`` and return the float64 feature matrix.

    Raises :class:`ScoringInputError` naming missing / extra / duplicated columns,
    non-numeric dtypes (booleans count as numeric) and NaN or infinite values with the
    first offending 0-based row positions. The matrix columns follow ``feature_names``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    names = list(feature_names)
    issues = ScoringIssues()
    columns = [str(c) for c in df.columns]
    present = set(columns)
    issues.missing = [c for c in names if c not in present]
    if not allow_extra:
        expected = set(names)
        issues.extra = [c for c in columns if c not in expected]
    issues.duplicated = sorted({c for c in columns if columns.count(c) > 1 and c in set(names)})
    if issues.duplicated:
        raise ScoringInputError(issues)

    renamed = df.set_axis(columns, axis=1)
    matrix = np.empty((len(df), len(names)), dtype=np.float64)
    for j, col in enumerate(names):
        if col not in present:
            continue
        series = renamed[col]
        if not _is_numeric(series.dtype):
            issues.non_numeric[col] = str(series.dtype)
            continue
        column = series.to_numpy(dtype=np.float64, na_value=np.nan)
        matrix[:, j] = column
        if not np.isfinite(column).all():
            nan_rows = np.flatnonzero(np.isnan(column))[:_MAX_ROWS_REPORTED]
            inf_rows = np.flatnonzero(np.isinf(column))[:_MAX_ROWS_REPORTED]
            if nan_rows.size:
                issues.nan_rows[col] = nan_rows.tolist()
            if inf_rows.size:
                issues.inf_rows[col] = inf_rows.tolist()
    if issues:
        raise ScoringInputError(issues)
    return matrix
