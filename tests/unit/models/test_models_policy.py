"""Decision policy and its selection on validation data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from models.policy import NEVER_BLOCK_THRESHOLD, DecisionPolicy, choose_policy, policy_version


def test_decide_bands() -> None:
    policy = DecisionPolicy.create(0.3, 0.8)
    decisions = policy.decide([0.0, 0.29, 0.3, 0.5, 0.8, 0.99])
    assert decisions.tolist() == ["allow", "allow", "review", "review", "block", "block"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.block_threshold = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="finite"):
        policy.decide([0.1, float("nan")])
    with pytest.raises(ValueError, match="<="):
        DecisionPolicy("v", review_threshold=0.9, block_threshold=0.5)


def test_version_is_short_stable_hash() -> None:
    a = policy_version(0.3, 0.8, block_precision_target=0.9, review_cards_per_day=100)
    b = policy_version(0.3, 0.8, review_cards_per_day=100, block_precision_target=0.9)
    c = policy_version(0.3, 0.8, block_precision_target=0.95, review_cards_per_day=100)
    assert a == b != c
    assert a.startswith("p-") and len(a) == 12


def _validation_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-02-01", periods=4, freq="D")
    rows = []
    for day in days:
        for customer in range(50):
            for _ in range(2):
                rows.append((day, customer, rng.uniform(0, 0.5), 0))
    frame = pd.DataFrame(rows, columns=["event_date", "customer_id", "score", "is_fraud"])
    # 20 high scores: 18 fraud + 2 genuine in [0.9, 1.0); 10 frauds hidden among the low scores
    top = frame.sample(20, random_state=1).index
    frame.loc[top, "score"] = np.linspace(0.9, 0.99, 20)
    frame.loc[top, "is_fraud"] = 1
    frame.loc[top[:2], "is_fraud"] = 0  # the two lowest of the top band are genuine
    hidden = frame.drop(top).sample(10, random_state=2).index
    frame.loc[hidden, "is_fraud"] = 1
    frame.loc[hidden, "score"] = np.linspace(0.001, 0.01, 10)  # missed frauds with very low scores
    return frame


def test_choose_policy_block_precision_and_review_budget() -> None:
    frame = _validation_frame()
    policy = choose_policy(
        frame["score"],
        frame["is_fraud"],
        frame["event_date"],
        frame["customer_id"],
        block_precision_target=0.9,
        review_cards_per_day=5,
    )
    flagged = frame["score"] >= policy.block_threshold
    assert frame.loc[flagged, "is_fraud"].mean() >= 0.9
    # lowest such threshold: all 20 top rows (18/20 = 0.9) qualify
    assert policy.block_threshold == pytest.approx(0.9)
    # review queue: cards per day with max score in [review, block) ~= 5
    card_day = frame.groupby(["event_date", "customer_id"])["score"].max()
    queued = card_day[(card_day >= policy.review_threshold) & (card_day < policy.block_threshold)]
    assert queued.groupby(level=0).size().mean() == pytest.approx(5, abs=0.5)
    assert policy.review_threshold < policy.block_threshold
    assert policy.version == policy_version(
        policy.review_threshold, policy.block_threshold, block_precision_target=0.9, review_cards_per_day=5
    )


def test_choose_policy_falls_back_when_target_unreachable() -> None:
    frame = _validation_frame()
    policy = choose_policy(
        frame["score"],
        np.zeros(len(frame)),
        frame["event_date"],
        frame["customer_id"],
        block_precision_target=0.99,
        review_cards_per_day=3,
    )
    assert policy.block_threshold == NEVER_BLOCK_THRESHOLD
    assert (policy.decide(frame["score"]) != "block").all()
    assert policy.review_threshold <= policy.block_threshold
