"""Plain helpers the tests share (conftest files hold only fixtures; tests import from here)."""

from __future__ import annotations

import os
from pathlib import Path

from conf.settings import Settings, load_settings
from lakehouse.ports import free_ports

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = REPO.parent / "shared" / "data" / "handbook"
CACHE = Path(os.environ.get("AEGIS_CACHE_DIR", REPO / ".cache"))
# The simulated population of the integration tests' history (the `trained` fixture).
HISTORY_DAYS = 42
CUSTOMERS = 400
TERMINALS = 300

__all__ = ["CACHE", "CUSTOMERS", "HANDBOOK", "HISTORY_DAYS", "REPO", "TERMINALS", "free_ports", "fresh_database",
           "isolated_settings", "make_settings"]


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


def fresh_database(settings: Settings, name: str, migrate: bool = True) -> str:
    """A new, empty database ``name`` on the session's server (migrated unless told not to); its DSN."""
    import re

    import psycopg

    from serving.sync import ensure_schema

    name = re.sub(r"[^a-z0-9_]", "_", name.lower())[:50]
    server = settings.serving_dsn.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{server}/{name}"
    if migrate:
        ensure_schema(dsn)
    return dsn


def isolated_settings(settings: Settings, name: str, **overrides: object) -> Settings:
    """Same broker and MLflow registry, its own lakehouse, topics and query name (plus ``overrides``)."""
    return make_settings(
        settings.paths.home,
        paths__lakehouse=str(settings.paths.home / name / "lakehouse"),
        paths__checkpoints=str(settings.paths.home / name / "checkpoints"),
        kafka__bootstrap_servers=settings.kafka.bootstrap_servers,
        kafka__broker__port=settings.kafka.broker.port,
        kafka__broker__controller_port=settings.kafka.broker.controller_port,
        kafka__topics__transactions=f"{name}.transactions",
        kafka__topics__labels=f"{name}.labels",
        kafka__topics__scores=f"{name}.scores",
        kafka__max_offsets_per_trigger=120,
        stream__query_name=f"{name}-stream",
        **overrides,
    )
