"""Select lists built once and applied per micro-batch as a single struct column.

PySpark sends every element of a ``select`` list to the JVM in its own round trip (about 0.1 ms
each here), and the stream's selects list 20-60 columns several times per micro-batch. A
:class:`Projection` packs its list into one struct column when it is built, so applying it costs
two round trips; the optimizer folds the struct away, the plan that runs is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

PACKED = "_projection"


class Projection:
    """``df.select(*columns)`` (or ``df.select("*", *columns)`` with ``keep_all``), built once.

    Every entry is a column name or an aliased column: its name becomes the output column's.
    """

    def __init__(self, columns: Sequence[Column | str], keep_all: bool = False) -> None:
        if not columns:
            raise ValueError("a projection needs at least one column")
        self._packed = F.struct(*columns).alias(PACKED)
        self._keep_all = keep_all

    def __call__(self, df: DataFrame) -> DataFrame:
        if self._keep_all:
            return df.select("*", self._packed).select("*", f"{PACKED}.*").drop(PACKED)
        return df.select(self._packed).select(f"{PACKED}.*")
