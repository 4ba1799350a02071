"""pandas 3 under PySpark 4.2: every pandas/Arrow path Aegis uses gives exact values.

PySpark 4.2 warns "does not yet fully support pandas >= 3.0.0" on every conversion: a blanket
version check (``pyspark.sql.pandas.utils.require_minimum_pandas_version``), not a detected
problem. These tests hold what Aegis relies on instead: one frame with every column type the
project's tables and UDFs carry (bigint, int, double with NaN/±inf/-0.0/subnormal, string with
unicode/empty/NUL/null, boolean, timestamp at microsecond precision far outside the nanosecond
range, date, binary, array<double> like the SHAP values, array<struct> like top_reasons, a struct
like the scoring UDF's output) goes through

* ``toPandas`` with Arrow (train.py's training frame, stream/hot.py's batch summary),
* ``toArrow`` (serving/sync.py, jobs/sql.py),
* a scalar pandas UDF and a scalar Arrow UDF, identity and arithmetic (models/spark_scoring.py and
  quality/ingest.py are Arrow UDFs),
* ``mapInPandas`` (deploy/spark/probe.py) and ``mapInArrow``,
* ``createDataFrame`` from pandas,

and comes back equal: doubles bit for bit (-0.0 is not 0.0), timestamps to the microsecond.
The conversions that are not exact are pinned as such (they are PySpark's rules, the same under
pandas 2, and Aegis does not depend on them): a nullable bigint becomes float64 in ``toPandas``,
a NaN becomes NULL in ``createDataFrame(pandas)``, and a multi-chunk pandas-3 ``str`` column (what
``toPandas`` returns) cannot take the Arrow path of ``createDataFrame``.
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

pytestmark = pytest.mark.integration

REASON = T.StructType([T.StructField("feature", T.StringType(), False), T.StructField("value", T.DoubleType())])
SCORE = T.StructType(
    [
        T.StructField("score", T.DoubleType(), False),
        T.StructField("decision", T.StringType(), False),
        T.StructField("shap_values", T.ArrayType(T.DoubleType())),
        T.StructField("scored_at", T.TimestampType(), False),
    ]
)
SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), False),
        T.StructField("big", T.LongType(), False),
        T.StructField("partition", T.IntegerType(), True),
        T.StructField("amount", T.DoubleType(), True),
        T.StructField("name", T.StringType(), True),
        T.StructField("flag", T.BooleanType(), True),
        T.StructField("event_time", T.TimestampType(), True),
        T.StructField("event_date", T.DateType(), True),
        T.StructField("raw", T.BinaryType(), True),
        T.StructField("shap", T.ArrayType(T.DoubleType()), True),
        T.StructField("reasons", T.ArrayType(REASON), True),
        T.StructField("scored", SCORE, True),
    ]
)
NAN, INF = float("nan"), float("inf")
SUBNORMAL, MAX = 5e-324, 1.7976931348623157e308


def _ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# The microsecond timestamps pandas' nanoseconds can hold, one microsecond inside (the UDF adds one).
NS_MIN, NS_MAX = _ts(1677, 9, 21, 0, 12, 43, 145225), _ts(2262, 4, 11, 23, 47, 16, 854774)


def _score(score: float, shap: list[float] | None, at: datetime) -> tuple[Any, ...]:
    return (score, "review", shap, at)


ROWS: list[tuple[Any, ...]] = [
    (
        0,
        9007199254740993,
        0,
        0.1,
        "ascii",
        True,
        _ts(2024, 3, 10, 1, 59, 59, 999999),
        date(2024, 2, 29),
        b"\x00\xff",
        [0.1, -0.0],
        [("amount", 1.5)],
        _score(0.93, [0.25, -0.125], _ts(2024, 3, 10, 2, 0, 0, 1)),
    ),
    (
        1,
        -9223372036854775808,
        None,
        NAN,
        "żółw 🐢 — 日本語",
        False,
        _ts(1970, 1, 1, 0, 0, 0, 1),
        date(1970, 1, 1),
        b"",
        [],
        [],
        _score(-0.0, [], _ts(1970, 1, 1)),
    ),
    (2, 9223372036854775807, 2147483647, INF, "", None, None, None, None, None, None, None),
    (
        3,
        0,
        -2147483648,
        -INF,
        None,
        True,
        NS_MIN,
        date(1, 1, 1),
        b"x",
        [NAN, INF, -INF, SUBNORMAL],
        [("night", None)],
        _score(SUBNORMAL, None, _ts(1677, 9, 21, 0, 12, 43, 145225)),
    ),
    (
        4,
        1,
        7,
        -0.0,
        "nul\x00inside",
        False,
        NS_MAX,
        date(9999, 12, 31),
        bytes(range(256)),
        [MAX, -MAX],
        None,
        _score(MAX, [-0.0], NS_MAX),
    ),
    (
        5,
        2**53 + 1,
        1,
        SUBNORMAL,
        "tab\tand\nnewline",
        True,
        _ts(1677, 9, 21, 0, 12, 43, 145226),
        date(1677, 9, 21),
        b"\x80",
        [1e-300],
        [("a", -0.0), ("b", NAN)],
        _score(0.5, [NAN], _ts(2038, 1, 19, 3, 14, 8)),
    ),
]


# ------------------------------------------------------------------------------------------- exactness


def _same(a: Any, b: Any) -> bool:
    """Equal, doubles bit for bit (any NaN equals any NaN; -0.0 is not 0.0), datetimes to the microsecond."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _micros(a) == _micros(b)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _plain(value: Any) -> Any:
    if isinstance(value, Row):
        return {k: _plain(v) for k, v in value.asDict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def canonical(df: DataFrame) -> list[dict[str, Any]]:
    """The rows by id, timestamps as epoch microseconds and dates as epoch days (computed in Spark, so
    no Python time zone is involved), everything else as collected."""

    def micros(column: Any, dtype: T.DataType) -> Any:
        if isinstance(dtype, T.TimestampType):
            return F.unix_micros(column)
        if isinstance(dtype, T.DateType):
            return F.unix_date(column)
        if isinstance(dtype, T.StructType):
            return F.struct(*[micros(column[f.name], f.dataType).alias(f.name) for f in dtype.fields])
        return column

    out = df.select(*[micros(F.col(f.name), f.dataType).alias(f.name) for f in df.schema.fields])
    return [_plain(r) for r in sorted(out.collect(), key=lambda r: r["id"])]


def assert_exact(got: DataFrame, expected: DataFrame) -> None:
    assert got.schema.simpleString() == expected.schema.simpleString()  # types and names (UDF outputs are nullable)
    left, right = canonical(got), canonical(expected)
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        bad = [k for k in b if not _same(a[k], b[k])]
        assert not bad, f"row {b['id']}: {[(k, a[k], b[k]) for k in bad]}"


@pytest.fixture(scope="module")
def frame(spark: SparkSession) -> Iterator[DataFrame]:
    df = spark.createDataFrame(ROWS, SCHEMA).repartition(3).cache()  # several Arrow batches per conversion
    assert df.count() == len(ROWS)
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    yield df
    df.unpersist()


def nan_as_null(column: Any, dtype: T.DataType | None = None) -> Any:
    """The column with every NaN in it (in arrays and structs too) replaced by NULL: what a value that went
    through pandas becomes in Spark."""
    c = F.col(column) if isinstance(column, str) else column
    if isinstance(dtype, T.ArrayType):
        out = F.transform(c, lambda x: nan_as_null(x, dtype.elementType))
    elif isinstance(dtype, T.StructType):
        fields = [nan_as_null(c[f.name], f.dataType).alias(f.name) for f in dtype.fields]
        out = F.when(c.isNotNull(), F.struct(*fields))
    elif dtype is None or isinstance(dtype, T.DoubleType):
        out = F.when(~F.isnan(c), c)
    else:
        return c
    return out.alias(column) if isinstance(column, str) else out


def all_nan_as_null(df: DataFrame) -> DataFrame:
    return df.select(*[nan_as_null(f.name, f.dataType) for f in df.schema.fields])


def _micros(value: Any) -> int:
    """Epoch microseconds of an aware datetime, a naive one (UTC: the session's zone) or a pandas Timestamp."""
    if isinstance(value, pd.Timestamp):
        return int(value.as_unit("us").asm8.astype(np.int64))
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - datetime(1970, 1, 1, tzinfo=UTC)) // pd.Timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------- toPandas


def test_to_pandas_is_exact(frame: DataFrame) -> None:
    pdf = frame.toPandas().sort_values("id", ignore_index=True)
    assert str(pdf["event_time"].dtype) == "datetime64[us]"  # microseconds: years 1..9999 fit, nothing rounded
    assert pdf["name"].dtype == "str"  # pandas 3's string dtype, missing is NaN
    for row, got in zip(ROWS, pdf.itertuples(index=False), strict=True):
        ident, big, partition, amount, name, flag, event_time, event_date, raw, shap, reasons, scored = row
        assert (got.id, got.big) == (ident, big)
        assert isinstance(got.big, (int, np.integer)) and int(got.big) == big  # non-null bigint stays int64
        # a nullable int becomes float64 (NaN for NULL): exact, every int32 is a double
        assert pd.isna(got.partition) if partition is None else float(got.partition) == partition
        assert _same(float(got.amount), amount)
        assert got.name == name if name is not None else pd.isna(got.name)
        assert got.flag is flag
        if event_time is None:
            assert pd.isna(got.event_time)
        else:
            assert _micros(got.event_time) == _micros(event_time)
        assert got.event_date == event_date
        assert got.raw == raw
        assert (got.shap is None and shap is None) or _same([float(x) for x in got.shap], shap)
        assert (got.reasons is None and reasons is None) or _same(
            [dict(x) for x in got.reasons], [{"feature": f, "value": v} for f, v in reasons]
        )
        if scored is None:
            assert got.scored is None
        else:
            assert _same([got.scored["score"], got.scored["decision"]], list(scored[:2]))
            assert (got.scored["shap_values"] is None and scored[2] is None) or _same(
                [float(x) for x in got.scored["shap_values"]], scored[2]
            )
            assert _micros(got.scored["scored_at"]) == _micros(scored[3])


def test_to_pandas_turns_a_nullable_bigint_into_float64(spark: SparkSession) -> None:
    """PySpark's rule (pandas 2 too): with a NULL in it, a bigint column becomes float64, so values above 2**53
    round. Aegis' pandas frames hold no such column (ids are strings; offsets go to Delta, not pandas)."""
    pdf = spark.createDataFrame([(2**53 + 1,), (None,)], "n bigint").toPandas()
    assert pdf["n"].dtype == np.float64
    assert pdf["n"][0] == float(2**53) != 2**53 + 1


# ----------------------------------------------------------------------------------------------- toArrow


def _as_records(rows: list[tuple[Any, ...]], schema: T.StructType) -> list[dict[str, Any]]:
    def value(v: Any, dtype: T.DataType) -> Any:
        if v is None:
            return None
        if isinstance(dtype, T.StructType):
            return {f.name: value(x, f.dataType) for f, x in zip(dtype.fields, v, strict=True)}
        if isinstance(dtype, T.ArrayType):
            return [value(x, dtype.elementType) for x in v]
        return v

    return [value(r, schema) for r in rows]


def test_to_arrow_is_exact(frame: DataFrame) -> None:
    table = frame.where("scored IS NOT NULL").toArrow().sort_by("id")  # see the next test
    assert table.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    rows = [r for r in ROWS if r[-1] is not None]
    for got, expected in zip(table.to_pylist(), _as_records(rows, SCHEMA), strict=True):
        assert _same(got, expected), (got, expected)  # aware UTC datetimes, floats bit for bit


def test_to_arrow_refuses_a_null_struct_with_not_null_fields(spark: SparkSession) -> None:
    """PySpark 4.2's ``toArrow`` (no pandas involved) fails on a NULL struct whose fields are NOT NULL
    ("nulls in input cannot be viewed as non-nullable"); ``toPandas`` and the UDFs carry it (above). Aegis'
    Arrow reads hold no struct: serving/sync.py sends top_reasons as JSON. When this test fails, PySpark has
    fixed it."""
    df = spark.createDataFrame([(1, (2,)), (2, None)], "id bigint, s struct<a: int not null>")
    with pytest.raises(Exception, match="cannot be viewed as non-nullable"):
        df.toArrow()
    assert df.toPandas()["s"].tolist()[1] is None


# ----------------------------------------------------------------------------------------------- UDFs


FLAT = ["id", "big", "partition", "amount", "name", "flag", "event_time", "event_date", "raw", "shap"]


def test_scalar_pandas_udfs_are_exact(frame: DataFrame) -> None:
    columns = []
    for name in FLAT:
        dtype = SCHEMA[name].dataType
        identity = F.pandas_udf(lambda s: s, dtype)  # type: ignore[call-overload]
        columns.append(identity(F.col(name)).alias(name))
    plus = F.pandas_udf(lambda s: s * 2.0 + 1.0, T.DoubleType())  # type: ignore[call-overload]
    succ = F.pandas_udf(lambda s: s + 1, T.LongType())  # type: ignore[call-overload]
    later = F.pandas_udf(lambda s: s + pd.Timedelta(microseconds=1), T.TimestampType())  # type: ignore[call-overload]
    got = frame.select(*columns, plus("amount").alias("a2"), succ("id").alias("id1"), later("event_time").alias("t1"))
    # PySpark's rule (pandas 2 too): a NaN the pandas side returns, at any depth, is a NULL.
    expected = frame.select(
        *[nan_as_null(c, SCHEMA[c].dataType) for c in FLAT],
        nan_as_null(F.col("amount") * 2.0 + 1.0).alias("a2"),
        (F.col("id") + 1).alias("id1"),
        (F.col("event_time") + F.expr("INTERVAL 1 MICROSECOND")).alias("t1"),
    )
    assert_exact(got, expected)


def test_scalar_arrow_udfs_are_exact(frame: DataFrame) -> None:
    import pyarrow.compute as pc

    columns = []
    for name in [*FLAT, "reasons", "scored"]:
        identity = F.arrow_udf(lambda a: a, SCHEMA[name].dataType)  # type: ignore[call-overload]
        columns.append(identity(F.col(name)).alias(name))
    plus = F.arrow_udf(lambda a: pc.add(pc.multiply(a, 2.0), 1.0), T.DoubleType())  # type: ignore[call-overload]

    def score(amount: pa.Array, shap: pa.Array) -> pa.Array:  # the scoring UDF's output shape
        n = len(amount)
        return pa.StructArray.from_arrays(
            [
                amount,
                pa.array(["review"] * n),
                shap,
                pa.array(np.full(n, 1_700_000_000_123_456, dtype=np.int64), type=pa.timestamp("us", tz="UTC")),
            ],
            names=SCORE.fieldNames(),
        )

    scored = F.arrow_udf(score, SCORE)  # type: ignore[call-overload]
    got = frame.select(*columns, plus("amount").alias("a2"), scored("amount", "shap").alias("s2"))
    expected = frame.select(
        *FLAT,
        "reasons",
        "scored",
        (F.col("amount") * 2.0 + 1.0).alias("a2"),
        F.struct(
            F.col("amount").alias("score"),
            F.lit("review").alias("decision"),
            F.col("shap").alias("shap_values"),
            F.timestamp_micros(F.lit(1_700_000_000_123_456)).alias("scored_at"),
        ).alias("s2"),
    )
    assert_exact(got, expected)


def test_map_in_arrow_is_exact(frame: DataFrame) -> None:
    def arrow_identity(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from batches

    assert_exact(frame.mapInArrow(arrow_identity, SCHEMA), frame)


def test_map_in_pandas_is_exact_but_for_nan(frame: DataFrame) -> None:
    def pandas_identity(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from frames

    assert_exact(frame.mapInPandas(pandas_identity, SCHEMA), all_nan_as_null(frame))


# -------------------------------------------------------------------------------------- createDataFrame


def test_create_data_frame_from_pandas_is_exact_but_for_nan(spark: SparkSession, frame: DataFrame) -> None:
    """PySpark's rule (pandas 2 too): a NaN in a pandas float column, array or struct is a NULL in Spark."""
    pdf = frame.toPandas()
    pdf["name"] = pdf["name"].astype(object)  # see the next test
    back = spark.createDataFrame(pdf, SCHEMA)
    # the frame has NaN at every depth: the amount, in the SHAP arrays, in a reason, in a score struct
    assert_exact(back, all_nan_as_null(frame))


def test_create_data_frame_from_a_chunked_pandas3_str_column_falls_back_and_writes_nan(
    spark: SparkSession, frame: DataFrame
) -> None:
    """toPandas returns pandas 3 ``str`` columns backed by a multi-chunk Arrow array, which PySpark 4.2's Arrow
    ``createDataFrame`` cannot take ("Cannot convert pyarrow.lib.ChunkedArray to pyarrow.lib.Array"): it
    falls back to the row path with a warning, and that path turns a missing string into the string "nan".
    Aegis never does this: it stages pandas through Parquet (jobs/importer.py ``to_spark``). When this test
    fails, PySpark has changed it; say so in the README."""
    pdf = frame.select("id", "name").toPandas()
    assert pdf["name"].dtype == "str"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        back = spark.createDataFrame(pdf, "id bigint, name string")
    assert any("ChunkedArray" in str(w.message) for w in caught)
    got = {r["id"]: r["name"] for r in back.collect()}
    expected = {r["id"]: r["name"] for r in frame.select("id", "name").collect()}
    assert expected[3] is None and got[3] == "nan"
    assert {k: v for k, v in got.items() if k != 3} == {k: v for k, v in expected.items() if k != 3}


# ------------------------------------------------------------------------------ beyond pandas' nanoseconds


def test_timestamps_beyond_nanoseconds_are_exact_in_arrow_and_refused_by_pandas(spark: SparkSession) -> None:
    """Spark keeps microseconds for years 1..9999; PySpark converts timestamps to pandas as nanoseconds
    (1677-09-21 .. 2262-04-11), so beyond that ``toPandas`` and pandas UDFs raise rather than wrap. The Arrow
    paths carry them exactly. Aegis' event times are recent (the tables' contracts, the simulator's clock)."""
    far = spark.createDataFrame(
        [(0, _ts(1, 1, 1, 0, 0, 0, 1)), (1, _ts(9999, 12, 31, 23, 59, 59, 999999))], "id bigint, t timestamp"
    )
    assert [r["t"] for r in far.toArrow().to_pylist()] == [
        _ts(1, 1, 1, 0, 0, 0, 1),
        _ts(9999, 12, 31, 23, 59, 59, 999999),
    ]
    identity = F.arrow_udf(lambda a: a, T.TimestampType())  # type: ignore[call-overload]
    assert_exact(far.select("id", identity("t").alias("t")), far)
    assert_exact(far.mapInArrow(lambda batches: batches, far.schema), far)
    with pytest.raises(Exception, match="out of bounds"):
        far.toPandas()
    with pytest.raises(Exception, match="out of bounds"):
        far.select(F.pandas_udf(lambda s: s, T.TimestampType())("t")).collect()  # type: ignore[call-overload]
