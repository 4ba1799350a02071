"""The demo's live figures, from micro-batch summaries: last-minute rates and latencies, totals."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from jobs.live_view import LiveTracker, flagged_lines, plain_line, rich_panel


@dataclass
class Batch:
    records: int
    scored: int
    quarantined: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    model_version: str | None = "3"


def test_rates_and_latencies_cover_the_last_minute_and_totals_everything() -> None:
    tracker = LiveTracker(started=0.0)
    old = Batch(600, 500, 2, {"allow": 490, "review": 10}, {"p50": 90_000.0, "p99": 95_000.0})
    tracker.update([old], [], now=10.0)
    new = [Batch(120, 100, 1, {"allow": 97, "block": 3}, {"p50": 1_000.0, "p99": 4_000.0}),
           Batch(60, 300, 0, {"allow": 300}, {"p50": 2_000.0, "p99": 3_000.0})]
    flagged = [{"decision": "block", "score": 0.99, "transaction_id": f"t{i}", "customer_id": "C1", "amount": 1.0,
                "top_reasons": [{"feature": "customer_tx_count_1h", "value": 14, "contribution": 0.29}]}
               for i in range(8)]
    f = tracker.update([old, *new], flagged, now=80.0, sent={"transaction": 900}, sim_time="2026-11-23 10:00")
    assert f.records_per_s == pytest.approx(180 / 60)  # the first batch is older than a minute
    assert f.scored_per_s == pytest.approx(400 / 60)
    assert f.latency_p50_s == pytest.approx(2.0)  # scored-weighted: 300 of 400 rows at 2 s
    assert f.latency_p99_s == pytest.approx(4.0)
    assert f.decisions == {"allow": 887, "review": 10, "block": 3}
    assert (f.scored, f.quarantined, f.batches, f.model_version) == (900, 3, 3, "3")
    assert [r["transaction_id"] for r in f.flagged] == ["t7", "t6", "t5", "t4", "t3"]
    line = plain_line(f)
    assert "p50 2.00s p99 4.00s" in line and "block 3 (0.3%)" in line and "quarantined 3" in line
    assert "customer_tx_count_1h=14 (+0.290)" in flagged_lines(f)[0]
    rich_panel(f)  # renders without a terminal


def test_no_batch_yet_shows_dashes() -> None:
    f = LiveTracker(started=0.0).update([], [], now=5.0)
    assert "p50 - p99 -" in plain_line(f) and f.model_version is None
