"""The local KRaft broker (lakehouse.kafka_broker) against a real java process.

Needs the broker libs from ``make setup`` (``deploy/fetch-jars.sh``) in ``$AEGIS_CACHE_DIR``
(default: the repo's ``.cache``) and a JDK 17+; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from lakehouse.jvm import kafka_classpath
from lakehouse.kafka_broker import KafkaBroker, KafkaBrokerError
from tests.support import free_ports

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("AEGIS_CACHE_DIR", REPO_ROOT / ".cache"))
TOPIC = "it.kafka.roundtrip"
PARTITIONS = 3
N_MESSAGES = 100

Message = tuple[str, str]  # (key, value)


def _read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[Message]:
    """Every record of ``topic`` from the beginning (no consumer group), partition by partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [(r.key.decode(), r.value.decode()) for r in batch]
        return records
    finally:
        consumer.close()


def _by_key(messages: list[Message]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for key, value in messages:
        grouped[key].append(value)
    return dict(grouped)


@pytest.fixture(scope="module")
def kafka_libs() -> None:
    """Skip unless java and the broker libs (``make setup``) are there."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no java: the Kafka broker needs a JDK 17+")
    try:
        kafka_classpath(CACHE_DIR)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def broker(kafka_libs: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real broker on free ports with a throw-away data dir, stopped at the end."""
    port, controller_port = free_ports(2)
    kafka = KafkaBroker(
        cache_dir=CACHE_DIR,
        data_dir=tmp_path_factory.mktemp("kafka-broker"),
        port=port,
        controller_port=controller_port,
        heap="256m",
    )
    started = time.monotonic()
    kafka.start(timeout=90)
    print(f"\nKafka broker {kafka.bootstrap} up in {time.monotonic() - started:.2f}s")
    try:
        yield kafka
    finally:
        kafka.stop()
        assert not kafka.status()["running"]


@pytest.fixture(scope="module")
def produced(broker: KafkaBroker) -> list[Message]:
    """100 keyed messages (10 keys, values numbered per key) written to TOPIC."""
    broker.ensure_topics({TOPIC: PARTITIONS})
    messages = [(f"card-{i % 10}", f"txn-{i:03d}") for i in range(N_MESSAGES)]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in messages:
            producer.send(TOPIC, key=key.encode(), value=value.encode())
        producer.flush(timeout=30)
    finally:
        producer.close()
    return messages


def test_start_status_and_ensure_topics_are_idempotent(broker: KafkaBroker) -> None:
    status = broker.status()
    assert status["running"] is True
    assert isinstance(status["pid"], int)
    assert status["bootstrap"] == f"127.0.0.1:{broker.port}"

    broker.start()  # already running: no second process
    assert broker.status()["pid"] == status["pid"]

    wanted = {"it.idempotent.a": 2, "it.idempotent.b": 1}
    assert broker.ensure_topics(wanted) == ["it.idempotent.a", "it.idempotent.b"]
    assert broker.ensure_topics(wanted) == []
    assert broker.ensure_topics({"it.idempotent.a": 2, "it.idempotent.c": 1}) == ["it.idempotent.c"]
    topics = broker.status()["topics"]
    assert {"it.idempotent.a", "it.idempotent.b", "it.idempotent.c"} <= set(topics)
    assert not any(t.startswith("__") for t in topics)


def test_produce_and_consume_keyed_messages(broker: KafkaBroker, produced: list[Message]) -> None:
    # through a consumer group: exercises the group coordinator and __consumer_offsets
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.bootstrap,
        group_id="it-roundtrip",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    consumed: list[Message] = []
    try:
        deadline = time.monotonic() + 30
        while len(consumed) < N_MESSAGES and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                consumed += [(r.key.decode(), r.value.decode()) for r in batch]
        consumer.commit()
    finally:
        consumer.close()

    assert len(consumed) == N_MESSAGES
    assert sorted(consumed) == sorted(produced)
    assert _by_key(consumed) == _by_key(produced)  # per-key order preserved


def test_stop_then_start_keeps_data(broker: KafkaBroker, produced: list[Message]) -> None:
    pid_before = broker.status()["pid"]
    cluster_id = broker.cluster_id_file.read_text()
    broker.stop()
    status = broker.status()
    assert status["running"] is False
    assert status["pid"] is None
    assert status["topics"] is None
    assert not broker.pid_file.exists()
    broker.stop()  # idempotent

    started = time.monotonic()
    broker.start(timeout=90)
    print(f"\nKafka broker restarted in {time.monotonic() - started:.2f}s")
    status = broker.status()
    assert status["running"] is True
    assert status["pid"] != pid_before
    assert TOPIC in status["topics"]
    assert broker.ensure_topics({TOPIC: PARTITIONS}) == []
    assert broker.cluster_id_file.read_text() == cluster_id

    records = _read_topic(broker.bootstrap, TOPIC, N_MESSAGES)
    assert sorted(records) == sorted(produced)
    assert _by_key(records) == _by_key(produced)


def test_missing_libs_say_run_make_setup(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "empty-cache", tmp_path / "data", port=1, controller_port=2)
    with pytest.raises(FileNotFoundError, match="make setup"):
        broker.start(timeout=5)


def test_port_taken_by_a_stranger(kafka_libs: None, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        (controller_port,) = free_ports(1)
        broker = KafkaBroker(CACHE_DIR, tmp_path / "data", port=port, controller_port=controller_port)
        with pytest.raises(KafkaBrokerError, match=f"127.0.0.1:{port} .* already in use"):
            broker.start(timeout=10)
    assert not broker.status()["running"]


def test_failed_start_reports_the_log_tail(kafka_libs: None, tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    broker = KafkaBroker(CACHE_DIR, tmp_path / "data", port=port, controller_port=controller_port, heap="1k")
    with pytest.raises(KafkaBrokerError, match=r"(?s)exited during startup.*broker\.log.*heap"):
        broker.start(timeout=30)
    assert not broker.status()["running"]
    assert not broker.pid_file.exists()
