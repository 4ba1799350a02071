"""features.projection: a select list built once gives the plain select's rows, names and types,
and a Python UDF inside it still runs once per row."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from features.projection import Projection

pytestmark = pytest.mark.integration


def test_projection_equals_the_plain_select_and_is_reusable(spark: Any) -> None:
    columns = ["id", (F.col("id") * 2).alias("twice"), F.lit("x").alias("tag"), F.col("v").cast("string").alias("v")]
    projection = Projection(columns)
    for n in (3, 5):  # the same Projection over two DataFrames, as over two micro-batches
        df = spark.range(n).select("id", (F.col("id") / 4).alias("v"))
        expected = df.select(*columns)
        got = projection(df)
        assert got.schema == expected.schema
        assert got.collect() == expected.collect()
    kept = Projection([(F.col("id") + 1).alias("next")], keep_all=True)(spark.range(2))
    assert kept.columns == ["id", "next"]
    assert [tuple(r) for r in kept.collect()] == [(0, 1), (1, 2)]


def test_a_udf_inside_a_projection_runs_once(spark: Any) -> None:
    def double(a: pa.Array) -> pa.Array:
        return pa.StructArray.from_arrays([pa.compute.multiply(a, 2), pa.compute.add(a, 1)], names=["x", "y"])

    udf = F.arrow_udf(double, "struct<x: long, y: long>")  # type: ignore[call-overload]
    scored = Projection(["id", udf("id").alias("_s")])(spark.range(4)).select("*", "_s.*")
    out = Projection(["id", F.col("x").alias("xx"), (F.col("y") + 1).alias("yy")])(scored)
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert plan.count("ArrowEvalPython") == 1
    assert [tuple(r) for r in out.collect()] == [(i, 2 * i, i + 2) for i in range(4)]


def test_an_empty_projection_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        Projection([])
