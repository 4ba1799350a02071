"""Compile the feature declarations to Spark and run them.

One engine, two drivers: the batch job calls :func:`compute_features` over a date range with its
look-back history; the stream calls the same function inside ``foreachBatch`` over the
micro-batch plus the recent history of the customers and terminals it touches. Windows are
range frames over event time in microseconds, so both drivers produce identical values for the
same input (parity by construction, checked by tests and ``aegis features parity``).
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from features.catalog import FeatureParams, declare_features, feature_version, max_lookback
from features.spec import Aggregation, Entity, Feature

TARGET = "_target"
KEY_COLUMNS = ["transaction_id", "customer_id", "terminal_id", "event_time", "event_date"]
_US = "_event_us"
_STD_EPSILON = 1e-9


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
        if feat.aggregation is Aggregation.FRAUD_RATE or feat.aggregation is Aggregation.VALUE:
            continue  # fraud rates come from the label join below; values are the input column
        values[feat.name] = _expression(feat, params, customer, terminal, values)
    tx = tx.select("*", *[col.alias(name) for name, col in values.items()])
    targets = tx.filter(F.col(TARGET))
    fraud_rates = [f for f in feats if f.aggregation is Aggregation.FRAUD_RATE]
    if fraud_rates:
        targets = _with_fraud_rates(targets, tx, labels, fraud_rates)
    out = targets.select(
        *KEY_COLUMNS,
        *[F.coalesce(F.col(f.name).cast("double"), F.lit(f.fill)).alias(f.name) for f in feats],
        F.lit(feature_version(params)).alias("feature_version"),
        *carry,
    )
    return out


def _frame(window: WindowSpec, feat: Feature, exclusive_end: bool = False) -> WindowSpec:
    assert feat.window is not None
    end = -_micros(feat.window.offset)
    start = end - _micros(feat.window.length) + 1
    return window.rangeBetween(start, end - 1 if exclusive_end else end)


def _expression(
    feat: Feature,
    params: FeatureParams,
    customer: WindowSpec,
    terminal: WindowSpec,
    done: dict[str, Column],
) -> Column:
    agg = feat.aggregation
    amount = F.col("amount")
    if feat.entity in (Entity.CUSTOMER, Entity.TERMINAL) and agg in _WINDOW_AGGREGATES:
        base = customer if feat.entity is Entity.CUSTOMER else terminal
        return _WINDOW_AGGREGATES[agg](amount).over(_frame(base, feat))
    if agg is Aggregation.SECONDS_SINCE_PREVIOUS:
        assert feat.window is not None
        previous = F.lag(_US).over(Window.partitionBy("customer_id").orderBy(_US, "transaction_id"))
        gap = (F.col(_US) - previous) / F.lit(1_000_000.0)
        return F.least(gap, F.lit(feat.window.length.total_seconds()))
    if agg is Aggregation.RATIO_TO_MEAN:
        mean = F.avg(amount).over(_frame(customer, feat))
        return F.try_divide(amount, F.when(mean != 0, mean))
    if agg is Aggregation.ZSCORE:
        frame = _frame(customer, feat)
        std = F.stddev_pop(amount).over(frame)
        mean = F.avg(amount).over(frame)
        return F.when(std > _STD_EPSILON, (amount - mean) / std)
    if agg is Aggregation.IS_NEW_TERMINAL:
        pair = Window.partitionBy("customer_id", "terminal_id").orderBy(_US)
        seen = F.count(F.lit(1)).over(_frame(pair, feat, exclusive_end=True))
        return F.when(seen == 0, 1.0).otherwise(0.0)
    if agg in (Aggregation.CYCLIC_SIN, Aggregation.CYCLIC_COS, Aggregation.FLAG):
        return _calendar(feat, params)
    raise ValueError(f"feature {feat.id}: no Spark compilation for {feat.entity}/{agg}")


_WINDOW_AGGREGATES = {
    Aggregation.COUNT: F.count,
    Aggregation.SUM: F.sum,
    Aggregation.MEAN: F.avg,
    Aggregation.MAX: F.max,
    Aggregation.STD: F.stddev_pop,
}


def _calendar(feat: Feature, params: FeatureParams) -> Column:
    local = F.from_utc_timestamp(F.col("event_time"), params.timezone)
    hour = F.hour(local) + F.minute(local) / 60.0 + F.second(local) / 3600.0
    day_of_week = ((F.dayofweek(local) + 5) % 7).cast("double")  # Monday = 0
    if feat.aggregation is Aggregation.FLAG:
        source = day_of_week if feat.source == "day_of_week" else F.hour(local).cast("double")
        inside = (source >= feat.params["from"]) & (source < feat.params["to"])
        return F.when(inside, 1.0).otherwise(0.0)
    source = hour if feat.source == "hour" else day_of_week
    angle = F.lit(2.0 * 3.141592653589793) * source / F.lit(feat.params["period"])
    return F.sin(angle) if feat.aggregation is Aggregation.CYCLIC_SIN else F.cos(angle)


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
        tx_count = F.col(feat.name.replace("fraud_rate", "tx_count"))
        frauds_seen = F.coalesce(F.col("_frauds_" + feat.name), F.lit(0.0))
        out = out.withColumn(feat.name, F.try_divide(frauds_seen, F.when(tx_count > 0, tx_count)))
    return out
