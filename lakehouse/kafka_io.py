"""Kafka clients for Python-side producers (simulator, replay); created by jobs, passed in."""

from __future__ import annotations

import json
from typing import Any

from kafka import KafkaProducer

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
