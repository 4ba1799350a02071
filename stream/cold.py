"""The cold micro-batch: quarantine, bronze transactions and labels, per-batch quality results,
and the Delta checkpoints of the hot query's tables (so no hot micro-batch waits for one).

It reads the same topics as the hot query on its own checkpoint and a slower trigger, so none
of this sits between a transaction and its score. Repeated records (producer retries, replays)
were dropped in the query's state before this function (:func:`stream.query.cold_input`).
Every write is an idempotent append keyed by (``stream.query_name`` + table, micro-batch id).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from lakehouse.delta_io import append_idempotent, checkpoint_if_behind
from lakehouse.tables import LABELS, QUARANTINE, TRANSACTIONS, TableContract
from quality.ingest import FAILED, quarantine_rows, valid_rows
from quality.rules import load_suite
from quality.validate import failed, stream_batch_checks, write_results
from stream.hot import run_concurrently
from stream.summary import BatchSummary

log = logging.getLogger("aegis.stream.cold")
KIND = "_kind"


class ColdPath:
    """The cold query's foreachBatch function."""

    def __init__(self, settings: Settings, checkpointed: Sequence[TableContract] = ()) -> None:
        self.settings = settings
        self.checkpointed = tuple(checkpointed)  # the hot query's tables
        self.app_id = settings.stream.query_name
        self.suite = load_suite("transactions")
        self.history: list[BatchSummary] = []
        self.on_summary: Callable[[BatchSummary], None] | None = None  # e.g. a parent process's feed
        self.failed_checks: list[str] = []  # expectations the latest micro-batch failed
        self._replay_possible = True

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        spark = batch.sparkSession
        root = self.settings.lakehouse_root
        verify = self._replay_possible
        batch = batch.persist()
        try:
            counts = {(r[KIND], r["valid"]): int(r["n"]) for r in batch.groupBy(
                KIND, (F.size(FAILED) == 0).alias("valid")).agg(F.count(F.lit(1)).alias("n")).collect()}
            summary = BatchSummary("cold", batch_id, records=sum(counts.values()),
                                   compute_seconds=time.monotonic() - started)
            if not counts:
                return
            tx = batch.filter(F.col(KIND) == "transaction")
            labels = batch.filter(F.col(KIND) == "label")
            summary.bronze = counts.get(("transaction", True), 0)
            summary.labels = counts.get(("label", True), 0)
            summary.quarantined = counts.get(("transaction", False), 0) + counts.get(("label", False), 0)
            steps: list[Callable[[], object]] = []
            if summary.quarantined:
                bad = quarantine_rows(batch, "stream", batch_id)
                steps.append(lambda: append_idempotent(bad, QUARANTINE, root, f"{self.app_id}.quarantine",
                                                       batch_id, verify=verify, one_task=True))
            if summary.bronze:
                good = valid_rows(tx, "stream", batch_id)
                steps.append(lambda: append_idempotent(good, TRANSACTIONS, root, f"{self.app_id}.bronze",
                                                       batch_id, verify=verify, one_task=True))
            if summary.labels:
                reported = valid_rows(labels, "stream", batch_id)
                steps.append(lambda: append_idempotent(reported, LABELS, root, f"{self.app_id}.labels",
                                                       batch_id, verify=verify, one_task=True))
            if self.settings.stream.batch_checks and counts.get(("transaction", True), 0) + counts.get(
                    ("transaction", False), 0):
                steps.append(lambda: self._record_checks(spark, tx, batch_id, verify))
            writes_started = time.monotonic()
            run_concurrently(steps, spark)
            summary.write_seconds = time.monotonic() - writes_started
            summary.delta_commits = len(steps)
            self._checkpoint_hot_tables(spark)
            summary.seconds = time.monotonic() - started
            summary.written_at = time.time()
            self.history.append(summary)
            if self.on_summary is not None:
                self.on_summary(summary)
            log.info("cold batch %d: %d records, %d bronze, %d labels, %d quarantined in %.2fs", batch_id,
                     summary.records, summary.bronze, summary.labels, summary.quarantined, summary.seconds)
        finally:
            batch.unpersist()
            self._replay_possible = False

    def _checkpoint_hot_tables(self, spark: SparkSession) -> None:
        every = self.settings.stream.checkpoint_every_commits
        for contract in self.checkpointed:
            try:
                checkpoint_if_behind(spark, contract, self.settings.lakehouse_root, every)
            except Exception:  # the table is whole without it; the next cold batch tries again
                log.warning("checkpoint of %s failed", contract.name, exc_info=True)

    def _record_checks(self, spark, tx: DataFrame, batch_id: int, verify: bool) -> None:  # type: ignore[no-untyped-def]
        """The suite's batch-level results (null rates, ranges, uniqueness...) in one aggregation."""
        rows = stream_batch_checks(tx, self.suite, run_id=self.app_id, stream_batch_id=batch_id)
        write_results(spark, self.settings, rows, f"{self.app_id}.quality", batch_id, verify=verify)
        self.failed_checks = failed(rows)
        if self.failed_checks:
            log.warning("batch %d: data-quality expectations failed: %s", batch_id, ", ".join(self.failed_checks))
