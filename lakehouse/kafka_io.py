"""Kafka I/O: clients for Python-side producers (simulator, replay, the hot micro-batch's scores;
created by jobs and the stream, passed in) and the streaming queries' Spark source."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
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


class RecordPublisher:
    """Records from the driver to one topic (at-least-once, keyed): the hot micro-batch's scores,
    already encoded by Spark in the job that collected them.

    librdkafka (confluent-kafka) rather than kafka-python: a micro-batch of a few thousand records
    cost kafka-python 0.5-1 s of the driver's Python (the GIL the micro-batch's other steps need),
    librdkafka a few milliseconds. The producer is idempotent (per-key order across retries) and
    made on first use; a record not acknowledged fails the micro-batch, which is then replayed.
    """

    def __init__(self, settings: Settings, topic: str, timeout_seconds: float = 60.0) -> None:
        self.settings = settings
        self.topic = topic
        self.timeout_seconds = timeout_seconds
        self._producer: Any = None

    def _make(self) -> Any:
        from confluent_kafka import Producer

        return Producer({
            "bootstrap.servers": self.settings.kafka.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        })

    def publish(self, keys: Sequence[Any], values: Sequence[Any]) -> int:
        """Send every (key, value) pair (bytes, or Arrow binary arrays); return once all are acknowledged."""
        if self._producer is None:
            self._producer = self._make()
        producer = self._producer
        failures: list[str] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        keys_py = keys.to_pylist() if hasattr(keys, "to_pylist") else list(keys)
        values_py = values.to_pylist() if hasattr(values, "to_pylist") else list(values)
        for key, value in zip(keys_py, values_py, strict=True):
            while True:
                try:
                    producer.produce(self.topic, value=value, key=key, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.05)
        left = producer.flush(self.timeout_seconds)
        if left or failures:
            raise RuntimeError(f"{self.topic}: {left} records not acknowledged within {self.timeout_seconds:.0f} s, "
                               f"{len(failures)} failed ({failures[:1]})")
        return len(keys_py)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_seconds)
            self._producer = None


@functools.cache
def score_record() -> list[Column]:
    """Key and value columns of a score record, built once (each column is a JVM round trip)."""
    payload = F.to_json(F.struct(*SCORE_PAYLOAD))
    return [F.col("transaction_id").cast("binary").alias("key"), payload.cast("binary").alias("value")]
