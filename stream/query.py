"""The two streaming queries of the stream: hot (Kafka -> state -> gold) and cold (bronze & co).

Both read the transactions and labels topics, each on its own checkpoint under
``paths.checkpoints``: ``<stream.query_name>.hot`` (trigger ``stream.trigger_seconds``) and
``<stream.query_name>.cold`` (trigger ``stream.cold_trigger_seconds``). Their jobs run in
separate FAIR scheduler pools, the hot one weighted higher (deploy/spark/fairscheduler.xml).
``stream.queries`` picks the ones a process runs: ``aegis stream`` runs the cold query in a
child process of its own (jobs/cold_process.py) unless ``stream.cold_in_child_process`` is off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from conf.settings import Settings
from features.catalog import FeatureParams
from features.state_plan import StatePlan
from features.table import features_table
from lakehouse.kafka_io import kafka_source
from lakehouse.tables import SCORES
from quality.ingest import FAILED, parse_labels, parse_transactions
from stream.bootstrap import initial_state, is_new_checkpoint
from stream.cold import KIND, ColdPath
from stream.hot import POOL_PROPERTY, HotPath, PlanScorer
from stream.state import featurize_in_state, plan_for, routed_labels, routed_transactions
from stream.summary import BatchSummary

log = logging.getLogger("aegis.stream")


def parsed_records(tx_raw: DataFrame, labels_raw: DataFrame, settings: Settings) -> DataFrame:
    """Both topics contract-checked, as one frame of transaction and label columns with ``_kind``."""
    tx = parse_transactions(tx_raw, settings.security.card_hash_key)
    labels = parse_labels(labels_raw)
    return tx.withColumn(KIND, F.lit("transaction")).unionByName(
        labels.withColumn(KIND, F.lit("label")), allowMissingColumns=True)


def hot_input(tx_raw: DataFrame, labels_raw: DataFrame, settings: Settings) -> DataFrame:
    """Valid transactions and fraud labels, routed to their customer and terminal keys."""
    tx = parse_transactions(tx_raw, settings.security.card_hash_key)
    labels = parse_labels(labels_raw)
    valid = F.size(FAILED) == 0
    return routed_transactions(tx.filter(valid)).unionByName(routed_labels(labels.filter(valid)))


def topic_sources(spark: SparkSession, settings: Settings, capped: bool,
                  min_partitions: int | None = None) -> tuple[DataFrame, DataFrame]:
    """The transactions and the labels topic as two sources: one source over both topics would be
    scanned once per branch of the union that splits them (every record read twice)."""
    topics = settings.kafka.topics
    return (kafka_source(spark, settings, [topics.transactions], capped=capped, min_partitions=min_partitions),
            kafka_source(spark, settings, [topics.labels], capped=capped, min_partitions=min_partitions))


def cold_input(tx_raw: DataFrame, labels_raw: DataFrame, settings: Settings) -> DataFrame:
    """Parsed records with repeats dropped in state: a transaction id, a label (id, verdict, time),
    or a failing record's Kafka position, seen again within ``stream.duplicate_horizon_hours``."""
    parsed = parsed_records(tx_raw, labels_raw, settings)
    valid = F.size(FAILED) == 0
    record_key = (
        F.when(valid & (F.col(KIND) == "transaction"), F.concat_ws("|", F.lit("t"), "transaction_id"))
        .when(valid, F.concat_ws("|", F.lit("l"), "transaction_id", F.col("is_fraud").cast("string"),
                                 F.col("reported_at").cast("string")))
        .otherwise(F.concat_ws("|", F.lit("q"), "kafka_topic", F.col("kafka_partition").cast("string"),
                               F.col("kafka_offset").cast("string")))
    )
    # Processing time as the watermark column: no record is ever behind it (none is dropped as late).
    hours = settings.stream.duplicate_horizon_hours
    return (
        parsed.withColumn("_record_key", record_key)
        .withColumn("_seen_at", F.current_timestamp())
        .withWatermark("_seen_at", f"{int(hours * 3600)} seconds")
        .dropDuplicatesWithinWatermark(["_record_key"])
    )


@dataclass
class StreamQueries:
    """The running stream: the queries this process runs (``stream.queries``) and their foreachBatch functions."""

    hot: StreamingQuery | None
    cold: StreamingQuery | None
    hot_path: HotPath | None
    cold_path: ColdPath | None
    plan: StatePlan

    @property
    def queries(self) -> list[StreamingQuery]:
        return [q for q in (self.hot, self.cold) if q is not None]

    @property
    def hot_history(self) -> list[BatchSummary]:
        return self.hot_path.history if self.hot_path is not None else []

    @property
    def cold_history(self) -> list[BatchSummary]:
        return self.cold_path.history if self.cold_path is not None else []

    def summaries(self) -> list[BatchSummary]:
        """Every micro-batch summary of this process's queries, in the order they were written."""
        return sorted(self.hot_history + self.cold_history, key=lambda b: b.written_at or 0.0)

    @property
    def flagged(self) -> list[dict[str, Any]]:
        return list(self.hot_path.flagged) if self.hot_path is not None else []

    def exception(self) -> Exception | None:
        for query in self.queries:
            if query.exception() is not None:
                return query.exception()  # type: ignore[return-value]
        return None

    @property
    def is_active(self) -> bool:
        return all(q.isActive for q in self.queries)

    def stop(self) -> None:
        for query in self.queries:
            if query.isActive:
                query.stop()
        self._close()

    def _close(self) -> None:
        if self.hot_path is not None:
            self.hot_path.close()

    def stop_between_batches(self, timeout: float = 300.0) -> None:
        """Stop each query once no micro-batch of it runs (stopping one midway cancels its Spark jobs)."""
        until = time.monotonic() + timeout
        for query in self.queries:
            while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < until:
                time.sleep(0.2)
            query.stop()
        self._close()


def start(spark: SparkSession, settings: Settings, params: FeatureParams, scorer: PlanScorer | None) -> StreamQueries:
    """Start the queries ``stream.queries`` names: hot (seeded from bronze on a new checkpoint), cold, or both."""
    s = settings.stream
    plan = plan_for(params, s.allowed_lateness_seconds)
    hot = cold = None
    hot_path = cold_path = None
    if s.queries in ("both", "hot"):
        hot_checkpoint = settings.checkpoint_root / f"{s.query_name}.hot"
        hot_session = _hot_session(spark)
        initial = None
        if s.state_bootstrap and is_new_checkpoint(hot_checkpoint):
            initial = initial_state(hot_session, settings, plan, hot_checkpoint)
        halves = featurize_in_state(
            hot_session, hot_input(*topic_sources(hot_session, settings, capped=False), settings), plan, initial
        )
        hot_path = HotPath(settings, params, plan, scorer)
        hot = _start(hot_path.rows(halves), f"{s.query_name}.hot", hot_checkpoint, s.trigger_seconds,
                     _in_pool("hot", hot_path))
    if s.queries in ("both", "cold"):
        # The hot query's tables, whichever process writes them (a missing one is skipped).
        cold_path = ColdPath(settings, checkpointed=hot_path.tables if hot_path else (SCORES, features_table(params)))
        cold_session = _cold_session(spark, s.cold_partitions)
        cold_sources = topic_sources(cold_session, settings, capped=True, min_partitions=s.cold_partitions)
        cold = _start(cold_input(*cold_sources, settings), f"{s.query_name}.cold",
                      settings.checkpoint_root / f"{s.query_name}.cold", s.cold_trigger_seconds,
                      _in_pool("cold", cold_path))
    log.info("stream: %s started (checkpoints under %s)",
             {"both": "hot and cold queries", "hot": "hot query", "cold": "cold query"}[s.queries],
             settings.checkpoint_root)
    return StreamQueries(hot, cold, hot_path, cold_path, plan)


def _hot_session(spark: SparkSession) -> SparkSession:
    """A session of its own for the hot query (same context and catalog): adaptive execution and
    whole-stage code generation off.

    Per micro-batch, adaptive execution re-plans after every shuffle (a job per stage) and
    coalesces a small batch's partitions to one, which leaves a core idle during SHAP.
    """
    session = _micro_batch_session(spark)
    session.conf.set("spark.sql.adaptive.enabled", "false")
    # The checksum file is an optional cache of table size and counts; writing it is part of every
    # commit (it needs the new snapshot's state). Readers recompute what they need without it.
    session.conf.set("spark.databricks.delta.writeChecksumFile.enabled", "false")
    # Parquet dictionary pages for a micro-batch's file: silver's and gold's columns are mostly doubles
    # (features, SHAP values), nearly all distinct, so building the dictionaries is work thrown away
    # (measured: 3,000-row appends of that shape 0.21-0.25 s -> 0.16-0.20 s). The nightly compaction
    # rewrites these small files with the default encodings.
    session.conf.set("parquet.enable.dictionary", "false")
    return session


def _micro_batch_session(spark: SparkSession) -> SparkSession:
    """A new session without whole-stage code generation.

    Every micro-batch plans anew, so the driver generated the Java source of each stage again (a
    profile of the hot query at 1,000 events/s: the top driver cost) and the JIT compiler kept
    compiling the new classes (the busiest JVM thread). A micro-batch holds a few thousand rows:
    per-row interpretation costs less than generating code for them. Measured at 1,000 events/s:
    3.4 s -> 2.6 s per hot micro-batch, p50 Kafka -> gold 5.4 s -> 4.1 s.
    """
    session = spark.newSession()
    session.conf.set("spark.sql.codegen.wholeStage", "false")
    return session


def _cold_session(spark: SparkSession, partitions: int) -> SparkSession:
    """A session of its own for the cold query, whose stages run as ``partitions`` small tasks.

    The FAIR pools decide who gets a free core, but never preempt a running task: with one task
    per core, a cold task of several seconds held a core while the hot query's next stage waited.
    """
    session = _micro_batch_session(spark)
    session.conf.set("spark.sql.shuffle.partitions", str(partitions))
    return session


def _in_pool(pool: str, function: Any) -> Any:
    def run(batch: DataFrame, batch_id: int) -> None:
        batch.sparkSession.sparkContext.setLocalProperty(POOL_PROPERTY, pool)
        function(batch, batch_id)

    return run


def _start(df: DataFrame, name: str, checkpoint: Any, trigger_seconds: float, function: Any) -> StreamingQuery:
    return (
        df.writeStream.queryName(name)
        .foreachBatch(function)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{int(trigger_seconds * 1000)} milliseconds")
        .start()
    )


def await_queries(run: StreamQueries, max_seconds: float | None = None, until_idle: bool = False,
                  idle_seconds: float = 6.0, stop: threading.Event | None = None,
                  check: Callable[[], None] | None = None) -> None:
    """Block until a query fails, the time budget ends, ``stop`` is set, or (until_idle) the queries
    have drained their input; ``check`` runs every second and may raise (a companion process died)."""
    started = time.monotonic()
    idle_since: float | None = None
    while run.is_active and not (stop is not None and stop.is_set()):
        run.queries[0].awaitTermination(1)
        if check is not None:
            check()
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            break
        if until_idle:
            if any(is_busy(q) for q in run.queries):
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_seconds:
                break
    error = run.exception()
    run.stop_between_batches()
    if error is not None:
        raise RuntimeError(f"streaming query failed: {error}")


def is_busy(query: StreamingQuery) -> bool:
    """Whether the query has not reported yet, has data waiting, runs a trigger or just read rows."""
    progress = query.lastProgress
    status = query.status
    return bool(progress is None or status.get("isDataAvailable") or status.get("isTriggerActive")
                or progress.get("numInputRows", 0) > 0)
