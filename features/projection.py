"""Select lists built once (each column expression is a JVM round trip from PySpark), applied as a
plain ``select``: packing them into a struct column kept the struct in the executed plan."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame


class Projection:
    """``df.select(*columns)`` (or ``df.select("*", *columns)`` with ``keep_all``), built once.

    Every entry is a column name or an aliased column: its name becomes the output column's.
    """

    def __init__(self, columns: Sequence[Column | str], keep_all: bool = False) -> None:
        if not columns:
            raise ValueError("a projection needs at least one column")
        self._columns = ("*", *columns) if keep_all else tuple(columns)

    def __call__(self, df: DataFrame) -> DataFrame:
        return df.select(*self._columns)
