"""The steps the stream and the backfill share: featurize targets over their history, score, write.

The stream's micro-batch and the backfill's date range both end up in :func:`featurize` (the
same feature declarations over ``history ∪ targets``; the stream uses their per-target
compilation, the backfill their window compilation, held equal by tests) and the same scoring
pandas UDF over the registered model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from features.catalog import FeatureParams
from features.engine import KEY_COLUMNS, TARGET, compute_features, compute_target_features, lookback
from lakehouse.delta_io import latest_version, read_table
from lakehouse.tables import LABELS, TRANSACTIONS, TableContract

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


class StreamHistory:
    """The stream's compact feature history, kept in executor memory across micro-batches.

    Reading weeks of bronze from Delta cost a small micro-batch more than its features did. Here
    the history is read once; each micro-batch then adds the rows it inserts into bronze and
    labels, taken before their Delta commits (so a re-read never sees them twice). It is read
    again after ``refresh_batches`` micro-batches, when a batch reaches back before its first date,
    after a failed batch, and when another writer has committed to bronze or labels since (each
    :meth:`prepare` compares the tables' versions with the read's plus this stream's own commits,
    reported by :meth:`committed`). So the kept bronze is all of bronze over its dates, and the
    stream can check a micro-batch's transactions and labels against it (:meth:`known_rows`)
    instead of reading bronze. Parts are local checkpoints: a lost block fails the batch loudly
    instead of being recomputed against a bronze that has changed since.
    """

    # Bronze columns kept: what the engines read, the span condition's columns, the carried ones.
    BRONZE = (*KEY_COLUMNS, "amount", "ingest_batch_id")
    LABELS = ("transaction_id", "is_fraud", "reported_at", "report_date")

    def __init__(self, settings: Settings, params: FeatureParams, carry: tuple[str, ...], refresh_batches: int):
        self.settings = settings
        self.params = params
        self.carry = carry
        self.refresh_batches = refresh_batches
        self._first: date | None = None
        self._added = 0  # micro-batches added since the last read
        self._bronze: list[DataFrame] = []
        self._labels: list[DataFrame] = []
        # Per table: the version read plus this stream's commits since (each is one version).
        self._expected_versions: dict[str, int] = {}

    def prepare(self, spark: SparkSession, first_target_date: date) -> None:
        """Read the history from Delta if it is missing, stale, too short, or written by another job.

        Call it before this batch's bronze and labels commits start, so the read cannot see them.
        """
        first = history_start(self.params, first_target_date)
        if (self._first is not None and first >= self._first and self._added < self.refresh_batches
                and not self._written_by_others(spark)):
            return
        self.clear()
        root = self.settings.lakehouse_root
        read = {c.name: latest_version(spark, c, root) for c in (TRANSACTIONS, LABELS)}
        self._expected_versions = dict(read)
        self._bronze = [self._compact_bronze(
            read_table(spark, TRANSACTIONS, root, read[TRANSACTIONS.name])
            .filter(F.col("event_date") >= F.lit(first)))]
        self._labels = [self._compact_labels(
            read_table(spark, LABELS, root, read[LABELS.name])
            .filter(F.col("report_date") >= F.lit(first)))]
        self._first = first

    def committed(self, contract: TableContract) -> None:
        """This stream appended one commit to ``contract``'s table (rows already :meth:`add`-ed)."""
        if contract.name in self._expected_versions:
            self._expected_versions[contract.name] += 1

    def known_rows(self, contract: TableContract, dates: list[str]) -> DataFrame | None:
        """Bronze transactions or labels of the partitions ``dates`` held in memory (kept columns).

        None when the history lacks one of the dates. Complete only right after :meth:`prepare`
        (which looks for other writers' commits) in the same micro-batch.
        """
        if self._first is None or not dates or min(dates) < self._first.isoformat():
            return None
        parts = {TRANSACTIONS.name: self._bronze, LABELS.name: self._labels}[contract.name]
        return reduce(DataFrame.unionByName, parts)

    def _written_by_others(self, spark: SparkSession) -> bool:
        root = self.settings.lakehouse_root
        return any(latest_version(spark, c, root) != self._expected_versions[c.name] for c in (TRANSACTIONS, LABELS))

    def add(self, new_transactions: DataFrame | None, new_labels: DataFrame | None) -> None:
        """Add the rows this micro-batch inserts into bronze and labels (contract-conformed frames).

        Nothing to do before the first :meth:`prepare`: that read will find them in Delta.
        """
        if self._first is None:
            return
        if new_transactions is not None:
            self._bronze.append(self._compact_bronze(new_transactions))
        if new_labels is not None:
            self._labels.append(self._compact_labels(new_labels))
        self._added += 1

    def view(self, span: TargetSpan) -> tuple[DataFrame, DataFrame]:
        """What :func:`history_for` ``(..., carry)`` reads for the span, from memory."""
        first = history_start(self.params, span.first_date)
        if self._first is None or first < self._first:
            raise RuntimeError(f"the in-memory history starts at {self._first}, the span needs {first}: prepare it")
        # Few partitions: each part adds its own, and the engines' jobs pay per task.
        parallelism = self._bronze[0].sparkSession.sparkContext.defaultParallelism
        bronze = reduce(DataFrame.unionByName, self._bronze).coalesce(parallelism)
        labels = reduce(DataFrame.unionByName, self._labels).filter(F.col("is_fraud")).coalesce(1)
        return flag_targets(*_within(bronze, labels, self.params, span), span, self.carry)

    def clear(self) -> None:
        """Forget the history (the next :meth:`prepare` reads it again)."""
        self._bronze, self._labels = [], []
        self._first = None
        self._added = 0
        self._expected_versions = {}

    def _compact_bronze(self, bronze: DataFrame) -> DataFrame:
        parallelism = bronze.sparkSession.sparkContext.defaultParallelism
        return bronze.select(*self.BRONZE, *self.carry).coalesce(parallelism).localCheckpoint(eager=True)

    def _compact_labels(self, labels: DataFrame) -> DataFrame:
        # Every label, not only fraud reports: the stream's duplicate check needs them all.
        return labels.select(*self.LABELS).coalesce(1).localCheckpoint(eager=True)


def featurize(
    spark: SparkSession,
    settings: Settings,
    params: FeatureParams,
    span: TargetSpan,
    source: str,
    run_id: str,
    batch_id: int | None = None,
    per_target: bool = False,
    late_before: datetime | None = None,
    carry: tuple[str, ...] = (),
    history: tuple[DataFrame, DataFrame] | None = None,
) -> DataFrame:
    """silver.features rows for the span's targets, with lineage columns (and bronze ``carry`` columns).

    ``per_target`` picks the per-target compilation (few targets against long history: the stream)
    over the window compilation (every row of a range is a target: backfill, training).
    ``history`` is :func:`history_for`'s result when the caller has it already (e.g. cached).
    """
    transactions, labels = history or history_for(spark, settings, params, span)
    compile_features = compute_target_features if per_target else compute_features
    features = compile_features(transactions, labels, params, carry)
    is_late = F.lit(False) if late_before is None else F.col("event_time") <= F.lit(late_before)
    return features.select(
        "*",
        F.lit(source).alias("source"),
        is_late.alias("is_late"),
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

