"""`aegis kafka up|down|status`: the embedded single-node KRaft broker and its topics."""

from __future__ import annotations

import json

from conf.settings import Settings
from lakehouse.kafka_broker import KafkaBroker


def broker_for(settings: Settings) -> KafkaBroker:
    """The embedded broker described by the settings."""
    b = settings.kafka.broker
    return KafkaBroker(
        cache_dir=settings.cache_dir,
        data_dir=settings.run_dir / "kafka",
        host=b.host,
        port=b.port,
        controller_port=b.controller_port,
        heap=b.heap,
    )


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Every topic Aegis uses, with its configured partition count."""
    t = settings.kafka.topics
    return {t.transactions: t.partitions, t.labels: t.partitions, t.scores: t.partitions}


def up(settings: Settings) -> KafkaBroker:
    """Start the broker (idempotent) and create missing topics."""
    broker = broker_for(settings)
    broker.start()
    created = broker.ensure_topics(topic_partitions(settings))
    print(f"kafka: broker up at {settings.kafka.broker.host}:{settings.kafka.broker.port}"
          + (f", created topics {created}" if created else ", topics present"))
    return broker


def run(settings: Settings, action: str) -> int:
    broker = broker_for(settings)
    if action == "up":
        up(settings)
    elif action == "down":
        broker.stop()
        print("kafka: broker stopped")
    else:
        print(json.dumps(broker.status(), default=str))
    return 0
