"""Versioned schema migrations: ``serving/migrations/NNNN_name.sql`` applied in order, recorded in a table.

Each file runs in its own transaction together with its row in ``serving_schema_migrations``; an
advisory lock makes concurrent appliers (several API processes, the sync) wait for each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "serving_schema_migrations"
_LOCK_ID = 0x0AE915_20
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text()


def migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a badly named file or a duplicate version is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: migration files are named NNNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"{path}: version {version} is also {found[version].path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def latest_version(folder: Path = MIGRATIONS_DIR) -> int:
    return max((m.version for m in migrations(folder)), default=0)


def applied_version(conn: Any) -> int | None:
    """The newest applied version; None when the store has no schema at all."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,)).fetchone()[0]
    if not exists:
        return None
    row = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def migrate(conn: Any, folder: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the missing migrations (``conn``: a psycopg connection); returns the versions applied."""
    applied: list[int] = []
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
    try:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY, "
                     "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        done = {int(r[0]) for r in conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchall()}
        for migration in migrations(folder):
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql())
                conn.execute(f"INSERT INTO {VERSION_TABLE} (version, name) VALUES (%s, %s)",
                             (migration.version, migration.name))
            applied.append(migration.version)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied
