"""Features computed from other columns of the same row: calendar encodings and derivations.

Both engines (the batch windows of :mod:`features.engine` and the stream's keyed state) call
these after their window operations, so a ratio or a z-score has one definition: its declared
``inputs`` (feature or source columns), not a name convention.
"""

from __future__ import annotations

import math

from pyspark.sql import Column
from pyspark.sql import functions as F

from features.catalog import FeatureParams, feature_version
from features.spec import Aggregation, Entity, Feature

STD_EPSILON = 1e-9
KEY_COLUMNS = ["transaction_id", "customer_id", "terminal_id", "event_time", "event_date"]
CALENDAR = (Aggregation.CYCLIC_SIN, Aggregation.CYCLIC_COS, Aggregation.FLAG)
DERIVATIONS = (Aggregation.RATIO_TO_MEAN, Aggregation.ZSCORE)


def is_row_feature(feat: Feature) -> bool:
    """Whether the feature is computed from its own row (after the window operations)."""
    return feat.aggregation in CALENDAR or feat.aggregation in DERIVATIONS


def row_feature(feat: Feature, params: FeatureParams) -> Column:
    """The column of a calendar encoding or a derivation, from the columns it reads."""
    if feat.aggregation in CALENDAR:
        return calendar(feat, params)
    if feat.aggregation is Aggregation.RATIO_TO_MEAN:
        value, mean = (F.col(name) for name in _inputs(feat, 2))
        return F.try_divide(value, F.when(mean != 0, mean))
    if feat.aggregation is Aggregation.ZSCORE:
        value, mean, std = (F.col(name) for name in _inputs(feat, 3))
        return F.when(std > STD_EPSILON, (value - mean) / std)
    raise ValueError(f"feature {feat.id}: {feat.aggregation} is not computed from its row")


def _inputs(feat: Feature, count: int) -> tuple[str, ...]:
    if len(feat.inputs) != count:
        raise ValueError(f"feature {feat.id}: {feat.aggregation} needs {count} inputs, declared {feat.inputs}")
    return feat.inputs


def calendar(feat: Feature, params: FeatureParams) -> Column:
    """Cyclic encodings and flags of the transaction's local time."""
    if feat.entity is not Entity.TRANSACTION:
        raise ValueError(f"feature {feat.id}: calendar features belong to the transaction")
    local = F.from_utc_timestamp(F.col("event_time"), params.timezone)
    hour = F.hour(local) + F.minute(local) / 60.0 + F.second(local) / 3600.0
    day_of_week = ((F.dayofweek(local) + 5) % 7).cast("double")  # Monday = 0
    if feat.aggregation is Aggregation.FLAG:
        source = day_of_week if feat.source == "day_of_week" else F.hour(local).cast("double")
        inside = (source >= feat.params["from"]) & (source < feat.params["to"])
        return F.when(inside, 1.0).otherwise(0.0)
    source = hour if feat.source == "hour" else day_of_week
    angle = F.lit(2.0 * math.pi) * source / F.lit(feat.params["period"])
    return F.sin(angle) if feat.aggregation is Aggregation.CYCLIC_SIN else F.cos(angle)


def feature_row(feats: list[Feature], params: FeatureParams, carry: tuple[str, ...] = ()) -> list[Column | str]:
    """The output row of every engine: keys, each feature with its declared fill, the version, carry."""
    return [
        *KEY_COLUMNS,
        *[F.coalesce(F.col(f.name).cast("double"), F.lit(f.fill)).alias(f.name) for f in feats],
        F.lit(feature_version(params)).alias("feature_version"),
        *carry,
    ]
