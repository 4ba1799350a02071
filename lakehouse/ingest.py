"""Parse Kafka records against the event contract; split valid rows from quarantine.

Everything here is a DataFrame -> DataFrame transformation (works on a micro-batch or a batch).
The card number is replaced by an HMAC-SHA256 token + last four digits before anything is
written; quarantined raw bytes have the card number masked.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from quality.rules import Expectation, failed_rules_column

TRANSACTION_FIELDS = (
    "schema_version", "transaction_id", "event_time", "customer_id", "terminal_id", "amount", "currency",
    "card_number", "device_id", "merchant_category", "channel", "latitude", "longitude",
)
LABEL_FIELDS = ("schema_version", "transaction_id", "customer_id", "terminal_id", "is_fraud", "reported_at")
ISO_WITH_ZONE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
MAX_RECORD_BYTES = 16 * 1024
FAILED = "_failed_rules"


def _all_strings(fields: tuple[str, ...]) -> StructType:
    return StructType([StructField(f, StringType(), True) for f in fields])


def hmac_sha256_hex(key: str, message: Column) -> Column:
    """HMAC-SHA256(key, message) as hex, in Spark SQL (RFC 2104 with the key's pads precomputed)."""
    raw_key = key.encode()
    if len(raw_key) > 64:
        raw_key = hashlib.sha256(raw_key).digest()
    raw_key = raw_key.ljust(64, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in raw_key)
    outer_pad = bytes(b ^ 0x5C for b in raw_key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), F.encode(message, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def mask_card_numbers(value: Column) -> Column:
    """Raw record bytes with any card_number value replaced, for quarantine."""
    text = value.cast("string")
    pattern = r'("card_number"\s*:\s*)("[^"]*"|[0-9]+)'
    masked = F.encode(F.regexp_replace(text, pattern, '$1"<masked>"'), "UTF-8")
    return F.when(text.contains("card_number"), masked).otherwise(value)


def _common(raw: DataFrame, fields: tuple[str, ...]) -> DataFrame:
    text = F.col("value").cast("string")
    allowed = F.array(*[F.lit(f) for f in fields])
    return raw.select(
        F.col("key").alias("raw_key"),
        F.col("value").alias("raw_value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.from_json(text, _all_strings(fields)).alias("j"),
        F.json_object_keys(text).alias("_keys"),
        F.is_valid_utf8(F.col("value")).alias("_utf8"),
        F.length(F.col("value")).alias("_size"),
        allowed.alias("_allowed"),
    )


def _structural_failures(required: tuple[str, ...]) -> list[Column]:
    unparseable = F.col("_keys").isNull()
    checks = [
        F.when(F.col("raw_value").isNull(), F.lit("empty record")),
        F.when(~F.col("_utf8"), F.lit("invalid UTF-8")),
        F.when(F.col("_size") > MAX_RECORD_BYTES, F.lit(f"record larger than {MAX_RECORD_BYTES} bytes")),
        F.when(F.col("_utf8") & unparseable, F.lit("not a JSON object")),
    ]
    unknown = F.array_except(F.coalesce(F.col("_keys"), F.array()), F.col("_allowed"))
    checks.append(F.when(F.size(unknown) > 0, F.concat(F.lit("unknown fields: "), F.array_join(unknown, ","))))
    for name in required:
        checks.append(F.when(~unparseable & F.col(f"j.{name}").isNull(), F.lit(f"missing field: {name}")))
    return checks


def _typed(name: str, target: str) -> tuple[Column, Column]:
    """(typed value, failure) for a string field cast to ``target``."""
    raw = F.col(f"j.{name}")
    value = F.expr(f"try_cast(j.{name} AS {target})")
    return value, F.when(raw.isNotNull() & value.isNull(), F.lit(f"wrong type: {name} (expected {target})"))


def _timestamp(name: str) -> tuple[Column, Column]:
    raw = F.col(f"j.{name}")
    value = F.when(raw.rlike(ISO_WITH_ZONE), F.expr(f"try_cast(j.{name} AS timestamp)"))
    failure = F.when(raw.isNotNull() & value.isNull(), F.lit(f"unparseable timestamp: {name} (ISO-8601 with zone)"))
    return value, failure


def parse_transactions(
    raw: DataFrame, card_key: str, suite: list[Expectation], now: datetime | None = None
) -> DataFrame:
    """Kafka records -> bronze transaction columns plus raw bytes and ``_failed_rules``."""
    required = ("transaction_id", "event_time", "customer_id", "terminal_id", "amount", "currency")
    base = _common(raw, TRANSACTION_FIELDS)
    event_time, event_time_bad = _timestamp("event_time")
    amount, amount_bad = _typed("amount", "double")
    latitude, latitude_bad = _typed("latitude", "double")
    longitude, longitude_bad = _typed("longitude", "double")
    card = F.col("j.card_number")
    card_bad = F.when(card.isNotNull() & ~card.rlike(r"^[0-9]{12,19}$"), F.lit("wrong format: card_number"))
    parsed = base.select(
        "*",
        F.col("j.transaction_id").alias("transaction_id"),
        event_time.alias("event_time"),
        F.col("j.customer_id").alias("customer_id"),
        F.col("j.terminal_id").alias("terminal_id"),
        amount.alias("amount"),
        F.col("j.currency").alias("currency"),
        F.when(card.isNotNull(), hmac_sha256_hex(card_key, card)).alias("card_token"),
        F.when(card.isNotNull(), F.substring(card, -4, 4)).alias("card_last4"),
        F.col("j.device_id").alias("device_id"),
        F.col("j.merchant_category").alias("merchant_category"),
        F.col("j.channel").alias("channel"),
        latitude.alias("latitude"),
        longitude.alias("longitude"),
        F.coalesce(F.col("j.schema_version"), F.lit("1")).alias("schema_version"),
        F.array(
            *_structural_failures(required), event_time_bad, amount_bad, latitude_bad, longitude_bad, card_bad
        ).alias("_structural"),
    )
    checked = parsed.withColumn(
        FAILED,
        F.array_distinct(
            F.concat(F.filter("_structural", lambda x: x.isNotNull()), failed_rules_column(suite, now))
        ),
    )
    return checked.withColumn("event_date", F.to_date("event_time")).drop("j", "_keys", "_allowed", "_structural")


def parse_labels(raw: DataFrame) -> DataFrame:
    """Kafka label records -> bronze label columns plus raw bytes and ``_failed_rules``."""
    required = ("transaction_id", "customer_id", "terminal_id", "is_fraud", "reported_at")
    base = _common(raw, LABEL_FIELDS)
    is_fraud, is_fraud_bad = _typed("is_fraud", "boolean")
    reported_at, reported_bad = _timestamp("reported_at")
    parsed = base.select(
        "*",
        F.col("j.transaction_id").alias("transaction_id"),
        F.col("j.customer_id").alias("customer_id"),
        F.col("j.terminal_id").alias("terminal_id"),
        is_fraud.alias("is_fraud"),
        reported_at.alias("reported_at"),
        F.array(*_structural_failures(required), is_fraud_bad, reported_bad).alias("_structural"),
    )
    checked = parsed.withColumn(FAILED, F.filter("_structural", lambda x: x.isNotNull()))
    return checked.withColumn("report_date", F.to_date("reported_at")).drop("j", "_keys", "_allowed", "_structural")


def quarantine_rows(checked: DataFrame, source: str, batch_id: int | None) -> DataFrame:
    """Rows with failed rules, shaped for the quarantine table."""
    bad = checked.filter(F.size(FAILED) > 0)
    return bad.select(
        "raw_key",
        mask_card_numbers(F.col("raw_value")).alias("raw_value"),
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
    return checked.filter(F.size(FAILED) == 0).select(
        "*",
        F.lit(source).alias("source"),
        F.lit(batch_id).cast("long").alias("ingest_batch_id"),
        F.current_timestamp().alias("ingested_at"),
    )
