"""The batch side's shared steps: featurize a span's targets over their history (backfill,
training, the parity check), and find the stream rows a late arrival overtook.

The stream computes the same declarations in its keyed state (stream/); both end in the same
scoring UDF (models.spark_scoring).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from features.catalog import FeatureParams
from features.engine import KEY_COLUMNS, TARGET, compute_features, lookback
from lakehouse.delta_io import read_table
from lakehouse.tables import LABELS, TRANSACTIONS

ScoreFn = Callable[[DataFrame, int | None], DataFrame]


@dataclass(frozen=True)
class TargetSpan:
    """Which transactions to featurize: their date span (for partition pruning) and a filter."""

    first_date: date
    last_date: date
    condition: object  # a pyspark Column over bronze columns


def history_for(
    spark: SparkSession,
    settings: Settings,
    params: FeatureParams,
    span: TargetSpan,
    carry: tuple[str, ...] | None = None,
) -> tuple[DataFrame, DataFrame]:
    """(bronze transactions with ``_target`` flag, labels) needed to featurize the span's targets.

    With ``carry`` given, only the columns the feature engines read (and ``carry``) are kept, and
    labels are narrowed to fraud reports: the compact form worth caching.
    """
    root = settings.lakehouse_root
    bronze, labels = _within(read_table(spark, TRANSACTIONS, root), read_table(spark, LABELS, root), params, span)
    return flag_targets(bronze, labels, span, carry)


def _within(
    bronze: DataFrame, labels: DataFrame, params: FeatureParams, span: TargetSpan
) -> tuple[DataFrame, DataFrame]:
    """The transactions and label reports the span's features can read (partition-pruning filters)."""
    first = history_start(params, span.first_date)
    return (
        bronze.filter(F.col("event_date").between(F.lit(first), F.lit(span.last_date))),
        labels.filter(F.col("report_date").between(F.lit(first), F.lit(span.last_date + timedelta(days=1)))),
    )


def history_start(params: FeatureParams, first_target_date: date) -> date:
    """The first event (and report) date the features of targets from ``first_target_date`` read."""
    return first_target_date - (lookback(params) + timedelta(days=1))


def flag_targets(
    bronze: DataFrame, labels: DataFrame, span: TargetSpan, carry: tuple[str, ...] | None
) -> tuple[DataFrame, DataFrame]:
    """Bronze rows with the ``_target`` flag of ``span``, compacted when ``carry`` is given."""
    flagged = bronze.withColumn(TARGET, F.coalesce(span.condition, F.lit(False)))  # type: ignore[arg-type]
    if carry is not None:
        flagged = flagged.select(*KEY_COLUMNS, "amount", TARGET, *carry)
        labels = labels.filter(F.col("is_fraud")).select("transaction_id", "is_fraud", "reported_at")
    return flagged, labels


def featurize(
    spark: SparkSession,
    settings: Settings,
    params: FeatureParams,
    span: TargetSpan,
    source: str,
    run_id: str,
    batch_id: int | None = None,
    carry: tuple[str, ...] = (),
    history: tuple[DataFrame, DataFrame] | None = None,
) -> DataFrame:
    """silver.features rows for the span's targets (batch engine), with lineage columns and ``carry``.

    ``history`` is :func:`history_for`'s result when the caller has it already (e.g. cached).
    """
    transactions, labels = history or history_for(spark, settings, params, span)
    features = compute_features(transactions, labels, params, carry)
    return features.select(
        "*",
        F.lit(source).alias("source"),
        F.lit(False).alias("is_late"),
        F.lit(batch_id).cast("long").alias("stream_batch_id"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("computed_at"),
    )


def overtaken_by_late_arrivals(stream_rows: DataFrame, params: FeatureParams) -> DataFrame:
    """transaction_ids of stream rows whose windows gained a late event after they were computed.

    A late event (``is_late``: it arrived after the frontier passed its time, including a second
    event at exactly the frontier's time) cannot change features already emitted; the batch engine
    sees it. Such rows legitimately differ between stream and batch and are left out of parity.
    """
    late = stream_rows.filter(F.col("is_late")).select(
        F.col("customer_id").alias("_l_customer"),
        F.col("terminal_id").alias("_l_terminal"),
        F.col("event_time").alias("_l_time"),
        F.col("stream_batch_id").alias("_l_batch"),
    )
    reach = F.expr(f"INTERVAL {int(lookback(params).total_seconds())} SECONDS")
    same_key = (F.col("customer_id") == F.col("_l_customer")) | (F.col("terminal_id") == F.col("_l_terminal"))
    overtaken = (
        same_key
        & (F.col("_l_time") <= F.col("event_time"))
        & (F.col("_l_time") > F.col("event_time") - reach)
        & (F.col("_l_batch") > F.col("stream_batch_id"))
    )
    return stream_rows.join(F.broadcast(late), overtaken, "left_semi").select("transaction_id").distinct()

