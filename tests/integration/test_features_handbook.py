"""The handbook's 15 baseline features, computed independently in pandas (the handbook's own
rolling-window recipe), must equal what the Spark feature engine computes from the declarations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from features.catalog import HANDBOOK_FEATURES, FeatureParams, feature_names
from features.engine import TARGET, compute_features
from stream.state import featurize_in_state, merge_halves, plan_for, routed_labels, routed_transactions

pytestmark = pytest.mark.integration


def handbook_reference(df: pd.DataFrame, delay_days: int = 7) -> pd.DataFrame:
    """The handbook's chapter-3 feature code, restated (pandas rolling on a datetime index)."""
    df = df.sort_values("tx_datetime").copy()
    df["is_weekend"] = (df.tx_datetime.dt.weekday >= 5).astype(float)
    df["is_night"] = (df.tx_datetime.dt.hour <= 6).astype(float)
    parts = []
    for _, cust in df.groupby("customer_id"):
        cust = cust.set_index("tx_datetime", drop=False)
        for w in (1, 7, 30):
            count = cust.tx_amount.rolling(f"{w}d").count()
            total = cust.tx_amount.rolling(f"{w}d").sum()
            cust[f"customer_tx_count_{w}d"] = count.values
            cust[f"customer_amount_mean_{w}d"] = (total / count).values
        parts.append(cust.reset_index(drop=True))
    df = pd.concat(parts)
    parts = []
    for _, term in df.groupby("terminal_id"):
        term = term.sort_values("tx_datetime", kind="stable").set_index("tx_datetime", drop=False)
        fraud_delay = term.tx_fraud.rolling(f"{delay_days}d").sum()
        count_delay = term.tx_fraud.rolling(f"{delay_days}d").count()
        for w in (1, 7, 30):
            fraud_all = term.tx_fraud.rolling(f"{delay_days + w}d").sum()
            count_all = term.tx_fraud.rolling(f"{delay_days + w}d").count()
            n_tx = count_all - count_delay
            term[f"terminal_tx_count_{w}d_delay{delay_days}d"] = n_tx.values
            term[f"terminal_fraud_rate_{w}d_delay{delay_days}d"] = ((fraud_all - fraud_delay) / n_tx).fillna(0).values
        parts.append(term.reset_index(drop=True))
    out = pd.concat(parts).rename(columns={"tx_amount": "amount"})
    out["transaction_id"] = out.transaction_id.astype(str)
    return out.set_index("transaction_id")


@pytest.fixture(scope="module")
def handbook_slice(handbook_dir: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(handbook_dir / f"transactions-2018-0{m}.parquet") for m in (4, 5)]
    df = pd.concat(frames)
    return df[(df.customer_id < 150) & (df.tx_datetime < "2018-05-16")].reset_index(drop=True)


def _bronze_frames(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transactions, labels) in bronze columns for a handbook frame, labels reported after 7 days."""
    tx = pd.DataFrame(
        {
            "transaction_id": df.transaction_id.astype(str),
            "event_time": df.tx_datetime.dt.tz_localize("UTC"),
            "customer_id": df.customer_id.astype(str),
            "terminal_id": df.terminal_id.astype(str),
            "amount": df.tx_amount,
        }
    )
    tx["event_date"] = tx.event_time.dt.date
    labels = pd.DataFrame(
        {
            "transaction_id": tx.transaction_id,
            "is_fraud": df.tx_fraud.astype(bool),
            "reported_at": tx.event_time + pd.Timedelta(days=7),
        }
    )
    return tx, labels


def test_handbook_features_match_independent_pandas(spark, handbook_slice: pd.DataFrame) -> None:
    df = handbook_slice
    tx, labels = _bronze_frames(df)
    history = spark.createDataFrame(tx).withColumn(TARGET, F.col("event_time") >= F.lit("2018-05-08"))
    got = compute_features(history, spark.createDataFrame(labels), FeatureParams()).toPandas()
    got = got.set_index("transaction_id")
    want = handbook_reference(df).loc[got.index]
    assert len(got) == (df.tx_datetime >= "2018-05-08").sum()
    for name in HANDBOOK_FEATURES:
        np.testing.assert_allclose(got[name].to_numpy(), want[name].to_numpy(dtype=float), rtol=0, atol=1e-9,
                                   err_msg=name)


def test_keyed_state_equals_window_compilation(spark, handbook_slice: pd.DataFrame) -> None:
    """The stream's keyed state (the JVM processor, here in a batch query) gives the windows' values.

    The history holds ties the handbook lacks: copies of transactions at the same instant on the
    same customer and terminal, which exercise the transaction-id tie-break of the
    previous-transaction gap and the peers both engines count inside a window; and fraud labels,
    some reported before, some after the transactions that could count them.
    """
    tx, labels = _bronze_frames(handbook_slice)
    twins = tx.sample(n=200, random_state=7).assign(transaction_id=lambda f: f.transaction_id + "-twin")
    twins["amount"] = twins["amount"] * 1.5
    tx = pd.concat([tx, twins], ignore_index=True)
    labels = pd.concat([labels, labels.sample(n=50, random_state=3).assign(
        transaction_id=lambda f: f.transaction_id + "-twin", is_fraud=True)], ignore_index=True)
    labels = labels.merge(tx[["transaction_id", "customer_id", "terminal_id"]], on="transaction_id")
    recent = tx.event_time >= pd.Timestamp("2018-05-09", tz="UTC")
    params = FeatureParams()
    history = spark.createDataFrame(tx.assign(**{TARGET: recent}))
    label_frame = spark.createDataFrame(labels)
    windows = compute_features(history, label_frame, params).toPandas().set_index("transaction_id").sort_index()
    plan = plan_for(params, 0.0)
    routed = routed_transactions(spark.createDataFrame(tx)).unionByName(routed_labels(label_frame))
    halves = featurize_in_state(spark, routed, plan)
    state = merge_halves(halves, params, plan).toPandas().set_index("transaction_id").sort_index()
    state = state.loc[windows.index]
    assert len(windows) == int(recent.sum()) > 1000
    assert not state["is_late"].any()
    for name in feature_names(params):
        np.testing.assert_allclose(state[name].to_numpy(), windows[name].to_numpy(), rtol=0, atol=1e-9,
                                   err_msg=name)
    assert (state["feature_version"] == windows["feature_version"]).all()
