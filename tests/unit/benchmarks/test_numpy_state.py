"""The benchmark's numpy reference against a row-by-row reference of the batch semantics (no Spark)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import numpy_state as state
from features.catalog import FeatureParams, declare_features
from features.spec import Aggregation, Entity

FEATS = declare_features(FeatureParams())
DAY_US = 86_400_000_000


def _events(seed: int, rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    us = 1_500_000_000_000_000 + np.sort(rng.integers(0, 40 * DAY_US, rows))
    us[5] = us[6]  # a tie in time
    frame = pd.DataFrame({
        "transaction_id": [f"t{i:05d}" for i in rng.permutation(rows)],
        "customer": rng.choice(["c1", "c2", "c3"], rows),
        "terminal": rng.choice(["x1", "x2", "x3", "x4"], rows),
        "us": us,
        "amount": rng.choice([10.0, 12.5, 99.99, 0.1], rows),
    })
    reported = us + rng.integers(0, 20 * DAY_US, rows)
    frame["fraud_reported_us"] = np.where(rng.random(rows) < 0.3, reported, state.NO_REPORT)
    return frame


def _reference(frame: pd.DataFrame, target: pd.Series, feat) -> float:
    """One feature of one target, row by row, as the window compilation defines it."""
    key = "customer" if feat.entity is Entity.CUSTOMER else "terminal"
    same = frame[frame[key] == target[key]]
    t = int(target["us"])
    if feat.aggregation is Aggregation.SECONDS_SINCE_PREVIOUS:
        before = same[(same["us"] < t) | ((same["us"] == t) & (same["transaction_id"] < target["transaction_id"]))]
        if before.empty:
            return feat.fill
        gap = (t - before["us"].max()) / 1e6
        return min(gap, feat.window.length.total_seconds())
    end = t - int(feat.window.offset.total_seconds() * 1e6)
    start = end - int(feat.window.length.total_seconds() * 1e6)
    if feat.aggregation is Aggregation.IS_NEW_TERMINAL:
        pair = same[(same["terminal"] == target["terminal"]) & (same["us"] > start) & (same["us"] <= end - 1)]
        return 1.0 if pair.empty else 0.0
    inside = same[(same["us"] > start) & (same["us"] <= end)]
    amounts = inside["amount"].to_numpy()
    agg = feat.aggregation
    value: float | None
    if agg is Aggregation.COUNT:
        value = float(len(inside))
    elif agg is Aggregation.FRAUD_RATE:
        value = float((inside["fraud_reported_us"] <= t).sum()) / len(inside) if len(inside) else None
    elif not len(inside):
        value = None
    elif agg is Aggregation.SUM:
        value = float(amounts.sum())
    elif agg is Aggregation.MEAN:
        value = float(amounts.mean())
    elif agg is Aggregation.MAX:
        value = float(amounts.max())
    elif agg is Aggregation.STD:
        value = float(amounts.std())
    elif agg is Aggregation.RATIO_TO_MEAN:
        mean = amounts.mean()
        value = float(target["amount"] / mean) if mean != 0 else None
    elif agg is Aggregation.ZSCORE:
        std = amounts.std()
        value = float((target["amount"] - amounts.mean()) / std) if std > 1e-9 else None
    else:
        raise AssertionError(agg)
    return feat.fill if value is None or math.isnan(value) else value


@pytest.mark.parametrize("entity", [Entity.CUSTOMER, Entity.TERMINAL])
@pytest.mark.parametrize("seed", [1, 2])
def test_every_feature_matches_the_row_by_row_reference(entity: Entity, seed: int) -> None:
    frame = _events(seed)
    key = "customer" if entity is Entity.CUSTOMER else "terminal"
    events = frame.rename(columns={key: "key", "terminal": "terminal_id"} if key == "customer"
                          else {key: "key"})
    is_target = np.zeros(len(frame), dtype=bool)
    is_target[::3] = True
    got = state.compute(events, is_target, FEATS, entity)
    own = state.route_features(FEATS, entity)
    assert list(got.columns) == [f.name for f in own]
    assert sorted(got.index) == sorted(frame["transaction_id"][is_target])
    for _, target in frame[is_target].iterrows():
        for feat in own:
            expected = _reference(frame, target, feat)
            assert got.at[target["transaction_id"], feat.name] == pytest.approx(expected, abs=1e-9), feat.name


def test_a_tie_in_time_orders_by_transaction_id() -> None:
    events = pd.DataFrame({"key": ["c", "c"], "us": [10_000_000, 10_000_000], "transaction_id": ["b", "a"],
                           "amount": [1.0, 2.0], "terminal_id": ["x", "x"]})
    got = state.compute(events, np.array([True, True]), FEATS, Entity.CUSTOMER)
    assert got.at["a", "customer_seconds_since_prev"] == 30 * 86400.0  # first in (time, id) order
    assert got.at["b", "customer_seconds_since_prev"] == 0.0
    assert got.at["a", "customer_tx_count_1h"] == 2.0  # a window includes ties after it
    assert got.at["b", "customer_terminal_is_new_30d"] == 1.0  # same time is not "before"


def test_a_feature_without_a_state_operation_is_named() -> None:
    bad = [f for f in FEATS if f.entity is Entity.TERMINAL][:1]
    broken = [type(bad[0])(bad[0].name, Entity.TERMINAL, Aggregation.SECONDS_SINCE_PREVIOUS, "x",
                           window=bad[0].window)]
    events = pd.DataFrame({"key": ["x"], "us": [1], "transaction_id": ["a"], "fraud_reported_us": [state.NO_REPORT]})
    with pytest.raises(ValueError, match="no state operation for terminal"):
        state.compute(events, np.array([True]), broken, Entity.TERMINAL)


def test_events_spanning_too_long_are_refused() -> None:
    events = pd.DataFrame({"key": ["c", "c"], "us": [0, 400 * DAY_US], "transaction_id": ["a", "b"],
                           "amount": [1.0, 1.0], "terminal_id": ["x", "x"]})
    with pytest.raises(ValueError, match="expire old events"):
        state.compute(events, np.array([False, True]), FEATS, Entity.CUSTOMER)
