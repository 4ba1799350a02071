"""Sync from the lakehouse into the serving store, exactly once in effect.

Two Spark streaming queries read gold.scores and silver.features as Delta sources (own checkpoints
under ``paths.checkpoints``, ``skipChangeCommits`` so the backfill's replaced partitions do not stop
them); each micro-batch is COPY'd into a temporary table and upserted keyed by transaction id, so a
replayed micro-batch converges to the same rows. The latest features per customer only move forward
in (event time, computation time). A backfill's replaced dates are re-synced by :func:`resync`
(delete those dates, insert them again from Delta, in one transaction). :func:`delete_expired`
drops rows older than ``serving.retention_days`` before the newest event date in the store.

Lag (time from scoring, just before the gold commit, to the store commit) is exported as the
Prometheus histogram ``aegis_serving_sync_lag_seconds``.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from lakehouse.tables import SCORES, TableContract
from serving import schema

log = logging.getLogger("aegis.serving.sync")

SYNC_LAG = Histogram(
    "aegis_serving_sync_lag_seconds", "Time from scoring (just before the gold commit) to the serving store commit.",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300))
SYNC_ROWS = Counter("aegis_serving_sync_rows_total", "Rows upserted into the serving store.", ["table"])

#: silver.features columns that are not features
FEATURE_META = frozenset({"transaction_id", "customer_id", "terminal_id", "event_time", "event_date",
                          "feature_version", "source", "is_late", "stream_batch_id", "run_id", "computed_at"})
_NUMERIC = ("double", "float", "int", "bigint", "smallint", "tinyint", "boolean", "decimal")
_SCORE_COPY = ("transaction_id", "customer_id", "terminal_id", "event_time", "event_date", "amount", "score",
               "decision", "model_name", "model_version", "feature_version", "policy_version", "top_reasons",
               "shap_values", "shap_expected_value", "source", "scored_at")
_FEATURE_COPY = ("transaction_id", "customer_id", "event_time", "event_date", "feature_version", "computed_at",
                 "feature_values")
_TS = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"


# --------------------------------------------------------------------------- shaping (Spark side)


def feature_columns(df: Any) -> list[str]:
    """The feature columns of a silver.features frame, in table (model-input) order."""
    return [f.name for f in df.schema.fields
            if f.name not in FEATURE_META and f.dataType.simpleString().startswith(_NUMERIC)]


def _pg_array(expression: str) -> str:
    """Spark SQL turning an array<double> into PostgreSQL array text (``{1.0,NaN,NULL}``)."""
    return (f"CASE WHEN {expression} IS NULL THEN NULL ELSE concat('{{', "
            f"array_join(transform({expression}, x -> cast(x AS string)), ',', 'NULL'), '}}') END")


def _finite(expression: str) -> str:
    return f"CASE WHEN isnan({expression}) OR abs({expression}) = double('inf') THEN NULL ELSE {expression} END"


# JSON has no NaN / infinity: non-finite reason values become null before to_json
_FINITE_REASONS = (f"transform(top_reasons, r -> named_struct('feature', r.feature, 'value', {_finite('r.value')}, "
                   f"'contribution', {_finite('r.contribution')}))")


def scores_frame(df: Any) -> Any:
    """gold.scores rows as COPY-ready text/number columns (plus ``_scored_us`` for the lag)."""
    return df.selectExpr(
        "transaction_id", "customer_id", "terminal_id", f"date_format(event_time, \"{_TS}\") AS event_time",
        "cast(event_date AS string) AS event_date", "amount", "score", "decision", "model_name", "model_version",
        "feature_version", "policy_version", f"coalesce(to_json({_FINITE_REASONS}), '[]') AS top_reasons",
        f"{_pg_array('shap_values')} AS shap_values", "shap_expected_value", "source",
        f"date_format(scored_at, \"{_TS}\") AS scored_at", "unix_micros(scored_at) AS _scored_us")


def features_frame(df: Any, names: list[str]) -> Any:
    """silver.features rows as COPY-ready columns, the features as one PostgreSQL array."""
    values = ", ".join(f"coalesce(cast(cast(`{n}` AS double) AS string), 'NULL')" for n in names)
    return df.selectExpr(
        "transaction_id", "customer_id", f"date_format(event_time, \"{_TS}\") AS event_time",
        "cast(event_date AS string) AS event_date", "feature_version",
        f"date_format(computed_at, \"{_TS}\") AS computed_at",
        f"concat('{{', concat_ws(',', {values}), '}}') AS feature_values" if names else "'{}' AS feature_values")


# --------------------------------------------------------------------------- writing (PostgreSQL side)


def connect(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=False, options="-c TimeZone=UTC")


def _copy(conn: Any, temp: str, like: str, columns: tuple[str, ...], table: Any) -> int:
    """COPY an Arrow table (``columns`` in order) into a fresh temp table shaped like ``like``."""
    import pyarrow.csv as pacsv

    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} (LIKE {like} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    conn.execute(f"TRUNCATE {temp}")
    if table.num_rows == 0:
        return 0
    buffer = io.BytesIO()
    pacsv.write_csv(table.select(list(columns)), buffer,
                    pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    with conn.cursor().copy(f"COPY {temp} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())
    return int(table.num_rows)


def upsert_scores(conn: Any, table: Any) -> int:
    """Upsert gold rows (an Arrow table from :func:`scores_frame`); a later ``scored_at`` wins."""
    n = _copy(conn, "_sync_scores", "scores", _SCORE_COPY, table)
    if n:
        updates = ", ".join(f"{c} = excluded.{c}" for c in _SCORE_COPY if c != "transaction_id")
        conn.execute(
            f"INSERT INTO scores ({', '.join(_SCORE_COPY)}) "
            f"SELECT DISTINCT ON (transaction_id) {', '.join(_SCORE_COPY)} FROM _sync_scores "
            "ORDER BY transaction_id, scored_at DESC "
            f"ON CONFLICT (transaction_id) DO UPDATE SET {updates}, synced_at = now() "
            "WHERE excluded.scored_at >= scores.scored_at OR scores.scored_at IS NULL")
    return n


def upsert_features(conn: Any, table: Any, names: list[str]) -> int:
    """Upsert silver rows per transaction and move each customer's latest vector forward."""
    n = _copy(conn, "_sync_features", "transaction_features", _FEATURE_COPY, table)
    if not n:
        return 0
    conn.execute("INSERT INTO feature_sets (feature_version, names) SELECT DISTINCT feature_version, %s::text[] "
                 "FROM _sync_features ON CONFLICT (feature_version) DO UPDATE SET names = excluded.names",
                 (names,))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _FEATURE_COPY if c != "transaction_id")
    conn.execute(
        f"INSERT INTO transaction_features ({', '.join(_FEATURE_COPY)}) "
        f"SELECT DISTINCT ON (transaction_id) {', '.join(_FEATURE_COPY)} FROM _sync_features "
        "ORDER BY transaction_id, computed_at DESC NULLS LAST "
        f"ON CONFLICT (transaction_id) DO UPDATE SET {updates}, synced_at = now()")
    _advance_customers(conn, "_sync_features")
    return n


def _advance_customers(conn: Any, source: str) -> None:
    conn.execute(
        "INSERT INTO customer_features (customer_id, transaction_id, event_time, feature_version, computed_at, "
        "feature_values) SELECT DISTINCT ON (customer_id) customer_id, transaction_id, event_time, feature_version, "
        f"computed_at, feature_values FROM {source} "
        "ORDER BY customer_id, event_time DESC, computed_at DESC NULLS LAST, transaction_id DESC "
        "ON CONFLICT (customer_id) DO UPDATE SET transaction_id = excluded.transaction_id, "
        "event_time = excluded.event_time, feature_version = excluded.feature_version, "
        "computed_at = excluded.computed_at, feature_values = excluded.feature_values, synced_at = now() "
        "WHERE (excluded.event_time, coalesce(excluded.computed_at, '-infinity')) >= "
        "(customer_features.event_time, coalesce(customer_features.computed_at, '-infinity'))")


def delete_expired(conn: Any, retention_days: int) -> dict[str, int]:
    """Delete rows older than ``retention_days`` before the newest event date in the store (one transaction).

    Measured from the store's newest event date rather than the wall clock, so a replay of old
    traffic is not deleted as it arrives; in live operation the two are the same.
    """
    newest = conn.execute("SELECT max(event_date) FROM scores").fetchone()[0]
    if newest is None:
        return {}
    deleted = {}
    for table, column in (("scores", "event_date"), ("transaction_features", "event_date"),
                          ("customer_features", "event_time::date")):
        cursor = conn.execute(f"DELETE FROM {table} WHERE {column} < %s::date - %s::int", (newest, retention_days))
        deleted[table] = int(cursor.rowcount)
    conn.commit()
    return deleted


# --------------------------------------------------------------------------- the sync


@dataclass
class StoreWriter:
    """The foreachBatch sinks: one connection, lazily (re)opened; lags reported to ``on_lag`` too."""

    dsn: str
    retention_days: int = 90
    retention_every_seconds: float = 3600.0
    on_lag: Callable[[np.ndarray], None] | None = None
    _conn: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _retained_at: float = field(default=0.0, init=False, repr=False)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn)
        return self._conn

    def _run(self, work: Callable[[Any], int]) -> int:
        with self._lock:  # the two queries' batches run on different threads
            conn = self._connection()
            try:
                n = work(conn)
                conn.commit()
                return n
            except BaseException:
                try:
                    conn.rollback()
                except Exception:
                    self._conn = None
                raise

    def write_scores(self, batch: Any, batch_id: int) -> None:
        table = scores_frame(batch).toArrow()
        n = self._run(lambda conn: upsert_scores(conn, table))
        committed = time.time()
        if n:
            lags = committed - np.asarray(table.column("_scored_us").to_numpy(zero_copy_only=False),
                                          dtype=np.float64) / 1e6
            for lag in lags.tolist():
                SYNC_LAG.observe(max(lag, 0.0))
            SYNC_ROWS.labels("scores").inc(n)
            if self.on_lag is not None:
                self.on_lag(lags)
        if committed - self._retained_at > self.retention_every_seconds:
            with self._lock:
                deleted = delete_expired(self._connection(), self.retention_days)
            self._retained_at = committed
            if any(deleted.values()):
                log.info("serving retention: deleted %s", deleted)

    def write_features(self, batch: Any, batch_id: int) -> None:
        names = feature_columns(batch)
        table = features_frame(batch, names).toArrow()
        n = self._run(lambda conn: upsert_features(conn, table, names))
        if n:
            SYNC_ROWS.labels("features").inc(n)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


@dataclass
class SyncQueries:
    """The two running sync queries (gold.scores, silver.features) and their writer."""

    queries: tuple[Any, ...]
    writer: StoreWriter

    def process_all_available(self) -> None:
        for query in self.queries:
            query.processAllAvailable()

    def exception(self) -> Exception | None:
        for query in self.queries:
            error = query.exception()
            if error is not None:
                return error  # type: ignore[no-any-return]
        return None

    @property
    def active(self) -> bool:
        return all(q.isActive for q in self.queries)

    def stop(self) -> None:
        for query in self.queries:
            query.stop()
        self.writer.close()


def ensure_schema(dsn: str) -> list[int]:
    """Apply the missing migrations to the store at ``dsn``."""
    with connect(dsn) as conn:
        return schema.migrate(conn)


def start_sync_query(spark: Any, settings: Any, *, features: TableContract,
                     on_lag: Callable[[np.ndarray], None] | None = None,
                     starting_version: int | None = None) -> SyncQueries:
    """Start the gold.scores and silver.features sync queries beside whatever else runs on ``spark``.

    Migrates the store first and creates gold.scores / silver.features (``features``, the contract from
    ``features.table.features_table``) when they do not exist yet (as the stream would). Returns a handle
    with ``stop()``.
    """
    from lakehouse.delta_io import ensure_table

    ensure_schema(settings.serving_dsn)
    root = settings.lakehouse_root
    for contract in (SCORES, features):
        ensure_table(spark, contract, root)
    writer = StoreWriter(settings.serving_dsn, settings.serving.retention_days, on_lag=on_lag)
    name = settings.serving.sync_query_name
    trigger = f"{settings.serving.sync_trigger_seconds} seconds"
    queries = []
    for table, sink in ((SCORES.path(root), writer.write_scores), (features.path(root), writer.write_features)):
        kind = "scores" if sink == writer.write_scores else "features"
        reader = spark.readStream.format("delta").option("skipChangeCommits", "true")
        if starting_version is not None:
            reader = reader.option("startingVersion", str(starting_version))
        query = (reader.load(table).writeStream.queryName(f"{name}-{kind}")
                 .option("checkpointLocation", str(settings.checkpoint_root / f"{name}-{kind}"))
                 .foreachBatch(sink).trigger(processingTime=trigger).start())
        queries.append(query)
    return SyncQueries(tuple(queries), writer)


def resync(spark: Any, settings: Any, date_from: date, date_to: date, *, features: TableContract) -> dict[str, int]:
    """Replace the store's rows of ``date_from..date_to`` (event dates, inclusive) with gold/silver's.

    ``features`` is silver's contract (``features.table.features_table``).

    One PostgreSQL transaction: readers see the old rows or the new ones, never a mix.
    """
    if date_to < date_from:
        raise ValueError(f"resync: --to {date_to} is before --from {date_from}")
    from delta.tables import DeltaTable

    ensure_schema(settings.serving_dsn)
    root = settings.lakehouse_root
    window = f"event_date BETWEEN DATE'{date_from.isoformat()}' AND DATE'{date_to.isoformat()}'"
    frames: dict[str, Any] = {}
    names: list[str] = []
    if DeltaTable.isDeltaTable(spark, SCORES.path(root)):
        frames["scores"] = scores_frame(spark.read.format("delta").load(SCORES.path(root)).where(window)).toArrow()
    silver_path = features.path(root)
    if DeltaTable.isDeltaTable(spark, silver_path):
        silver = spark.read.format("delta").load(silver_path).where(window)
        names = feature_columns(silver)
        frames["features"] = features_frame(silver, names).toArrow()
    counts = {"scores": 0, "features": 0}
    with connect(settings.serving_dsn) as conn:
        params = (date_from, date_to)
        conn.execute("DELETE FROM scores WHERE event_date BETWEEN %s AND %s", params)
        conn.execute("DELETE FROM transaction_features WHERE event_date BETWEEN %s AND %s", params)
        if "scores" in frames:
            counts["scores"] = upsert_scores(conn, frames["scores"])
        if "features" in frames:
            counts["features"] = upsert_features(conn, frames["features"], names)
        conn.commit()
        conn.autocommit = True
        for table in ("scores", "transaction_features", "customer_features"):
            conn.execute(f"ANALYZE {table}")  # bulk replace: fresh planner statistics
    log.info("serving resync %s..%s: %s", date_from, date_to, counts)
    return counts
