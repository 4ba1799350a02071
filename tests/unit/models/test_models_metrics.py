"""Metrics, in particular the handbook's card precision@k on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.metrics import (
    auc_roc,
    average_precision,
    card_precision_at_k,
    card_precision_at_k_daily,
    evaluate_scores,
    handbook_test_filter,
    precision_recall_at_threshold,
    recall_at_fpr,
)


def _example() -> pd.DataFrame:
    rows = [
        # day 1: customers A..E
        ("2024-01-01", "A", 0.90, 1),
        ("2024-01-01", "A", 0.20, 0),
        ("2024-01-01", "B", 0.80, 0),
        ("2024-01-01", "C", 0.10, 0),
        ("2024-01-01", "C", 0.70, 1),
        ("2024-01-01", "D", 0.30, 1),
        ("2024-01-01", "E", 0.05, 0),
        # day 2: A was detected on day 1 and must be ignored
        ("2024-01-02", "A", 0.99, 1),
        ("2024-01-02", "B", 0.60, 1),
        ("2024-01-02", "D", 0.50, 1),
        ("2024-01-02", "E", 0.40, 0),
        ("2024-01-02", "F", 0.95, 0),
    ]
    return pd.DataFrame(rows, columns=["event_date", "customer_id", "score", "is_fraud"])


def test_card_precision_hand_example() -> None:
    df = _example()
    # Day 1, per customer (max score, any fraud): A(.90,1) B(.80,0) C(.70,1) D(.30,1) E(.05,0)
    #   top-2 = A, B -> 1 fraud -> 1/2; detected = {A}
    # Day 2 without A: F(.95,0) B(.60,1) D(.50,1) E(.40,0)
    #   top-2 = F, B -> 1 fraud -> 1/2; detected = {A, B}
    assert card_precision_at_k(df, k=2) == pytest.approx(0.5)
    # k=3: day 1 top-3 = A, B, C -> 2/3, detected {A, C}
    #      day 2 top-3 = F, B, D -> 2/3
    assert card_precision_at_k(df, k=3) == pytest.approx(2 / 3)
    # k=1: day 1 -> A (fraud) = 1; day 2 w/o A -> F (genuine) = 0
    assert card_precision_at_k(df, k=1) == pytest.approx(0.5)
    # without removal, A tops day 2 again -> 1.0 on both days
    assert card_precision_at_k(df, k=1, remove_detected=False) == pytest.approx(1.0)


def test_card_precision_divides_by_k_and_reports_days() -> None:
    daily = card_precision_at_k_daily(_example(), k=10)
    # day 1: all 5 cards are in the top-10, 3 are fraudulent (A, C, D) -> 3/10, all detected;
    # day 2: A and D are removed -> F(0), B(1), E(0) -> 1/10
    assert daily["card_precision"].tolist() == pytest.approx([0.3, 0.1])
    assert daily["n_detected"].tolist() == [3, 1]
    assert len(daily) == 2


def test_handbook_test_filter_removes_known_compromised_cards() -> None:
    history = pd.DataFrame(
        {
            "event_date": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-09", "2024-01-03"]),
            "customer_id": ["A", "B", "C", "D"],
            "is_fraud": [1, 1, 1, 0],
        }
    )
    test = pd.DataFrame(
        {
            "event_date": pd.to_datetime(["2024-01-10", "2024-01-10", "2024-01-13", "2024-01-10", "2024-01-17"]),
            "customer_id": ["A", "B", "B", "D", "C"],
            "is_fraud": [1, 0, 1, 0, 1],
        }
    )
    kept = handbook_test_filter(test, history, delay_days=7)
    # 2024-01-10 - 7d = 01-03: A's fraud (01-01) is known -> dropped; B's (01-05) not yet -> kept
    # 2024-01-13 - 7d = 01-06: B's fraud (01-05) is known -> dropped
    # 2024-01-17 - 7d = 01-10: C's fraud (01-09) is known -> dropped; D never fraudulent -> kept
    assert kept["customer_id"].tolist() == ["B", "D"]
    assert kept.index.tolist() == [1, 3]


def test_ranking_metrics() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert auc_roc(y, s) == pytest.approx(8 / 9)
    assert 0 < average_precision(y, s) <= 1
    assert recall_at_fpr(y, s, 0.0) == pytest.approx(2 / 3)
    assert recall_at_fpr(y, s, 0.34) == pytest.approx(1.0)
    precision, recall = precision_recall_at_threshold(y, s, 0.35)
    assert (precision, recall) == pytest.approx((0.75, 1.0))
    nothing, _ = precision_recall_at_threshold(y, s, 2.0)
    assert np.isnan(nothing)
    metrics = evaluate_scores(y, s, thresholds=[0.5], prefix="test_")
    assert metrics["test_precision_at_0.5"] == pytest.approx(1.0)
    assert {"test_auc_roc", "test_recall_at_fpr_0.1pct", "test_recall_at_fpr_1pct"} <= metrics.keys()
    assert np.isnan(auc_roc([0, 0], [0.1, 0.2]))
