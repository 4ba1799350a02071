"""The scoring pandas UDF: one function the stream and the backfill both apply.

The model is loaded once per Python worker from a local model folder and cached by path,
so micro-batches reuse it; a new path (a new ``@champion``) loads the new version. A stream
plans its query once, so there the model's path and version (and the micro-batch id) reach the
UDF as task local properties that the driver sets before each micro-batch's job.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
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

from features.projection import Projection
from models.scorer import WORKER_COPY, AegisScorer

_CACHE: dict[str, Any] = {}
_PROFILE = bool(os.environ.get("AEGIS_SCORE_PROFILE"))

_UDF_OUTPUT = StructType(
    [
        StructField("score", DoubleType(), False),
        StructField("decision", StringType(), False),
        StructField("policy_version", StringType(), False),
        StructField("top_reasons_json", StringType(), True),
        StructField("shap_values", ArrayType(DoubleType()), True),
        StructField("shap_expected_value", DoubleType(), True),
        StructField("scored_at", TimestampType(), False),
        StructField("stream_batch_id", LongType(), True),
        StructField("model_version", StringType(), False),
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
        _CACHE.clear()  # keep one version per worker
        copy = Path(model_path) / WORKER_COPY
        if copy.is_file():
            scorer = AegisScorer.load(copy)
        else:
            from models.pyfunc import load_scorer

            scorer = load_scorer(model_path)
        _CACHE[model_path] = scorer
    return scorer


# The driver sets these per micro-batch (sc.setLocalProperty); every task of its jobs carries them.
BATCH_ID_PROPERTY = "aegis.stream_batch_id"
MODEL_PATH_PROPERTY = "aegis.model_path"
MODEL_VERSION_PROPERTY = "aegis.model_version"


def _task_model() -> tuple[str, str, int | None]:
    """The model path, model version and micro-batch id this task's job was started with."""
    from pyspark import TaskContext

    context = TaskContext.get()
    path = context.getLocalProperty(MODEL_PATH_PROPERTY) if context is not None else None
    version = context.getLocalProperty(MODEL_VERSION_PROPERTY) if context is not None else None
    if not path or not version:
        raise RuntimeError(
            f"scoring without a model: the job's local properties {MODEL_PATH_PROPERTY} and "
            f"{MODEL_VERSION_PROPERTY} are not set (the stream sets them before each micro-batch)"
        )
    batch = context.getLocalProperty(BATCH_ID_PROPERTY) if context is not None else None
    return path, version, int(batch) if batch else None


def _score_columns(model: tuple[str, str] | None, feature_names: list[str], batch_id: int | None):
    """The UDF body: ``model`` is (path, version), or None to take both and the batch id from the task."""

    def score(*columns: pa.Array) -> pa.Array:
        started = time.process_time()
        if model is None:
            model_path, model_version, batch = _task_model()
        else:
            (model_path, model_version), batch = model, batch_id
        scorer = _scorer(model_path)
        frame = pd.DataFrame(
            {name: column.to_numpy(zero_copy_only=False) for name, column in zip(feature_names, columns, strict=True)}
        )
        n = len(frame)
        out = scorer.score(frame)
        shap = np.asarray(out["shap"].tolist(), dtype=np.float64).reshape(n, -1) if n else np.empty((0, 0))
        width = shap.shape[1] if n else 0
        offsets = np.arange(0, shap.size + 1, max(width, 1), dtype=np.int32)[: n + 1]
        now = pd.Timestamp.now(tz="UTC").value // 1000
        arrays = [
            pa.array(out["score"].to_numpy(dtype=np.float64)),
            pa.array(out["decision"].to_numpy(), type=pa.string()),
            pa.array(out["policy_version"].to_numpy(), type=pa.string()),
            pa.array(out["top_reasons"].to_numpy(), type=pa.string()),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(shap.ravel())),
            pa.array(out["expected_value"].to_numpy(dtype=np.float64)),
            pa.array(np.full(n, now, dtype=np.int64), type=pa.timestamp("us", tz="UTC")),
            pa.nulls(n, pa.int64()) if batch is None else pa.array(np.full(n, batch, dtype=np.int64)),
            pa.array([model_version] * n, type=pa.string()),
        ]
        if _PROFILE:
            print(
                f"aegis-score profile: {n} rows, {time.process_time() - started:.3f}s CPU", file=sys.stderr, flush=True
            )
        return pa.StructArray.from_arrays(arrays, names=_UDF_OUTPUT.fieldNames())

    return score


GOLD_COLUMNS = ("transaction_id", "customer_id", "terminal_id", "event_time", "event_date", "amount")


def score_features(
    features: DataFrame,
    model_path: str | None,
    model_name: str,
    model_version: str | None,
    feature_names: list[str],
    source: str,
    run_id: str,
    batch_id: int | None = None,
    keep: tuple[str, ...] = (),
) -> DataFrame:
    """gold.scores rows for a silver.features DataFrame (optionally with ``kafka_timestamp``).

    With ``model_path`` None, each task takes the model's path and version and the micro-batch id
    from its job's local properties (:data:`MODEL_PATH_PROPERTY`, :data:`MODEL_VERSION_PROPERTY`,
    :data:`BATCH_ID_PROPERTY`): a stream plans this once and swaps the model between micro-batches.

    One scalar Arrow UDF over the feature columns, no join: only the features go to Python and
    only the score struct comes back; every other column stays in the JVM. ``keep`` columns of
    ``features`` (not gold's) stay in the output as ``keep_<name>`` (the stream keeps silver's
    columns, so silver and gold are written from the same scored rows).
    """
    if (model_path is None) != (model_version is None):
        raise ValueError("score_features: give both the model's path and version, or neither")
    model = (model_path, str(model_version)) if model_path is not None else None
    has_kafka_ts = "kafka_timestamp" in features.columns
    inputs = features
    # SHAP is the costly step: spread it over every core even when a small micro-batch sits in fewer
    # partitions (adaptive execution coalesces them to one).
    parallelism = features.sparkSession.sparkContext.defaultParallelism
    adaptive = features.sparkSession.conf.get("spark.sql.adaptive.enabled") == "true"
    if adaptive and features.rdd.getNumPartitions() < parallelism:
        inputs = inputs.repartition(parallelism)
    udf_input, output = _score_columns_for(
        model, model_name, tuple(feature_names), source, run_id, batch_id if model else None, keep, has_kafka_ts,
    )
    return output(udf_input(inputs).select("*", "_s.*"))


@functools.lru_cache(maxsize=16)
def _score_columns_for(
    model: tuple[str, str] | None,
    model_name: str,
    feature_names: tuple[str, ...],
    source: str,
    run_id: str,
    batch_id: int | None,
    keep: tuple[str, ...],
    has_kafka_ts: bool,
) -> tuple[Projection, Projection]:
    """The two projections of :func:`score_features`, built once per model and stream: every
    column is a JVM round trip and the UDF is pickled anew with each one."""
    kafka_ts = F.col("kafka_timestamp") if has_kafka_ts else F.lit(None).cast("timestamp")
    # The micro-batch id and the time come out of the UDF, not as literals in the plan: a literal that
    # changes every micro-batch makes Spark generate (and the JVM compile) new classes each time.
    udf = F.arrow_udf(_score_columns(model, list(feature_names), batch_id), _UDF_OUTPUT)  # type: ignore[call-overload]
    udf_input = Projection([
        *GOLD_COLUMNS,
        "feature_version",
        *keep,
        kafka_ts.alias("_kafka_ts"),
        udf(*[F.col(n) for n in feature_names]).alias("_s"),
    ])
    latency = (F.unix_micros("scored_at") - F.unix_micros("_kafka_ts")) / 1000.0
    output = Projection([
        *GOLD_COLUMNS,
        "score",
        "decision",
        F.lit(model_name).alias("model_name"),
        "model_version",
        "feature_version",
        "policy_version",
        F.from_json("top_reasons_json", _REASONS).alias("top_reasons"),
        "shap_values",
        "shap_expected_value",
        F.lit(source).alias("source"),
        F.lit(run_id).alias("run_id"),
        "stream_batch_id",
        "scored_at",
        latency.alias("latency_ms"),
        *[F.col(c).alias(f"keep_{c}") for c in keep],
    ])
    return udf_input, output


def reasons_from_json(text: str) -> list[dict[str, Any]]:
    """Parse the scorer's top-reasons JSON (for Python callers)."""
    return list(json.loads(text))
