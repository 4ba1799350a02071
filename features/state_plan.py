"""The stream's compilation of the declarations: what the keyed state engine (jvm/) computes.

Pure data, no Spark: :func:`state_plan` turns the declared customer and terminal features into
the JSON config the JVM ``FeatureProcessor`` reads (its routes, each feature's operation, source
column and window, the retention). Features of the transaction itself (calendar encodings) and
derivations with explicit inputs (ratios, z-scores) are not state: they are computed after the
state, by :mod:`features.derive`, the same functions the batch engine uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from features.catalog import FeatureParams, declare_features, max_lookback
from features.spec import Aggregation, Entity, Feature

ROUTES = {Entity.CUSTOMER: "c", Entity.TERMINAL: "t"}
CONFIG_FORMAT = 1

# Declared operation -> the state engine's implementation (jvm/.../Operation.java).
STATE_OPERATIONS = {
    Aggregation.COUNT: "count",
    Aggregation.SUM: "sum",
    Aggregation.MEAN: "mean",
    Aggregation.MAX: "max",
    Aggregation.STD: "std",
    Aggregation.SECONDS_SINCE_PREVIOUS: "seconds_since_previous",
    Aggregation.IS_NEW_TERMINAL: "is_new_pair",
    Aggregation.FRAUD_RATE: "fraud_rate",
}


def _us(value: timedelta) -> int:
    return int(value.total_seconds() * 1_000_000)


def is_state_feature(feat: Feature) -> bool:
    """Whether the keyed state computes this feature (a window operation of a customer or terminal)."""
    return feat.entity in ROUTES and feat.aggregation in STATE_OPERATIONS


@dataclass(frozen=True)
class StatePlan:
    """The state engine's share of the feature set."""

    routes: dict[str, list[dict[str, object]]]
    retention_us: int
    lateness_us: int

    @property
    def feature_names(self) -> list[str]:
        return [str(spec["name"]) for specs in self.routes.values() for spec in specs]

    def config(self, input_ddl: str, output_ddl: str, carry: list[str]) -> str:
        """The JSON the JVM processor parses (format 1)."""
        return json.dumps({
            "format": CONFIG_FORMAT,
            "lateness_us": self.lateness_us,
            "retention_us": self.retention_us,
            "input_schema": input_ddl,
            "output_schema": output_ddl,
            "carry": carry,
            "routes": {
                route: {"carry": route == ROUTES[Entity.CUSTOMER], "features": specs}
                for route, specs in self.routes.items()
            },
        })


def state_plan(params: FeatureParams, lateness: timedelta) -> StatePlan:
    """The routes and features the keyed state keeps, from the declarations."""
    routes: dict[str, list[dict[str, object]]] = {route: [] for route in ROUTES.values()}
    for feat in declare_features(params):
        if not is_state_feature(feat):
            continue
        assert feat.window is not None, f"{feat.id}: a state feature needs a window"
        routes[ROUTES[feat.entity]].append({
            "name": feat.name,
            "op": STATE_OPERATIONS[feat.aggregation],
            "source": feat.source,
            "length_us": _us(feat.window.length),
            "offset_us": _us(feat.window.offset),
        })
    # Events are kept for the longest look-back behind the frontier, plus the lateness: a pending
    # transaction (not yet released) is at most that far ahead of the frontier.
    retention = max_lookback(params) + lateness
    return StatePlan(routes, _us(retention), _us(lateness))
