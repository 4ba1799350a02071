"""Shared fixtures: test settings in a temp home, one Spark session per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf.settings import Settings, load_settings

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
    return make_settings(session_home)


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
