"""A quick model on simple pandas features separates the simulated frauds (time split)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from sources.simulator import SimulatorConfig

DAY = pd.Timedelta(days=1)


def features(tx: pd.DataFrame, labels: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Per-transaction, per-customer (past only) and matured-label terminal features."""
    df = tx.sort_values(["customer_id", "event_time"], kind="stable").reset_index(drop=True)
    seconds = (df.event_time - df.event_time.min()).dt.total_seconds().to_numpy()
    customer = df.customer_id.astype("category").cat.codes.to_numpy().astype(np.int64)
    key = customer * 1e9 + seconds  # sorted; windows never cross customers
    row = np.arange(len(df))
    amount = df.amount.to_numpy()
    cumsum = np.concatenate([[0.0], np.cumsum(amount)])
    out = pd.DataFrame(index=df.index)
    out["log_amount"] = np.log1p(amount)
    local = df.event_time.dt.tz_convert(tz)
    out["hour"] = local.dt.hour
    out["weekday"] = local.dt.dayofweek
    out["channel"] = df.channel.map({"pos": 0, "ecom": 1, "atm": 2, "moto": 3})
    out["foreign_currency"] = (df.currency != "EUR").astype(int)
    for name, window in (("1h", 3600), ("1d", 86400), ("7d", 7 * 86400)):
        first = np.searchsorted(key, key - window, side="left")
        n = row - first
        out[f"customer_count_{name}"] = n
        out[f"customer_mean_{name}"] = np.where(n > 0, (cumsum[row] - cumsum[first]) / np.maximum(n, 1), np.nan)
    by_customer = df.groupby("customer_id", sort=False)
    n_prev = by_customer.cumcount()
    out["customer_n_prev"] = n_prev
    out["amount_ratio"] = amount / ((by_customer.amount.cumsum() - df.amount) / n_prev.replace(0, np.nan))
    out["amount_ratio_7d"] = amount / out["customer_mean_7d"]
    out["new_terminal"] = (df.groupby(["customer_id", "terminal_id"]).cumcount() == 0).astype(int)
    has_device = df.device_id.notna()
    new_device = (df[has_device].groupby(["customer_id", "device_id"]).cumcount() == 0).astype(int)
    out["new_device"] = new_device.reindex(df.index).fillna(-1)
    pos = df[df.channel == "pos"].groupby("customer_id")[["latitude", "longitude"]].median()
    home = pos.reindex(df.customer_id)
    lat0 = home.latitude.to_numpy()
    out["distance_home"] = np.hypot(
        df.latitude.to_numpy() - lat0, (df.longitude.to_numpy() - home.longitude.to_numpy()) * np.cos(np.radians(lat0))
    )
    # terminal risk from labels already reported before the transaction (7-day window)
    lab = labels[["transaction_id", "reported_at", "is_fraud"]].merge(
        tx[["transaction_id", "terminal_id"]], on="transaction_id"
    )
    lab = lab.sort_values("reported_at", kind="stable")
    lab["cum_fraud"] = lab.groupby("terminal_id").is_fraud.cumsum()
    lab["cum_n"] = lab.groupby("terminal_id").cumcount() + 1
    right = lab[["terminal_id", "reported_at", "cum_fraud", "cum_n"]]
    left = df[["terminal_id", "event_time"]].assign(row=df.index).sort_values("event_time")

    def known_at(shift: pd.Timedelta) -> pd.DataFrame:
        m = pd.merge_asof(
            left.assign(event_time=(left.event_time - shift).astype(right.reported_at.dtype)),
            right,
            left_on="event_time",
            right_on="reported_at",
            by="terminal_id",
            allow_exact_matches=False,
        )
        return m.set_index("row").sort_index()[["cum_fraud", "cum_n"]].fillna(0)

    now, week_ago = known_at(pd.Timedelta(0)), known_at(7 * DAY)
    frauds, n = now.cum_fraud - week_ago.cum_fraud, now.cum_n - week_ago.cum_n
    out["terminal_known_frauds_7d"] = frauds.to_numpy()
    out["terminal_known_rate_7d"] = (frauds / n.where(n > 0)).fillna(0).to_numpy()
    out["terminal_known_frauds"] = now.cum_fraud.to_numpy()
    out["y"] = df.is_fraud.to_numpy()
    out["scenario"] = df.fraud_scenario.to_numpy()
    out["event_time"] = df.event_time.to_numpy()
    return out


def test_frauds_are_learnable_on_a_later_time_split(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, labels = history_30d
    f = features(tx, labels, SimulatorConfig().timezone)
    start = tx.event_time.min()
    train = (f.event_time >= start + 3 * DAY) & (f.event_time < start + 20 * DAY)  # 3-day warm-up
    test = f.event_time >= start + 21 * DAY  # one-day gap
    X = f.drop(columns=["y", "scenario", "event_time"])
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, early_stopping=False, random_state=0)
    with threadpool_limits(1):  # OpenMP threads on a busy small machine are slower, and erratic
        model.fit(X[train], f.y[train])
        score = model.predict_proba(X[test])[:, 1]
    assert f.y[test].sum() > 200
    auc = roc_auc_score(f.y[test], score)
    assert auc >= 0.85, auc
    # the easy scenarios are near-perfectly separated
    scored = pd.DataFrame({"y": f.y[test], "scenario": f.scenario[test], "score": score})
    for scenario in (1, 3, 4):
        subset = scored[scored.scenario.isin([0, scenario])]
        assert roc_auc_score(subset.y, subset.score) > 0.9, scenario
