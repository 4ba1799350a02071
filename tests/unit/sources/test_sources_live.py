"""The simulated clock: live traffic is the seeded world's history continued, on a faster clock."""

from __future__ import annotations

import pandas as pd
import pytest

from sources.contract import validate_event
from sources.live import SimClock, live_events, natural_rate
from sources.simulator import Simulator, SimulatorConfig

START = pd.Timestamp("2026-03-02T05:30:00Z")


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimulatorConfig(seed=5, n_customers=300, n_terminals=200))


def test_clock_maps_wall_to_simulated_time() -> None:
    clock = SimClock(START, wall_start=1000.0, speed=3600.0)
    assert clock.sim_at(1001.0) == START + pd.Timedelta(hours=1)
    assert clock.wall_at(START + pd.Timedelta(hours=2)) == pytest.approx(1002.0)
    assert clock.sim_span(10.0) == pd.Timedelta(hours=10)
    assert clock.room_until(START + pd.Timedelta(hours=5)) == pytest.approx(5.0)
    assert clock.room_until(START - pd.Timedelta(hours=5)) == 0.0


def test_clock_refuses_bad_speeds_and_naive_times(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        SimClock(START, 0.0, 0.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(pd.Timestamp("2026-03-02T05:30:00"), 0.0, 2.0)
    with pytest.raises(ValueError, match="rate must be > 0"):
        SimClock.for_rate(sim, 0.0, START)


def test_speed_gives_the_rate_from_the_natural_behaviour(sim: Simulator) -> None:
    clock = SimClock.for_rate(sim, 50.0, START, wall_start=0.0)
    assert clock.speed == pytest.approx(50.0 / natural_rate(sim))
    assert natural_rate(sim) == pytest.approx(sim.customers["tx_per_day"].sum() / 86400)


def test_live_events_are_the_history_continued_with_its_labels(sim: Simulator) -> None:
    clock = SimClock.for_rate(sim, 40.0, START, wall_start=1_000_000.0)
    end = START + pd.Timedelta(days=2, hours=3)
    events = list(live_events(sim, clock, end, chunk=pd.Timedelta(hours=5)))
    tx = [e for e in events if e.kind == "transaction"]
    labels = [e for e in events if e.kind == "label"]

    expected_tx, _ = sim.history(START, days=(end - START) / pd.Timedelta(days=1))
    assert [e.event["transaction_id"] for e in tx] == expected_tx["transaction_id"].tolist()
    assert [pd.Timestamp(e.event["event_time"]) for e in tx] == expected_tx["event_time"].tolist()
    assert [e.fraud_scenario for e in tx] == expected_tx["fraud_scenario"].astype(int).tolist()

    # Labels: everything the world reports in [START, end), also of transactions from before START.
    _, all_labels = sim.history(START - pd.Timedelta(days=7), days=7 + (end - START) / pd.Timedelta(days=1))
    due = all_labels[(all_labels["reported_at"] >= START) & (all_labels["reported_at"] < end)]
    assert sorted(e.event["transaction_id"] for e in labels) == sorted(due["transaction_id"])
    assert any(pd.Timestamp(e.event["reported_at"]) < START + pd.Timedelta(days=1) for e in labels)

    # One simulated clock: emission in simulated-time order, at wall_start + (t - START) / speed.
    times = [pd.Timestamp(e.event["event_time" if e.kind == "transaction" else "reported_at"]) for e in events]
    assert times == sorted(times)
    assert all(t >= START for t in times) and all(t < end for t in times)
    for e, t in zip(events[::97], times[::97], strict=True):
        assert e.emit_time.timestamp() == pytest.approx(clock.wall_at(t), abs=1e-3)
    assert all(not validate_event(e.event, e.kind) for e in events[::50])


def test_customers_keep_their_natural_pace_whatever_the_rate(sim: Simulator) -> None:
    end = START + pd.Timedelta(days=3)
    seen: list[list[str]] = []
    for rate in (5.0, 500.0):
        clock = SimClock.for_rate(sim, rate, START, wall_start=0.0)
        tx = [e for e in live_events(sim, clock, end) if e.kind == "transaction"]
        wall = tx[-1].emit_time.timestamp() - tx[0].emit_time.timestamp()
        assert len(tx) / wall == pytest.approx(rate, rel=0.1)
        per_customer_day = len(tx) / sim.config.n_customers / 3
        assert per_customer_day == pytest.approx(sim.customers["tx_per_day"].mean(), rel=0.1)
        seen.append([e.event["transaction_id"] for e in tx])
    assert seen[0] == seen[1]  # the rate changes the clock, not the world (scenarios and fraud share included)


def test_live_events_refuse_an_empty_window(sim: Simulator) -> None:
    clock = SimClock(START, 0.0, 100.0)
    with pytest.raises(ValueError, match="must be after"):
        next(live_events(sim, clock, START))
