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
    return builder.execute()


def conform(df: DataFrame, contract: TableContract) -> DataFrame:
    """Select the contract's columns in order with the contract's types; fail naming missing ones."""
    missing = [c.name for c in contract.columns if c.name not in df.columns]
    if missing:
        raise ContractError(f"{contract.name}: missing columns {missing}")
    return df.select(*[F.col(c.name).cast(c.dtype).alias(c.name) for c in contract.columns])


def append_idempotent(
    df: DataFrame, contract: TableContract, root: Path | str, app_id: str, version: int
) -> None:
    """Append once per (app_id, version): a replayed micro-batch is skipped by Delta itself."""
    ensure_table(df.sparkSession, contract, root)
    (
        conform(df, contract)
        .write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
        .save(contract.path(root))
    )


def insert_new(
    df: DataFrame, contract: TableContract, root: Path | str, keys: list[str], partition_values: list[str]
) -> None:
    """Insert rows whose keys are not in the table yet (idempotent; duplicates in df collapse to one).

    ``partition_values`` are the partition column values present in ``df`` so the MERGE only
    reads those partitions.
    """
    table = ensure_table(df.sparkSession, contract, root)
    source = conform(df, contract).dropDuplicates(keys)
    condition = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    if contract.partition_by and partition_values:
        part = contract.partition_by[0]
        quoted = ", ".join(f"'{v}'" for v in partition_values)
        condition = f"t.{part} IN ({quoted}) AND t.{part} = s.{part} AND {condition}"
    (table.alias("t").merge(source.alias("s"), condition).whenNotMatchedInsertAll().execute())


def replace_range(
    df: DataFrame, contract: TableContract, root: Path | str, predicate: str
) -> None:
    """Atomically replace exactly the rows matching ``predicate`` (one Delta commit)."""
    ensure_table(df.sparkSession, contract, root)
    (
        conform(df, contract)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .save(contract.path(root))
    )


def read_table(spark: SparkSession, contract: TableContract, root: Path | str) -> DataFrame:
    """The table as a DataFrame (created empty if missing, so readers never fail on a new lakehouse)."""
    ensure_table(spark, contract, root)
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
