"""Shared fixtures: test settings in a temp home, one Spark session per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf.settings import Settings, load_settings
from lakehouse.ports import free_ports

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = REPO.parent / "shared" / "data" / "handbook"
CACHE = Path(os.environ.get("AEGIS_CACHE_DIR", REPO / ".cache"))


def make_settings(home: Path, **overrides: object) -> Settings:
    """Test-profile settings rooted at ``home`` (cache shared with the repo)."""
    base: dict[str, object] = {"paths": {"home": str(home), "cache": str(CACHE)}}
    for dotted, value in overrides.items():
        cursor = base
        parts = dotted.split("__")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})  # type: ignore[assignment]
        cursor[parts[-1]] = value
    return load_settings("test", overrides=base, environ={})


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aegis-home")


@pytest.fixture(scope="session")
def settings(session_home: Path) -> Settings:
    """Test settings: temp home, the shared jar cache, a broker on free loopback ports."""
    port, controller = free_ports(2)
    return make_settings(
        session_home,
        kafka__bootstrap_servers=f"127.0.0.1:{port}",
        kafka__broker__port=port,
        kafka__broker__controller_port=controller,
    )


@pytest.fixture(scope="session")
def kafka_broker(settings: Settings) -> Iterator[object]:
    """The real single-node KRaft broker, started once for the session, topics created."""
    from jobs.kafka_admin import broker_for, topic_partitions

    broker = broker_for(settings)
    broker.start()
    broker.ensure_topics(topic_partitions(settings))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[object]:
    """Local Spark with Delta and the Kafka connector; UI off, 2 shuffle partitions, UTC."""
    from lakehouse.session import create_session

    session = create_session(settings, "tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def handbook_dir() -> Path:
    if not HANDBOOK.exists():
        pytest.skip(f"handbook data not found at {HANDBOOK}")
    return HANDBOOK
