"""Validation of scoring frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.validation import ScoringInputError, validate_scoring_frame

NAMES = ["amount", "hour_sin", "is_night"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"amount": [1.0, 2.0, 3.0], "hour_sin": [0.0, 0.5, 1.0], "is_night": [0.0, 1.0, 0.0]})


def test_valid_frame_returns_ordered_matrix() -> None:
    frame = _frame()[["is_night", "amount", "hour_sin"]]
    matrix = validate_scoring_frame(frame, NAMES)
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix[:, 0], [1.0, 2.0, 3.0])


def test_missing_and_extra_columns_are_named() -> None:
    frame = _frame().drop(columns=["hour_sin"]).assign(merchant="x")
    with pytest.raises(ScoringInputError) as info:
        validate_scoring_frame(frame, NAMES)
    assert info.value.issues.missing == ["hour_sin"]
    assert info.value.issues.extra == ["merchant"]
    assert "missing columns: ['hour_sin']" in str(info.value)
    assert "unexpected extra columns: ['merchant']" in str(info.value)
    # extras can be tolerated explicitly
    validate_scoring_frame(_frame().assign(merchant="x"), NAMES, allow_extra=True)


def test_non_numeric_dtype_is_named() -> None:
    frame = _frame().assign(amount=["1", "2", "3"])
    with pytest.raises(ScoringInputError, match="'amount' has non-numeric dtype") as info:
        validate_scoring_frame(frame, NAMES)
    assert list(info.value.issues.non_numeric) == ["amount"]


def test_nan_and_inf_report_first_rows() -> None:
    frame = _frame()
    frame.loc[[1, 2], "amount"] = np.nan
    frame.loc[0, "is_night"] = np.inf
    frame.index = [10, 11, 12]  # positions, not labels, are reported
    with pytest.raises(ScoringInputError) as info:
        validate_scoring_frame(frame, NAMES)
    assert info.value.issues.nan_rows == {"amount": [1, 2]}
    assert info.value.issues.inf_rows == {"is_night": [0]}
    assert "'amount' has NaN/missing values, first at rows [1, 2]" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_nullable_and_bool_dtypes() -> None:
    frame = _frame().astype({"amount": "Int64"}).assign(is_night=[True, False, True])
    matrix = validate_scoring_frame(frame, NAMES)
    assert matrix[:, 2].tolist() == [1.0, 0.0, 1.0]
    frame.loc[1, "amount"] = pd.NA
    with pytest.raises(ScoringInputError, match="NaN"):
        validate_scoring_frame(frame, NAMES)


def test_duplicated_column_rejected() -> None:
    frame = pd.concat([_frame(), _frame()[["amount"]]], axis=1)
    with pytest.raises(ScoringInputError, match="duplicated columns: \\['amount'\\]"):
        validate_scoring_frame(frame, NAMES)
