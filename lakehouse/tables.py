"""Table contracts: every Delta table's schema, partitioning, properties and documentation.

This module is the one place a table is declared. Writers create tables from it, the data
dictionary (docs/tables.md) is generated from it, and the API reads column names from it.
silver.features takes its feature columns from the declarations (``features.table.features_table``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


@dataclass(frozen=True)
class Column:
    """A documented column."""

    name: str
    dtype: DataType
    description: str
    nullable: bool = True


@dataclass(frozen=True)
class TableContract:
    """A Delta table: where it lives, its columns, partitioning and properties."""

    name: str
    relative_path: str
    description: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = ()
    lookup_keys: tuple[str, ...] = ()
    retention: str = "kept indefinitely; VACUUM removes unreferenced files after 7 days"
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> StructType:
        return StructType([StructField(c.name, c.dtype, c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def path(self, lakehouse_root: Path | str) -> str:
        return f"{str(lakehouse_root).rstrip('/')}/{self.relative_path}"


_DEFAULT_PROPERTIES = {
    # Writers already shape one file per partition; optimized writes would add a shuffle per commit.
    "delta.autoOptimize.optimizeWrite": "false",
    "delta.enableChangeDataFeed": "false",
    # A checkpoint rebuilds the table state in Spark jobs (about 4 s here) inside the commit that
    # triggers it; the stream commits to five tables per micro-batch, so every 10 commits (the
    # default) cost it ~2 s per batch. A cold reader replays at most 99 small JSON commits instead.
    "delta.checkpointInterval": "100",
    "delta.logRetentionDuration": "interval 30 days",
    "delta.deletedFileRetentionDuration": "interval 7 days",
}


def _stats_on(*columns: str) -> dict[str, str]:
    """Default properties, with file statistics (data skipping) kept on these columns only.

    Delta collects min/max/null counts for the first 32 columns of every file it writes, in the
    writing task; for the stream's tables, written every micro-batch, that was most of a commit's
    task time. The columns analysts filter on keep their statistics.
    """
    return {**_DEFAULT_PROPERTIES, "delta.dataSkippingStatsColumns": ",".join(columns)}


def _checkpointed_by_stream(properties: dict[str, str]) -> dict[str, str]:
    """Properties of a table the stream's hot query commits to every micro-batch.

    Delta writes a checkpoint inside the commit that crosses the interval: measured at 1,000 events/s,
    the hot micro-batch of that commit took 2.9 s instead of 1.4 s (gold and silver cross it together),
    which alone lifts the p99. The cold query checkpoints these tables instead
    (``stream.checkpoint_every_commits``, stream/cold.py); the interval here is the backstop.
    """
    return {**properties, "delta.checkpointInterval": "1000"}

_KAFKA_COLUMNS = (
    Column("kafka_topic", StringType(), "Kafka topic the record came from (null for imports)."),
    Column("kafka_partition", IntegerType(), "Kafka partition."),
    Column("kafka_offset", LongType(), "Kafka offset."),
    Column("kafka_timestamp", TimestampType(), "Kafka record timestamp (broker append time)."),
)

TRANSACTIONS = TableContract(
    name="bronze.transactions",
    relative_path="bronze/transactions",
    description="Every valid card transaction, as received (card numbers tokenized), one row per id.",
    columns=(
        Column("transaction_id", StringType(), "Unique transaction id.", False),
        Column("event_time", TimestampType(), "When the transaction happened (UTC).", False),
        Column("event_date", DateType(), "UTC date of event_time (partition).", False),
        Column("customer_id", StringType(), "Customer (card holder) id.", False),
        Column("terminal_id", StringType(), "Terminal / merchant id.", False),
        Column("amount", DoubleType(), "Amount in the transaction currency.", False),
        Column("currency", StringType(), "ISO 4217 currency code.", False),
        Column("card_token", StringType(), "Keyed hash (HMAC-SHA256) of the card number; never the number."),
        Column("card_last4", StringType(), "Last four digits of the card number."),
        Column("device_id", StringType(), "Device id, when known."),
        Column("merchant_category", StringType(), "Merchant category code (MCC)."),
        Column("channel", StringType(), "pos, ecom, atm or moto."),
        Column("latitude", DoubleType(), "Latitude of the terminal / device."),
        Column("longitude", DoubleType(), "Longitude of the terminal / device."),
        Column("schema_version", StringType(), "Event contract version."),
        *_KAFKA_COLUMNS,
        Column("source", StringType(), "stream, import or simulator.", False),
        Column("ingest_batch_id", LongType(), "Streaming micro-batch that ingested the row (null for imports)."),
        Column("ingested_at", TimestampType(), "When Aegis wrote the row.", False),
    ),
    partition_by=("event_date",),
    lookup_keys=("customer_id", "transaction_id"),
    properties=_DEFAULT_PROPERTIES,
)

LABELS = TableContract(
    name="bronze.labels",
    relative_path="bronze/labels",
    description="Fraud / genuine labels (chargebacks, confirmations) with the time they were reported.",
    columns=(
        Column("transaction_id", StringType(), "The labelled transaction.", False),
        Column("customer_id", StringType(), "Customer of the transaction.", False),
        Column("terminal_id", StringType(), "Terminal of the transaction.", False),
        Column("is_fraud", BooleanType(), "True when the transaction was confirmed fraudulent.", False),
        Column("reported_at", TimestampType(), "When the label became known (UTC).", False),
        Column("report_date", DateType(), "UTC date of reported_at (partition).", False),
        *_KAFKA_COLUMNS,
        Column("source", StringType(), "stream, import or simulator.", False),
        Column("ingested_at", TimestampType(), "When Aegis wrote the row.", False),
    ),
    partition_by=("report_date",),
    lookup_keys=("transaction_id",),
    properties=_DEFAULT_PROPERTIES,
)

QUARANTINE = TableContract(
    name="quarantine",
    relative_path="quarantine",
    description="Records that failed the strict contract check (bytes, JSON, JSON Schema, time range, card numbers "
                "outside card_number), with their masked bytes and every reason.",
    columns=(
        Column("raw_key", BinaryType(), "Kafka key bytes as received, every card number masked to its last four."),
        Column("raw_value", BinaryType(), "Record bytes as received, every card number (and card_number's value) "
               "masked."),
        *_KAFKA_COLUMNS,
        Column("transaction_id", StringType(), "Transaction id when it was a string (card numbers masked)."),
        Column("reason", StringType(), "Every failed check, '; '-separated, each '<keyword> <field>: <detail>'.",
               False),
        Column("failed_rules", ArrayType(StringType()), "The same checks as an array."),
        Column("source", StringType(), "stream, import or simulator.", False),
        Column("ingest_batch_id", LongType(), "Streaming micro-batch (null for imports)."),
        Column("quarantined_at", TimestampType(), "When the record was quarantined.", False),
        Column("quarantine_date", DateType(), "UTC date of quarantined_at (partition).", False),
    ),
    partition_by=("quarantine_date",),
    lookup_keys=("transaction_id",),
    properties=_DEFAULT_PROPERTIES,
)


#: silver.features is declared here except for its feature columns, which are the feature declarations'
#: (in model-input order): features.table.features_table builds the whole contract from them, so
#: lakehouse/ never imports features/.
FEATURES_TABLE_NAME = "silver.features"


def features_contract(feature_columns: Sequence[Column]) -> TableContract:
    """silver.features with the given feature columns (keys first, then the features, then bookkeeping)."""
    return TableContract(
        name=FEATURES_TABLE_NAME,
        relative_path="silver/features",
        description="One row per transaction: every declared feature, point-in-time correct.",
        columns=(
            Column("transaction_id", StringType(), "Transaction id.", False),
            Column("customer_id", StringType(), "Customer id.", False),
            Column("terminal_id", StringType(), "Terminal id.", False),
            Column("event_time", TimestampType(), "Transaction time (UTC).", False),
            Column("event_date", DateType(), "UTC date of event_time (partition).", False),
            *feature_columns,
            Column("feature_version", StringType(), "Content hash of the feature declarations.", False),
            Column("source", StringType(), "stream or backfill.", False),
            Column("is_late", BooleanType(), "Arrived after the stream's lateness frontier.", False),
            Column("stream_batch_id", LongType(), "Micro-batch that computed the row (null for backfill)."),
            Column("run_id", StringType(), "Backfill / stream run id."),
            Column("computed_at", TimestampType(),
                   "When the row was computed (the stream: when it was scored, as gold's scored_at).", False),
        ),
        partition_by=("event_date",),
        lookup_keys=("customer_id", "transaction_id"),
        properties=_checkpointed_by_stream(
            _stats_on("transaction_id", "customer_id", "terminal_id", "event_time", "computed_at")),
    )


REASON = StructType(
    [
        StructField("feature", StringType(), True),
        StructField("value", DoubleType(), True),
        StructField("contribution", DoubleType(), True),
    ]
)

SCORES = TableContract(
    name="gold.scores",
    relative_path="gold/scores",
    description="One score per transaction with its decision, versions and SHAP explanation.",
    columns=(
        Column("transaction_id", StringType(), "Transaction id.", False),
        Column("customer_id", StringType(), "Customer id.", False),
        Column("terminal_id", StringType(), "Terminal id.", False),
        Column("event_time", TimestampType(), "Transaction time (UTC).", False),
        Column("event_date", DateType(), "UTC date of event_time (partition).", False),
        Column("amount", DoubleType(), "Amount.", False),
        Column("score", DoubleType(), "Fraud probability, 0..1.", False),
        Column("decision", StringType(), "allow, review or block.", False),
        Column("model_name", StringType(), "Registered model name.", False),
        Column("model_version", StringType(), "Registered model version that produced the score.", False),
        Column("feature_version", StringType(), "Feature set version of the inputs.", False),
        Column("policy_version", StringType(), "Decision policy (thresholds) version.", False),
        Column("top_reasons", ArrayType(REASON), "Top contributions (feature, value, contribution)."),
        Column("shap_values", ArrayType(DoubleType()), "SHAP contribution of every feature, in score units."),
        Column("shap_expected_value", DoubleType(), "SHAP expected value; plus the contributions = score."),
        Column("source", StringType(), "stream or backfill.", False),
        Column("run_id", StringType(), "Backfill / stream run id."),
        Column("stream_batch_id", LongType(), "Micro-batch that scored the row (null for backfill)."),
        Column("scored_at", TimestampType(), "When the score was computed.", False),
        Column("latency_ms", DoubleType(), "Kafka append time to score, milliseconds (stream only)."),
    ),
    partition_by=("event_date",),
    lookup_keys=("transaction_id", "customer_id"),
    properties=_checkpointed_by_stream(_stats_on("transaction_id", "customer_id", "terminal_id", "event_time",
                                                 "amount", "score", "decision", "model_version", "scored_at")),
)

VALIDATION_RESULTS = TableContract(
    name="quality.validation_results",
    relative_path="quality/validation_results",
    description="Data-quality results: one row per expectation per validated batch or table slice.",
    columns=(
        Column("run_id", StringType(), "Stream query or nightly run id.", False),
        Column("suite", StringType(), "Expectation suite name.", False),
        Column("expectation", StringType(), "Expectation type and column.", False),
        Column("success", BooleanType(), "Whether it held.", False),
        Column("critical", BooleanType(), "A failure fails the nightly job.", False),
        Column("observed", StringType(), "Observed value / unexpected counts (JSON)."),
        Column("stream_batch_id", LongType(), "Micro-batch (stream only)."),
        Column("data_date", DateType(), "Date of the validated data (nightly)."),
        Column("validated_at", TimestampType(), "When the validation ran.", False),
        Column("validation_date", DateType(), "UTC date of validated_at (partition).", False),
    ),
    partition_by=("validation_date",),
    properties=_DEFAULT_PROPERTIES,
)

RUN_LOG = TableContract(
    name="ops.run_log",
    relative_path="ops/run_log",
    description="One row per batch job run (backfill, maintain, nightly, import) with its summary.",
    columns=(
        Column("run_id", StringType(), "Run id.", False),
        Column("job", StringType(), "Job kind.", False),
        Column("status", StringType(), "succeeded or failed.", False),
        Column("started_at", TimestampType(), "Start time.", False),
        Column("finished_at", TimestampType(), "End time.", False),
        Column("params", StringType(), "Job config (JSON).", False),
        Column("summary", StringType(), "Result summary (JSON)."),
    ),
    properties=_DEFAULT_PROPERTIES,
)


def all_tables(features: TableContract) -> list[TableContract]:
    """Every table, in data-flow order, with ``features`` (features.table.features_table) as silver."""
    return [TRANSACTIONS, LABELS, QUARANTINE, features, SCORES, VALIDATION_RESULTS, RUN_LOG]
