"""Evaluation metrics, including the Fraud Detection Handbook's card precision@k."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

__all__ = [
    "auc_roc",
    "average_precision",
    "card_precision_at_k",
    "card_precision_at_k_daily",
    "evaluate_scores",
    "handbook_test_filter",
    "precision_recall_at_threshold",
    "recall_at_fpr",
]

ArrayLike: TypeAlias = Sequence[float] | np.ndarray | pd.Series


def _arrays(y: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    yy = np.asarray(y).astype(np.int64).ravel()
    ss = np.asarray(scores, dtype=np.float64).ravel()
    if yy.shape != ss.shape:
        raise ValueError(f"y and scores differ in length: {yy.shape[0]} != {ss.shape[0]}")
    return yy, ss


def _both_classes(y: np.ndarray) -> bool:
    return y.size > 0 and y.min() != y.max()


def auc_roc(y: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (NaN if only one class is present)."""
    yy, ss = _arrays(y, scores)
    return float(roc_auc_score(yy, ss)) if _both_classes(yy) else float("nan")


def average_precision(y: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (area under the precision-recall curve; NaN without positives)."""
    yy, ss = _arrays(y, scores)
    return float(average_precision_score(yy, ss)) if yy.sum() > 0 else float("nan")


def recall_at_fpr(y: ArrayLike, scores: ArrayLike, max_fpr: float) -> float:
    """Highest recall (TPR) reachable with a false-positive rate <= ``max_fpr``."""
    yy, ss = _arrays(y, scores)
    if not _both_classes(yy):
        return float("nan")
    fpr, tpr, _ = roc_curve(yy, ss)
    ok = fpr <= max_fpr
    return float(tpr[ok].max()) if ok.any() else 0.0


def precision_recall_at_threshold(y: ArrayLike, scores: ArrayLike, threshold: float) -> tuple[float, float]:
    """(precision, recall) when flagging ``score >= threshold``; precision NaN if nothing flagged."""
    yy, ss = _arrays(y, scores)
    flagged = ss >= threshold
    tp = float((flagged & (yy == 1)).sum())
    n_flagged = float(flagged.sum())
    n_pos = float((yy == 1).sum())
    precision = tp / n_flagged if n_flagged else float("nan")
    recall = tp / n_pos if n_pos else float("nan")
    return precision, recall


def card_precision_at_k_daily(
    df: pd.DataFrame,
    k: int = 100,
    *,
    date_col: str = "event_date",
    customer_col: str = "customer_id",
    score_col: str = "score",
    label_col: str = "is_fraud",
    remove_detected: bool = True,
) -> pd.DataFrame:
    """Per-day card precision@k (handbook definition), one row per test day.

    For each day (ascending): drop customers detected on an earlier day, reduce the day
    to one row per customer (highest score, any fraud), take the ``k`` customers with the
    highest score (ties broken by customer id) and compute ``n_fraudulent_in_top_k / k``.
    The fraudulent customers of the top-k are "detected" and removed from later days.
    Columns: ``date, card_precision, n_detected, n_compromised`` (compromised cards still
    eligible that day).
    """
    if k <= 0:
        raise ValueError("k must be positive")
    data = pd.DataFrame(
        {
            "date": pd.to_datetime(df[date_col]).dt.normalize().to_numpy(),
            "customer": df[customer_col].to_numpy(),
            "score": df[score_col].to_numpy(dtype=np.float64),
            "fraud": df[label_col].to_numpy().astype(np.int64),
        }
    )
    detected: set[object] = set()
    rows = []
    for day, day_df in data.groupby("date", sort=True):
        eligible = day_df[~day_df["customer"].isin(detected)]
        cards = eligible.groupby("customer", sort=True).agg(score=("score", "max"), fraud=("fraud", "max"))
        cards = cards.reset_index().sort_values(["score", "customer"], ascending=[False, True], kind="stable")
        top = cards.head(k)
        newly_detected = top.loc[top["fraud"] == 1, "customer"].tolist()
        rows.append(
            {
                "date": day,
                "card_precision": len(newly_detected) / k,
                "n_detected": len(newly_detected),
                "n_compromised": int(cards["fraud"].sum()),
            }
        )
        if remove_detected:
            detected.update(newly_detected)
    return pd.DataFrame(rows, columns=["date", "card_precision", "n_detected", "n_compromised"])


def card_precision_at_k(
    df: pd.DataFrame,
    k: int = 100,
    *,
    date_col: str = "event_date",
    customer_col: str = "customer_id",
    score_col: str = "score",
    label_col: str = "is_fraud",
    remove_detected: bool = True,
) -> float:
    """Mean over test days of the handbook's daily card precision@k (see ``card_precision_at_k_daily``).

    As in the handbook the denominator is always ``k``, even on a day with fewer cards.
    """
    daily = card_precision_at_k_daily(
        df,
        k,
        date_col=date_col,
        customer_col=customer_col,
        score_col=score_col,
        label_col=label_col,
        remove_detected=remove_detected,
    )
    return float(daily["card_precision"].mean()) if len(daily) else float("nan")


def handbook_test_filter(
    test_df: pd.DataFrame,
    history_df: pd.DataFrame,
    delay_days: int,
    *,
    date_col: str = "event_date",
    customer_col: str = "customer_id",
    label_col: str = "is_fraud",
) -> pd.DataFrame:
    """Drop test rows of cards already known to be compromised (handbook protocol).

    On test day ``t`` a customer is known compromised if ``history_df`` (training week,
    delay period and, if included, earlier test days) has a fraud on a day strictly before
    ``t - delay_days``: labels of the last ``delay_days`` days are not known yet. Known
    compromised cards would be blocked already, so they are left out of the evaluation.
    """
    frauds = history_df.loc[history_df[label_col].astype(np.int64) == 1, [customer_col, date_col]]
    first_fraud = pd.to_datetime(frauds[date_col]).dt.normalize().groupby(frauds[customer_col].to_numpy()).min()
    test_days = pd.to_datetime(test_df[date_col]).dt.normalize()
    known_since = test_df[customer_col].map(first_fraud)
    cutoff = test_days - pd.Timedelta(days=int(delay_days))
    keep = known_since.isna().to_numpy() | (known_since.to_numpy() >= cutoff.to_numpy())
    return test_df.loc[keep]


def evaluate_scores(
    y: ArrayLike,
    scores: ArrayLike,
    *,
    thresholds: Sequence[float] = (),
    prefix: str = "",
) -> dict[str, float]:
    """AUC ROC, average precision, recall at 0.1% / 1% FPR and precision/recall at thresholds."""
    yy, ss = _arrays(y, scores)
    out = {
        f"{prefix}auc_roc": auc_roc(yy, ss),
        f"{prefix}average_precision": average_precision(yy, ss),
        f"{prefix}recall_at_fpr_0.1pct": recall_at_fpr(yy, ss, 0.001),
        f"{prefix}recall_at_fpr_1pct": recall_at_fpr(yy, ss, 0.01),
        f"{prefix}n_rows": float(yy.size),
        f"{prefix}fraud_rate": float(yy.mean()) if yy.size else float("nan"),
    }
    for thr in thresholds:
        precision, recall = precision_recall_at_threshold(yy, ss, thr)
        out[f"{prefix}precision_at_{thr:g}"] = precision
        out[f"{prefix}recall_at_{thr:g}"] = recall
    return out
