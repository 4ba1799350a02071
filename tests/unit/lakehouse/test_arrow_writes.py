"""The hot micro-batch's driver-side Delta appends (deltalake): contract checks and idempotency."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql.types import DateType, DoubleType, LongType, StringType

from lakehouse.arrow import arrow_schema
from lakehouse.arrow_writes import ArrowAppender, conform_arrow
from lakehouse.delta_io import ContractError, commit_marker
from lakehouse.tables import Column, TableContract

CONTRACT = TableContract(
    "test.scores", "test/scores", "Scores.",
    (Column("id", StringType(), "Id.", False), Column("event_date", DateType(), "Date.", False),
     Column("score", DoubleType(), "Score."), Column("batch", LongType(), "Batch.")),
    partition_by=("event_date",),
)
DAY = dt.date(2018, 7, 1)


def _rows(ids: list[str], extra: bool = False) -> pa.Table:
    # Spark's toArrow hands over large strings and every field nullable; columns in any order.
    columns = {
        "score": pa.array([0.5] * len(ids)),
        "id": pa.array(ids, pa.large_string()),
        "event_date": pa.array([DAY] * len(ids), pa.date32()),
        "batch": pa.array([7] * len(ids), pa.int64()),
    }
    if extra:
        columns["_key"] = pa.array([i.encode() for i in ids])
    return pa.table(columns)


@pytest.fixture
def table(tmp_path: Path) -> str:
    path = CONTRACT.path(tmp_path)
    write_deltalake(path, arrow_schema(CONTRACT).empty_table(), partition_by=["event_date"])
    return path


def test_rows_are_conformed_to_the_contract_order_types_and_required_columns() -> None:
    out = conform_arrow(_rows(["a", "b"], extra=True), CONTRACT)
    assert out.schema == arrow_schema(CONTRACT)
    assert out.column("id").to_pylist() == ["a", "b"]
    with pytest.raises(ContractError, match=r"test.scores: missing columns \['batch'\]"):
        conform_arrow(_rows(["a"]).drop_columns(["batch"]), CONTRACT)
    broken = _rows(["a", "b"]).set_column(1, "id", pa.array(["a", None], pa.large_string()))
    with pytest.raises(ContractError, match=r"nulls in required columns \['id'\]"):
        conform_arrow(broken, CONTRACT)


def test_a_replayed_version_is_skipped_and_every_commit_is_marked(tmp_path: Path, table: str) -> None:
    writer = ArrowAppender(CONTRACT, tmp_path, "stream.gold")
    assert writer.last_version() is None
    assert writer.append(_rows(["a", "b"], extra=True), 0)
    assert writer.append(_rows(["c"]), 1, verify=False)
    again = ArrowAppender(CONTRACT, tmp_path, "stream.gold")  # a restarted writer replays version 1
    assert again.last_version() == 1
    assert not again.append(_rows(["c"]), 1)
    assert again.append(_rows(["d"]), 2)
    rows = DeltaTable(table).to_pyarrow_table()
    assert sorted(rows.column("id").to_pylist()) == ["a", "b", "c", "d"]
    newest = DeltaTable(table).history(1)[0]
    assert newest["userMetadata"] == commit_marker("stream.gold", 2)


def test_another_writers_markers_and_commits_do_not_count(tmp_path: Path, table: str) -> None:
    ArrowAppender(CONTRACT, tmp_path, "other.gold").append(_rows(["x"]), 5)
    write_deltalake(table, conform_arrow(_rows(["y"]), CONTRACT), mode="append")  # unmarked (e.g. compaction)
    writer = ArrowAppender(CONTRACT, tmp_path, "stream.gold")
    assert writer.last_version() is None
    assert writer.append(_rows(["z"]), 0)
    assert writer.last_version() == 0
