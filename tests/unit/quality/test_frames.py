"""Whole-frame checks of historical data: card numbers outside card_number, times outside the contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from quality.frames import card_number_problems, time_range_problems

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_card_numbers_are_found_in_string_and_integer_columns_but_not_card_number() -> None:
    df = pd.DataFrame({
        "customer_id": [596, 4111111111111111, 2],
        "device_id": ["d1", None, "x 5500-0055-5555-5559"],
        "card_number": ["4111111111111111", None, "378282246310005"],
        "amount": [1.0, 2.0, 3.0],
    })
    problems = card_number_problems(df)
    assert len(problems) == 2
    assert problems[0].startswith("column 'customer_id': card number outside card_number in 1 rows (row 1: ")
    assert "************1111" in problems[0] and "4111111111111111" not in " ".join(problems)
    assert "column 'device_id'" in problems[1] and "************5559" in problems[1]
    assert card_number_problems(df[["card_number", "amount"]]) == []


def test_times_outside_the_contract_are_named() -> None:
    times = pd.Series(pd.to_datetime(["2018-04-01", "1950-01-01", "2026-11-30"], utc=True))
    problems = time_range_problems(times, "event_time", "transaction", NOW)
    assert len(problems) == 1 and "1 times outside 2000-01-01" in problems[0] and "row 1: 1950-01-01" in problems[0]
    future = pd.Series(pd.to_datetime(["2150-01-01"], utc=True))
    assert "times outside 1900-01-01" in time_range_problems(future, "", "label", NOW)[0]
    assert time_range_problems(times.iloc[[0, 2]], "event_time", "transaction", NOW) == []
