"""`aegis simulate`: live simulated traffic to Kafka, or `--history DAYS` straight into bronze."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from conf.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
from jobs.base import Progress
from jobs.kinds import SimulateConfig
from lakehouse.kafka_io import encode, make_producer
from sources.live import SimClock, live_events, natural_rate
from sources.simulator import Simulator, SimulatorConfig, StreamEvent

log = logging.getLogger("aegis.simulate")


def simulator_for(config: SimulateConfig) -> Simulator:
    """The seeded simulator for a config."""
    return Simulator(SimulatorConfig(seed=config.seed, n_customers=config.customers, n_terminals=config.terminals,
                                     out_of_order_fraction=config.out_of_order_fraction,
                                     max_out_of_order_seconds=config.max_out_of_order_seconds))


__all__ = ["SimulateConfig", "natural_rate", "produce", "produce_live", "publish", "simulator_for", "write_history"]


def write_history(settings: Settings, config: SimulateConfig, days: int,
                  end: pd.Timestamp | None = None, spark: SparkSession | None = None) -> tuple[int, int]:
    """Simulate ``days`` of history ending at ``end`` (default: today, 00:00 UTC) and insert it into
    bronze with the labels known by then (no Kafka)."""
    from jobs.importer import write_bronze
    from lakehouse.session import create_session

    sim = simulator_for(config)
    end = pd.Timestamp.now(tz="UTC").floor("D") if end is None else end
    as_of = min(end, pd.Timestamp.now(tz="UTC"))
    tx, labels = sim.history(start=end - pd.Timedelta(days=days), days=days)
    labels = labels[labels["reported_at"] <= as_of]  # only what is known at the end of the history
    spark = spark or create_session(settings, "simulate-history")
    n_tx, n_labels = write_bronze(spark, settings, tx, labels, "simulator")
    print(f"simulate: {days} days of history, {n_tx:,} transactions and {n_labels:,} labels into bronze "
          f"(fraud rate {tx['is_fraud'].mean():.2%})")
    return n_tx, n_labels


def publish(settings: Settings, events: Iterable[StreamEvent], *, realtime: bool = False,
            total: int | None = None, stop: threading.Event | None = None,
            counts: dict[str, int] | None = None, progress: bool = True) -> dict[str, int]:
    """Send events to their topics (each at its ``emit_time`` with ``realtime``); returns counts per kind.

    The producer is flushed and closed before this returns, also when ``stop`` is set or a send
    fails, so no client outlives the call (and none reconnects to a broker that has stopped).
    ``counts`` (updated in place) lets another thread watch the progress.
    """
    topics = settings.kafka.topics
    counts = {"transaction": 0, "label": 0} if counts is None else counts
    counts.setdefault("transaction", 0)
    counts.setdefault("label", 0)
    report = Progress("simulate", total=total, every=5.0) if progress else None
    producer = make_producer(settings)
    try:
        for ev in events:
            if realtime:
                wait = ev.emit_time.timestamp() - time.time()
                if wait > 0 and stop is None:
                    time.sleep(wait)
                elif wait > 0 and stop is not None and stop.wait(wait):
                    break
            if stop is not None and stop.is_set():
                break
            topic = topics.transactions if ev.kind == "transaction" else topics.labels
            producer.send(topic, key=ev.key if isinstance(ev.key, bytes) else str(ev.key).encode(),
                          value=encode(ev.event))
            counts[ev.kind] += 1
            if ev.kind == "transaction" and report is not None:
                report.advance(1)
    finally:
        producer.flush()
        producer.close()
    return counts


def produce(settings: Settings, config: SimulateConfig) -> dict[str, int]:
    """Produce live traffic at ``rate`` events/s, event time compressed onto the wall clock; returns
    counts per kind. (The demo uses :func:`produce_live`: a simulated clock, natural behaviour.)"""
    sim = simulator_for(config)
    compression = max(config.rate, 1e-6) / natural_rate(sim) if config.rate > 0 else 1e6
    events = sim.stream(
        count=config.count,
        duration=pd.Timedelta(seconds=config.duration) if config.duration else None,
        time_compression=compression,
        label_time_compression=config.label_time_compression,
    )
    started = time.monotonic()
    counts = publish(settings, events, realtime=config.rate > 0, total=config.count)
    elapsed = time.monotonic() - started
    print(f"simulate: {counts['transaction']:,} transactions and {counts['label']:,} labels produced in "
          f"{elapsed:.1f}s ({counts['transaction'] / max(elapsed, 1e-9):.0f} tx/s)")
    return counts


def produce_live(settings: Settings, config: SimulateConfig, clock: SimClock, end: pd.Timestamp,
                 stop: threading.Event | None = None, counts: dict[str, int] | None = None) -> dict[str, int]:
    """Traffic of ``config``'s world from ``clock.sim_start`` to ``end`` in simulated time, each event
    sent when the clock reaches it (labels on the same clock); returns counts per kind (no progress log:
    the caller shows ``counts``)."""
    return publish(settings, live_events(simulator_for(config), clock, end), realtime=True, stop=stop,
                   counts=counts, progress=False)


def run(settings: Settings, config: SimulateConfig) -> int:
    if config.history_days is not None:
        if config.history_days <= 0:
            raise ValueError("--history: DAYS must be positive")
        write_history(settings, config, config.history_days)
        return 0
    if config.duration is None and config.count is None:
        raise ValueError("give --duration SECONDS, --count N or --history DAYS")
    if config.rate < 0:
        raise ValueError("--rate must be >= 0 (0 = as fast as the broker takes them)")
    produce(settings, config)
    return 0
