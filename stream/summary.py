"""What each micro-batch of the two queries did: kept for the console, the demo and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BatchSummary:
    """One micro-batch of either query (the fields the other query does not fill stay 0)."""

    query: str  # "hot" or "cold"
    batch_id: int
    records: int = 0  # Kafka records read
    featurized: int = 0
    scored: int = 0
    late: int = 0
    bronze: int = 0
    labels: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    compute_seconds: float = 0.0  # hot: state, merge and scoring (the first action); cold: parse and counts
    plan_seconds: float = 0.0  # hot: the driver building the micro-batch's DataFrames, before its job starts
    write_seconds: float = 0.0  # the concurrent writes
    spark_jobs: int = 0
    delta_commits: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    written_at: float | None = None  # epoch seconds when the batch's last write ended
    gold_committed_at: float | None = None  # hot: epoch seconds when its gold.scores commit ended
