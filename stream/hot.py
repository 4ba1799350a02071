"""The hot micro-batch: the state processor's output -> gold.scores + silver.features + scores topic.

Named steps, in order: merge the two half rows of each transaction (customer and terminal
route, same micro-batch) into silver's row; score every row with the ``@champion`` ensemble and
its exact SHAP in one Arrow map; collect the scored rows to the driver as Arrow (the micro-batch's
one Spark job); then three independent writes on driver threads: gold (one blind idempotent
append through deltalake), silver (the same rows' features, likewise), the scores topic
(kafka-python, the records encoded in that job). Two Delta commits; nothing read back from Delta.

The steps up to the collect are part of the streaming query itself (:meth:`HotPath.rows`), built
once when the query starts: each micro-batch's foreachBatch only sets the batch id and the
current model as local properties of its job, then collects. Building those DataFrames anew per
micro-batch cost about 0.2 s of driver time (a few hundred py4j round trips).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from features.catalog import FeatureParams, declare_features
from features.projection import Projection
from features.state_plan import StatePlan
from features.table import features_table
from lakehouse.arrow_writes import ArrowAppender
from lakehouse.delta_io import append_idempotent, ensure_table
from lakehouse.kafka_io import RecordPublisher, score_record
from lakehouse.tables import SCORES, TableContract
from models.spark_scoring import BATCH_ID_PROPERTY, GOLD_COLUMNS, MODEL_PATH_PROPERTY, MODEL_VERSION_PROPERTY
from stream.state import HalvesMerge
from stream.summary import BatchSummary

log = logging.getLogger("aegis.stream.hot")
POOL_PROPERTY = "spark.scheduler.pool"
_INHERITED = (POOL_PROPERTY, BATCH_ID_PROPERTY, MODEL_PATH_PROPERTY, MODEL_VERSION_PROPERTY)


class PlanScorer(Protocol):
    """Scores inside a plan built once; the model reaches the tasks as local properties."""

    def in_plan(self, features: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
        """gold.scores rows (and ``keep_<name>`` columns) of silver rows, the model left to the tasks."""
        ...

    def task_properties(self) -> dict[str, str]:
        """The local properties naming the model the next micro-batch scores with."""
        ...

_SUMMARY = (
    "transaction_id",
    "customer_id",
    "amount",
    "score",
    "decision",
    "model_version",
    "top_reasons",
    "latency_ms",
)


class SilverRows:
    """silver.features rows (with ``kafka_timestamp`` for the latency) of the processor's halves,
    the column expressions built once.

    The rows lack ``stream_batch_id`` and ``computed_at``: the scoring UDF supplies both (its batch
    id and ``scored_at``), so no literal in the plan changes per micro-batch; without scoring,
    :meth:`of_batch` adds them to one micro-batch's rows.
    """

    def __init__(self, params: FeatureParams, plan: StatePlan, app_id: str) -> None:
        self._merge = HalvesMerge(params, plan)
        self._lineage = Projection([F.lit("stream").alias("source"), F.lit(app_id).alias("run_id")], keep_all=True)

    def __call__(self, halves: DataFrame) -> DataFrame:
        return self._lineage(self._merge(halves))

    @staticmethod
    def of_batch(rows: DataFrame, batch_id: int) -> DataFrame:
        """One micro-batch's rows with their batch id and computation time."""
        return rows.select(
            "*", F.lit(batch_id).cast("long").alias("stream_batch_id"), F.current_timestamp().alias("computed_at")
        )


class HotPath:
    """The hot query's foreachBatch function. Keeps only summaries: all state is Spark's."""

    def __init__(self, settings: Settings, params: FeatureParams, plan: StatePlan, scorer: PlanScorer | None) -> None:
        self.settings = settings
        self.scorer = scorer
        self.app_id = settings.stream.query_name
        self.silver = features_table(params)
        self.silver_columns = [c.name for c in self.silver.columns]
        self.feature_columns = [f.name for f in declare_features(params)]
        self.silver_rows = SilverRows(params, plan, self.app_id)
        self._keep = tuple(c for c in self.silver_columns if c not in PASSED and c not in FROM_SCORING)
        # What the micro-batch's one job collects: gold's columns, silver's sources (its late flag is the
        # summary's too), and the scores topic's key and value (JSON built in the same job).
        collected = list(dict.fromkeys([*(c.name for c in SCORES.columns),
                                        *(_silver_source_name(c) for c in self.silver_columns)]))
        key, value = score_record()
        self._collected = Projection([*collected, key.alias("_key"), value.alias("_value")])
        root = settings.lakehouse_root
        self._gold_writer = ArrowAppender(SCORES, root, f"{self.app_id}.gold")
        self._silver_writer = ArrowAppender(self.silver, root, f"{self.app_id}.silver")
        self._scores_topic = RecordPublisher(settings, settings.kafka.topics.scores)
        self.history: list[BatchSummary] = []
        self.flagged: list[dict[str, Any]] = []  # latest review/block rows, newest last
        self._replay_possible = True  # only a run's first micro-batch can replay a half-written one

    @property
    def tables(self) -> tuple[TableContract, ...]:
        """The Delta tables this path commits to every micro-batch."""
        return (self.silver,) if self.scorer is None else (SCORES, self.silver)

    def rows(self, halves: DataFrame) -> DataFrame:
        """The query's output from the processor's halves: silver rows, or (scoring) the collected
        gold, silver and scores-topic columns. Built once, when the query starts."""
        silver = self.silver_rows(halves)
        if self.scorer is None:
            return silver
        return self._collected(self.scorer.in_plan(silver, keep=self._keep))

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        context = batch.sparkSession.sparkContext
        jobs_before = _job_count(context)
        summary = BatchSummary("hot", batch_id)
        verify = self._replay_possible
        root = self.settings.lakehouse_root
        if self.scorer is None:  # features only (parity runs)
            rows = SilverRows.of_batch(batch, batch_id).persist()
            try:
                summary.featurized = rows.count()
                if summary.featurized:
                    append_idempotent(
                        rows, self.silver, root, f"{self.app_id}.silver", batch_id, verify=verify, one_task=True
                    )
                    summary.delta_commits = 1
                    summary.late = rows.filter(F.col("is_late")).count()
            finally:
                rows.unpersist()
        else:
            self._score_and_write(batch, batch_id, summary, started, verify)
        self._replay_possible = False
        summary.seconds = time.monotonic() - started
        summary.written_at = time.time()
        summary.spark_jobs = _job_count(context) - jobs_before
        self.history.append(summary)
        if summary.featurized:
            log.info(
                "hot batch %d: %d scored (%d late) in %.2fs, %d Spark jobs",
                batch_id,
                summary.scored,
                summary.late,
                summary.seconds,
                summary.spark_jobs,
            )

    def _score_and_write(self, collected: DataFrame, batch_id: int, summary: BatchSummary, started: float,
                         verify: bool) -> None:
        """Score the micro-batch in one Spark job that collects it as Arrow, then append gold and silver
        from the driver (deltalake) and publish the scores, concurrently."""
        assert self.scorer is not None
        spark = collected.sparkSession
        if verify:  # a run's first micro-batch: the tables may not exist yet (deltalake appends to existing ones)
            for contract in self.tables:
                ensure_table(spark, contract, self.settings.lakehouse_root)
        context = spark.sparkContext
        context.setLocalProperty(BATCH_ID_PROPERTY, str(batch_id))
        for key, value in self.scorer.task_properties().items():  # hot swap: the model current now
            context.setLocalProperty(key, value)
        summary.plan_seconds = time.monotonic() - started
        rows = collected.toArrow()  # the micro-batch's one job: Kafka to scores
        summary.compute_seconds = time.monotonic() - started
        summary.featurized = summary.scored = rows.num_rows
        if not rows.num_rows:
            return
        self._summarize(rows.select([*_SUMMARY, "keep_is_late"]).to_pandas(), summary)

        def write_gold() -> None:
            self._gold_writer.append(rows, batch_id, verify=verify)
            summary.gold_committed_at = time.time()

        steps: list[Callable[[], object]] = [
            write_gold,
            lambda: self._silver_writer.append(silver_rows_of(rows, self.silver_columns), batch_id, verify=verify),
        ]
        if self.settings.stream.publish_scores:
            steps.append(lambda: self._scores_topic.publish(rows.column("_key"), rows.column("_value")))
        writes_started = time.monotonic()
        run_concurrently(steps)
        summary.write_seconds = time.monotonic() - writes_started
        summary.delta_commits = 2

    def close(self) -> None:
        """Release the scores topic's producer (flushed after every micro-batch already)."""
        self._scores_topic.close()

    def _summarize(self, frame: pd.DataFrame, summary: BatchSummary) -> None:
        latency = frame["latency_ms"].dropna()
        summary.late = int(frame["keep_is_late"].sum())
        summary.decisions = {str(k): int(v) for k, v in frame["decision"].value_counts().items()}
        summary.latency_ms = {f"p{q}": float(latency.quantile(q / 100)) for q in (50, 95, 99)} if len(latency) else {}
        summary.model_version = str(frame["model_version"].iloc[0])
        flagged = frame[frame["decision"] != "allow"].nlargest(5, "score").drop(columns=["latency_ms", "keep_is_late"])
        flagged["top_reasons"] = flagged["top_reasons"].map(_plain_reasons)
        self.flagged = (self.flagged + flagged.to_dict("records"))[-20:]


# Columns the scoring map passes to gold under their own names; silver's others come back as keep_<name>,
# but for those the scoring UDF itself supplies (silver's computed_at is the scoring time).
PASSED = (*GOLD_COLUMNS, "feature_version")
FROM_SCORING = {"stream_batch_id": "stream_batch_id", "computed_at": "scored_at"}


def _silver_source_name(column: str) -> str:
    """The collected column silver's ``column`` comes from."""
    if column in PASSED:
        return column
    if column in FROM_SCORING:
        return FROM_SCORING[column]
    return f"keep_{column}"


def silver_rows_of(rows: pa.Table, silver_columns: list[str]) -> pa.Table:
    """silver.features' columns, under their names, of the collected micro-batch."""
    return pa.table({c: rows.column(_silver_source_name(c)) for c in silver_columns})


def _job_count(context: Any) -> int:
    """Jobs the application has started so far, whatever their job group or tags (the Arrow collect's
    job carries a group of its own, which the status tracker's group-less count misses)."""
    return int(context._jsc.sc().dagScheduler().nextJobId())  # an AtomicInteger, a Python int over py4j


def run_concurrently(steps: list[Callable[[], object]], spark: SparkSession | None = None) -> None:
    """Run the steps on driver threads and re-raise the first failure after all have ended.

    With ``spark``, each thread's jobs go to the calling thread's scheduler pool and carry its
    micro-batch id: Spark's local properties are per thread, and a new thread's jobs would land in
    the default pool (and, should a cached batch be recomputed, score without a batch id).
    """
    if len(steps) <= 1:
        for step in steps:
            step()
        return
    context = spark.sparkContext if spark is not None else None
    inherited = {key: context.getLocalProperty(key) for key in _INHERITED} if context is not None else {}

    def in_pool(step: Callable[[], object]) -> object:
        for key, value in inherited.items():
            if value is not None:
                context.setLocalProperty(key, value)  # type: ignore[union-attr]  # inherited is empty without one
        return step()

    with ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="aegis-write") as executor:
        futures = [executor.submit(in_pool, step) for step in steps]
        wait(futures)
    for future in futures:
        future.result()


def _plain_reasons(reasons: Any) -> list[dict[str, Any]]:
    """Top reasons as plain dicts, whichever way Arrow handed the structs over."""
    if reasons is None:
        return []
    return [r.asDict() if hasattr(r, "asDict") else dict(r) for r in reasons]
