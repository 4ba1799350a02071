"""Handbook data: conversion to the contract, validation messages, fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sources.contract import (
    LABEL_FRAME_DTYPES,
    TRANSACTION_FRAME_DTYPES,
    TRANSACTION_OPTIONAL,
    frame_to_events,
    validate_event,
)
from sources.fixtures import handbook_fixture_frame, write_handbook_fixture
from sources.handbook import (
    HANDBOOK_DTYPES,
    SourceDataError,
    detect_schema,
    from_handbook,
    read_handbook,
    to_handbook,
    validate_frame,
)
from sources.simulator import Simulator, SimulatorConfig


def handbook_frame() -> pd.DataFrame:
    """Five hand-made rows in the handbook schema."""
    times = pd.to_datetime(
        ["2018-04-01 00:00:31", "2018-04-01 00:02:10", "2018-04-01 07:30:00", "2018-04-02 12:00:00",
         "2018-04-03 23:59:59"]
    )  # fmt: skip
    return pd.DataFrame(
        {
            "transaction_id": np.array([0, 1, 2, 3, 4], dtype="int64"),
            "tx_datetime": times.astype("datetime64[ns]"),
            "customer_id": np.array([596, 4961, 2, 596, 17], dtype="int64"),
            "terminal_id": np.array([3156, 3412, 1365, 3156, 9], dtype="int64"),
            "tx_amount": [57.16, 81.51, 146.0, 0.0, 230.5],
            "tx_time_seconds": np.array([31, 130, 27000, 129600, 259199], dtype="int64"),
            "tx_time_days": np.array([0, 0, 0, 1, 2], dtype="int64"),
            "tx_fraud": np.array([0, 0, 1, 0, 1], dtype="int8"),
            "tx_fraud_scenario": np.array([0, 0, 2, 0, 1], dtype="int8"),
        }
    )


def contract_frame() -> pd.DataFrame:
    tx, _ = from_handbook(handbook_frame())
    return tx


def error_for(df: pd.DataFrame) -> SourceDataError:
    with pytest.raises(SourceDataError) as info:
        validate_frame(df)
    return info.value


# ----------------------------------------------------------------------------- conversion


def test_from_handbook_converts_every_column() -> None:
    src = handbook_frame()
    tx, labels = from_handbook(src)
    assert {c: str(t) for c, t in tx.dtypes.items()} == TRANSACTION_FRAME_DTYPES
    assert {c: str(t) for c, t in labels.dtypes.items()} == LABEL_FRAME_DTYPES
    assert tx["transaction_id"].tolist() == ["0", "1", "2", "3", "4"]
    assert tx["customer_id"].tolist() == ["596", "4961", "2", "596", "17"]
    assert tx["terminal_id"].tolist() == ["3156", "3412", "1365", "3156", "9"]
    assert tx["event_time"].iloc[0] == pd.Timestamp("2018-04-01T00:00:31Z")
    assert tx["event_time"].iloc[4] == pd.Timestamp("2018-04-03T23:59:59+00:00")
    assert tx["amount"].tolist() == src["tx_amount"].tolist()
    assert (tx["currency"] == "EUR").all() and (tx["schema_version"] == "1").all()
    assert tx["is_fraud"].tolist() == [False, False, True, False, True]
    assert tx["fraud_scenario"].tolist() == [0, 0, 2, 0, 1]
    assert all(tx[c].isna().all() for c in TRANSACTION_OPTIONAL)
    # a label for every row, fraud or not, 7 days later by default
    assert len(labels) == len(src)
    assert set(labels["transaction_id"]) == set(tx["transaction_id"])
    merged = tx.merge(labels, on="transaction_id", suffixes=("", "_label"))
    assert ((merged["reported_at"] - merged["event_time"]) == pd.Timedelta(days=7)).all()
    assert (merged["is_fraud"] == merged["is_fraud_label"]).all()
    assert labels["reported_at"].is_monotonic_increasing
    # the results are valid contract events
    assert all(validate_event(e, "transaction") == [] for e in frame_to_events(tx, "transaction"))
    assert all(validate_event(e, "label") == [] for e in frame_to_events(labels, "label"))
    first = next(frame_to_events(tx, "transaction"))
    assert first["event_time"] == "2018-04-01T00:00:31.000+00:00" and "is_fraud" not in first


def test_from_handbook_label_delay_and_index() -> None:
    src = handbook_frame()
    src.index = [10, 11, 12, 13, 14]
    tx, labels = from_handbook(src, label_delay="2h")
    assert tx.index.tolist() == [0, 1, 2, 3, 4]
    assert labels["reported_at"].iloc[0] == pd.Timestamp("2018-04-01T02:00:31Z")
    tx0, labels0 = from_handbook(src, label_delay=pd.Timedelta(0))
    assert (labels0["reported_at"].to_numpy() == tx0["event_time"].to_numpy()).all()
    with pytest.raises(ValueError, match="label_delay"):
        from_handbook(src, label_delay="-1D")
    with pytest.raises(SourceDataError, match="expected the handbook schema"):
        from_handbook(contract_frame())
    with pytest.raises(SourceDataError, match="negative amounts"):
        from_handbook(src.assign(tx_amount=-1.0))


def test_handbook_and_contract_frames_validate() -> None:
    assert detect_schema(handbook_frame()) == "handbook"
    assert detect_schema(contract_frame()) == "contract"
    validate_frame(handbook_frame())
    validate_frame(contract_frame())
    validate_frame(handbook_frame().drop(columns=["tx_time_seconds", "tx_time_days"]))
    validate_frame(handbook_frame().assign(tx_datetime=lambda d: d.tx_datetime.astype(str)))  # CSV-like
    tx, _ = Simulator(SimulatorConfig(seed=3, n_customers=100, n_terminals=200)).history(days=2)
    validate_frame(tx)


def test_to_handbook_roundtrip() -> None:
    tx, _ = Simulator(SimulatorConfig(seed=3, n_customers=100, n_terminals=200).with_fraud_rate(0.05)).history(days=3)
    hb = to_handbook(tx)
    assert {c: str(t) for c, t in hb.dtypes.items()} == HANDBOOK_DTYPES
    validate_frame(hb)
    assert hb["transaction_id"].tolist() == list(range(len(tx)))
    assert hb["customer_id"].tolist() == tx["customer_id"].str[1:].astype(int).tolist()  # "C0000012" -> 12
    assert (hb["tx_time_days"] == hb["tx_time_seconds"] // 86_400).all() and hb["tx_time_seconds"].min() >= 0
    back, _ = from_handbook(hb)
    assert back["amount"].tolist() == tx["amount"].tolist()
    assert back["fraud_scenario"].tolist() == tx["fraud_scenario"].tolist()
    assert (back["event_time"] == tx["event_time"].to_numpy()).all()
    # ids without one-to-one digits fall back to ranks
    odd = tx.assign(customer_id=tx["customer_id"].str.replace("C", "X1"), terminal_id="same")
    ranks = to_handbook(odd)
    assert ranks["terminal_id"].eq(0).all()
    assert ranks["customer_id"].nunique() == tx["customer_id"].nunique()


# ----------------------------------------------------------------------------- validation errors


def test_missing_columns_say_which_schema() -> None:
    err = error_for(handbook_frame().drop(columns=["tx_amount", "tx_fraud"]))
    assert err.schema == "handbook"
    assert "handbook schema" in str(err) and "tx_amount" in str(err) and "tx_fraud" in str(err)
    assert err.columns == {"tx_amount", "tx_fraud"}
    err = error_for(contract_frame().drop(columns=["currency"]))
    assert err.schema == "contract" and "contract schema" in str(err) and "currency" in str(err)
    err = error_for(pd.DataFrame({"id": [1], "value": [2.0]}))
    assert err.schema is None
    assert "neither" in str(err) and "tx_datetime" in str(err) and "event_time" in str(err)
    with pytest.raises(SourceDataError, match="DataFrame"):
        validate_frame([1, 2, 3])  # type: ignore[arg-type]


def test_wrong_types_are_reported_with_rows() -> None:
    df = handbook_frame()
    df["customer_id"] = ["596", "4961", "x", "596", "17"]
    df["tx_amount"] = ["57.16", 81.51, "lots", 0.0, 230.5]
    df["tx_fraud"] = [0, 0, 2, 0, 1]
    err = error_for(df)
    msg = str(err)
    assert "customer_id: wrong type: expected integer ids" in msg
    assert "0='596'" in msg and "2='x'" in msg
    assert "tx_amount: wrong type: expected numbers" in msg and "2='lots'" in msg
    assert "tx_fraud: wrong values: expected 0/1 flags" in msg and "2=2" in msg
    assert err.columns == {"customer_id", "tx_amount", "tx_fraud"}
    err = error_for(handbook_frame().assign(tx_datetime=np.arange(5)))
    assert "tx_datetime: wrong type: expected timestamps" in str(err)
    err = error_for(contract_frame().assign(customer_id=[1, 2, 3, 4, 5]))
    assert "customer_id: wrong type: expected string ids" in str(err)


def test_unparseable_timestamps() -> None:
    df = handbook_frame()
    df["tx_datetime"] = ["2018-04-01 00:00:31", "not a date", "2018-13-45 00:00:00", None, "2018-04-03 23:59:59"]
    msg = str(error_for(df))
    assert "tx_datetime: unparseable timestamps (2 rows; first rows: 1='not a date', 2='2018-13-45 00:00:00')" in msg
    assert "tx_datetime: null timestamps (1 row; first rows: 3=nan)" in msg
    tx = contract_frame()
    tx["event_time"] = tx["event_time"].dt.tz_localize(None)
    assert "naive timestamps" in str(error_for(tx))
    tx["event_time"] = ["2018-04-01T00:00:31+00:00", "2018-04-01T00:02:10", "x", "2018-04-02T12:00:00Z",
                        "2018-04-03T23:59:59.5+02:00"]  # fmt: skip
    msg = str(error_for(tx))
    assert "event_time: unparseable timestamps (ISO-8601 with zone offset) (2 rows; first rows: 1=" in msg


@pytest.mark.parametrize(
    ("value", "issue"),
    [(-5.0, "negative amounts"), (np.nan, "NaN/null amounts"), (np.inf, "infinite amounts")],
)
def test_bad_amounts(value: float, issue: str) -> None:
    df = handbook_frame()
    df.loc[3, "tx_amount"] = value
    err = error_for(df)
    assert str(err).endswith(f"tx_amount: {issue} (1 row; first rows: 3={value})")
    tx = contract_frame()
    tx.loc[1, "amount"] = value
    assert f"amount: {issue} (1 row; first rows: 1={value})" in str(error_for(tx))


def test_null_ids() -> None:
    df = handbook_frame()
    df["terminal_id"] = [3156.0, np.nan, 1365.0, np.nan, 9.0]
    assert "terminal_id: null ids (2 rows; first rows: 1=nan, 3=nan)" in str(error_for(df))
    df = handbook_frame().astype({"customer_id": "Int64"})
    df.loc[0, "customer_id"] = pd.NA
    assert "customer_id: null ids (1 row; first rows: 0=null)" in str(error_for(df))
    tx = contract_frame()
    tx.loc[2, "customer_id"] = None
    tx.loc[4, "customer_id"] = " "
    assert "customer_id: null ids (2 rows; first rows: 2=nan, 4=' ')" in str(error_for(tx))


def test_duplicate_transaction_ids() -> None:
    df = handbook_frame()
    df.loc[4, "transaction_id"] = 1
    msg = str(error_for(df))
    assert "transaction_id: duplicate transaction ids (2 rows; first rows: 1=1, 4=1)" in msg
    tx = contract_frame()
    tx.loc[0, "transaction_id"] = "3"
    assert "duplicate transaction ids (2 rows; first rows: 0='3', 3='3')" in str(error_for(tx))


def test_at_most_five_rows_shown_and_all_problems_listed() -> None:
    df = pd.concat([handbook_frame()] * 2, ignore_index=True)
    df["transaction_id"] = np.arange(10)
    df["tx_amount"] = -1.0
    df.loc[9, "customer_id"] = -7  # negative ids are fine, integers all the same
    df["tx_fraud_scenario"] = df["tx_fraud_scenario"].astype("float64")
    df.loc[0, "tx_fraud_scenario"] = 0.5
    err = error_for(df)
    amount = next(p for p in err.problems if p.columns == ("tx_amount",))
    assert amount.count == 10 and len(amount.rows) == 5
    assert "(10 rows; first rows: 0=-1.0, 1=-1.0, 2=-1.0, 3=-1.0, 4=-1.0)" in str(err)
    assert "tx_fraud_scenario: wrong type: expected integers" in str(err)
    assert str(err).startswith("invalid handbook frame: 2 problems")


def test_contract_value_checks() -> None:
    tx = contract_frame()
    tx.loc[0, "currency"] = "eur"
    tx.loc[1, "channel"] = "web"
    tx.loc[2, "merchant_category"] = "54"
    tx.loc[3, "latitude"] = 123.0
    tx.loc[4, "card_number"] = "4111-1111-1111-1111"
    msg = str(error_for(tx))
    for text in ("currency: unknown ISO 4217", "0='eur'", "channel: channel not one of", "1='web'",
                 "merchant_category:", "2='54'", "latitude: values outside [-90, 90]", "3=123.0",
                 "card_number: card numbers must be 12-19 digits"):  # fmt: skip
        assert text in msg, text


# ----------------------------------------------------------------------------- fixtures and files


def test_fixture_files(tmp_path: Path) -> None:
    fx = write_handbook_fixture(tmp_path / "data")
    assert fx.parquet_path.exists() and fx.csv_path.exists()
    frame = fx.frame
    assert {c: str(t) for c, t in frame.dtypes.items()} == HANDBOOK_DTYPES
    assert 200 < len(frame) < 600 and frame["customer_id"].nunique() <= 50
    assert frame["tx_datetime"].min() >= pd.Timestamp("2018-04-01")
    assert frame["tx_datetime"].max() < pd.Timestamp("2018-04-04")
    assert (frame["tx_datetime"] == frame["tx_datetime"].dt.floor("s")).all()
    assert set(frame["tx_fraud_scenario"]) == {0, 1, 2, 3, 4}
    assert frame["transaction_id"].is_monotonic_increasing and frame["tx_datetime"].is_monotonic_increasing
    for path in (fx.parquet_path, fx.csv_path):
        loaded = read_handbook(path)
        pd.testing.assert_frame_equal(loaded, frame)
        validate_frame(loaded)
    pd.testing.assert_frame_equal(handbook_fixture_frame(), frame)  # deterministic
    tx, labels = from_handbook(read_handbook(fx.csv_path))
    assert len(labels) == len(tx) == len(frame)
    with pytest.raises(ValueError, match="unsupported"):
        read_handbook(tmp_path / "x.json")


def test_read_handbook_keeps_bad_csv_columns_for_validation(tmp_path: Path) -> None:
    df = handbook_frame().astype({"customer_id": object})
    df.loc[2, "customer_id"] = "abc"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    loaded = read_handbook(path)
    assert "customer_id: wrong type" in str(error_for(loaded)) and "2='abc'" in str(error_for(loaded))
