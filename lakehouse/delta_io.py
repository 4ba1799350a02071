"""Delta reads and writes by contract: create, idempotent append, insert-new, replace a range."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delta.exceptions import ConcurrentWriteException, MetadataChangedException, ProtocolChangedException
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.tables import TableContract

log = logging.getLogger("aegis.delta")


class ContractError(ValueError):
    """A DataFrame does not fit the table contract it is written to."""


def ensure_table(spark: SparkSession, contract: TableContract, root: Path | str) -> DeltaTable:
    """Create the table from its contract if it does not exist yet; return it.

    Two writers may create the same table at once (the stream and a backfill on a new
    lakehouse): the loser's commit conflicts, and it then finds the winner's table. A table that
    exists gets the contract's properties it lacks (a contract's new property reaches old tables).
    """
    path = contract.path(root)
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(contract.schema)
    if contract.partition_by:
        builder = builder.partitionedBy(*contract.partition_by)
    for key, value in contract.properties.items():
        builder = builder.property(key, value)
    builder = builder.comment(contract.description)
    try:
        table = builder.execute()
    except _CONCURRENT_CREATE as error:
        if not DeltaTable.isDeltaTable(spark, path):
            raise
        log.info("%s: created by a concurrent writer (%s)", contract.name, type(error).__name__)
        table = DeltaTable.forPath(spark, path)
    except AnalysisException as error:
        # A concurrent writer made _delta_log but has not committed version 0 yet, or files that
        # are not a table sit there.
        if error.getCondition() not in _NOT_YET_A_TABLE:
            raise
        table = _await_concurrent_create(spark, contract, path, error)
    _apply_properties(spark, table, contract, path)
    _known_tables.add(path)
    return table


def _await_concurrent_create(
    spark: SparkSession, contract: TableContract, path: str, error: AnalysisException
) -> DeltaTable:
    """The table another writer is creating at ``path``, once its first commit lands."""
    deadline = time.monotonic() + _CONCURRENT_CREATE_WAIT_SECONDS
    while time.monotonic() < deadline:
        if DeltaTable.isDeltaTable(spark, path):
            log.info("%s: created by a concurrent writer (%s)", contract.name, error.getCondition())
            return DeltaTable.forPath(spark, path)
        time.sleep(0.05)
    raise ContractError(
        f"{contract.name}: {path} holds files but no Delta table "
        f"(no commit appeared within {_CONCURRENT_CREATE_WAIT_SECONDS:.0f} s); move them away"
    ) from error


_CONCURRENT_CREATE_WAIT_SECONDS = 10.0
_NOT_YET_A_TABLE = {"DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION", "DELTA_MISSING_DELTA_TABLE"}


def _apply_properties(spark: SparkSession, table: DeltaTable, contract: TableContract, path: str) -> None:
    """Set the contract's table properties that the table at ``path`` lacks or holds otherwise."""
    detail = table.detail().select("properties").first()
    current = (detail[0] if detail is not None else None) or {}
    stale = {key: value for key, value in contract.properties.items() if current.get(key) != value}
    if not stale:
        return
    assignments = ", ".join(f"'{key}' = '{value.replace(chr(39), chr(92) + chr(39))}'" for key, value in stale.items())
    location = path.replace("`", "``")
    try:
        spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ({assignments})")
    except _CONCURRENT_CREATE as error:  # another writer changed the metadata first: it set the same
        log.info("%s: properties set by a concurrent writer (%s)", contract.name, type(error).__name__)
        return
    log.info("%s: table properties updated to the contract: %s", contract.name, ", ".join(sorted(stale)))


_CONCURRENT_CREATE = (ProtocolChangedException, MetadataChangedException, ConcurrentWriteException)

# Paths this process created or checked already: a micro-batch touches each table several times,
# the create-if-missing round trip costs a Delta log read every time, and every micro-batch of a
# stream hands foreachBatch a new session object (so the path, not the session, is the key).
_known_tables: set[str] = set()


def _ensure_known(spark: SparkSession, contract: TableContract, root: Path | str) -> None:
    path = contract.path(root)
    local_log = None if "://" in path else Path(path) / "_delta_log"
    if path in _known_tables and (local_log is None or local_log.is_dir()):
        return
    ensure_table(spark, contract, root)


def conform(df: DataFrame, contract: TableContract) -> DataFrame:
    """Select the contract's columns in order with the contract's types; fail naming missing ones."""
    missing = [c.name for c in contract.columns if c.name not in df.columns]
    if missing:
        raise ContractError(f"{contract.name}: missing columns {missing}")
    return df.select(_conformed(contract)).select("_conformed.*")


_CONFORMED: dict[tuple[str, tuple[str, ...]], Any] = {}


def _conformed(contract: TableContract) -> Any:
    """The contract's cast-and-alias columns as one struct, built once per contract: each column of
    a select list is a JVM round trip, a struct column is one."""
    key = (contract.name, tuple(f"{c.name}:{c.dtype.simpleString()}" for c in contract.columns))
    if key not in _CONFORMED:
        _CONFORMED[key] = F.struct(*[F.col(c.name).cast(c.dtype).alias(c.name) for c in contract.columns]).alias(
            "_conformed")
    return _CONFORMED[key]


def _one_file_per_partition(df: DataFrame, contract: TableContract) -> DataFrame:
    """Cluster rows by the partition column so each write adds one file per partition.

    Keeps micro-batches from scattering small files across tasks (and avoids Hadoop's
    per-file permission forks on local disks).
    """
    return df.repartition(*contract.partition_by) if contract.partition_by else df.coalesce(1)


def append_idempotent(
    df: DataFrame, contract: TableContract, root: Path | str, app_id: str, version: int,
    user_metadata: Mapping[str, object] | None = None, verify: bool = True, one_task: bool = False,
) -> bool:
    """Append once per (app_id, version): a replayed version is skipped. Returns whether it wrote.

    Every such commit carries ``{"app": app_id, "version": version, **user_metadata}`` as its
    ``userMetadata`` (``DESCRIBE HISTORY``), and the check reads the newest commits for it. Delta's
    own ``txnAppId``/``txnVersion`` does the same, but asks for the snapshot's set-transactions,
    which Delta 4.x rebuilds from the whole log state on every write (1.5-2 s per append here,
    against 0.4 s without). One writer per ``app_id`` is assumed (a streaming query, a run).
    ``verify=False`` skips the check when the caller knows ``version`` was never attempted before
    (a streaming query past its first micro-batch: only the first can be a replay).
    ``one_task`` writes from one task without a shuffle (a micro-batch of a few thousand rows).
    """
    spark = df.sparkSession
    _ensure_known(spark, contract, root)
    path = contract.path(root)
    last = last_marked_version(spark, path, app_id) if verify else None
    if last is not None and version <= last:
        log.info("%s: version %d of %s is committed already, skipped", contract.name, version, app_id)
        return False
    (
        (conform(df, contract).coalesce(1) if one_task else _one_file_per_partition(conform(df, contract), contract))
        .write.format("delta")
        .mode("append")
        .option("userMetadata", commit_marker(app_id, version, user_metadata))
        .save(path)
    )
    return True


def commit_marker(app_id: str, version: int, user_metadata: Mapping[str, object] | None = None) -> str:
    """The ``userMetadata`` JSON of an idempotent append: which writer, which of its versions."""
    return json.dumps({"app": app_id, "version": version, **(user_metadata or {})}, default=str)


def parse_marker(meta: str | None) -> dict[str, Any]:
    """A commit's ``userMetadata`` as a marker dict ({} when it is none)."""
    try:
        mark = json.loads(meta) if meta else None
    except ValueError:
        mark = None
    return mark if isinstance(mark, dict) else {}


# Commits read per history page when looking for a writer's marker. A writer's own newest commit
# is normally among the last few; the whole history is read only when other writers made more.
_HISTORY_PAGE = 50


def commit_markers(spark: SparkSession, path: str, limit: int | None = _HISTORY_PAGE) -> list[dict[str, Any]]:
    """The JSON ``userMetadata`` of the newest ``limit`` commits (all when None), newest first."""
    table = DeltaTable.forPath(spark, path)
    history = table.history(limit) if limit else table.history()
    return [parse_marker(meta) for _, meta in sorted(history.select("version", "userMetadata").collect(), reverse=True)]


MarkerPages = Callable[[int | None], list[dict[str, Any]]]


def newest_in_history(read: MarkerPages, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The newest marker ``match`` accepts, from ``read(limit)`` (markers newest first, all when None):
    the newest page first, all history if needed. Either engine's history reader plugs in."""
    marks = read(_HISTORY_PAGE)
    found = next((m for m in marks if match(m)), None)
    if found is None and len(marks) == _HISTORY_PAGE:
        found = next((m for m in read(None) if match(m)), None)
    return found


def newest_marker(spark: SparkSession, path: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The newest commit marker that ``match`` accepts: the newest page first, all history if needed."""
    return newest_in_history(lambda limit: commit_markers(spark, path, limit), match)


def marked_version(read: MarkerPages, app_id: str) -> int | None:
    """The highest version an idempotent append committed for ``app_id`` in that history (None: never)."""
    mark = newest_in_history(read, lambda m: m.get("app") == app_id)
    return int(mark["version"]) if mark else None


def last_marked_version(spark: SparkSession, path: str, app_id: str) -> int | None:
    """The highest version ``append_idempotent`` committed for ``app_id`` (None: never)."""
    return marked_version(lambda limit: commit_markers(spark, path, limit), app_id)


def insert_new(
    df: DataFrame,
    contract: TableContract,
    root: Path | str,
    keys: list[str],
    partition_values: list[str],
) -> int:
    """Append the rows whose keys are not in the table yet; duplicates within ``df`` collapse to one.

    A left-anti join against the keys of the touched partitions (``partition_values``) then a
    plain append: measured 5-10x faster than an insert-only MERGE here (5 s vs 41-49 s for
    288k rows). Single writer per key range is assumed (the stream, or an import), as Delta does not
    detect two concurrent appends of the same new key. Returns the number of rows appended.
    """
    new = detached(rows_not_in_table(df, contract, root, keys, partition_values))
    count = new.count()
    if count:
        append_rows(new, contract, root)
    return count


def rows_not_in_table(
    df: DataFrame,
    contract: TableContract,
    root: Path | str,
    keys: list[str],
    partition_values: list[str],
    existing: DataFrame | None = None,
) -> DataFrame:
    """The rows of ``df`` (conformed to the contract, one per key) whose keys the table lacks.

    ``existing`` (the table's rows, or a copy of them the caller keeps) replaces the read of the
    table; it needs the key and partition columns.
    """
    spark = df.sparkSession
    _ensure_known(spark, contract, root)
    source = conform(df, contract).dropDuplicates(keys)
    if existing is None:
        existing = spark.read.format("delta").load(contract.path(root))
    if contract.partition_by and partition_values:
        existing = existing.filter(F.col(contract.partition_by[0]).isin(partition_values))
    return source.join(existing.select(*keys), keys, "left_anti")


def detached(df: DataFrame) -> DataFrame:
    """``df`` computed now and cut from its lineage (an eager local checkpoint).

    For rows about to be appended to a table they were read against: a cached frame that reads
    a Delta table is re-planned against the new snapshot when the table is written (Spark re-caches
    by path), which cost 1-2 s of snapshot and file-listing jobs per stream micro-batch, and a
    recomputation would find the rows present already.
    """
    return df.localCheckpoint(eager=True)


def append_rows(df: DataFrame, contract: TableContract, root: Path | str) -> None:
    """Plain append of rows already conformed to the contract (one file per touched partition)."""
    _one_file_per_partition(df, contract).write.format("delta").mode("append").save(contract.path(root))


def replace_range(
    df: DataFrame, contract: TableContract, root: Path | str, predicate: str
) -> None:
    """Atomically replace exactly the rows matching ``predicate`` (one Delta commit)."""
    _ensure_known(df.sparkSession, contract, root)
    (
        _one_file_per_partition(conform(df, contract), contract)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .save(contract.path(root))
    )


def read_table(spark: SparkSession, contract: TableContract, root: Path | str,
               version: int | None = None) -> DataFrame:
    """The table (at ``version``, else the newest) as a DataFrame; created empty if missing."""
    _ensure_known(spark, contract, root)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(contract.path(root))


# Local table path -> its deltalake handle, brought up to date incrementally (reads only the new commits).
_version_handles: dict[str, Any] = {}
_version_lock = threading.Lock()


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file:")


def latest_version(spark: SparkSession, contract: TableContract, root: Path | str) -> int:
    """The table's newest commit version, without a Spark job (created from its contract if missing).

    Local tables: the ``deltalake`` package reads the log (the first call per table loads it, about
    0.02 s; later calls read only the commits added since, under 0.01 s). Other URIs go through the
    public Delta API (``DeltaTable.history(1)``, a Spark job, about 0.5 s here), which reaches storage
    with the session's credentials; deltalake would need its own.
    """
    _ensure_known(spark, contract, root)
    path = contract.path(root)
    if not _is_local(path):
        row = DeltaTable.forPath(spark, path).history(1).select("version").first()
        assert row is not None, f"{contract.name}: a Delta table without history at {path}"
        return int(row[0])
    from deltalake import DeltaTable as LogReader

    local = path.removeprefix("file:")
    with _version_lock:
        handle = _version_handles.get(local)
        if handle is not None and not (Path(local) / "_delta_log" / f"{handle.version():020d}.json").is_file():
            handle = None  # the table was removed (and maybe created anew) since: read its log afresh
        if handle is None:
            handle = _version_handles[local] = LogReader(local)
        else:
            handle.update_incremental()
        return int(handle.version())


@dataclass(frozen=True)
class TableStatus:
    """What `aegis tables` prints for one table."""

    name: str
    location: str
    exists: bool
    version: int | None
    rows: int | None


def table_status(spark: SparkSession, contract: TableContract, root: Path | str) -> TableStatus:
    """Version and row count of a table, without creating it."""
    path = contract.path(root)
    if not DeltaTable.isDeltaTable(spark, path):
        return TableStatus(contract.name, path, False, None, None)
    table = DeltaTable.forPath(spark, path)
    version = table.history(1).select("version").first()
    rows = spark.read.format("delta").load(path).count()
    return TableStatus(contract.name, path, True, int(version[0]) if version else None, rows)


def checkpoint_if_behind(spark: SparkSession, contract: TableContract, root: Path | str, every: int) -> int | None:
    """Write a checkpoint of the table once ``every`` commits have landed since its last one.

    Returns the version checkpointed, or None (not behind, or no table yet). A checkpoint of a
    version is idempotent, so one racing a writer's own checkpoint is harmless.
    """
    path = contract.path(root)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    if not jvm.io.delta.tables.DeltaTable.isDeltaTable(spark._jsparkSession, path):
        return None
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    none = jvm.scala.Option.empty()
    snapshot = delta_log.update(False, none, none)  # a listing of _delta_log, no Spark job
    newest, last = int(snapshot.version()), int(snapshot.checkpointProvider().version())  # -1: none yet
    if newest - last < every:
        return None
    delta_log.checkpoint()
    log.info("checkpointed %s at version >= %d (%d commits after the last one)", contract.name, newest, newest - last)
    return newest
