"""Live traffic on a simulated clock that runs ahead of the wall clock.

A demo wants a few hundred events per second from a population that makes about two
transactions per customer per day. Compressing event time (event times on the wall clock,
everything squeezed) multiplies every customer's rate: each one transacts every few seconds and
velocity features see a world the model never learned. Here time itself runs faster instead:
the :class:`SimClock` maps wall time to simulated time at ``speed`` simulated seconds per wall
second, events carry their *simulated* event times (labels their simulated report times) and are
emitted at the wall time their simulated time maps to. Per customer and terminal the traffic is
exactly the history's (same rates, amounts, daily cycle, fraud scenarios and share): it *is* the
history of the same seeded world, continued.

Event times therefore run ahead of the wall clock by ``(wall - wall_start) * (speed - 1)``;
callers start the clock far enough in the past that it never passes "now" (see
:meth:`SimClock.room_until`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sources.contract import frame_to_events
from sources.simulator import Simulator, StreamEvent

__all__ = ["SimClock", "label_lookback", "live_events", "natural_rate"]

_DAY_S = 86_400.0
_CHUNK = pd.Timedelta(hours=6)  # simulated time generated at once (a few thousand events at most)


def natural_rate(sim: Simulator) -> float:
    """Transactions per second the simulated population makes on an average real day."""
    return float(sim.customers["tx_per_day"].sum()) / _DAY_S


def label_lookback(sim: Simulator) -> pd.Timedelta:
    """The longest label delay of the simulated world: labels reported at t belong to tx after t minus this."""
    cfg = sim.config
    return pd.Timedelta(days=max(cfg.fraud_label_delay.max_days, cfg.genuine_label_delay.max_days))


@dataclass(frozen=True)
class SimClock:
    """Simulated time ``sim_start + (wall - wall_start) * speed`` (wall times in epoch seconds)."""

    sim_start: pd.Timestamp
    wall_start: float
    speed: float

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"SimClock.speed must be > 0, got {self.speed}")
        if self.sim_start.tzinfo is None:
            raise ValueError("SimClock.sim_start must be timezone-aware (UTC)")

    @classmethod
    def for_rate(cls, sim: Simulator, rate: float, sim_start: pd.Timestamp,
                 wall_start: float | None = None) -> SimClock:
        """The clock at which ``sim``'s population, behaving naturally, produces ``rate`` tx/s on average."""
        if not rate > 0:
            raise ValueError(f"rate must be > 0 transactions per second, got {rate}")
        natural = natural_rate(sim)
        if natural <= 0:
            raise ValueError("the simulated population makes no transactions")
        start = pd.Timestamp(sim_start)
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        return cls(start, time.time() if wall_start is None else wall_start, rate / natural)

    def sim_at(self, wall: float) -> pd.Timestamp:
        """Simulated time at wall time ``wall`` (epoch seconds)."""
        return self.sim_start + pd.Timedelta(seconds=(wall - self.wall_start) * self.speed)

    def wall_at(self, sim: pd.Timestamp) -> float:
        """Wall time (epoch seconds) at which the simulated clock shows ``sim``."""
        return self.wall_start + (sim - self.sim_start).total_seconds() / self.speed

    def sim_span(self, wall_seconds: float) -> pd.Timedelta:
        """Simulated time that passes in ``wall_seconds`` of wall time."""
        return pd.Timedelta(seconds=wall_seconds * self.speed)

    def room_until(self, now: pd.Timestamp) -> float:
        """Wall seconds until simulated time would pass ``now`` (event times stay in the past until then)."""
        return max((now - self.sim_start).total_seconds(), 0.0) / self.speed


def _with_scenarios(tx: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Labels with the fraud scenario of their transaction (ground truth for the console)."""
    scenario = tx.set_index("transaction_id")["fraud_scenario"]
    return labels.assign(fraud_scenario=labels["transaction_id"].map(scenario).fillna(0).astype(np.int64))


def live_events(sim: Simulator, clock: SimClock, end: pd.Timestamp,
                chunk: pd.Timedelta = _CHUNK) -> Iterator[StreamEvent]:
    """Transactions with simulated ``event_time`` in ``[clock.sim_start, end)`` and every label the
    world reports in that span (including labels of transactions from before it), in simulated-time
    order, each with the wall ``emit_time`` of its simulated time.

    The caller sleeps until ``emit_time`` (or not: the events and their times are the same).
    """
    start = clock.sim_start
    if end <= start:
        raise ValueError(f"end {end} must be after the clock's start {start}")
    if chunk <= pd.Timedelta(0):
        raise ValueError("chunk must be positive")
    lookback = label_lookback(sim)
    before_tx, before_labels = sim.history(start - lookback, days=lookback / pd.Timedelta(days=1))
    pending = _with_scenarios(before_tx, before_labels)
    pending = pending[pending["reported_at"] >= start]
    t = start
    while t < end:
        stop = min(t + chunk, end)
        tx, labels = sim.history(t, days=(stop - t) / pd.Timedelta(days=1))
        pending = pd.concat([pending, _with_scenarios(tx, labels)], ignore_index=True)
        due_mask = pending["reported_at"] < stop
        due = pending[due_mask].sort_values(["reported_at", "transaction_id"], kind="stable")
        pending = pending[~due_mask]
        yield from _merged(clock, tx, due)
        t = stop


def _merged(clock: SimClock, tx: pd.DataFrame, labels: pd.DataFrame) -> Iterator[StreamEvent]:
    """Transactions (by event_time) and labels (by reported_at) interleaved in simulated-time order."""
    tx_times = tx["event_time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    label_times = labels["reported_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    tx_events = frame_to_events(tx, "transaction")
    label_events = frame_to_events(labels, "label")
    tx_scenarios = tx["fraud_scenario"].astype(np.int64).tolist()
    label_scenarios = labels["fraud_scenario"].astype(np.int64).tolist()
    i = j = 0
    start_ns = clock.sim_start.value
    while i < len(tx_times) or j < len(label_times):
        take_tx = j >= len(label_times) or (i < len(tx_times) and tx_times[i] <= label_times[j])
        sim_ns = int(tx_times[i] if take_tx else label_times[j])
        emit = pd.Timestamp(clock.wall_start + (sim_ns - start_ns) / 1e9 / clock.speed, unit="s", tz="UTC")
        if take_tx:
            event = next(tx_events)
            yield StreamEvent("transaction", emit, event["customer_id"], event, tx_scenarios[i])
            i += 1
        else:
            event = next(label_events)
            yield StreamEvent("label", emit, event["customer_id"], event, label_scenarios[j])
            j += 1
