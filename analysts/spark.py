"""The ``aegis`` catalog in a Spark session.

:func:`register_catalog` registers each Delta table (``CREATE TABLE IF NOT EXISTS aegis.x USING DELTA
LOCATION ...``) and (re)creates the views in the session catalog; every entry point (``aegis sql``,
``make sql``) calls it at session start (a few seconds; a no-op when repeated). The Delta log stays the
source of truth (schema, partitions, history, time travel). Aegis sessions keep Spark's in-memory catalog
on purpose: pyspark 4.2 does ship Hive support (the embedded Derby metastore would live under
``<lakehouse>/_metastore``), but embedded Derby admits one JVM at a time, so a second ``aegis sql`` next
to ``make sql`` failed with "Another instance of Derby may have already booted the database", and
registration was no faster. With a shared metastore (``spark.sql.catalogImplementation=hive`` in
``spark.conf`` on a cluster) the same function works unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from analysts.catalog import DATABASE, catalog_tables, feature_params, label_delay_days
from analysts.views import VIEWS, CatalogView

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from conf.settings import Settings


def _spark_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _registered_location(spark: SparkSession, name: str) -> str | None:
    """Location of an already registered table, or None when it is not registered."""
    if not spark.catalog.tableExists(name):
        return None
    for row in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect():
        if row["col_name"] == "Location":
            return str(row["data_type"])
    return ""


def _same_location(registered: str, path: str) -> bool:
    def norm(p: str) -> str:
        return p.removeprefix("file:").replace("///", "/").rstrip("/")

    return norm(registered) == norm(path)


# Per Spark session (by id): the lakehouse root and view definitions last registered, to make re-registration cheap.
_registered: dict[int, tuple[str, ...]] = {}


def _is_local_delta_table(path: str) -> bool:
    """True for a local path that already holds a Delta log (saves a JVM round trip per table)."""
    return "://" not in path and (Path(path) / "_delta_log").is_dir()


def register_catalog(spark: SparkSession, settings: Settings) -> list[str]:
    """Register every table and view as ``aegis.*`` in the session catalog; returns the names, in order.

    Idempotent: tables missing on disk are created empty from their contracts (so the views always
    resolve), tables registered at another location are re-pointed, views are replaced.
    """
    from lakehouse.delta_io import ensure_table

    root = settings.lakehouse_root
    tables = {f"{DATABASE}.{name}": contract for name, contract in catalog_tables(feature_params(settings)).items()}
    delay = label_delay_days(settings)
    views = {f"{DATABASE}.{view.name}": create_view_sql(view, delay) for view in VIEWS}
    names = [*tables, *views]
    fingerprint = (str(root), *views.values())
    session_key = id(spark)
    if _registered.get(session_key) == fingerprint and all(spark.catalog.tableExists(n) for n in names):
        return names  # this session already has exactly this catalog
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DATABASE} COMMENT 'Aegis fraud-scoring lakehouse'")
    for qualified, contract in tables.items():
        path = contract.path(root)
        if not _is_local_delta_table(path):
            ensure_table(spark, contract, root)
        location = _registered_location(spark, qualified)
        if location is not None and _same_location(location, path):
            continue
        if location is not None:
            spark.sql(f"DROP TABLE {qualified}")  # external table: drops the catalog entry only
        spark.sql(f"CREATE TABLE IF NOT EXISTS {qualified} USING DELTA LOCATION {_spark_string(path)}")
    for statement in views.values():
        spark.sql(statement)
    _registered[session_key] = fingerprint
    return names


def create_view_sql(view: CatalogView, label_delay_days: int) -> str:
    """CREATE OR REPLACE VIEW with the documented column names and comments."""
    columns = ",\n    ".join(f"{c.name} COMMENT {_spark_string(c.description)}" for c in view.columns)
    return (
        f"CREATE OR REPLACE VIEW {DATABASE}.{view.name} (\n    {columns}\n) "
        f"COMMENT {_spark_string(view.description)}\nAS {view.query(DATABASE, label_delay_days)}"
    )
