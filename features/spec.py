"""Feature declarations as data: what a feature is, independent of the engine that computes it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from enum import StrEnum


class Entity(StrEnum):
    """The key a feature is aggregated over."""

    TRANSACTION = "transaction"
    CUSTOMER = "customer"
    TERMINAL = "terminal"


class Aggregation(StrEnum):
    """How the rows of a window become one value."""

    VALUE = "value"  # the transaction's own value, no window
    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    STD = "std"  # population standard deviation (0 for a single row)
    SECONDS_SINCE_PREVIOUS = "seconds_since_previous"
    RATIO_TO_MEAN = "ratio_to_mean"
    ZSCORE = "zscore"
    IS_NEW_TERMINAL = "is_new_terminal"
    FRAUD_RATE = "fraud_rate"
    CYCLIC_SIN = "cyclic_sin"
    CYCLIC_COS = "cyclic_cos"
    FLAG = "flag"


@dataclass(frozen=True)
class Window:
    """A time window ``(t - offset - length, t - offset]`` relative to the transaction time ``t``.

    ``offset`` shifts the window back (terminal windows end a label delay before the transaction).
    """

    length: timedelta
    offset: timedelta = timedelta(0)

    @property
    def label(self) -> str:
        text = _duration_label(self.length)
        return text if not self.offset else f"{text}_delay{_duration_label(self.offset)}"


@dataclass(frozen=True)
class Feature:
    """One declared feature. ``id`` is stable and versioned; ``name`` is its column."""

    name: str
    entity: Entity
    aggregation: Aggregation
    description: str
    source: str = "amount"
    window: Window | None = None
    label_delay: timedelta | None = None
    fill: float = 0.0
    params: dict[str, float] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()  # columns a derivation reads (ratio, z-score, a fraud rate's denominator)
    version: int = 1
    dtype: str = "double"

    @property
    def id(self) -> str:
        return f"{self.entity.value}.{self.name.removeprefix(self.entity.value + '_')}.v{self.version}"

    def to_record(self) -> dict[str, object]:
        """A JSON-friendly description (for the listing, MLflow and the data dictionary)."""
        record = asdict(self)
        record["id"] = self.id
        record["entity"] = self.entity.value
        record["aggregation"] = self.aggregation.value
        record["window"] = self.window.label if self.window else None
        record["window_seconds"] = self.window.length.total_seconds() if self.window else None
        record["offset_seconds"] = self.window.offset.total_seconds() if self.window else None
        record["label_delay"] = _duration_label(self.label_delay) if self.label_delay else None
        return record


def feature_set_version(features: list[Feature]) -> str:
    """A short content hash of the declarations: changes whenever any feature changes."""
    payload = json.dumps([f.to_record() for f in features], sort_keys=True, default=str)
    return "fs-" + hashlib.sha256(payload.encode()).hexdigest()[:10]


def _duration_label(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
