"""Table contracts in Arrow: the types deltalake reads for the contracts' Spark types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.tables import TableContract

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql.types import DataType


def arrow_type(dtype: DataType) -> pa.DataType:
    """The Arrow type deltalake reads for a Spark type (for empty stand-ins of missing tables)."""
    import pyarrow as pa
    from pyspark.sql import types as T

    simple: dict[type, Any] = {
        T.StringType: pa.string(), T.LongType: pa.int64(), T.IntegerType: pa.int32(),
        T.DoubleType: pa.float64(), T.BooleanType: pa.bool_(), T.DateType: pa.date32(),
        T.TimestampType: pa.timestamp("us", tz="UTC"), T.BinaryType: pa.binary(),
    }
    if type(dtype) in simple:
        return simple[type(dtype)]
    if isinstance(dtype, T.ArrayType):
        return pa.list_(arrow_type(dtype.elementType))
    if isinstance(dtype, T.StructType):
        return pa.struct([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in dtype.fields])
    raise TypeError(f"no Arrow mapping for {dtype.simpleString()}")


def arrow_schema(contract: TableContract) -> pa.Schema:
    """The contract's schema in Arrow."""
    import pyarrow as pa

    return pa.schema([pa.field(c.name, arrow_type(c.dtype), c.nullable) for c in contract.columns])
