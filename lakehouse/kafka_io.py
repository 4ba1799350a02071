"""Kafka I/O: clients for Python-side producers (simulator, replay; created by jobs, passed in) and the
streaming queries' Spark source and sink."""

from __future__ import annotations

import functools
import json
from typing import Any

from kafka import KafkaProducer
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings


def make_producer(settings: Settings) -> KafkaProducer:
    """A producer tuned for throughput with durable acks (keys and values are bytes)."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers.split(","),
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        retries=5,
        max_in_flight_requests_per_connection=1,  # keeps per-key order across retries
    )


def encode(event: dict[str, Any]) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(event, separators=(",", ":"), default=str).encode()


SCORE_PAYLOAD = ("transaction_id", "customer_id", "terminal_id", "event_time", "amount", "score", "decision",
                 "model_name", "model_version", "policy_version", "feature_version", "top_reasons", "scored_at")


def kafka_source(spark: SparkSession, settings: Settings, topics: list[str], capped: bool = True,
                 min_partitions: int | None = None) -> DataFrame:
    """The given topics as one streaming DataFrame (Kafka's key, value, topic, partition, offset, timestamp).

    ``capped`` applies ``kafka.max_offsets_per_trigger``; ``min_partitions`` splits each
    micro-batch's offset ranges into at least that many tasks. The stream's hot query reads uncapped: a
    cap splits a backlog across partitions unevenly in event time, and the event-time watermark
    (the newest event of any partition) would then turn the slower partitions' events late.
    """
    k = settings.kafka
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", k.bootstrap_servers)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", k.starting_offsets)
        .option("kafka.fetch.max.wait.ms", k.fetch_max_wait_ms)
    )
    if capped and k.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", k.max_offsets_per_trigger)
    if min_partitions:
        reader = reader.option("minPartitions", min_partitions)
    return reader.load()


def publish_scores(scores: DataFrame, settings: Settings) -> None:
    """Each score with its top reasons to the scores topic, keyed by transaction id (at-least-once)."""
    (
        scores.select(*_score_record())
        .write.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("topic", settings.kafka.topics.scores)
        .save()
    )


@functools.cache
def _score_record() -> list[Column]:
    """Key and value columns of a score record, built once (each column is a JVM round trip)."""
    payload = F.to_json(F.struct(*SCORE_PAYLOAD))
    return [F.col("transaction_id").cast("binary").alias("key"), payload.cast("binary").alias("value")]
