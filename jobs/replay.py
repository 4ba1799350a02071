"""`aegis replay PATH --speed X`: publish a historical file to Kafka in event-time order.

Transactions are published at their event time and labels at their reported time, on one
clock compressed ``speed`` times (or as fast as possible with ``--speed max``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from conf.settings import Settings
from jobs.base import Progress
from jobs.importer import load_file, parse_delay
from jobs.kinds import ReplayConfig
from lakehouse.kafka_io import make_producer
from sources.contract import frame_to_events, to_json_bytes

log = logging.getLogger("aegis.replay")


def replay_plan(tx: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per message: (emit_time, kind, row index), transactions before labels on ties."""
    plan = pd.concat(
        [
            pd.DataFrame({"emit": tx["event_time"].to_numpy(), "kind": 0, "row": np.arange(len(tx))}),
            pd.DataFrame({"emit": labels["reported_at"].to_numpy(), "kind": 1, "row": np.arange(len(labels))}),
        ],
        ignore_index=True,
    )
    return plan.sort_values(["emit", "kind", "row"], kind="stable").reset_index(drop=True)


def select(tx: pd.DataFrame, labels: pd.DataFrame, config: ReplayConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Restrict to the configured dates / first N transactions; labels follow their transactions."""
    keep = pd.Series(True, index=tx.index)
    day = tx["event_time"].dt.date
    if config.date_from:
        keep &= day >= config.date_from
    if config.date_to:
        keep &= day <= config.date_to
    tx = tx[keep].sort_values("event_time", kind="stable")
    if config.limit is not None:
        tx = tx.head(config.limit)
    labels = labels[labels["transaction_id"].isin(set(tx["transaction_id"]))]
    return tx.reset_index(drop=True), labels.reset_index(drop=True)


def run(settings: Settings, config: ReplayConfig) -> int:
    if config.speed is not None and config.speed <= 0:
        raise ValueError("--speed must be > 0 or 'max'")
    delay = parse_delay(config.label_delay)
    frames = [load_file(Path(p), delay) for p in config.paths]
    tx = pd.concat([f[0] for f in frames], ignore_index=True)
    labels = pd.concat([f[1] for f in frames], ignore_index=True)
    tx, labels = select(tx, labels, config)
    plan = replay_plan(tx, labels)
    tx_payloads = [to_json_bytes(e, "transaction") for e in frame_to_events(tx, "transaction")]
    label_payloads = [to_json_bytes(e, "label") for e in frame_to_events(labels, "label")]
    keys = {0: tx["customer_id"].astype(str).str.encode("utf-8").tolist(),
            1: labels["customer_id"].astype(str).str.encode("utf-8").tolist()}
    payloads = {0: tx_payloads, 1: label_payloads}
    topics = {0: settings.kafka.topics.transactions, 1: settings.kafka.topics.labels}
    producer = make_producer(settings)
    progress = Progress("replay", total=len(plan), every=5.0)
    emit = plan["emit"].to_numpy(dtype="datetime64[us]").astype("int64") / 1e6
    origin_event, origin_wall = (emit[0] if len(emit) else 0.0), time.monotonic()
    try:
        for i, (kind, row) in enumerate(zip(plan["kind"].to_numpy(), plan["row"].to_numpy(), strict=True)):
            if config.speed is not None:
                wait = origin_wall + (emit[i] - origin_event) / config.speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            producer.send(topics[kind], key=keys[kind][row], value=payloads[kind][row])
            progress.advance(1)
    finally:
        producer.flush()
        producer.close()
    elapsed = progress.finish()
    print(f"replay: {len(tx):,} transactions and {len(labels):,} labels published in {elapsed:.1f}s")
    return 0
