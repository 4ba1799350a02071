"""Delta reads and writes by contract: create, idempotent append, insert-new, replace a range."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.tables import TableContract


class ContractError(ValueError):
    """A DataFrame does not fit the table contract it is written to."""


def ensure_table(spark: SparkSession, contract: TableContract, root: Path | str) -> DeltaTable:
    """Create the table from its contract if it does not exist yet; return it."""
    path = contract.path(root)
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(contract.schema)
    if contract.partition_by:
        builder = builder.partitionedBy(*contract.partition_by)
    for key, value in contract.properties.items():
        builder = builder.property(key, value)
    builder = builder.comment(contract.description)
    table = builder.execute()
    _known_tables.add((id(spark), path))
    return table


# (session, path) pairs this process created or checked already: a micro-batch touches each
# table several times and the create-if-missing round trip costs a Delta log read every time.
_known_tables: set[tuple[int, str]] = set()


def _ensure_known(spark: SparkSession, contract: TableContract, root: Path | str) -> None:
    path = contract.path(root)
    local_log = None if "://" in path else Path(path) / "_delta_log"
    if (id(spark), path) in _known_tables and (local_log is None or local_log.is_dir()):
        return
    ensure_table(spark, contract, root)


def conform(df: DataFrame, contract: TableContract) -> DataFrame:
    """Select the contract's columns in order with the contract's types; fail naming missing ones."""
    missing = [c.name for c in contract.columns if c.name not in df.columns]
    if missing:
        raise ContractError(f"{contract.name}: missing columns {missing}")
    return df.select(*[F.col(c.name).cast(c.dtype).alias(c.name) for c in contract.columns])


def _one_file_per_partition(df: DataFrame, contract: TableContract) -> DataFrame:
    """Cluster rows by the partition column so each write adds one file per partition.

    Keeps micro-batches from scattering small files across tasks (and avoids Hadoop's
    per-file permission forks on local disks).
    """
    return df.repartition(*contract.partition_by) if contract.partition_by else df.coalesce(1)


def append_idempotent(
    df: DataFrame, contract: TableContract, root: Path | str, app_id: str, version: int,
    user_metadata: str | None = None,
) -> None:
    """Append once per (app_id, version): a replayed micro-batch is skipped by Delta itself.

    ``user_metadata`` is stored in the commit (``DESCRIBE HISTORY ... userMetadata``).
    """
    _ensure_known(df.sparkSession, contract, root)
    writer = (
        _one_file_per_partition(conform(df, contract), contract)
        .write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
    )
    if user_metadata is not None:
        writer = writer.option("userMetadata", user_metadata)
    writer.save(contract.path(root))


def insert_new(
    df: DataFrame,
    contract: TableContract,
    root: Path | str,
    keys: list[str],
    partition_values: list[str],
    app_id: str | None = None,
    version: int | None = None,
) -> int:
    """Append the rows whose keys are not in the table yet; duplicates within ``df`` collapse to one.

    A left-anti join against the keys of the touched partitions (``partition_values``) then a
    plain append: measured 5-10x faster than an insert-only MERGE here (5 s vs 41-49 s for
    288k rows). With ``app_id``/``version`` the append is also idempotent per micro-batch.
    Single writer per key range is assumed (the stream, or an import), as Delta does not
    detect two concurrent appends of the same new key. Returns the number of rows appended.
    """
    spark = df.sparkSession
    _ensure_known(spark, contract, root)
    source = conform(df, contract).dropDuplicates(keys)
    existing = spark.read.format("delta").load(contract.path(root))
    if contract.partition_by and partition_values:
        existing = existing.filter(F.col(contract.partition_by[0]).isin(partition_values))
    new = source.join(existing.select(*keys), keys, "left_anti").persist()
    try:
        count = new.count()
        if count:
            writer = _one_file_per_partition(new, contract).write.format("delta").mode("append")
            if app_id is not None and version is not None:
                writer = writer.option("txnAppId", app_id).option("txnVersion", version)
            writer.save(contract.path(root))
        return count
    finally:
        new.unpersist()


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


def read_table(spark: SparkSession, contract: TableContract, root: Path | str) -> DataFrame:
    """The table as a DataFrame (created empty if missing, so readers never fail on a new lakehouse)."""
    _ensure_known(spark, contract, root)
    return spark.read.format("delta").load(contract.path(root))


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
