"""Select lists built once and applied as a plain ``select``.

A streaming query's plan is built once, when it starts, so building its column expressions once
(each one a JVM round trip from PySpark) is all the saving there is. The lists were once packed
into a struct column to apply them in two round trips per micro-batch; the struct survived into
the executed plan (every row copied into and out of a struct per projection, and a wider plan for
the optimizer every micro-batch), so the select is plain.
"""

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
