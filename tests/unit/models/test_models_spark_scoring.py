"""The scoring UDF's body, run without Spark: the model given, or taken from the task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.scorer import WORKER_COPY, AegisScorer
from models.spark_scoring import MODEL_PATH_PROPERTY, MODEL_VERSION_PROPERTY, _score_columns, _task_model


def test_a_task_without_the_model_properties_names_both() -> None:
    with pytest.raises(RuntimeError) as error:
        _task_model()
    assert MODEL_PATH_PROPERTY in str(error.value)
    assert MODEL_VERSION_PROPERTY in str(error.value)


def test_a_given_model_scores_each_row_and_records_its_version_and_batch(
    scorer: AegisScorer, transactions: pd.DataFrame, tmp_path: Path
) -> None:
    scorer.save(tmp_path / WORKER_COPY)
    frame = transactions[scorer.feature_names].head(50)
    score = _score_columns((str(tmp_path), "7"), list(scorer.feature_names), 12)
    out = score(*[pa.array(frame[name].to_numpy(dtype=np.float64)) for name in scorer.feature_names])
    rows = out.to_pandas()
    expected = scorer.score(frame)
    assert np.allclose([r["score"] for r in rows], expected["score"].to_numpy(), rtol=0, atol=1e-12)
    assert {r["model_version"] for r in rows} == {"7"}
    assert {r["stream_batch_id"] for r in rows} == {12}
    assert all(len(r["shap_values"]) == len(scorer.feature_names) for r in rows)


def test_without_a_model_the_udf_takes_it_from_the_task_and_says_so_outside_one() -> None:
    score = _score_columns(None, ["amount"], None)
    with pytest.raises(RuntimeError, match=MODEL_PATH_PROPERTY):
        score(pa.array([1.0]))
