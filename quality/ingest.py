"""Kafka records -> contract-checked rows, in Spark: split valid rows from quarantine.

The check itself is :class:`quality.records.RecordChecker` (plain Python, one record at a time),
applied here as one Arrow UDF over a micro-batch's key and value columns, so the stream and any
batch over Kafka-shaped rows share it. Card numbers are tokenized (HMAC-SHA256 + last four)
before anything leaves the UDF; a failing record keeps its key and value with every card number
masked, for the quarantine table. A valid record does not carry its raw bytes any further.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
    DoubleType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from quality.records import CARD_FIELD, DEFAULT_MAX_RECORD_BYTES, EventKind, RecordChecker, load_contract

FAILED = "_failed_rules"
_KAFKA = (("topic", "kafka_topic"), ("partition", "kafka_partition"), ("offset", "kafka_offset"),
          ("timestamp", "kafka_timestamp"))
_SPARK_TYPES: dict[str, DataType] = {"string": StringType(), "number": DoubleType(), "boolean": BooleanType()}
_ARROW_TYPES: dict[str, pa.DataType] = {"string": pa.string(), "number": pa.float64(), "boolean": pa.bool_()}
_TIMESTAMP = pa.timestamp("us", tz="UTC")


def _columns(kind: EventKind) -> list[tuple[str, DataType, pa.DataType]]:
    """(name, Spark type, Arrow type) of the typed columns of a kind, in contract order."""
    out: list[tuple[str, DataType, pa.DataType]] = []
    for spec in load_contract(kind).fields:
        if spec.name == CARD_FIELD:
            out += [("card_token", StringType(), pa.string()), ("card_last4", StringType(), pa.string())]
        elif spec.is_time:
            out.append((spec.name, TimestampType(), _TIMESTAMP))
        else:
            out.append((spec.name, _SPARK_TYPES[spec.json_type], _ARROW_TYPES[spec.json_type]))
    return out


def checked_type(kind: EventKind) -> StructType:
    """The struct the check returns per record: typed columns, failed rules, masked key and value."""
    fields = [StructField(name, spark_type, True) for name, spark_type, _ in _columns(kind)]
    fields += [StructField(FAILED, ArrayType(StringType(), False), False),
               StructField("raw_key", BinaryType(), True), StructField("raw_value", BinaryType(), True)]
    return StructType(fields)


@functools.cache
def _checker(kind: EventKind, card_key: str | None, max_record_bytes: int) -> RecordChecker:
    return RecordChecker(kind, card_key, max_record_bytes)


def check_arrow(kind: EventKind, keys: pa.Array, values: pa.Array, card_key: str | None,
                max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, now: datetime | None = None) -> pa.StructArray:
    """The check of every (key, value) pair of two binary Arrow arrays, as one struct array."""
    checker = _checker(kind, card_key, max_record_bytes)
    current = now or datetime.now(UTC)
    columns = _columns(kind)
    typed: dict[str, list[object]] = {name: [] for name, _, _ in columns}
    failed: list[list[str]] = []
    raw_keys: list[bytes | None] = []
    raw_values: list[bytes | None] = []
    for key, value in zip(keys.to_pylist(), values.to_pylist(), strict=True):
        record = checker.check(key, value, current)
        for name in typed:
            typed[name].append(record.values.get(name))
        failed.append(record.reasons)
        raw_keys.append(record.raw_key if record.reasons else None)
        raw_values.append(record.raw_value if record.reasons else None)
    arrays = [pa.array(typed[name], type=arrow_type) for name, _, arrow_type in columns]
    arrays += [pa.array(failed, type=pa.list_(pa.field("item", pa.string(), nullable=False))),
               pa.array(raw_keys, type=pa.binary()), pa.array(raw_values, type=pa.binary())]
    names = [name for name, _, _ in columns] + [FAILED, "raw_key", "raw_value"]
    return pa.StructArray.from_arrays(arrays, names=names)


def _checked(raw: DataFrame, kind: EventKind, card_key: str | None, max_record_bytes: int) -> DataFrame:
    def check_batch(keys: pa.Array, values: pa.Array) -> pa.Array:
        return check_arrow(kind, keys, values, card_key, max_record_bytes)

    # Nondeterministic, as it is (the time-range rule reads the clock): the optimizer then cannot
    # copy the UDF into a filter on its result, which ran it twice per record (filter and columns).
    check = F.arrow_udf(check_batch, checked_type(kind)).asNondeterministic()  # type: ignore[call-overload]
    kafka = [F.col(source).alias(target) for source, target in _KAFKA]
    return raw.select(*kafka, check(F.col("key").cast("binary"), F.col("value").cast("binary")).alias("_r")) \
        .select(*[target for _, target in _KAFKA], "_r.*")


def parse_transactions(raw: DataFrame, card_key: str,
                       max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> DataFrame:
    """Kafka records -> bronze transaction columns, masked raw key/value of failures, ``_failed_rules``."""
    checked = _checked(raw, "transaction", card_key, max_record_bytes)
    return checked.withColumn("event_date", F.to_date("event_time"))


def parse_labels(raw: DataFrame, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> DataFrame:
    """Kafka label records -> bronze label columns, masked raw key/value of failures, ``_failed_rules``."""
    checked = _checked(raw, "label", None, max_record_bytes)
    return checked.withColumn("report_date", F.to_date("reported_at"))


def quarantine_rows(checked: DataFrame, source: str, batch_id: int | None) -> DataFrame:
    """Rows with failed rules, shaped for the quarantine table (key and value already masked)."""
    bad = checked.filter(F.size(FAILED) > 0)
    return bad.select(
        "raw_key", "raw_value",
        "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp",
        F.col("transaction_id"),
        F.array_join(F.col(FAILED), "; ").alias("reason"),
        F.col(FAILED).alias("failed_rules"),
        F.lit(source).alias("source"),
        F.lit(batch_id).cast("long").alias("ingest_batch_id"),
        F.current_timestamp().alias("quarantined_at"),
        F.current_date().alias("quarantine_date"),
    )


def valid_rows(checked: DataFrame, source: str, batch_id: int | None) -> DataFrame:
    """Rows that passed every rule, with lineage columns."""
    return checked.filter(F.size(FAILED) == 0).drop("raw_key", "raw_value").select(
        "*",
        F.lit(source).alias("source"),
        F.lit(batch_id).cast("long").alias("ingest_batch_id"),
        F.current_timestamp().alias("ingested_at"),
    )
