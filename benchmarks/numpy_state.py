"""A numpy reference of the declared window features (the stream benchmark's Spark-free loop).

The reference keeps, per customer and per terminal, the recent events as flat arrays (no Spark,
no state store: the work the stream does, done in one Python process). This module computes each
declared customer or terminal feature for target events of such arrays, vectorized (one sort,
``searchsorted`` for every window bound, segmented reductions), with the batch engine's
semantics (:mod:`features.engine`, the reference):

* a window ``(t - offset - length, t - offset]`` in event-time microseconds, ties included;
* ``seconds_since_previous``: the previous event in (time, transaction id) order, capped;
* ``is_new_terminal``: no event of the same (customer, terminal) in ``(t - length, t - 1µs]``;
* ``fraud_rate``: events of the window whose first fraud report is at or before ``t``, divided by
  the window's events (null without events);
* nulls become the declared ``fill``.

Each operation is one entry of :data:`CUSTOMER_OPERATIONS` or :data:`TERMINAL_OPERATIONS`, so a
new aggregation touches one place here (and one in each other engine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from features.spec import Aggregation, Entity, Feature

NO_REPORT = np.iinfo(np.int64).max  # fraud_reported_us of an event without a fraud report
_SPAN_BITS = 44  # event-time range of one bucket's arrays plus the widest window: 2^44 µs ≈ 203 days
_STD_EPSILON = 1e-9


def _micros(value: timedelta) -> int:
    return int(value.total_seconds() * 1_000_000)


@dataclass
class KeyedEvents:
    """One bucket's events sorted by (key, time, transaction id), and its targets' positions.

    ``columns`` holds the sorted value columns (``amount``, ``terminal_id``, ``fraud_reported_us``
    as the route needs); ``targets`` are positions in the sorted arrays.
    """

    codes: np.ndarray  # int64 key codes
    us: np.ndarray  # int64 event time, µs since the epoch
    columns: dict[str, np.ndarray]
    targets: np.ndarray  # int64 positions of the targets
    base: int  # subtracted from times so that every window bound is >= 0
    composite: np.ndarray  # codes << _SPAN_BITS | (us - base): sorted

    @classmethod
    def build(cls, events: pd.DataFrame, is_target: np.ndarray, reach: timedelta) -> KeyedEvents:
        """Sort ``events`` (columns key, us, transaction_id and values) and index them by key.

        ``reach`` is the widest ``length + offset`` any feature of the route looks back.
        """
        codes, _ = pd.factorize(events["key"].to_numpy(), sort=False)
        codes = codes.astype(np.int64)
        us = events["us"].to_numpy(dtype=np.int64)
        ids = events["transaction_id"].to_numpy(dtype=object)
        id_rank, _ = pd.factorize(ids, sort=True)  # ties in time break on the id, as integers
        order = np.lexsort((id_rank, us, codes))
        us_sorted = us[order]
        base = int(us_sorted.min()) - _micros(reach) - 1 if len(us_sorted) else 0
        if len(us_sorted) and int(us_sorted.max()) - base >= 1 << _SPAN_BITS:
            raise ValueError(f"events span more than 2^{_SPAN_BITS} µs: expire old events before featurizing")
        if len(codes) and int(codes.max()) >= 1 << (62 - _SPAN_BITS):
            raise ValueError(f"more than 2^{62 - _SPAN_BITS} keys in one bucket: use more buckets")
        codes_sorted = codes[order]
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order), dtype=np.int64)
        columns = {name: events[name].to_numpy()[order] for name in events.columns
                   if name not in ("key", "us", "transaction_id")}
        columns["transaction_id"] = ids[order]
        composite = (codes_sorted << _SPAN_BITS) | (us_sorted - base)
        return cls(codes_sorted, us_sorted, columns, position[np.flatnonzero(is_target)], base, composite)

    def bounds(self, end_offset_us: int, length_us: int) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) positions of each target's window ``(t - end_offset - length, t - end_offset]``."""
        t = self.us[self.targets]
        key = self.codes[self.targets] << _SPAN_BITS
        hi = np.searchsorted(self.composite, key | (t - end_offset_us - self.base), side="right")
        lo = np.searchsorted(self.composite, key | (t - end_offset_us - length_us - self.base), side="right")
        return lo, hi


def _segments(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gathered positions, start of each non-empty segment in them, segment sizes) of [lo, hi)."""
    sizes = hi - lo
    starts = np.cumsum(sizes) - sizes
    gathered = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(starts - lo, sizes)
    return gathered, starts[sizes > 0], sizes


def _segment_sum(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of values[lo:hi] per target (NaN when empty), summed in time order."""
    gathered, starts, sizes = _segments(lo, hi)
    out = np.full(len(lo), np.nan)
    if len(gathered):
        out[sizes > 0] = np.add.reduceat(values[gathered], starts)
    return out


def _segment_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    gathered, starts, sizes = _segments(lo, hi)
    out = np.full(len(lo), np.nan)
    if len(gathered):
        out[sizes > 0] = np.maximum.reduceat(values[gathered], starts)
    return out


def _segment_std(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Population standard deviation per target, two-pass (0 for one event, NaN for none)."""
    gathered, starts, sizes = _segments(lo, hi)
    out = np.full(len(lo), np.nan)
    if not len(gathered):
        return out
    filled = sizes > 0
    mean = np.add.reduceat(values[gathered], starts) / sizes[filled]
    deviation = values[gathered] - np.repeat(mean, sizes[filled])
    out[filled] = np.sqrt(np.add.reduceat(deviation * deviation, starts) / sizes[filled])
    return out


def _window(feat: Feature) -> tuple[int, int]:
    if feat.window is None:
        raise ValueError(f"feature {feat.id}: {feat.aggregation} needs a window")
    return _micros(feat.window.offset), _micros(feat.window.length)


def _amounts(events: KeyedEvents, feat: Feature) -> np.ndarray:
    source = "amount" if feat.aggregation in (Aggregation.RATIO_TO_MEAN, Aggregation.ZSCORE) else feat.source
    if source not in events.columns:
        raise ValueError(f"feature {feat.id}: source column {source!r} is not kept in the state")
    return events.columns[source].astype(np.float64)


def _count(events: KeyedEvents, feat: Feature) -> np.ndarray:
    lo, hi = events.bounds(*_window(feat))
    return (hi - lo).astype(np.float64)


def _sum(events: KeyedEvents, feat: Feature) -> np.ndarray:
    return _segment_sum(_amounts(events, feat), *events.bounds(*_window(feat)))


def _mean(events: KeyedEvents, feat: Feature) -> np.ndarray:
    lo, hi = events.bounds(*_window(feat))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _segment_sum(_amounts(events, feat), lo, hi) / (hi - lo)


def _max(events: KeyedEvents, feat: Feature) -> np.ndarray:
    return _segment_max(_amounts(events, feat), *events.bounds(*_window(feat)))


def _std(events: KeyedEvents, feat: Feature) -> np.ndarray:
    return _segment_std(_amounts(events, feat), *events.bounds(*_window(feat)))


def _seconds_since_previous(events: KeyedEvents, feat: Feature) -> np.ndarray:
    _, cap = _window(feat)
    previous = events.targets - 1
    has = (previous >= 0) & (events.codes[np.maximum(previous, 0)] == events.codes[events.targets])
    gap = (events.us[events.targets] - events.us[np.maximum(previous, 0)]) / 1_000_000.0
    return np.where(has, np.minimum(gap, cap / 1_000_000.0), np.nan)


def _ratio_to_mean(events: KeyedEvents, feat: Feature) -> np.ndarray:
    mean = _mean(events, feat)
    amount = events.columns["amount"][events.targets].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean != 0, amount / mean, np.nan)


def _zscore(events: KeyedEvents, feat: Feature) -> np.ndarray:
    mean, std = _mean(events, feat), _std(events, feat)
    amount = events.columns["amount"][events.targets].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std > _STD_EPSILON, (amount - mean) / std, np.nan)


def _is_new_terminal(events: KeyedEvents, feat: Feature) -> np.ndarray:
    _, length = _window(feat)
    if feat.source not in events.columns:
        raise ValueError(f"feature {feat.id}: source column {feat.source!r} is not kept in the state")
    terminal, _ = pd.factorize(events.columns[feat.source])
    pair = pd.DataFrame({"key": events.codes * (int(terminal.max(initial=0)) + 1) + terminal,
                         "us": events.us, "transaction_id": events.columns["transaction_id"]})
    is_target = np.zeros(len(pair), dtype=bool)
    is_target[events.targets] = True
    pairs = KeyedEvents.build(pair, is_target, feat.window.length)  # type: ignore[union-attr]
    # Targets keep their relative order through the stable re-sort only per key, so map them by id.
    lo, hi = pairs.bounds(1, length - 1)
    seen = pd.Series(hi - lo, index=pairs.columns["transaction_id"][pairs.targets])
    return np.where(seen.reindex(events.columns["transaction_id"][events.targets]).to_numpy() == 0, 1.0, 0.0)


def _fraud_rate(events: KeyedEvents, feat: Feature) -> np.ndarray:
    if feat.source != "is_fraud":
        raise ValueError(f"feature {feat.id}: a fraud rate reads is_fraud, not {feat.source!r}")
    lo, hi = events.bounds(*_window(feat))
    reported = events.columns["fraud_reported_us"].astype(np.int64)
    gathered, starts, sizes = _segments(lo, hi)
    frauds = np.zeros(len(lo))
    if len(gathered):
        limit = np.repeat(events.us[events.targets], sizes)
        frauds[sizes > 0] = np.add.reduceat((reported[gathered] <= limit).astype(np.float64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes > 0, frauds / sizes, np.nan)


Operation = Callable[[KeyedEvents, Feature], np.ndarray]

CUSTOMER_OPERATIONS: dict[Aggregation, Operation] = {
    Aggregation.COUNT: _count,
    Aggregation.SUM: _sum,
    Aggregation.MEAN: _mean,
    Aggregation.MAX: _max,
    Aggregation.STD: _std,
    Aggregation.SECONDS_SINCE_PREVIOUS: _seconds_since_previous,
    Aggregation.RATIO_TO_MEAN: _ratio_to_mean,
    Aggregation.ZSCORE: _zscore,
    Aggregation.IS_NEW_TERMINAL: _is_new_terminal,
}
TERMINAL_OPERATIONS: dict[Aggregation, Operation] = {
    Aggregation.COUNT: _count,
    Aggregation.SUM: _sum,
    Aggregation.MEAN: _mean,
    Aggregation.MAX: _max,
    Aggregation.STD: _std,
    Aggregation.FRAUD_RATE: _fraud_rate,
}
OPERATIONS = {Entity.CUSTOMER: CUSTOMER_OPERATIONS, Entity.TERMINAL: TERMINAL_OPERATIONS}


def route_features(feats: list[Feature], entity: Entity) -> list[Feature]:
    """The declared features of one key (customer or terminal), in declaration order."""
    return [f for f in feats if f.entity is entity]


def reach(feats: list[Feature]) -> timedelta:
    """The widest ``length + offset`` of the features (how long events stay in the state)."""
    spans = [f.window.length + f.window.offset for f in feats if f.window is not None]
    return max(spans, default=timedelta(0))


def compute(events: pd.DataFrame, is_target: np.ndarray, feats: list[Feature], entity: Entity) -> pd.DataFrame:
    """The ``entity`` features of the target events, one row per target, indexed by transaction id.

    ``events`` has columns key, us, transaction_id and the values the features read (``amount``,
    ``terminal_id`` for customers; ``fraud_reported_us`` for terminals); ``is_target`` flags rows.
    Targets are part of ``events`` (a window includes its own transaction).
    """
    operations = OPERATIONS[entity]
    own = route_features(feats, entity)
    unknown = [f.id for f in own if f.aggregation not in operations]
    if unknown:
        raise ValueError(f"no state operation for {', '.join(unknown)}")
    keyed = KeyedEvents.build(events, np.asarray(is_target, dtype=bool), reach(own))
    out = {}
    for feat in own:
        values = operations[feat.aggregation](keyed, feat)
        out[feat.name] = np.where(np.isnan(values), feat.fill, values)
    return pd.DataFrame(out, index=pd.Index(keyed.columns["transaction_id"][keyed.targets], name="transaction_id"))
