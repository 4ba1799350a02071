"""The streaming scoring job: Kafka -> quarantine / bronze -> silver.features -> gold.scores -> Kafka.

Run it with ``aegis stream`` or ``spark-submit jobs/stream.py --profile cluster``.

Exactly-once into Delta: bronze is written insert-if-absent on transaction_id (replays and
duplicate deliveries insert nothing); quarantine, silver and gold with idempotent appends
(``lakehouse.delta_io.append_idempotent``: each commit is marked with ``stream.query_name`` +
table, stable across checkpoint loss, and the micro-batch id). The features of batch N are those
of the bronze rows that batch N ingested, so a replayed batch recomputes the same rows.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from features.catalog import FeatureParams
from jobs.base import JobConfig
from jobs.observability import StreamMetrics, serve_metrics
from jobs.pipeline import ScoreFn, StreamHistory, TargetSpan, featurize
from lakehouse.delta_io import (
    append_idempotent,
    append_rows,
    detached,
    ensure_table,
    newest_marker,
    read_table,
    rows_not_in_table,
)
from lakehouse.tables import LABELS, QUARANTINE, SCORES, TRANSACTIONS, TableContract, features_table
from quality.ingest import FAILED, parse_labels, parse_transactions, quarantine_rows, valid_rows
from quality.rules import load_suite
from quality.validate import failed, stream_batch_checks, write_results

log = logging.getLogger("aegis.stream")


class StreamConfig(JobConfig):
    """Parameters of one run of the streaming job."""

    max_seconds: float | None = None
    until_idle: bool = False
    idle_seconds: float = 6.0


@dataclass
class BatchSummary:
    """What one micro-batch did (logged, and kept for the console summary)."""

    batch_id: int
    records: int
    bronze: int
    quarantined: int
    featurized: int
    scored: int
    seconds: float
    decisions: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    ingest_seconds: float = 0.0
    feature_seconds: float = 0.0
    score_seconds: float = 0.0
    write_seconds: float = 0.0
    written_at: float | None = None  # epoch seconds when silver, gold and the scores topic were written


class MicroBatchProcessor:
    """The foreachBatch function. Holds only driver-side, recoverable state (the frontier)."""

    def __init__(self, settings: Settings, params: FeatureParams, scorer: ScoreFn | None,
                 publish: DataFrame | None = None) -> None:
        self.settings = settings
        self.params = params
        self.scorer = scorer
        self.app_id = settings.stream.query_name
        self.lateness = timedelta(seconds=settings.stream.allowed_lateness_seconds)
        self.suite = load_suite("transactions")
        self.frontier: datetime | None = None
        self._frontier_known = False
        # Only the first micro-batch of a run can be a replay of one the previous run half-wrote.
        self._replay_possible = True
        self.history: list[BatchSummary] = []
        self.flagged: list[dict[str, Any]] = []  # latest review/block rows, newest last (for consoles)
        self.failed_checks: list[str] = []  # expectations the latest micro-batch failed
        self._batch_stats: dict[str, Any] = {}
        self.feature_history = StreamHistory(settings, params, ("kafka_timestamp",),
                                             settings.stream.history_refresh_batches)

    def _recover_frontier(self, spark: SparkSession, batch_id: int) -> None:
        """The frontier as the last committed micro-batch left it: silver's commits record it."""
        self._frontier_known = True
        silver = features_table(self.params)
        ensure_table(spark, silver, self.settings.lakehouse_root)
        app = f"{self.app_id}.silver"
        mark = newest_marker(spark, silver.path(self.settings.lakehouse_root), lambda m: m.get("app") == app
                             and "frontier" in m and int(m["version"]) < batch_id)
        if mark is not None:
            self.frontier = datetime.fromisoformat(mark["frontier"]) if mark["frontier"] else None
            return
        # No marked commit (a checkpoint from before frontiers were recorded): the newest event ingested.
        row = (
            read_table(spark, TRANSACTIONS, self.settings.lakehouse_root)
            .filter(F.col("ingest_batch_id") < batch_id)
            .agg(F.max("event_time"))
            .first()
        )
        latest = row[0] if row else None
        self.frontier = latest - self.lateness if latest is not None else None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        spark = batch.sparkSession
        root = self.settings.lakehouse_root
        topics = self.settings.kafka.topics
        if not self._frontier_known:
            self._recover_frontier(spark, batch_id)
        batch = batch.persist()
        cached: list[DataFrame] = [batch]
        try:
            records = batch.count()
            if records == 0:
                return
            tx = parse_transactions(
                batch.filter(F.col("topic") == topics.transactions), self.settings.security.card_hash_key
            ).persist()
            labels = parse_labels(batch.filter(F.col("topic") == topics.labels)).persist()
            cached += [tx, labels]
            quarantine = quarantine_rows(tx, "stream", batch_id).unionByName(
                quarantine_rows(labels, "stream", batch_id)
            )
            # One aggregation per topic gives the counts, the touched partitions and the frontier input.
            tx_stats = _partition_stats(tx, "event_date", "event_time")
            label_stats = _partition_stats(labels, "report_date", "reported_at")
            quarantined = sum(r.rows for r in tx_stats + label_stats if not r.valid)
            per_partition = [r for r in tx_stats if r.valid]
            dates = sorted({str(r.date) for r in per_partition})
            report_dates = sorted({str(r.date) for r in label_stats if r.valid})
            span = self._span(batch_id, per_partition, records)
            if span is not None:
                # Before the commits below start: a re-read of the history must not see this batch's rows.
                self.feature_history.prepare(spark, span[0].first_date)
            new_tx = new_labels = None
            if dates:
                # The kept history is all of bronze over its dates: no read of bronze's newest snapshot
                # (its state reconstruction cost 1.5-2.5 s per micro-batch).
                new_tx = detached(rows_not_in_table(valid_rows(tx, "stream", batch_id), TRANSACTIONS, root,
                                                     ["transaction_id"], dates,
                                                     self.feature_history.known_rows(TRANSACTIONS, dates)))
            if report_dates:
                kept = self.feature_history.known_rows(LABELS, report_dates) if span is not None else None
                new_labels = detached(rows_not_in_table(valid_rows(labels, "stream", batch_id), LABELS, root,
                                                         ["transaction_id", "is_fraud", "reported_at"], report_dates,
                                                         kept))
            inserted = new_tx.count() if new_tx is not None else 0
            inserted_labels = new_labels.count() if new_labels is not None else 0
            self.feature_history.add(new_tx if inserted else None, new_labels if inserted_labels else None)
            steps: list[Callable[[], object]] = []
            if quarantined:  # an empty batch needs no commit: its replay is empty too
                steps.append(lambda: append_idempotent(quarantine, QUARANTINE, root, f"{self.app_id}.quarantine",
                                                       batch_id, verify=self._replay_possible))
            if inserted:
                steps.append(lambda: self._append(new_tx, TRANSACTIONS))  # type: ignore[arg-type]
            if inserted_labels:
                steps.append(lambda: self._append(new_labels, LABELS))  # type: ignore[arg-type]
            if self.settings.stream.batch_checks:
                steps.append(lambda: self._record_checks(spark, tx, batch_id))
            # Four tables, no dependency between them. (Overlapping these commits with the features
            # was measured slower: on two cores they compete for the same CPU.)
            _run_concurrently(steps)
            self._batch_stats = {"ingest_seconds": time.monotonic() - started}
            featurized, scored = 0, 0
            if span is not None:
                featurized, scored = self._features_and_scores(spark, batch_id, *span)
            summary = BatchSummary(
                batch_id, records, inserted, quarantined, featurized, scored,
                time.monotonic() - started, **self._batch_stats,  # type: ignore[arg-type]
            )
            self.history.append(summary)
            self._replay_possible = False
            log.info("batch %d: %s", batch_id, summary)
        except BaseException:
            self.feature_history.clear()  # it may hold rows whose commits did not happen
            raise
        finally:
            for df in cached:
                df.unpersist()

    def _append(self, rows: DataFrame, contract: TableContract) -> None:
        append_rows(rows, contract, self.settings.lakehouse_root)
        self.feature_history.committed(contract)

    def _record_checks(self, spark: SparkSession, tx: DataFrame, batch_id: int) -> None:
        """The suite's batch-level results (null rates, ranges, uniqueness...) in one aggregation."""
        rows = stream_batch_checks(tx, self.suite, run_id=self.app_id, stream_batch_id=batch_id)
        write_results(spark, self.settings, rows, f"{self.app_id}.quality", batch_id, verify=self._replay_possible)
        self.failed_checks = failed(rows)
        if self.failed_checks:
            log.warning("batch %d: data-quality expectations failed: %s", batch_id, ", ".join(self.failed_checks))

    def _span(self, batch_id: int, per_partition: list[Any],
              records: int) -> tuple[TargetSpan, datetime, datetime | None] | None:
        """(targets, the new frontier, the previous one) of a micro-batch; None without valid transactions."""
        if not per_partition:
            return None
        limit = self.settings.kafka.max_offsets_per_trigger
        capped = bool(limit) and records >= 0.95 * limit  # type: ignore[operator]
        oldest = min(r.low for r in per_partition)
        # A batch cut short by maxOffsetsPerTrigger (a backlog) reaches different event times in
        # different partitions: advance only to the slowest one's newest event, or the others'
        # remaining events would all arrive late. A batch that drained every partition moves to the newest.
        highs: dict[int, datetime] = {}  # newest event per Kafka partition (stats are per date too)
        for r in per_partition:
            highs[r.partition] = max(highs.get(r.partition, r.high), r.high)
        previous = self.frontier
        newest = (min(highs.values()) if capped else max(highs.values())) - self.lateness
        frontier = newest if previous is None else max(previous, newest)
        # Targets: late rows of this batch, and every ingested row that the frontier now passes.
        condition = F.col("ingest_batch_id") <= batch_id
        upper = F.col("event_time") <= F.lit(frontier)
        if previous is None:
            condition = condition & upper
        else:
            late = (F.col("ingest_batch_id") == batch_id) & (F.col("event_time") <= F.lit(previous))
            fresh = (F.col("event_time") > F.lit(previous)) & upper
            condition = condition & (late | fresh)
        first_date = (oldest if previous is None else min(oldest, previous)).date()
        return TargetSpan(first_date, frontier.date(), condition), frontier, previous

    def _features_and_scores(self, spark: SparkSession, batch_id: int, span: TargetSpan, frontier: datetime,
                             previous: datetime | None) -> tuple[int, int]:
        """silver and gold rows of the span's targets, from the in-memory history."""
        root = self.settings.lakehouse_root
        stage_started = time.monotonic()
        features = featurize(
            spark, self.settings, self.params, span, "stream", self.app_id, batch_id,
            per_target=True, late_before=previous, carry=self.feature_history.carry,
            history=self.feature_history.view(span),
        ).persist()
        scores: DataFrame | None = None
        try:
            count = features.count()
            self._batch_stats["feature_seconds"] = time.monotonic() - stage_started
            stage_started = time.monotonic()
            scored = 0
            # The frontier travels in silver's commit, atomically with the rows it released.
            mark = {"frontier": frontier.isoformat()}
            verify = self._replay_possible
            writes: list[Callable[[], object]] = [lambda: append_idempotent(
                features, features_table(self.params), root, f"{self.app_id}.silver", batch_id, user_metadata=mark,
                verify=verify)]
            if self.scorer is not None and count:
                scores = self.scorer(features, batch_id).persist()
                scored = scores.count()
                self._batch_stats["score_seconds"] = time.monotonic() - stage_started
                writes.append(lambda: append_idempotent(scores, SCORES, root, f"{self.app_id}.gold", batch_id,
                                                        verify=verify))
                if self.settings.stream.publish_scores:
                    writes.append(lambda: publish_scores(scores, self.settings))
                writes.append(lambda: self._remember(scores))
            stage_started = time.monotonic()
            _run_concurrently(writes)  # independent Spark jobs: their commit latencies overlap
            self._batch_stats["write_seconds"] = time.monotonic() - stage_started
            self._batch_stats["written_at"] = time.time()
            self.frontier = frontier
            return count, scored
        finally:
            features.unpersist()
            if scores is not None:
                scores.unpersist()

    def _remember(self, scores: DataFrame) -> None:
        """Decision counts, latency percentiles and the latest flagged rows of a scored batch (one job)."""
        columns = ("transaction_id", "customer_id", "amount", "score", "decision", "model_version", "top_reasons",
                   "latency_ms")
        frame: pd.DataFrame = scores.select(*columns).toPandas()
        if frame.empty:
            return
        latency = frame["latency_ms"].dropna()
        flagged = frame[frame["decision"] != "allow"].nlargest(5, "score").drop(columns="latency_ms")
        flagged["top_reasons"] = flagged["top_reasons"].map(_plain_reasons)
        self.flagged = (self.flagged + flagged.to_dict("records"))[-20:]
        self._batch_stats.update({
            "decisions": {str(k): int(v) for k, v in frame["decision"].value_counts().items()},
            "latency_ms": {f"p{q}": float(latency.quantile(q / 100)) for q in (50, 95, 99)} if len(latency) else {},
            "model_version": str(frame["model_version"].iloc[0]),
        })


def _partition_stats(parsed: DataFrame, date_column: str, time_column: str) -> list[Any]:
    """Rows (valid, date, partition, rows, low, high) of a parsed micro-batch, in one job."""
    return (
        parsed.groupBy(
            (F.size(FAILED) == 0).alias("valid"),
            F.col(date_column).alias("date"),
            F.col("kafka_partition").alias("partition"),
        )
        .agg(F.count(F.lit(1)).alias("rows"), F.min(time_column).alias("low"), F.max(time_column).alias("high"))
        .collect()
    )


def _run_concurrently(steps: list[Callable[[], object]]) -> None:
    """Run the steps on driver threads and re-raise the first failure after all have ended."""
    if len(steps) <= 1:
        for step in steps:
            step()
        return
    with ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="aegis-write") as pool:
        futures = [pool.submit(step) for step in steps]
        wait(futures)
    for future in futures:
        future.result()


def _plain_reasons(reasons: Any) -> list[dict[str, Any]]:
    """Top reasons as plain dicts, whichever way Arrow handed the structs over."""
    if reasons is None:
        return []
    return [r.asDict() if hasattr(r, "asDict") else dict(r) for r in reasons]


def publish_scores(scores: DataFrame, settings: Settings) -> None:
    """Each score with its top reasons to the scores topic, keyed by transaction id (at-least-once)."""
    payload = F.to_json(
        F.struct("transaction_id", "customer_id", "terminal_id", "event_time", "amount", "score", "decision",
                 "model_name", "model_version", "policy_version", "feature_version", "top_reasons", "scored_at")
    )
    (
        scores.select(F.col("transaction_id").cast("binary").alias("key"), payload.cast("binary").alias("value"))
        .write.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("topic", settings.kafka.topics.scores)
        .save()
    )


def kafka_source(spark: SparkSession, settings: Settings) -> DataFrame:
    """The transactions and labels topics as one streaming DataFrame."""
    k = settings.kafka
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", k.bootstrap_servers)
        .option("subscribe", f"{k.topics.transactions},{k.topics.labels}")
        .option("startingOffsets", k.starting_offsets)
    )
    if k.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", k.max_offsets_per_trigger)
    return reader.load()


def start_query(spark: SparkSession, settings: Settings, processor: MicroBatchProcessor):
    """Start the streaming query with its stable checkpoint."""
    checkpoint = settings.checkpoint_root / settings.stream.query_name
    return (
        kafka_source(spark, settings)
        .writeStream.queryName(settings.stream.query_name)
        .foreachBatch(processor)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{int(settings.stream.trigger_seconds * 1000)} milliseconds")
        .start()
    )


def await_query(query, config: StreamConfig) -> None:
    """Block until the query fails, the time budget ends, or (until_idle) the input is drained."""
    started = time.monotonic()
    idle_since: float | None = None
    while query.isActive:
        query.awaitTermination(1.0)
        elapsed = time.monotonic() - started
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            break
        if config.until_idle:
            progress = query.lastProgress
            status = query.status
            busy = (status.get("isDataAvailable") or status.get("isTriggerActive")
                    or (progress and progress.get("numInputRows", 0) > 0))
            if busy or progress is None:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= config.idle_seconds:
                break
    if query.exception() is not None:
        raise RuntimeError(f"streaming query failed: {query.exception()}")
    query.stop()


def run(settings: Settings, config: StreamConfig, spark: SparkSession | None = None,
        launched_by_spark_submit: bool = False) -> int:
    """Run the streaming job until stopped (or for the configured time)."""
    from jobs.scoring import ModelScorer
    from jobs.tables import feature_params
    from lakehouse.session import create_session

    session = spark or create_session(settings, "stream", launched_by_spark_submit)
    params = feature_params(settings)
    scorer = ModelScorer(session, settings, params, source="stream")
    processor = MicroBatchProcessor(settings, params, scorer)
    metrics = StreamMetrics(processor)
    session.streams.addListener(metrics)
    server = serve_metrics(metrics, settings.stream.metrics_port, settings.stream.metrics_host)
    query = start_query(session, settings, processor)
    log.info("stream: query %s started (checkpoint %s)", settings.stream.query_name, settings.checkpoint_root)
    try:
        await_query(query, config)
    finally:
        session.streams.removeListener(metrics)
        if server is not None:
            server.shutdown()
    total = sum(b.bronze for b in processor.history)
    log.info("stream: stopped after %d batches, %d transactions ingested", len(processor.history), total)
    return 0


if __name__ == "__main__":  # spark-submit jobs/stream.py [--profile P] [--set k=v] [--max-seconds S] [--until-idle]
    import argparse

    from jobs.submit import submit_main

    cli = argparse.ArgumentParser()
    cli.add_argument("--max-seconds", type=float)
    cli.add_argument("--until-idle", action="store_true")
    known, _ = cli.parse_known_args()
    cfg = StreamConfig(max_seconds=known.max_seconds, until_idle=known.until_idle)
    sys.exit(submit_main("stream", lambda s, spark: run(s, cfg, spark, True)))
