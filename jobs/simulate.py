"""`aegis simulate`: live simulated traffic to Kafka, or `--history DAYS` straight into bronze."""

from __future__ import annotations

import logging
import time

import pandas as pd

from conf.settings import Settings
from jobs.base import JobConfig, Progress
from lakehouse.kafka_io import encode, make_producer
from sources.simulator import Simulator, SimulatorConfig

log = logging.getLogger("aegis.simulate")


class SimulateConfig(JobConfig):
    """How much traffic, how fast, and from which seed."""

    rate: float = 200.0
    duration: float | None = None
    count: int | None = None
    seed: int = 7
    history_days: int | None = None
    customers: int = 2000
    terminals: int = 1000
    label_time_compression: float = 1440.0
    out_of_order_fraction: float = 0.0
    max_out_of_order_seconds: float = 30.0


def simulator_for(config: SimulateConfig) -> Simulator:
    """The seeded simulator for a config."""
    return Simulator(SimulatorConfig(seed=config.seed, n_customers=config.customers, n_terminals=config.terminals,
                                     out_of_order_fraction=config.out_of_order_fraction,
                                     max_out_of_order_seconds=config.max_out_of_order_seconds))


def natural_rate(sim: Simulator) -> float:
    """Transactions per second the simulated population makes on an average real day."""
    return float(sim.customers["tx_per_day"].sum()) / 86400.0


def write_history(settings: Settings, config: SimulateConfig, days: int) -> tuple[int, int]:
    """Simulate ``days`` of history ending now and insert it into bronze (no Kafka)."""
    from jobs.importer import write_bronze
    from lakehouse.session import create_session

    sim = simulator_for(config)
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=days)
    tx, labels = sim.history(start=start, days=days)
    labels = labels[labels["reported_at"] <= pd.Timestamp.now(tz="UTC")]  # only what is known today
    spark = create_session(settings, "simulate-history")
    n_tx, n_labels = write_bronze(spark, settings, tx, labels, "simulator")
    print(f"simulate: {days} days of history, {n_tx:,} transactions and {n_labels:,} labels into bronze "
          f"(fraud rate {tx['is_fraud'].mean():.2%})")
    return n_tx, n_labels


def produce(settings: Settings, config: SimulateConfig) -> dict[str, int]:
    """Produce live traffic at ``rate`` events/s; returns counts per kind."""
    sim = simulator_for(config)
    compression = max(config.rate, 1e-6) / natural_rate(sim) if config.rate > 0 else 1e6
    events = sim.stream(
        count=config.count,
        duration=pd.Timedelta(seconds=config.duration) if config.duration else None,
        time_compression=compression,
        label_time_compression=config.label_time_compression,
        realtime=config.rate > 0,
    )
    topics = settings.kafka.topics
    producer = make_producer(settings)
    counts = {"transaction": 0, "label": 0}
    progress = Progress("simulate", total=config.count, every=5.0)
    started = time.monotonic()
    try:
        for ev in events:
            topic = topics.transactions if ev.kind == "transaction" else topics.labels
            producer.send(topic, key=ev.key if isinstance(ev.key, bytes) else str(ev.key).encode(),
                          value=encode(ev.event))
            counts[ev.kind] += 1
            if ev.kind == "transaction":
                progress.advance(1)
    finally:
        producer.flush()
        producer.close()
    elapsed = time.monotonic() - started
    print(f"simulate: {counts['transaction']:,} transactions and {counts['label']:,} labels produced in "
          f"{elapsed:.1f}s ({counts['transaction'] / max(elapsed, 1e-9):.0f} tx/s)")
    return counts


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
