"""The ``aegis`` catalog without Spark: deltalake -> Arrow, DuckDB (tables *and* views), polars.

No DuckDB extension and no network: each Delta table is read by ``deltalake`` as an Arrow dataset;
a table missing on disk appears empty with its contract's schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysts.catalog import DATABASE, DEFAULT_LABEL_DELAY_DAYS, catalog_tables, resolve_table
from analysts.views import VIEWS
from lakehouse.arrow import arrow_schema
from lakehouse.tables import TableContract

if TYPE_CHECKING:
    import duckdb
    import polars as pl


def _table_uri(lakehouse_root: Path | str, contract: TableContract) -> str:
    return contract.path(Path(lakehouse_root).expanduser().resolve())


def arrow_dataset(lakehouse_root: Path | str, table_name: str, version: int | None = None) -> Any:
    """A pyarrow dataset over the table (its latest or given version); an empty table if missing."""
    import pyarrow as pa
    from deltalake import DeltaTable

    contract = resolve_table(table_name)
    uri = _table_uri(lakehouse_root, contract)
    if not DeltaTable.is_deltatable(uri):
        if version is not None:
            raise FileNotFoundError(f"{contract.name}: no Delta table at {uri}")
        return pa.Table.from_batches([], schema=arrow_schema(contract))
    return DeltaTable(uri, version=version).to_pyarrow_dataset()


_DUCKDB_TYPES = {
    "bigint": "BIGINT", "int": "INTEGER", "double": "DOUBLE", "date": "DATE", "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
}


def duckdb_connection(lakehouse_root: Path | str, label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
                      ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with schema ``aegis``: every table and view, as in Spark.

    Tables are snapshots of their latest Delta version when the connection is made (reconnect to see
    newer data); missing tables appear empty with their contract's schema. ``aegis`` is on the search
    path, so ``SELECT * FROM daily_summary`` works as well as ``aegis.daily_summary``. The session time
    zone is UTC, as in Spark. Fetch with ``.df()``, ``.pl()`` or ``.to_arrow_table()``: DuckDB's
    ``.fetchall()`` of timestamp columns needs pytz, which Aegis does not install.
    """
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE SCHEMA {DATABASE}")
    for name in catalog_tables():
        source = f"__aegis_{name}"
        con.register(source, arrow_dataset(lakehouse_root, name))
        con.execute(f"CREATE VIEW {DATABASE}.{name} AS SELECT * FROM {source}")
    for view in VIEWS:
        # Cast to the documented types (DuckDB would otherwise widen sums to HUGEINT).
        casts = ", ".join(f"CAST({c.name} AS {_DUCKDB_TYPES[c.dtype]}) AS {c.name}" for c in view.columns)
        con.execute(
            f"CREATE VIEW {DATABASE}.{view.name} AS SELECT {casts} "
            f"FROM ({view.query(DATABASE, label_delay_days)}) AS q({', '.join(view.column_names)})"
        )
    con.execute(f"SET search_path = '{DATABASE},main'")
    return con


def polars_frame(lakehouse_root: Path | str, table_name: str, version: int | None = None) -> pl.LazyFrame:
    """A polars LazyFrame over a table (latest or given Delta version); empty with its schema if missing."""
    import polars as pl
    from deltalake import DeltaTable

    contract = resolve_table(table_name)
    uri = _table_uri(lakehouse_root, contract)
    if not DeltaTable.is_deltatable(uri):
        if version is not None:
            raise FileNotFoundError(f"{contract.name}: no Delta table at {uri}")
        frame = pl.from_arrow(arrow_schema(contract).empty_table())
        assert isinstance(frame, pl.DataFrame)
        return frame.lazy()
    return pl.scan_delta(uri, version=version)
