"""The batch engine: the feature declarations compiled to Spark window functions.

Range frames over event time in microseconds, per customer / terminal; every history row is
framed. The backfill, training and the parity check use it, and it is the reference the stream's
keyed state (features.state_plan, jvm/) is held to, to 1e-9 (tests, ``aegis features parity``).
Row features (calendar encodings, derivations) come from :mod:`features.derive`, shared with
the stream.
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from features.catalog import FeatureParams, declare_features, max_lookback
from features.derive import KEY_COLUMNS, feature_row, is_row_feature, row_feature
from features.spec import Aggregation, Entity, Feature

TARGET = "_target"
_US = "_event_us"
__all__ = ["KEY_COLUMNS", "TARGET", "compute_features", "lookback"]


def _micros(value: timedelta) -> int:
    return int(value.total_seconds() * 1_000_000)


def lookback(params: FeatureParams) -> timedelta:
    """History needed before the first target transaction."""
    return max_lookback(params)


def compute_features(
    transactions: DataFrame,
    labels: DataFrame,
    params: FeatureParams,
    carry: tuple[str, ...] = (),
) -> DataFrame:
    """Features for the rows of ``transactions`` whose boolean ``_target`` column is true.

    ``transactions`` holds the targets and their look-back history (bronze columns);
    ``labels`` holds bronze labels (transaction_id, is_fraud, reported_at). Returns one row per
    target with the key columns, every declared feature (nulls filled as declared),
    ``feature_version`` and the ``carry`` columns of ``transactions`` passed through unchanged.
    """
    feats = declare_features(params)
    tx = transactions.withColumn(_US, F.unix_micros("event_time"))
    customer = Window.partitionBy("customer_id").orderBy(_US)
    terminal = Window.partitionBy("terminal_id").orderBy(_US)
    values: dict[str, Column] = {}
    for feat in feats:
        if feat.aggregation in (Aggregation.FRAUD_RATE, Aggregation.VALUE) or is_row_feature(feat):
            continue  # fraud rates come from the label join below; values are the input column
        values[feat.name] = _expression(feat, customer, terminal)
    tx = tx.select("*", *[col.alias(name) for name, col in values.items()])
    return _finish(tx.filter(F.col(TARGET)), tx, labels, feats, params, carry)


def _finish(
    targets: DataFrame,
    history: DataFrame,
    labels: DataFrame,
    feats: list[Feature],
    params: FeatureParams,
    carry: tuple[str, ...],
) -> DataFrame:
    """Add the fraud rates, fill the declared defaults and shape the output row."""
    fraud_rates = [f for f in feats if f.aggregation is Aggregation.FRAUD_RATE]
    if fraud_rates:
        targets = _with_fraud_rates(targets, history, labels, fraud_rates)
    row = [f for f in feats if is_row_feature(f)]
    targets = targets.select("*", *[row_feature(f, params).alias(f.name) for f in row])
    return targets.select(*feature_row(feats, params, carry))


def _frame(window: WindowSpec, feat: Feature, exclusive_end: bool = False) -> WindowSpec:
    assert feat.window is not None
    end = -_micros(feat.window.offset)
    start = end - _micros(feat.window.length) + 1
    return window.rangeBetween(start, end - 1 if exclusive_end else end)


def _expression(feat: Feature, customer: WindowSpec, terminal: WindowSpec) -> Column:
    agg = feat.aggregation
    source = F.col(feat.source)
    if feat.entity in (Entity.CUSTOMER, Entity.TERMINAL) and agg in _WINDOW_AGGREGATES:
        base = customer if feat.entity is Entity.CUSTOMER else terminal
        return _WINDOW_AGGREGATES[agg](source).over(_frame(base, feat))
    if agg is Aggregation.SECONDS_SINCE_PREVIOUS:
        assert feat.window is not None
        previous = F.lag(_US).over(Window.partitionBy("customer_id").orderBy(_US, "transaction_id"))
        gap = (F.col(_US) - previous) / F.lit(1_000_000.0)
        return F.least(gap, F.lit(feat.window.length.total_seconds()))
    if agg is Aggregation.IS_NEW_TERMINAL:
        pair = Window.partitionBy("customer_id", feat.source).orderBy(_US)
        seen = F.count(F.lit(1)).over(_frame(pair, feat, exclusive_end=True))
        return F.when(seen == 0, 1.0).otherwise(0.0)
    raise ValueError(f"feature {feat.id}: no Spark compilation for {feat.entity}/{agg}")


_WINDOW_AGGREGATES = {
    Aggregation.COUNT: F.count,
    Aggregation.SUM: F.sum,
    Aggregation.MEAN: F.avg,
    Aggregation.MAX: F.max,
    Aggregation.STD: F.stddev_pop,
}


def _with_fraud_rates(targets: DataFrame, history: DataFrame, labels: DataFrame, feats: list[Feature]) -> DataFrame:
    """Terminal fraud rates: frauds among the window's transactions reported by the target's time."""
    first_fraud_report = (
        labels.filter(F.col("is_fraud"))
        .groupBy("transaction_id")
        .agg(F.min("reported_at").alias("_reported_at"))
    )
    frauds = first_fraud_report.join(
        history.select("transaction_id", F.col("terminal_id").alias("_f_terminal"), F.col(_US).alias("_f_us")),
        "transaction_id",
    ).drop("transaction_id")
    windows = [f.window for f in feats if f.window is not None]
    widest = max(_micros(w.length + w.offset) for w in windows)
    narrowest_offset = min(_micros(w.offset) for w in windows)
    keyed = targets.select(
        F.col("transaction_id").alias("_t_id"),
        F.col("terminal_id").alias("_t_terminal"),
        F.col(_US).alias("_t_us"),
        F.col("event_time").alias("_t_time"),
    )
    joined = keyed.join(
        frauds,
        (F.col("_f_terminal") == F.col("_t_terminal"))
        & (F.col("_f_us") > F.col("_t_us") - widest)
        & (F.col("_f_us") <= F.col("_t_us") - narrowest_offset)
        & (F.col("_reported_at") <= F.col("_t_time")),
    )
    counts = []
    for feat in feats:
        assert feat.window is not None
        end = F.col("_t_us") - _micros(feat.window.offset)
        inside = (F.col("_f_us") <= end) & (F.col("_f_us") > end - _micros(feat.window.length))
        counts.append(F.sum(F.when(inside, 1.0).otherwise(0.0)).alias("_frauds_" + feat.name))
    fraud_counts = joined.groupBy("_t_id").agg(*counts)
    out = targets.join(fraud_counts, targets["transaction_id"] == fraud_counts["_t_id"], "left")
    for feat in feats:
        if len(feat.inputs) != 1:
            raise ValueError(f"feature {feat.id}: a fraud rate declares its denominator as its one input")
        tx_count = F.col(feat.inputs[0])
        frauds_seen = F.coalesce(F.col("_frauds_" + feat.name), F.lit(0.0))
        out = out.withColumn(feat.name, F.try_divide(frauds_seen, F.when(tx_count > 0, tx_count)))
    return out
