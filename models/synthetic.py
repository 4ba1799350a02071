"""Synthetic card transactions for tests and benchmarks (feature names are passed in).

Fraud is generated per card: some customers are "compromised" for a few days, and a
share of their transactions in that window is fraudulent. Fraudulent rows get shifted
values on a random subset of the features (two different fraud scenarios), so the
signal is learnable but not trivial.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["make_transactions"]


def make_transactions(
    feature_names: Sequence[str],
    n_rows: int = 20_000,
    *,
    n_days: int = 28,
    n_customers: int = 2_000,
    fraud_rate: float = 0.01,
    signal: float = 1.0,
    compromise_days: int = 3,
    start: str = "2024-01-01",
    seed: int = 0,
) -> pd.DataFrame:
    """Return a frame with ``event_time, event_date, customer_id, is_fraud`` + features.

    ``signal`` scales the shift of informative features for fraudulent rows
    (``signal >= 1`` is clearly separable, ``0`` is pure noise).
    """
    names = list(feature_names)
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, n_days * 86_400, size=n_rows))
    event_time = pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s")
    day_index = (seconds // 86_400).astype(np.int64)
    customer_id = rng.integers(0, n_customers, size=n_rows).astype(np.int64)

    p_fraud_in_window = 0.8
    window_share = min(1.0, compromise_days / n_days)
    q = min(1.0, fraud_rate / (p_fraud_in_window * window_share))
    compromised = rng.random(n_customers) < q
    window_start = rng.integers(0, max(1, n_days - compromise_days + 1), size=n_customers)
    in_window = (
        compromised[customer_id]
        & (day_index >= window_start[customer_id])
        & (day_index < window_start[customer_id] + compromise_days)
    )
    is_fraud = in_window & (rng.random(n_rows) < p_fraud_in_window)

    n_features = len(names)
    x = rng.normal(size=(n_rows, n_features))
    k = max(2, n_features // 4)
    scenario = rng.random(n_rows) < 0.5
    for pattern_rows in (is_fraud & scenario, is_fraud & ~scenario):
        cols = rng.choice(n_features, size=min(k, n_features), replace=False)
        shifts = signal * rng.uniform(0.75, 1.75, size=cols.size) * rng.choice([-1.0, 1.0], size=cols.size)
        x[np.ix_(pattern_rows, cols)] += shifts
    # a non-linear cue shared by all fraud: |x_0| grows
    x[is_fraud, 0] = x[is_fraud, 0] * (1.0 + signal)

    frame = pd.DataFrame(x, columns=names)
    frame.insert(0, "is_fraud", is_fraud.astype(np.int64))
    frame.insert(0, "customer_id", customer_id)
    frame.insert(0, "event_date", event_time.normalize())
    frame.insert(0, "event_time", event_time)
    return frame
