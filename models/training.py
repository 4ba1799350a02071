"""Time-based splits, label maturity, pure (MLflow-free) training and evaluation plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from models.ensemble import FraudEnsemble
from models.members import ForestParams, GBMParams, IsoParams
from models.metrics import (
    card_precision_at_k,
    evaluate_scores,
    handbook_test_filter,
    precision_recall_at_threshold,
)
from models.policy import DecisionPolicy, choose_policy

__all__ = [
    "TimeSplit",
    "TrainResult",
    "matured_labels_only",
    "plots",
    "time_split",
    "train_ensemble",
]

DateLike: TypeAlias = str | pd.Timestamp | np.datetime64


@dataclass(frozen=True)
class TimeSplit:
    """Train / validation / test frames and their half-open ``[from, to)`` bounds."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    train_from: pd.Timestamp
    train_to: pd.Timestamp
    valid_from: pd.Timestamp
    valid_to: pd.Timestamp
    test_from: pd.Timestamp
    test_to: pd.Timestamp


def _window(df: pd.DataFrame, time_col: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    t = pd.to_datetime(df[time_col])
    return df.loc[((t >= start) & (t < end)).to_numpy()]


def time_split(
    df: pd.DataFrame,
    train_from: DateLike,
    train_to: DateLike,
    delay_days: int,
    *,
    valid_days: int = 7,
    test_days: int = 7,
    time_col: str = "event_time",
) -> TimeSplit:
    """Split by time, leaving a gap of ``delay_days`` (the label delay) before each later set.

    ``train = [train_from, train_to)``, ``valid = [train_to + delay, + valid_days)``,
    ``test = [valid_to + delay, + test_days)``. The gaps mimic production: a model
    deployed at the start of a window only knows labels older than the delay, so the
    transactions inside the gaps are used by nobody.
    """
    t0, t1 = pd.Timestamp(train_from), pd.Timestamp(train_to)
    if t1 <= t0:
        raise ValueError("train_to must be after train_from")
    if delay_days < 0 or valid_days <= 0 or test_days <= 0:
        raise ValueError("delay_days must be >= 0 and valid_days/test_days > 0")
    delay = pd.Timedelta(days=delay_days)
    v0 = t1 + delay
    v1 = v0 + pd.Timedelta(days=valid_days)
    s0 = v1 + delay
    s1 = s0 + pd.Timedelta(days=test_days)
    return TimeSplit(
        train=_window(df, time_col, t0, t1),
        valid=_window(df, time_col, v0, v1),
        test=_window(df, time_col, s0, s1),
        train_from=t0,
        train_to=t1,
        valid_from=v0,
        valid_to=v1,
        test_from=s0,
        test_to=s1,
    )


def matured_labels_only(
    df: pd.DataFrame,
    as_of: DateLike,
    label_delay_days: float,
    *,
    time_col: str = "event_time",
) -> pd.DataFrame:
    """Keep rows whose label has matured: ``event_time <= as_of - label_delay``.

    More recent rows are *excluded* (never treated as genuine just because no fraud
    report has arrived yet).
    """
    cutoff = pd.Timestamp(as_of) - pd.Timedelta(days=label_delay_days)
    return df.loc[(pd.to_datetime(df[time_col]) <= cutoff).to_numpy()]


@dataclass
class TrainResult:
    """Output of :func:`train_ensemble`."""

    ensemble: FraudEnsemble
    policy: DecisionPolicy
    metrics: dict[str, float]
    valid_scores: np.ndarray
    test_scores: np.ndarray
    feature_names: list[str]
    params: dict[str, Any] = field(default_factory=dict)


def _card_metrics(
    frame: pd.DataFrame,
    scores: np.ndarray,
    *,
    prefix: str,
    k: int,
    date_col: str,
    customer_col: str,
    label_col: str,
    history: pd.DataFrame | None,
    delay_days: int,
) -> dict[str, float]:
    if date_col not in frame.columns or customer_col not in frame.columns or len(frame) == 0:
        return {}
    scored = frame[[date_col, customer_col, label_col]].assign(score=scores)

    def card_precision(data: pd.DataFrame) -> float:
        return card_precision_at_k(data, k, date_col=date_col, customer_col=customer_col, label_col=label_col)

    out = {f"{prefix}card_precision_at_{k}": card_precision(scored)}
    if history is not None:
        filtered = handbook_test_filter(
            scored, history, delay_days, date_col=date_col, customer_col=customer_col, label_col=label_col
        )
        out[f"{prefix}card_precision_at_{k}_handbook"] = card_precision(filtered)
    return out


def train_ensemble(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    test: pd.DataFrame,
    feature_names: Sequence[str],
    *,
    label_col: str = "is_fraud",
    date_col: str = "event_date",
    customer_col: str = "customer_id",
    gbm_params: GBMParams | None = None,
    iso_params: IsoParams | None = None,
    forest_params: ForestParams | None = None,
    use_anomaly: bool = True,
    use_forest: bool = True,
    refit: bool = True,
    block_precision_target: float = 0.9,
    review_cards_per_day: int = 100,
    card_k: int = 100,
    delay_days: int = 7,
    history: pd.DataFrame | None = None,
    random_state: int = 0,
    train_threads: int = 0,
) -> TrainResult:
    """Fit the ensemble, choose the policy on validation and evaluate on test (no MLflow).

    ``history`` (labelled rows before/around the test period) feeds the handbook filter
    of the card-precision metric; by default ``train + valid + test`` is used.

    With ``refit`` (default) the members end up fitted on ``train + valid``; the policy
    thresholds and the ``valid_*`` metrics then use the ensemble's out-of-sample
    validation scores (members fitted on ``train`` only, same stacking weights), not
    in-sample scores of the refitted members.
    """
    names = list(feature_names)
    ensemble = FraudEnsemble(
        names,
        gbm_params,
        iso_params,
        forest_params,
        use_anomaly=use_anomaly,
        use_forest=use_forest,
        refit=refit,
        random_state=random_state,
        train_threads=train_threads,
    )
    ensemble.fit(train, train[label_col], valid, valid[label_col])
    valid_scores = ensemble.validation_scores if ensemble.validation_scores is not None else ensemble.predict(valid)
    policy = choose_policy(
        valid_scores,
        valid[label_col],
        valid[date_col],
        valid[customer_col],
        block_precision_target=block_precision_target,
        review_cards_per_day=review_cards_per_day,
    )
    test_scores = ensemble.predict(test) if len(test) else np.array([], dtype=np.float64)
    if history is None:
        history = pd.concat([f[[date_col, customer_col, label_col]] for f in (train, valid, test)], ignore_index=True)

    metrics: dict[str, float] = {}
    metrics.update(evaluate_scores(valid[label_col], valid_scores, prefix="valid_"))
    valid_decisions = policy.decide(valid_scores)  # the shares the policy was chosen to produce
    metrics["valid_share_block"] = float(np.mean(valid_decisions == "block"))
    metrics["valid_share_review"] = float(np.mean(valid_decisions == "review"))
    card_kwargs = {
        "k": card_k,
        "date_col": date_col,
        "customer_col": customer_col,
        "label_col": label_col,
        "history": history,
        "delay_days": delay_days,
    }
    metrics.update(_card_metrics(valid, valid_scores, prefix="valid_", **card_kwargs))
    if len(test):
        y_test = test[label_col].to_numpy()
        metrics.update(evaluate_scores(y_test, test_scores, prefix="test_"))
        metrics.update(_card_metrics(test, test_scores, prefix="test_", **card_kwargs))
        block_p, block_r = precision_recall_at_threshold(y_test, test_scores, policy.block_threshold)
        review_p, review_r = precision_recall_at_threshold(y_test, test_scores, policy.review_threshold)
        decisions = policy.decide(test_scores)
        metrics.update(
            {
                "test_block_precision": block_p,
                "test_block_recall": block_r,
                "test_review_or_block_precision": review_p,
                "test_review_or_block_recall": review_r,
                "test_share_block": float(np.mean(decisions == "block")),
                "test_share_review": float(np.mean(decisions == "review")),
            }
        )
    params = {
        **ensemble.describe(),
        **{f"policy_{k}": v for k, v in policy.to_dict().items()},
        "block_precision_target": block_precision_target,
        "review_cards_per_day": review_cards_per_day,
        "n_train": len(train),
        "n_valid": len(valid),
        "n_test": len(test),
    }
    return TrainResult(
        ensemble=ensemble,
        policy=policy,
        metrics=metrics,
        valid_scores=valid_scores,
        test_scores=test_scores,
        feature_names=names,
        params=params,
    )


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # Agg canvas: no GUI, no global pyplot state
    return fig


def plots(
    y: Sequence[int] | np.ndarray | pd.Series,
    scores: Sequence[float] | np.ndarray | pd.Series,
    contributions: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
    *,
    max_features: int = 20,
) -> dict[str, Figure]:
    """Evaluation figures (Agg backend): PR curve, ROC, score distribution by label, SHAP bar.

    Keys: ``pr_curve``, ``roc_curve``, ``score_distribution`` and, when
    ``contributions`` and ``feature_names`` are given, ``shap_summary_bar``
    (mean |contribution| in score units).
    """
    yy = np.asarray(y).astype(np.int64)
    ss = np.asarray(scores, dtype=np.float64)
    figures: dict[str, Figure] = {}

    fig = _figure()
    ax = fig.add_subplot()
    if yy.min(initial=0) != yy.max(initial=0):
        precision, recall, _ = precision_recall_curve(yy, ss)
        ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    figures["pr_curve"] = fig

    fig = _figure()
    ax = fig.add_subplot()
    if yy.min(initial=0) != yy.max(initial=0):
        fpr, tpr, _ = roc_curve(yy, ss)
        ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    figures["roc_curve"] = fig

    fig = _figure()
    ax = fig.add_subplot()
    bins = np.linspace(0.0, 1.0, 51).tolist()
    for label, name in ((0, "genuine"), (1, "fraud")):
        part = ss[yy == label]
        if part.size:
            ax.hist(part, bins=bins, density=True, alpha=0.5, label=f"{name} (n={part.size})")
    ax.set(xlabel="score", ylabel="density", title="Score distribution by label", yscale="log")
    ax.legend()
    figures["score_distribution"] = fig

    if contributions is not None and feature_names is not None:
        names = list(feature_names)
        importance = np.abs(np.asarray(contributions, dtype=np.float64)).mean(axis=0)
        order = np.argsort(importance)[::-1][:max_features][::-1]
        fig = _figure(7.0, max(3.0, 0.3 * len(order) + 1.0))
        ax = fig.add_subplot()
        ax.barh([names[i] for i in order], importance[order])
        ax.set(xlabel="mean |contribution| (score units)", title="SHAP summary")
        fig.tight_layout()
        figures["shap_summary_bar"] = fig
    return figures
