"""The keyed feature state in Spark: route rows to their keys and apply the JVM processor.

A transaction goes to two keys, its customer (route ``c``) and its terminal (route ``t``); a
fraud label goes to its terminal. ``dev.aegis.state.FeatureState`` (jvm/) runs as one
``transformWithState`` operator in event-time mode (RocksDB state, changelog checkpoints):
per key it keeps the events the declared windows need, featurizes each transaction once, drops
repeated transaction ids and expires what the windows can no longer reach. Each transaction
comes out as two half rows (one per route) in the same micro-batch; :func:`merge_halves` joins
them into silver's row (in the JVM too).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.catalog import FeatureParams, declare_features
from features.derive import feature_row, is_row_feature, row_feature
from features.projection import Projection
from features.state_plan import StatePlan, state_plan

CARRY = ["customer_id", "terminal_id", "event_time", "event_date", "amount", "kafka_timestamp"]
WATERMARK_COLUMN = "_frontier_time"
_ROUTED = [
    ("route", "string"), ("key", "string"), ("kind", "string"), ("transaction_id", "string"),
    ("event_us", "bigint"), ("reported_us", "bigint"), ("is_fraud", "boolean"),
    ("customer_id", "string"), ("terminal_id", "string"), ("event_time", "timestamp"), ("event_date", "date"),
    ("amount", "double"), ("kafka_timestamp", "timestamp"),
]
ROUTED_COLUMNS = [name for name, _ in _ROUTED]


def routed_transactions(tx: DataFrame) -> DataFrame:
    """Valid transactions (bronze columns), each twice: to its customer and to its terminal."""
    route = F.explode(F.array(F.lit("c"), F.lit("t"))).alias("route")
    kafka_ts = F.col("kafka_timestamp") if "kafka_timestamp" in tx.columns else F.lit(None).cast("timestamp")
    rows = tx.select(route, "transaction_id", "customer_id", "terminal_id", "event_time", "event_date",
                     F.col("amount").cast("double").alias("amount"), kafka_ts.alias("kafka_timestamp"))
    return rows.select(
        "route",
        F.when(F.col("route") == "c", F.col("customer_id")).otherwise(F.col("terminal_id")).alias("key"),
        F.lit("tx").alias("kind"),
        "transaction_id",
        F.unix_micros("event_time").alias("event_us"),
        F.lit(None).cast("bigint").alias("reported_us"),
        F.lit(None).cast("boolean").alias("is_fraud"),
        "customer_id", "terminal_id", "event_time", "event_date", "amount", "kafka_timestamp",
        F.col("event_time").alias(WATERMARK_COLUMN),
    )


def routed_labels(labels: DataFrame) -> DataFrame:
    """Fraud labels (bronze label columns) to their terminal; they do not move the frontier."""
    return labels.filter(F.col("is_fraud")).select(
        F.lit("t").alias("route"),
        F.col("terminal_id").alias("key"),
        F.lit("label").alias("kind"),
        "transaction_id",
        F.lit(None).cast("bigint").alias("event_us"),
        F.unix_micros("reported_at").alias("reported_us"),
        F.col("is_fraud"),
        "customer_id", "terminal_id",
        F.lit(None).cast("timestamp").alias("event_time"),
        F.lit(None).cast("date").alias("event_date"),
        F.lit(None).cast("double").alias("amount"),
        F.lit(None).cast("timestamp").alias("kafka_timestamp"),
        F.lit(None).cast("timestamp").alias(WATERMARK_COLUMN),
    )


def _ddl(fields: list[tuple[str, str]]) -> str:
    return ", ".join(f"`{name}` {dtype}" for name, dtype in fields)


def output_fields(plan: StatePlan) -> list[tuple[str, str]]:
    """The processor's output row: route, id, late flag, every state feature, the carried columns."""
    carried = [(name, dtype) for name, dtype in _ROUTED if name in CARRY]
    return [("route", "string"), ("transaction_id", "string"), ("is_late", "boolean"),
            *[(name, "double") for name in plan.feature_names], *carried]


def state_config(plan: StatePlan) -> str:
    """The JSON config the JVM processor and the halves merge parse."""
    return plan.config(_ddl(_ROUTED), _ddl(output_fields(plan)), CARRY)


def _state_class(spark: SparkSession) -> Any:
    # A batch query's state stores need the coordinator that the streams manager starts.
    spark.streams  # noqa: B018
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    return jvm.dev.aegis.state.FeatureState


def featurize_in_state(spark: SparkSession, routed: DataFrame, plan: StatePlan,
                       initial: DataFrame | None = None) -> DataFrame:
    """Apply the state processor to routed rows (streaming, or batch for tests); ``initial`` is a
    :func:`seed_rows` frame."""
    lateness = timedelta(microseconds=plan.lateness_us)
    source = routed.withWatermark(WATERMARK_COLUMN, f"{int(lateness.total_seconds() * 1000)} milliseconds") \
        if routed.isStreaming else routed
    # The watermark column's job ends at the watermark node: the operator sees the routed columns.
    source = source.select(*ROUTED_COLUMNS)
    init = initial._jdf if initial is not None else None
    return DataFrame(_state_class(spark).apply(source._jdf, state_config(plan), init), spark)


def seed_rows(routed: DataFrame) -> DataFrame:
    """Routed history rows as one row per key (route, key, rows): the processor writes each key once."""
    return routed.groupBy("route", "key").agg(F.collect_list(F.struct(*ROUTED_COLUMNS)).alias("rows"))


class HalvesMerge:
    """silver.features rows (before lineage columns) from the processor's half rows.

    The JVM joins the halves (``FeatureState.mergeHalves``: a repartition by transaction id and a
    stateless per-partition merge), so a streaming query plans the merge once; an aggregation
    would be a second stateful operator, a self-join would run the processor once per side. The
    row features and the output projection are built once: each column expression is a round
    trip to the JVM.
    """

    def __init__(self, params: FeatureParams, plan: StatePlan) -> None:
        feats = declare_features(params)
        self._config = state_config(plan)
        self._row_features = Projection([row_feature(f, params).alias(f.name) for f in feats if is_row_feature(f)],
                                        keep_all=True)
        self._output = Projection([*feature_row(feats, params, ("kafka_timestamp",)), "is_late"])

    def __call__(self, halves: DataFrame) -> DataFrame:
        spark = halves.sparkSession
        merged = DataFrame(_state_class(spark).mergeHalves(halves._jdf, self._config), spark)
        return self._output(self._row_features(merged))


def merge_halves(halves: DataFrame, params: FeatureParams, plan: StatePlan) -> DataFrame:
    """silver.features rows (before lineage columns) from one micro-batch's output of the processor."""
    return HalvesMerge(params, plan)(halves)


def plan_for(params: FeatureParams, lateness_seconds: float) -> StatePlan:
    """The state plan of a stream with this lateness."""
    return state_plan(params, timedelta(seconds=lateness_seconds))


