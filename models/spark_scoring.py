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
        StructField("transaction_id", StringType(), False),
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


def _score_partitions(model_path: str, feature_names: list[str]):
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = _scorer(model_path)
        for pdf in batches:
            if pdf.empty:
                continue
            out = scorer.score(pdf[feature_names])
            yield pd.DataFrame(
                {
                    "transaction_id": pdf["transaction_id"].to_numpy(),
                    "score": out["score"].to_numpy(dtype=np.float64),
                    "decision": out["decision"].to_numpy(),
                    "policy_version": out["policy_version"].to_numpy(),
                    "top_reasons_json": out["top_reasons"].to_numpy(),
                    "shap_values": out["shap"].to_numpy(),
                    "shap_expected_value": out["expected_value"].to_numpy(dtype=np.float64),
                    "scored_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
                }
            )

    return score


def score_features(
    features: DataFrame,
    model_path: str,
    model_name: str,
    model_version: str,
    feature_names: list[str],
    source: str,
    run_id: str,
    batch_id: int | None = None,
) -> DataFrame:
    """gold.scores rows for a silver.features DataFrame (optionally with ``kafka_timestamp``)."""
    inputs = features.select("transaction_id", *feature_names)
    # SHAP is the costly step: spread it over every core even when a small micro-batch sits in fewer
    # partitions (adaptive execution coalesces them to one).
    parallelism = features.sparkSession.sparkContext.defaultParallelism
    if features.rdd.getNumPartitions() < parallelism:
        inputs = inputs.repartition(parallelism)
    scored = inputs.mapInPandas(_score_partitions(model_path, feature_names), _UDF_OUTPUT)
    kafka_ts = (
        F.col("kafka_timestamp") if "kafka_timestamp" in features.columns else F.lit(None).cast("timestamp")
    )
    keys = features.select(
        "transaction_id", "customer_id", "terminal_id", "event_time", "event_date", "amount",
        "feature_version", kafka_ts.alias("_kafka_ts"),
    )
    latency = (F.unix_micros("scored_at") - F.unix_micros("_kafka_ts")) / 1000.0
    return keys.join(scored, "transaction_id").select(
        "transaction_id", "customer_id", "terminal_id", "event_time", "event_date", "amount",
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
    )


def reasons_from_json(text: str) -> list[dict[str, Any]]:
    """Parse the scorer's top-reasons JSON (for Python callers)."""
    return list(json.loads(text))
