"""Allow / review / block decision policy and its selection on validation data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["NEVER_BLOCK_THRESHOLD", "DecisionPolicy", "choose_policy", "policy_version"]

#: Block threshold used when no threshold reaches the precision target. Scores are
#: sigmoids, so a score of exactly 1.0 needs a logit above ~37: in practice nothing is blocked.
NEVER_BLOCK_THRESHOLD = 1.0

ALLOW, REVIEW, BLOCK = "allow", "review", "block"


def policy_version(review_threshold: float, block_threshold: float, **targets: Any) -> str:
    """Short, stable hash of the thresholds and the targets they were chosen for."""
    payload = {
        "review_threshold": round(float(review_threshold), 12),
        "block_threshold": round(float(block_threshold), 12),
        **{k: targets[k] for k in sorted(targets)},
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"p-{digest[:10]}"


@dataclass(frozen=True)
class DecisionPolicy:
    """``score >= block_threshold`` -> block, ``>= review_threshold`` -> review, else allow."""

    version: str
    review_threshold: float
    block_threshold: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.review_threshold) and np.isfinite(self.block_threshold)):
            raise ValueError("thresholds must be finite")
        if self.review_threshold > self.block_threshold:
            raise ValueError(
                f"review_threshold ({self.review_threshold}) must be <= block_threshold ({self.block_threshold})"
            )

    @classmethod
    def create(cls, review_threshold: float, block_threshold: float, **targets: Any) -> DecisionPolicy:
        """Build a policy whose version is derived from thresholds and targets."""
        return cls(
            version=policy_version(review_threshold, block_threshold, **targets),
            review_threshold=float(review_threshold),
            block_threshold=float(block_threshold),
        )

    def decide(self, scores: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
        """Vectorised decisions (object array of "allow" | "review" | "block")."""
        s = np.asarray(scores, dtype=np.float64)
        if not np.isfinite(s).all():
            raise ValueError("scores must be finite")
        out = np.full(s.shape, ALLOW, dtype=object)
        out[s >= self.review_threshold] = REVIEW
        out[s >= self.block_threshold] = BLOCK
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return {
            "version": self.version,
            "review_threshold": self.review_threshold,
            "block_threshold": self.block_threshold,
        }


def _block_threshold(scores: np.ndarray, y: np.ndarray, target: float, min_support: int) -> float:
    """Lowest threshold t with precision(score >= t) >= target and >= min_support alerts."""
    order = np.argsort(-scores, kind="stable")
    s_sorted = scores[order]
    tp = np.cumsum(y[order])
    n_flagged = np.arange(1, len(s_sorted) + 1)
    # only the last position of each group of tied scores is a valid cut
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    precision = tp / n_flagged
    ok = last_of_tie & (precision >= target) & (n_flagged >= min_support)
    if not ok.any():
        return NEVER_BLOCK_THRESHOLD
    return float(s_sorted[np.flatnonzero(ok)[-1]])


def choose_policy(
    scores: Sequence[float] | np.ndarray | pd.Series,
    y: Sequence[int] | np.ndarray | pd.Series,
    event_dates: Sequence[Any] | np.ndarray | pd.Series,
    customer_ids: Sequence[Any] | np.ndarray | pd.Series,
    block_precision_target: float = 0.9,
    review_cards_per_day: int = 100,
    *,
    min_block_support: int = 5,
) -> DecisionPolicy:
    """Pick thresholds on validation data.

    * block: the lowest threshold whose transaction-level precision is
      ``>= block_precision_target`` (with at least ``min_block_support`` alerts);
      :data:`NEVER_BLOCK_THRESHOLD` if none qualifies.
    * review: the threshold that sends about ``review_cards_per_day`` distinct cards per
      day (averaged over the validation days) to the review queue, i.e. cards whose
      highest score that day is in ``[review, block)``; already-blocked cards do not use
      review capacity. Capped at the block threshold.
    """
    s = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(y).astype(np.int64)
    dates = pd.to_datetime(pd.Series(np.asarray(event_dates))).dt.normalize()
    customers = pd.Series(np.asarray(customer_ids))
    if not (len(s) == len(labels) == len(dates) == len(customers)):
        raise ValueError("scores, y, event_dates and customer_ids must have the same length")
    if len(s) == 0:
        raise ValueError("cannot choose a policy on empty data")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")

    block = _block_threshold(s, labels, block_precision_target, min_block_support)

    card_day = (
        pd.DataFrame({"d": dates.to_numpy(), "c": customers.to_numpy(), "s": s})
        .groupby(["d", "c"], sort=False)["s"]
        .max()
    )
    n_days = int(dates.nunique())
    queue = np.sort(card_day.to_numpy()[card_day.to_numpy() < block])[::-1]
    budget = round(review_cards_per_day * n_days)
    review = block if queue.size == 0 or budget <= 0 else float(queue[min(budget, queue.size) - 1])
    review = min(review, block)
    return DecisionPolicy.create(
        review,
        block,
        block_precision_target=float(block_precision_target),
        review_cards_per_day=int(review_cards_per_day),
    )
