"""Analysts' verdicts as label events (``conf/contracts/label.v1.json``) on the labels topic, via kafka-python."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sources.contract import to_json_bytes


class LabelPublisher:
    """A Kafka producer created on the first verdict and reused; ``publish`` waits for the broker's ack."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout: float = 10.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout = timeout
        self._producer: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> LabelPublisher:
        return cls(settings.kafka.bootstrap_servers, settings.kafka.topics.labels)

    def _send(self, label: dict[str, Any]) -> None:
        from kafka import KafkaProducer

        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers.split(","), acks="all", linger_ms=0,
                    request_timeout_ms=int(self.timeout * 1000), max_block_ms=int(self.timeout * 1000))
            producer = self._producer
        value = to_json_bytes(label, "label")
        producer.send(self.topic, key=label["customer_id"].encode(), value=value).get(timeout=self.timeout)

    async def publish(self, label: dict[str, Any]) -> None:
        """Deliver one label event (key = customer id); raises when the broker does not acknowledge it."""
        await asyncio.to_thread(self._send, label)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
