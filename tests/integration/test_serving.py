"""The serving store fed from the lakehouse: real Delta tables, the real sync queries on Spark, the embedded
PostgreSQL; upserts converge, replaced partitions do not stop the sync, resync replaces dates, retention deletes."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from deltalake import write_deltalake

from conf.settings import Settings
from features.table import features_table
from lakehouse.arrow import arrow_schema
from lakehouse.tables import SCORES
from serving import schema
from serving.sync import SYNC_LAG, delete_expired, resync, start_sync_query
from tests.integration.test_api import HEAVY, LIGHT, T0, feature_row, score_row, seed_lakehouse, write_features
from tests.support import make_settings

pytestmark = pytest.mark.integration


def rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def lag_count() -> float:
    return next(s.value for m in SYNC_LAG.collect() for s in m.samples if s.name.endswith("_count"))


@pytest.fixture
def store_settings(tmp_path: Path, serving_dsn: str, settings: Settings) -> Settings:
    seed_lakehouse(tmp_path / "lakehouse")
    return make_settings(tmp_path, paths__lakehouse=str(tmp_path / "lakehouse"),
                         paths__checkpoints=str(tmp_path / "checkpoints"), serving__dsn=serving_dsn,
                         serving__sync_trigger_seconds=0.5)


def test_migrations_apply_once_in_order(serving_dsn: str) -> None:
    with psycopg.connect(serving_dsn, autocommit=True) as conn:
        assert schema.applied_version(conn) == schema.latest_version() == 2
        assert schema.migrate(conn) == []  # the fixture applied them already
    assert rows(serving_dsn, "SELECT version, name FROM serving_schema_migrations ORDER BY 1") == [
        (1, "serving_store"), (2, "api_json")]


def test_sync_upserts_survives_replaced_partitions_and_resync_converges(spark: Any, store_settings: Settings) -> None:
    dsn, root = store_settings.serving_dsn, store_settings.lakehouse_root
    before = lag_count()
    handle = start_sync_query(spark, store_settings, features=features_table())
    try:
        handle.process_all_available()
        assert rows(dsn, "SELECT count(*) FROM scores") == [(28,)]
        assert rows(dsn, "SELECT count(*) FROM transaction_features") == [(27,)]
        assert rows(dsn, "SELECT customer_id, transaction_id FROM customer_features ORDER BY 1") == [
            (HEAVY, "tx-h24"), (LIGHT, "tx-l1")]  # tie on event time: the later computation, then the larger id
        assert lag_count() - before == 28  # one lag observation per synced score

        # a later write of the same id wins; an older feature row does not move the customer back
        newer = score_row("tx-h03", HEAVY, 3, "allow", 0.02)
        newer["scored_at"] = newer["scored_at"] + timedelta(hours=1)
        write_deltalake(SCORES.path(root), _table([newer, score_row("tx-n1", "c-new", 200, "review", 0.5)], SCORES),
                        partition_by=["event_date"], mode="append")  # type: ignore[arg-type]
        write_features(root, [feature_row("tx-old", LIGHT, 1)])
        handle.process_all_available()
        assert rows(dsn, "SELECT decision, score FROM scores WHERE transaction_id = 'tx-h03'") == [("allow", 0.02)]
        assert rows(dsn, "SELECT count(*) FROM scores") == [(29,)]
        assert rows(dsn, "SELECT transaction_id FROM customer_features WHERE customer_id = %s", LIGHT) == [("tx-l1",)]

        # a backfill replaces the day: the stream skips that change commit and keeps running
        replaced = [score_row(f"tx-h{i:02d}", HEAVY, i, "block", 0.95) for i in range(5)]
        write_deltalake(SCORES.path(root), _table(replaced, SCORES), partition_by=["event_date"], mode="overwrite",
                        predicate=f"event_date = '{T0.date()}'")  # type: ignore[arg-type]
        write_deltalake(SCORES.path(root), _table([score_row("tx-n2", "c-new", 300)], SCORES),
                        partition_by=["event_date"], mode="append")  # type: ignore[arg-type]
        handle.process_all_available()
        assert handle.exception() is None and handle.active
        assert ("tx-n2",) in rows(dsn, "SELECT transaction_id FROM scores WHERE customer_id = 'c-new'")
    finally:
        handle.stop()

    counts = resync(spark, store_settings, T0.date(), T0.date(), features=features_table())
    assert counts["scores"] == 6  # the day as Delta has it now: the 5 rewritten rows + tx-n2 (tx-n1 was replaced)
    assert rows(dsn, "SELECT transaction_id FROM scores WHERE customer_id = 'c-new'") == [("tx-n2",)]
    assert rows(dsn, "SELECT count(*) FROM scores") == [(6,)]
    assert rows(dsn, "SELECT decision FROM scores WHERE transaction_id = 'tx-h00'") == [("block",)]

    # Restart from the checkpoint: nothing is re-applied.
    again = start_sync_query(spark, store_settings, features=features_table())
    try:
        again.process_all_available()
        assert rows(dsn, "SELECT count(*) FROM scores") == [(6,)]
    finally:
        again.stop()


def test_retention_counts_back_from_the_newest_event_date(spark: Any, store_settings: Settings) -> None:
    root, dsn = store_settings.lakehouse_root, store_settings.serving_dsn
    old = score_row("tx-old", "c-old", -60 * 24 * 100)  # 100 days before T0
    write_deltalake(SCORES.path(root), _table([old], SCORES), partition_by=["event_date"],
                    mode="append")  # type: ignore[arg-type]
    write_features(root, [feature_row("tx-old", "c-old", -60 * 24 * 100)])
    resync(spark, store_settings, T0.date() - timedelta(days=100), T0.date(), features=features_table())
    assert rows(dsn, "SELECT count(*) FROM scores") == [(29,)]
    with psycopg.connect(dsn) as conn:
        deleted = delete_expired(conn, retention_days=90)
    assert deleted == {"scores": 1, "transaction_features": 1, "customer_features": 1}
    assert rows(dsn, "SELECT count(*) FROM scores WHERE event_date < %s", date(2024, 2, 1)) == [(0,)]
    assert rows(dsn, "SELECT count(*) FROM scores") == [(28,)]


def _table(values: list[dict[str, Any]], contract: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_pylist(values, schema=arrow_schema(contract))



def test_serving_handle_serves_the_console_and_new_commits(spark: Any, store_settings: Settings) -> None:
    """What `make demo` starts beside the stream: sync + API + console; a gold commit is served seconds later."""
    import httpx

    from jobs.serving_job import start_serving
    from tests.support import free_ports

    (port,) = free_ports(1)
    handle = start_serving(store_settings, spark, port=port)
    try:
        assert handle.url == f"http://127.0.0.1:{port}/console" and handle.server is None  # serving.dsn given
        assert httpx.get(handle.url, timeout=10).status_code == 200
        write_deltalake(SCORES.path(store_settings.lakehouse_root), _table([score_row("tx-live", "c-live", 400)],
                        SCORES), partition_by=["event_date"], mode="append")  # type: ignore[arg-type]
        committed = time.monotonic()
        headers = {"X-API-Key": "aegis-service-dev"}
        while httpx.get(f"{handle.api_url}/v1/transactions/tx-live", headers=headers, timeout=10).status_code != 200:
            assert time.monotonic() - committed < 60, "a gold commit was not served within 60 s"
            time.sleep(0.2)
        assert httpx.get(f"{handle.api_url}/v1/transactions/tx-h03", headers=headers, timeout=10).json()[
            "decision"] == "block"  # the seeded history was synced too
    finally:
        handle.stop()
    assert not handle.sync.active
