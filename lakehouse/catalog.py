"""The analysts' catalog: every table and documented view as SQL database ``aegis``.

* Spark: :func:`register_catalog` registers each Delta table (``CREATE TABLE IF NOT EXISTS aegis.x USING
  DELTA LOCATION ...``) and (re)creates the views below in the session catalog; every entry point
  (``aegis sql``, ``make sql``) calls it at session start (a few seconds; a no-op when repeated). The Delta
  log stays the source of truth (schema, partitions, history, time travel). Aegis sessions keep Spark's
  in-memory catalog on purpose: pyspark 4.2 does ship Hive support (the embedded Derby metastore would
  live under ``<lakehouse>/_metastore``), but embedded Derby admits one JVM at a time, so a second
  ``aegis sql`` next to ``make sql`` failed with "Another instance of Derby may have already booted the
  database", and registration was no faster. With a shared metastore (``spark.sql.catalogImplementation=
  hive`` in ``spark.conf`` on a cluster) the same function works unchanged.
* No Spark: :func:`duckdb_connection` exposes the same tables *and the same views* in DuckDB via
  deltalake -> Arrow (no DuckDB extension, no network), :func:`polars_frame` gives a polars LazyFrame.

The view SQL is written in the subset Spark SQL and DuckDB share, so both engines answer the same
questions; each view's columns are documented next to its SQL and rendered into docs/tables.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.catalog import FeatureParams
from lakehouse.tables import TableContract, all_tables

if TYPE_CHECKING:
    import duckdb
    import polars as pl
    import pyarrow as pa
    from pyspark.sql import SparkSession
    from pyspark.sql.types import DataType

    from conf.settings import Settings

DATABASE = "aegis"
DEFAULT_LABEL_DELAY_DAYS = 7
TOP_N = 100
DICTIONARY_PATH = Path(__file__).resolve().parents[1] / "docs" / "tables.md"


def short_name(contract: TableContract) -> str:
    """The catalog name of a contract: ``bronze.transactions`` -> ``transactions``."""
    return contract.name.rsplit(".", 1)[-1]


def catalog_tables(params: FeatureParams | None = None) -> dict[str, TableContract]:
    """Catalog name -> contract, for every table, in data-flow order."""
    return {short_name(c): c for c in all_tables(params)}


@dataclass(frozen=True)
class ViewColumn:
    """A documented view column; ``dtype`` is the Spark SQL type (simpleString)."""

    name: str
    dtype: str
    description: str


@dataclass(frozen=True)
class CatalogView:
    """A documented view. ``sql`` uses ``{db}`` (database) and ``{matured}`` (label-maturity predicate)."""

    name: str
    description: str
    columns: tuple[ViewColumn, ...]
    sql: str

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def query(self, db: str = DATABASE, label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS) -> str:
        """The SELECT behind the view, for the given database and label delay."""
        matured = f"event_time <= current_timestamp - INTERVAL {int(label_delay_days)} DAYS"
        return self.sql.format(db=db, matured=matured, top=TOP_N)


# Labels per transaction: a transaction is fraudulent if any label reported so far says so.
_KNOWN = """known AS (
    SELECT transaction_id, MAX(CAST(is_fraud AS INT)) AS is_fraud
    FROM {db}.labels
    GROUP BY transaction_id
)"""

_FLAGGED = "CASE WHEN s.decision IN ('review', 'block') THEN 1 ELSE 0 END"

DAILY_SUMMARY = CatalogView(
    name="daily_summary",
    description=(
        "One row per event date: volume, amounts, decisions by type, frauds confirmed so far, and precision / "
        "recall of the decisions (review or block count as flagged) against matured labels. A transaction's "
        "label has matured once its event time is more than the label delay (features.terminal_label_delay_days"
        ", 7 days by default) in the past; unlabelled matured transactions count as genuine, younger ones are "
        "left out of precision and recall."
    ),
    columns=(
        ViewColumn("event_date", "date", "UTC event date."),
        ViewColumn("transactions", "bigint", "Transactions in bronze for the date."),
        ViewColumn("amount_sum", "double", "Sum of their amounts."),
        ViewColumn("scored", "bigint", "Transactions with a score in gold.scores."),
        ViewColumn("allowed", "bigint", "Scores with decision allow."),
        ViewColumn("reviewed", "bigint", "Scores with decision review."),
        ViewColumn("blocked", "bigint", "Scores with decision block."),
        ViewColumn("mean_score", "double", "Mean fraud score (null without scores)."),
        ViewColumn("frauds_confirmed", "bigint", "Transactions of the date reported fraudulent so far."),
        ViewColumn("matured_scored", "bigint", "Scored transactions whose label has matured."),
        ViewColumn("matured_frauds", "bigint", "Of those, the fraudulent ones."),
        ViewColumn("flagged_matured", "bigint", "Of those, the ones decided review or block."),
        ViewColumn("flagged_frauds", "bigint", "Matured frauds decided review or block (true positives)."),
        ViewColumn("precision", "double", "flagged_frauds / flagged_matured (null when nothing was flagged)."),
        ViewColumn("recall", "double", "flagged_frauds / matured_frauds (null without matured frauds)."),
    ),
    sql="""WITH """ + _KNOWN + """,
tx AS (
    SELECT event_date, COUNT(*) AS transactions, SUM(amount) AS amount_sum
    FROM {db}.transactions
    GROUP BY event_date
),
confirmed AS (
    SELECT t.event_date, SUM(k.is_fraud) AS frauds
    FROM {db}.transactions t JOIN known k ON t.transaction_id = k.transaction_id
    GROUP BY t.event_date
),
sc AS (
    SELECT
        s.event_date,
        COUNT(*) AS scored,
        SUM(CASE WHEN s.decision = 'allow' THEN 1 ELSE 0 END) AS allowed,
        SUM(CASE WHEN s.decision = 'review' THEN 1 ELSE 0 END) AS reviewed,
        SUM(CASE WHEN s.decision = 'block' THEN 1 ELSE 0 END) AS blocked,
        AVG(s.score) AS mean_score,
        SUM(CASE WHEN s.{matured} THEN 1 ELSE 0 END) AS matured_scored,
        SUM(CASE WHEN s.{matured} THEN COALESCE(k.is_fraud, 0) ELSE 0 END) AS matured_frauds,
        SUM(CASE WHEN s.{matured} THEN """ + _FLAGGED + """ ELSE 0 END) AS flagged_matured,
        SUM(CASE WHEN s.{matured} THEN COALESCE(k.is_fraud, 0) * """ + _FLAGGED + """ ELSE 0 END)
            AS flagged_frauds
    FROM {db}.scores s LEFT JOIN known k ON s.transaction_id = k.transaction_id
    GROUP BY s.event_date
)
SELECT
    tx.event_date,
    tx.transactions,
    tx.amount_sum,
    COALESCE(sc.scored, 0) AS scored,
    COALESCE(sc.allowed, 0) AS allowed,
    COALESCE(sc.reviewed, 0) AS reviewed,
    COALESCE(sc.blocked, 0) AS blocked,
    sc.mean_score,
    COALESCE(confirmed.frauds, 0) AS frauds_confirmed,
    COALESCE(sc.matured_scored, 0) AS matured_scored,
    COALESCE(sc.matured_frauds, 0) AS matured_frauds,
    COALESCE(sc.flagged_matured, 0) AS flagged_matured,
    COALESCE(sc.flagged_frauds, 0) AS flagged_frauds,
    CAST(sc.flagged_frauds AS DOUBLE) / NULLIF(sc.flagged_matured, 0) AS precision,
    CAST(sc.flagged_frauds AS DOUBLE) / NULLIF(sc.matured_frauds, 0) AS recall
FROM tx
LEFT JOIN sc ON tx.event_date = sc.event_date
LEFT JOIN confirmed ON tx.event_date = confirmed.event_date""",
)

MODEL_PERFORMANCE = CatalogView(
    name="model_performance",
    description=(
        "One row per event date and model version that scored it: volume, mean score of fraudulent vs genuine "
        "transactions, ROC AUC (Mann-Whitney, ties averaged) and precision / recall at the decision (review or "
        "block = flagged), all against matured labels (see daily_summary)."
    ),
    columns=(
        ViewColumn("event_date", "date", "UTC event date."),
        ViewColumn("model_name", "string", "Registered model name."),
        ViewColumn("model_version", "string", "Registered model version."),
        ViewColumn("scored", "bigint", "Transactions the version scored that day."),
        ViewColumn("mean_score", "double", "Mean score over all of them."),
        ViewColumn("flagged", "bigint", "Decided review or block."),
        ViewColumn("matured", "bigint", "Scored transactions whose label has matured."),
        ViewColumn("frauds", "bigint", "Matured fraudulent transactions."),
        ViewColumn("genuine", "bigint", "Matured genuine transactions."),
        ViewColumn("mean_score_fraud", "double", "Mean score of the matured frauds."),
        ViewColumn("mean_score_genuine", "double", "Mean score of the matured genuine transactions."),
        ViewColumn("auc", "double", "ROC AUC over the matured rows (null unless both classes are present)."),
        ViewColumn("flagged_frauds", "bigint", "Matured frauds flagged (true positives)."),
        ViewColumn("precision", "double", "flagged_frauds / matured flagged (null when nothing was flagged)."),
        ViewColumn("recall", "double", "flagged_frauds / frauds (null without matured frauds)."),
    ),
    sql="""WITH """ + _KNOWN + """,
labelled AS (
    SELECT
        s.event_date, s.model_name, s.model_version, s.score,
        """ + _FLAGGED + """ AS flagged,
        CASE WHEN s.{matured} THEN COALESCE(k.is_fraud, 0) END AS label
    FROM {db}.scores s LEFT JOIN known k ON s.transaction_id = k.transaction_id
),
volume AS (
    SELECT event_date, model_name, model_version,
        COUNT(*) AS scored, AVG(score) AS mean_score, SUM(flagged) AS flagged
    FROM labelled
    GROUP BY event_date, model_name, model_version
),
ranked AS (
    SELECT event_date, model_name, model_version, score, flagged, label,
        RANK() OVER (PARTITION BY event_date, model_name, model_version ORDER BY score)
        + (COUNT(*) OVER (PARTITION BY event_date, model_name, model_version, score) - 1) / 2 AS score_rank
    FROM labelled
    WHERE label IS NOT NULL
),
quality AS (
    SELECT event_date, model_name, model_version,
        COUNT(*) AS matured,
        SUM(label) AS frauds,
        SUM(1 - label) AS genuine,
        AVG(CASE WHEN label = 1 THEN score END) AS mean_score_fraud,
        AVG(CASE WHEN label = 0 THEN score END) AS mean_score_genuine,
        SUM(CASE WHEN label = 1 THEN score_rank ELSE 0 END) AS fraud_rank_sum,
        SUM(flagged) AS flagged_matured,
        SUM(flagged * label) AS flagged_frauds
    FROM ranked
    GROUP BY event_date, model_name, model_version
)
SELECT
    v.event_date, v.model_name, v.model_version, v.scored, v.mean_score, v.flagged,
    COALESCE(q.matured, 0) AS matured, COALESCE(q.frauds, 0) AS frauds, COALESCE(q.genuine, 0) AS genuine,
    q.mean_score_fraud, q.mean_score_genuine,
    (q.fraud_rank_sum - q.frauds * (q.frauds + 1) / 2) / NULLIF(CAST(q.frauds AS DOUBLE) * q.genuine, 0) AS auc,
    COALESCE(q.flagged_frauds, 0) AS flagged_frauds,
    CAST(q.flagged_frauds AS DOUBLE) / NULLIF(q.flagged_matured, 0) AS precision,
    CAST(q.flagged_frauds AS DOUBLE) / NULLIF(q.frauds, 0) AS recall
FROM volume v
LEFT JOIN quality q
    ON v.event_date = q.event_date AND v.model_name = q.model_name AND v.model_version = q.model_version""",
)


def _risky(entity: str, label: str) -> CatalogView:
    return CatalogView(
        name=f"risky_{label}s",
        description=(
            f"The riskiest {label}s over all scores: the top {TOP_N} by mean score and the top {TOP_N} by "
            f"blocks (ties included), with their counts. Order by mean_score_rank or blocks_rank."
        ),
        columns=(
            ViewColumn(entity, "string", f"{label.capitalize()} id."),
            ViewColumn("transactions", "bigint", "Scored transactions."),
            ViewColumn("amount_sum", "double", "Sum of their amounts."),
            ViewColumn("mean_score", "double", "Mean fraud score."),
            ViewColumn("max_score", "double", "Highest fraud score."),
            ViewColumn("reviews", "bigint", "Decisions review."),
            ViewColumn("blocks", "bigint", "Decisions block."),
            ViewColumn("block_rate", "double", "blocks / transactions."),
            ViewColumn("frauds_confirmed", "bigint", "Of the scored transactions, those reported fraudulent so far."),
            ViewColumn("first_date", "date", "First event date scored."),
            ViewColumn("last_date", "date", "Last event date scored."),
            ViewColumn("mean_score_rank", "int", "Rank by mean_score, highest first (1 = riskiest)."),
            ViewColumn("blocks_rank", "int", "Rank by blocks, then mean_score (1 = most blocked)."),
        ),
        sql="""WITH """ + _KNOWN + """,
per_entity AS (
    SELECT
        s.""" + entity + """ AS entity,
        COUNT(*) AS transactions,
        SUM(s.amount) AS amount_sum,
        AVG(s.score) AS mean_score,
        MAX(s.score) AS max_score,
        SUM(CASE WHEN s.decision = 'review' THEN 1 ELSE 0 END) AS reviews,
        SUM(CASE WHEN s.decision = 'block' THEN 1 ELSE 0 END) AS blocks,
        SUM(COALESCE(k.is_fraud, 0)) AS frauds_confirmed,
        MIN(s.event_date) AS first_date,
        MAX(s.event_date) AS last_date
    FROM {db}.scores s LEFT JOIN known k ON s.transaction_id = k.transaction_id
    GROUP BY s.""" + entity + """
),
ranked AS (
    SELECT entity, transactions, amount_sum, mean_score, max_score, reviews, blocks, frauds_confirmed,
        first_date, last_date,
        RANK() OVER (ORDER BY mean_score DESC) AS mean_score_rank,
        RANK() OVER (ORDER BY blocks DESC, mean_score DESC) AS blocks_rank
    FROM per_entity
)
SELECT entity AS """ + entity + """, transactions, amount_sum, mean_score, max_score, reviews, blocks,
    CAST(blocks AS DOUBLE) / transactions AS block_rate, frauds_confirmed, first_date, last_date,
    mean_score_rank, blocks_rank
FROM ranked
WHERE mean_score_rank <= {top} OR blocks_rank <= {top}""",
    )


RISKY_TERMINALS = _risky("terminal_id", "terminal")
RISKY_CUSTOMERS = _risky("customer_id", "customer")

QUARANTINE_REASONS = CatalogView(
    name="quarantine_reasons",
    description="Quarantined records per quarantine date and reason.",
    columns=(
        ViewColumn("quarantine_date", "date", "UTC date the records were quarantined."),
        ViewColumn("reason", "string", "Human-readable reason."),
        ViewColumn("records", "bigint", "Quarantined records."),
        ViewColumn("transactions", "bigint", "Distinct transaction ids among them (when readable)."),
        ViewColumn("from_stream", "bigint", "Records from the stream (the rest: imports / simulator)."),
        ViewColumn("first_quarantined_at", "timestamp", "First record quarantined that day for the reason."),
        ViewColumn("last_quarantined_at", "timestamp", "Last one."),
    ),
    sql="""SELECT
    quarantine_date, reason,
    COUNT(*) AS records,
    COUNT(DISTINCT transaction_id) AS transactions,
    SUM(CASE WHEN source = 'stream' THEN 1 ELSE 0 END) AS from_stream,
    MIN(quarantined_at) AS first_quarantined_at,
    MAX(quarantined_at) AS last_quarantined_at
FROM {db}.quarantine
GROUP BY quarantine_date, reason""",
)

VIEWS: tuple[CatalogView, ...] = (
    DAILY_SUMMARY, MODEL_PERFORMANCE, RISKY_TERMINALS, RISKY_CUSTOMERS, QUARANTINE_REASONS,
)


def _label_delay(settings: Settings | None) -> int:
    return settings.features.terminal_label_delay_days if settings is not None else DEFAULT_LABEL_DELAY_DAYS


def _params(settings: Settings | None) -> FeatureParams:
    if settings is None:
        return FeatureParams()
    f = settings.features
    return FeatureParams(f.timezone, f.terminal_label_delay_days, f.night_start_hour, f.night_end_hour)


# ---------------------------------------------------------------------------------------------- Spark


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
    tables = {f"{DATABASE}.{name}": contract for name, contract in catalog_tables(_params(settings)).items()}
    delay = _label_delay(settings)
    views = {f"{DATABASE}.{view.name}": _create_view_sql(view, delay) for view in VIEWS}
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


def _create_view_sql(view: CatalogView, label_delay_days: int) -> str:
    """CREATE OR REPLACE VIEW with the documented column names and comments."""
    columns = ",\n    ".join(f"{c.name} COMMENT {_spark_string(c.description)}" for c in view.columns)
    return (
        f"CREATE OR REPLACE VIEW {DATABASE}.{view.name} (\n    {columns}\n) "
        f"COMMENT {_spark_string(view.description)}\nAS {view.query(DATABASE, label_delay_days)}"
    )


# ------------------------------------------------------------------------------------- without Spark


def arrow_type(dtype: DataType) -> pa.DataType:
    """The Arrow type deltalake reads for a Spark type (for empty stand-ins of missing tables)."""
    import pyarrow as pa
    from pyspark.sql import types as T

    simple: dict[type, Any] = {
        T.StringType: pa.string(), T.LongType: pa.int64(), T.IntegerType: pa.int32(),
        T.DoubleType: pa.float64(), T.BooleanType: pa.bool_(), T.DateType: pa.date32(),
        T.TimestampType: pa.timestamp("us", tz="UTC"), T.BinaryType: pa.binary(),
    }
    if type(dtype) in simple:
        return simple[type(dtype)]
    if isinstance(dtype, T.ArrayType):
        return pa.list_(arrow_type(dtype.elementType))
    if isinstance(dtype, T.StructType):
        return pa.struct([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in dtype.fields])
    raise TypeError(f"no Arrow mapping for {dtype.simpleString()}")


def arrow_schema(contract: TableContract) -> pa.Schema:
    """The contract's schema in Arrow."""
    import pyarrow as pa

    return pa.schema([pa.field(c.name, arrow_type(c.dtype), c.nullable) for c in contract.columns])


def resolve_table(table_name: str, params: FeatureParams | None = None) -> TableContract:
    """The contract for ``transactions``, ``aegis.transactions`` or ``bronze.transactions``."""
    tables = catalog_tables(params)
    key = table_name.removeprefix(f"{DATABASE}.")
    for name, contract in tables.items():
        if key in (name, contract.name):
            return contract
    raise KeyError(f"unknown table {table_name!r}; expected one of {', '.join(tables)}")


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


# ----------------------------------------------------------------------------------- data dictionary


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_data_dictionary(params: FeatureParams | None = None) -> str:
    """docs/tables.md: every table and view, every column with type and meaning (no Spark needed)."""
    tables = catalog_tables(params)
    lines = [
        "# Aegis data dictionary",
        "",
        "Generated from lakehouse/tables.py (table contracts) and lakehouse/catalog.py (views) by "
        "`python -m lakehouse.catalog --write`; tests/unit/test_data_dictionary.py fails when it is stale.",
        "",
        f"Everything is registered in the SQL database `{DATABASE}` (`aegis sql`, `make sql`) and, without "
        "Spark, in DuckDB (`lakehouse.catalog.duckdb_connection`). Types are Spark SQL types.",
        "",
        "Time travel: every table is a Delta table, so `DESCRIBE HISTORY aegis.<table>` lists its versions and "
        "`SELECT ... FROM aegis.<table> VERSION AS OF <n>` (or `TIMESTAMP AS OF '<ts>'`) reads an old one, "
        "as long as the log entry is retained (`delta.logRetentionDuration`) and VACUUM has not removed its "
        "files (`delta.deletedFileRetentionDuration`).",
        "",
        "## Contents",
        "",
        "| name | kind | description |",
        "|---|---|---|",
    ]
    for name, contract in tables.items():
        lines.append(f"| [`{DATABASE}.{name}`](#{DATABASE}{name}) | table | {_cell(contract.description)} |")
    for view in VIEWS:
        lines.append(f"| [`{DATABASE}.{view.name}`](#{DATABASE}{view.name}) | view | {_cell(view.description)} |")
    lines += ["", "## Tables", ""]
    for name, contract in tables.items():
        partitioning = ", ".join(f"`{p}`" for p in contract.partition_by) or "none"
        keys = ", ".join(f"`{k}`" for k in contract.lookup_keys) or "none"
        lines += [
            f"### `{DATABASE}.{name}`",
            "",
            contract.description,
            "",
            f"- Delta table `{contract.name}` at `<lakehouse>/{contract.relative_path}`",
            f"- Partitioned by: {partitioning}",
            f"- Lookup keys (Z-ORDER): {keys}",
            f"- Retention: {contract.retention}",
        ]
        for key, value in sorted(contract.properties.items()):
            if key in ("delta.logRetentionDuration", "delta.deletedFileRetentionDuration"):
                lines.append(f"- `{key}` = `{value}`")
        lines += ["", "| column | type | nullable | description |", "|---|---|---|---|"]
        for c in contract.columns:
            nullable = "yes" if c.nullable else "no"
            lines.append(f"| `{c.name}` | `{c.dtype.simpleString()}` | {nullable} | {_cell(c.description)} |")
        lines.append("")
    lines += ["## Views", ""]
    for view in VIEWS:
        lines += [
            f"### `{DATABASE}.{view.name}`",
            "",
            view.description,
            "",
            "| column | type | description |",
            "|---|---|---|",
        ]
        for col in view.columns:
            lines.append(f"| `{col.name}` | `{col.dtype}` | {_cell(col.description)} |")
        lines += ["", "<details><summary>SQL</summary>", "", "```sql", view.query(), "```", "", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m lakehouse.catalog [--write]``: print or rewrite docs/tables.md."""
    import argparse

    parser = argparse.ArgumentParser(description="render the Aegis data dictionary (docs/tables.md)")
    parser.add_argument("--write", action="store_true", help=f"rewrite {DICTIONARY_PATH}")
    args = parser.parse_args(argv)
    text = render_data_dictionary()
    if args.write:
        DICTIONARY_PATH.write_text(text)
        print(f"wrote {DICTIONARY_PATH}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
