"""The live-style stream: each day's block turned into events, merged in emission order with the labels.

Out-of-order transactions and label delays are emitted through one heap keyed by emission time; a day is
generated only once the heap is drained up to its start, so memory stays at about a day of events.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from sources.contract import EventKind, frame_to_events
from sources.simulator.frames import Framer
from sources.simulator.scenarios import Days
from sources.simulator.util import ms_to_timestamp


class StreamEvent(NamedTuple):
    """One item of :meth:`Simulator.stream`.

    ``event`` is the wire-form dict (validates against the contract schema),
    ``key`` the Kafka key (customer_id), ``emit_time`` the wall-clock time at
    which it should be produced (``>= event_time``; later for out-of-order
    transactions and for labels), ``fraud_scenario`` the ground truth of the
    transaction concerned (0 = genuine).
    """

    kind: EventKind
    emit_time: pd.Timestamp
    key: str
    event: dict[str, Any]
    fraud_scenario: int


def merged_events(
    days: Days,
    framer: Framer,
    start_ms: int,
    sim_end: float,
    count: int | None,
    *,
    include_labels: bool,
    drain_labels: bool,
    time_compression: float,
    label_time_compression: float,
    realtime: bool,
) -> Iterator[StreamEvent]:
    """The events of :meth:`Simulator.stream` (arguments checked there) in emission order."""
    heap: list[tuple[int, int, int, Any]] = []  # (emit_ms, seq, kind 0=tx 1=label, payload)
    seq = 0
    emitted = 0
    pending_tx = 0
    day = days.local_date(start_ms) - dt.timedelta(days=1)
    producing = True
    while True:
        horizon: float = math.inf
        if producing:
            if days.midnight_ms(day) >= sim_end or (count is not None and emitted >= count):
                producing = False
            else:
                items = day_items(days, framer, day, start_ms, sim_end, time_compression, label_time_compression,
                                      include_labels)
                for emit_at, payload in items:
                    heapq.heappush(heap, (emit_at, seq, 0, payload))
                    seq += 1
                    pending_tx += 1
                day = day + dt.timedelta(days=1)
                horizon = start_ms + (days.midnight_ms(day) - start_ms) / time_compression
        while heap and heap[0][0] < horizon:
            emit_ms, _, kind, payload = heapq.heappop(heap)
            if kind == 0:
                pending_tx -= 1
                if count is not None and emitted >= count:
                    continue
                ev, lab, reported_ms, scenario = payload
                emitted += 1
                if lab is not None:
                    heapq.heappush(heap, (max(reported_ms, emit_ms), seq, 1, (lab, scenario)))
                    seq += 1
                out = StreamEvent("transaction", ms_to_timestamp(emit_ms), ev["customer_id"], ev, scenario)
            else:
                lab, scenario = payload
                out = StreamEvent("label", ms_to_timestamp(emit_ms), lab["customer_id"], lab, scenario)
            if realtime:
                wait = emit_ms / 1000 - time.time()
                if wait > 0:
                    time.sleep(wait)
            yield out
            if not drain_labels:
                if count is not None and emitted >= count:
                    return
                if not producing and pending_tx == 0:
                    return
        if not producing and (not heap or (not drain_labels and pending_tx == 0)):
            return


def day_items(
    days: Days,
    framer: Framer,
    day: dt.date,
    start_ms: int,
    sim_end: float,
    time_compression: float,
    label_time_compression: float,
    include_labels: bool,
) -> Iterator[tuple[int, tuple[dict[str, Any], dict[str, Any] | None, int, int]]]:
    """(emit_ms, (tx event, label event, label emit ms, scenario)) for one local day."""
    cfg = days.config
    b = days.day_block(day)
    keep = (b["t"] >= start_ms) & (b["t"] < sim_end)
    b = {k: v[keep] for k, v in b.items()}
    order = np.lexsort((b["id_lo"], b["id_hi"], b["t"]))
    b = {k: v[order] for k, v in b.items()}
    wall = start_ms + np.round((b["t"] - start_ms) / time_compression).astype(np.int64)
    reported = wall + np.round(b["delay_ms"] / label_time_compression).astype(np.int64)
    b["t"] = wall
    tx, labels = framer(b, reported)
    late_rng = days.rng("lateness", day.toordinal())
    late = late_rng.random(len(wall)) < cfg.out_of_order_fraction
    lateness = late_rng.uniform(0, cfg.max_out_of_order_seconds * 1000, len(wall))
    emit = wall + np.where(late, lateness, 0.0).astype(np.int64)
    label_events = frame_to_events(labels, "label") if include_labels else None
    scenario = b["scenario"].tolist()
    for i, ev in enumerate(frame_to_events(tx, "transaction")):
        lab = next(label_events) if label_events is not None else None
        yield int(emit[i]), (ev, lab, int(reported[i]), scenario[i])
