"""latest_version reads the Delta log with deltalake: no Spark job, no JVM internals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake
from pyspark.sql.types import LongType

from lakehouse import delta_io
from lakehouse.tables import Column, TableContract

CONTRACT = TableContract("test.numbers", "test/numbers", "Numbers.", (Column("n", LongType(), "A number.", False),))


class _NoSpark:
    """Stands in for a session: any use of it fails the test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"latest_version used the Spark session ({name})")


def _append(path: str, n: int) -> None:
    write_deltalake(path, pa.table({"n": pa.array([n], pa.int64())}), mode="append")


def test_latest_version_follows_commits_and_a_recreated_table(tmp_path: Path) -> None:
    spark = _NoSpark()
    path = CONTRACT.path(tmp_path)
    _append(path, 0)
    delta_io._known_tables.add(path)  # as if ensure_table had run in this process
    assert delta_io.latest_version(spark, CONTRACT, tmp_path) == 0  # type: ignore[arg-type]
    _append(path, 1)
    _append(path, 2)
    assert delta_io.latest_version(spark, CONTRACT, tmp_path) == 2  # type: ignore[arg-type]
    shutil.rmtree(path)  # dropped and created anew: version 0 again, not the cached 2
    _append(path, 3)
    assert delta_io.latest_version(spark, CONTRACT, tmp_path) == 0  # type: ignore[arg-type]
