"""Decision shares a live run saw, next to what the served model's policy targets.

The policy (``models.policy.choose_policy``) is chosen on validation data: block above the
lowest score with the target precision, review the ~``review_cards_per_day`` highest-scoring
other cards of each day. Training logs the shares of block and review decisions that gives on
the validation week (``valid_share_*``) and on the test week (``test_share_*``); the target is
their row-weighted mean. Live traffic that behaves like the history should land near it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mlflow import MlflowClient
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

__all__ = ["LiveShares", "PolicyTargets", "comparison_lines", "live_shares", "policy_targets", "ratios"]


@dataclass(frozen=True)
class PolicyTargets:
    """What a registered model's policy aims at, from its training run."""

    version: str
    block_share: float
    review_share: float
    measured_on: str  # "validation + test", or the one of them the run logged
    block_precision_target: float | None
    review_cards_per_day: float | None
    per_period: dict[str, tuple[float, float]] = field(default_factory=dict)  # period -> (block, review)


@dataclass(frozen=True)
class LiveShares:
    """Decisions of the scores of one live window."""

    scored: int
    block: int
    review: int
    review_cards_per_day: float | None  # distinct cards sent to review per simulated day

    @property
    def block_share(self) -> float:
        return self.block / self.scored if self.scored else 0.0

    @property
    def review_share(self) -> float:
        return self.review / self.scored if self.scored else 0.0


def policy_targets(client: MlflowClient, model_name: str, version: str) -> PolicyTargets:
    """The targets logged by the training run of ``model_name`` version ``version``."""
    mv = client.get_model_version(model_name, version)
    if not mv.run_id:
        raise ValueError(f"model {model_name} v{version} has no training run to read its policy targets from")
    run = client.get_run(mv.run_id)
    metrics, params = run.data.metrics, run.data.params

    def number(name: str) -> float | None:
        value = params.get(name)
        return float(value) if value is not None else None

    # Validation and test weeks are both held out; a week's shares swing with its few fraud episodes
    # (a card-testing burst is 5-20 blocks), so the target is their row-weighted mean where both exist.
    known: dict[str, tuple[float, float, float]] = {}  # period -> (block share, review share, rows)
    for p in ("valid", "test"):
        block_p, review_p = metrics.get(f"{p}_share_block"), metrics.get(f"{p}_share_review")
        if block_p is not None and review_p is not None:
            known[p] = (float(block_p), float(review_p), number(f"n_{p}") or 1.0)
    if not known:
        raise ValueError(f"the training run {mv.run_id} of {model_name} v{version} logged no decision shares")
    rows = sum(v[2] for v in known.values())
    block = sum(v[0] * v[2] for v in known.values()) / rows
    review = sum(v[1] * v[2] for v in known.values()) / rows
    names = {"valid": "validation", "test": "test"}
    return PolicyTargets(str(version), block, review, " + ".join(names[p] for p in known),
                         number("block_precision_target"), number("review_cards_per_day"),
                         {names[p]: (v[0], v[1]) for p, v in known.items()})


def live_shares(scores: DataFrame, sim_from: datetime, sim_to: datetime) -> LiveShares:
    """Decisions of the streamed scores with event times in ``[sim_from, sim_to)`` (one Spark job)."""
    window = scores.filter((F.col("source") == "stream") & (F.col("event_time") >= F.lit(sim_from))
                           & (F.col("event_time") < F.lit(sim_to)))
    per_card_day = window.groupBy("customer_id", "event_date").agg(
        F.count(F.lit(1)).alias("n"),
        F.sum((F.col("decision") == "block").cast("int")).alias("block"),
        F.sum((F.col("decision") == "review").cast("int")).alias("review"),
    )
    row = per_card_day.agg(
        F.sum("n"), F.sum("block"), F.sum("review"),
        F.sum(((F.col("review") > 0) & (F.col("block") == 0)).cast("int")),
    ).first()
    scored, block, review, review_cards = (int(v or 0) for v in (row or (0, 0, 0, 0)))
    days = (sim_to - sim_from).total_seconds() / 86400.0
    return LiveShares(scored, block, review, review_cards / days if days > 0 else None)


def ratios(live: LiveShares, targets: PolicyTargets) -> dict[str, float | None]:
    """live share / target share per decision (None when the target is 0)."""
    return {
        "block": live.block_share / targets.block_share if targets.block_share > 0 else None,
        "review": live.review_share / targets.review_share if targets.review_share > 0 else None,
    }


def comparison_lines(live: LiveShares, targets: PolicyTargets) -> list[str]:
    """Side by side: the shares seen live and the policy's on its training data."""
    r = ratios(live, targets)

    def ratio(kind: str) -> str:
        value = r[kind]
        return "-" if value is None else f"x{value:.2f}"

    block_note = (f"block precision target {targets.block_precision_target:.0%}"
                  if targets.block_precision_target is not None else "")
    review_note = ""
    if targets.review_cards_per_day is not None:
        review_note = f"review capacity {targets.review_cards_per_day:.0f} cards/day"
        if live.review_cards_per_day is not None:
            review_note += f" (live: {live.review_cards_per_day:.0f} per simulated day)"
    periods = "; ".join(f"{name}: block {b:.2%}, review {r:.2%}" for name, (b, r) in targets.per_period.items())
    return [
        f"decisions of {live.scored:,} live scores vs the policy of model v{targets.version} on held-out data "
        f"({periods or targets.measured_on}):",
        f"  {'':8}{'live':>16}{'policy':>24}{'live/policy':>14}",
        f"  {'block':8}{f'{live.block_share:.2%} ({live.block:,})':>16}{f'{targets.block_share:.2%}':>24}"
        f"{ratio('block'):>14}   {block_note}",
        f"  {'review':8}{f'{live.review_share:.2%} ({live.review:,})':>16}{f'{targets.review_share:.2%}':>24}"
        f"{ratio('review'):>14}   {review_note}",
    ]
