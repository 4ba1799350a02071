"""The scoring pandas UDF: one function the stream and the backfill both apply.

The model is loaded once per Python worker from a local model folder and cached by path,
so micro-batches reuse it; a new path (a new ``@champion``) loads the new version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

_CACHE: dict[str, Any] = {}

_UDF_OUTPUT = StructType(
    [
        StructField("score", DoubleType(), False),
        StructField("decision", StringType(), False),
        StructField("policy_version", StringType(), False),
        StructField("top_reasons_json", StringType(), True),
        StructField("shap_values", ArrayType(DoubleType()), True),
        StructField("shap_expected_value", DoubleType(), True),
        StructField("scored_at", TimestampType(), False),
    ]
)
_REASONS = ArrayType(
    StructType(
        [
            StructField("feature", StringType(), False),
            StructField("value", DoubleType(), True),
            StructField("contribution", DoubleType(), False),
        ]
    )
)


def _scorer(model_path: str) -> Any:
    scorer = _CACHE.get(model_path)
    if scorer is None:
        from models.pyfunc import load_scorer

        _CACHE.clear()  # keep one version per worker
        scorer = load_scorer(model_path)
        _CACHE[model_path] = scorer
    return scorer


def _score_batches(model_path: str, feature_names: list[str]):
    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = _scorer(model_path)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            frame = pd.DataFrame({name: batch.column(name).to_numpy(zero_copy_only=False)
                                  for name in feature_names})
            out = scorer.score(frame)
            shap = np.asarray(out["shap"].tolist(), dtype=np.float64).reshape(len(frame), -1)
            offsets = np.arange(0, shap.size + 1, shap.shape[1], dtype=np.int32)
            now = pd.Timestamp.now(tz="UTC").value // 1000
            arrays = [
                pa.array(out["score"].to_numpy(dtype=np.float64)),
                pa.array(out["decision"].to_numpy(), type=pa.string()),
                pa.array(out["policy_version"].to_numpy(), type=pa.string()),
                pa.array(out["top_reasons"].to_numpy(), type=pa.string()),
                pa.ListArray.from_arrays(pa.array(offsets), pa.array(shap.ravel())),
                pa.array(out["expected_value"].to_numpy(dtype=np.float64)),
                pa.array(np.full(len(frame), now, dtype=np.int64), type=pa.timestamp("us", tz="UTC")),
            ]
            yield pa.RecordBatch.from_arrays([*batch.columns, *arrays],
                                             names=[*batch.schema.names, *_UDF_OUTPUT.fieldNames()])

    return score


GOLD_COLUMNS = ("transaction_id", "customer_id", "terminal_id", "event_time", "event_date", "amount")


def score_features(
    features: DataFrame,
    model_path: str,
    model_name: str,
    model_version: str,
    feature_names: list[str],
    source: str,
    run_id: str,
    batch_id: int | None = None,
    keep: tuple[str, ...] = (),
) -> DataFrame:
    """gold.scores rows for a silver.features DataFrame (optionally with ``kafka_timestamp``).

    One Arrow map, no join: each row's keys pass through the scoring UDF untouched. ``keep``
    columns of ``features`` (not gold's) stay in the output as ``keep_<name>`` (the stream keeps
    silver's columns, so silver and gold are written from the same scored rows).
    """
    kafka_ts = (
        F.col("kafka_timestamp") if "kafka_timestamp" in features.columns else F.lit(None).cast("timestamp")
    )
    passed = [*GOLD_COLUMNS, "feature_version", *keep]
    inputs = features.select(*passed, *[F.col(n) for n in feature_names if n not in passed],
                             kafka_ts.alias("_kafka_ts"))
    # SHAP is the costly step: spread it over every core even when a small micro-batch sits in fewer
    # partitions (adaptive execution coalesces them to one).
    parallelism = features.sparkSession.sparkContext.defaultParallelism
    if features.rdd.getNumPartitions() < parallelism:
        inputs = inputs.repartition(parallelism)
    schema = StructType([*inputs.schema.fields, *_UDF_OUTPUT.fields])
    scored = inputs.mapInArrow(_score_batches(model_path, feature_names), schema)
    latency = (F.unix_micros("scored_at") - F.unix_micros("_kafka_ts")) / 1000.0
    return scored.select(
        *GOLD_COLUMNS,
        "score", "decision",
        F.lit(model_name).alias("model_name"),
        F.lit(str(model_version)).alias("model_version"),
        "feature_version", "policy_version",
        F.from_json("top_reasons_json", _REASONS).alias("top_reasons"),
        "shap_values", "shap_expected_value",
        F.lit(source).alias("source"),
        F.lit(run_id).alias("run_id"),
        F.lit(batch_id).cast(LongType()).alias("stream_batch_id"),
        "scored_at",
        latency.alias("latency_ms"),
        *[F.col(c).alias(f"keep_{c}") for c in keep],
    )


def reasons_from_json(text: str) -> list[dict[str, Any]]:
    """Parse the scorer's top-reasons JSON (for Python callers)."""
    return list(json.loads(text))
