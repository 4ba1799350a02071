"""The importer refuses what the stream would quarantine, and never echoes a card number."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from jobs.importer import load_file

ROWS = pd.DataFrame({
    "transaction_id": [0, 1, 2], "tx_datetime": pd.to_datetime(["2018-04-01 00:00:31", "2018-04-01 00:02:10",
                                                                "2018-04-01 00:07:56"]),
    "customer_id": [596, 4961, 2], "terminal_id": [3156, 3412, 1365], "tx_amount": [57.16, 81.51, 146.0],
    "tx_time_seconds": [31, 130, 476], "tx_time_days": [0, 0, 0], "tx_fraud": [0, 0, 0],
    "tx_fraud_scenario": [0, 0, 0],
}).astype({"tx_fraud": "int8", "tx_fraud_scenario": "int8"})


def test_a_clean_handbook_file_loads(tmp_path: Path) -> None:
    ROWS.to_parquet(tmp_path / "ok.parquet")
    tx, labels = load_file(tmp_path / "ok.parquet", pd.Timedelta(days=7))
    assert len(tx) == 3 and len(labels) == 3


def test_a_card_number_in_an_id_column_is_refused_masked(tmp_path: Path) -> None:
    rows = ROWS.copy()
    rows.loc[1, "customer_id"] = 4111111111111111
    rows.to_parquet(tmp_path / "pan.parquet")
    with pytest.raises(ValueError, match=r"column 'customer_id': card number outside card_number") as info:
        load_file(tmp_path / "pan.parquet", pd.Timedelta(days=7))
    assert "4111111111111111" not in str(info.value) and "************1111" in str(info.value)


def test_a_time_before_the_contract_range_is_refused(tmp_path: Path) -> None:
    rows = ROWS.copy()
    rows.loc[2, "tx_datetime"] = pd.Timestamp("1950-01-01")
    rows.to_parquet(tmp_path / "old.parquet")
    with pytest.raises(ValueError, match=r"column 'event_time': 1 times outside 2000-01-01"):
        load_file(tmp_path / "old.parquet", pd.Timedelta(days=7))
