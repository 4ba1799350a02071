"""Migration files and the backfill's re-sync when the store is down (no server needed)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from lakehouse.ports import free_ports
from serving import schema
from tests.support import make_settings


def test_shipped_migrations_are_numbered_in_order() -> None:
    found = schema.migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert schema.latest_version() == found[-1].version


@pytest.mark.parametrize(("names", "message"), [
    (["0001_a.sql", "1_b.sql"], "named NNNN_lowercase_name.sql"),
    (["0001_a.sql", "0001_b.sql"], "version 1 is also 0001_a.sql"),
])
def test_bad_migration_folders_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(ValueError, match=message):
        schema.migrations(tmp_path)


def test_backfill_reports_an_unreachable_store_instead_of_failing(tmp_path: Path) -> None:
    from jobs.backfill import resync_serving

    (closed,) = free_ports(1)
    settings = make_settings(tmp_path, serving__dsn=f"postgresql://aegis:x@127.0.0.1:{closed}/aegis")
    day = date(2024, 5, 1)
    assert resync_serving(None, settings, day, day) == {"skipped": "serving store unreachable"}  # type: ignore[arg-type]
