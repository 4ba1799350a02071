"""pyfunc save/load roundtrip through a real sqlite-backed MLflow tracking store."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.pyfunc import AegisFraudModel, load_scorer, log_model
from models.registry import CHAMPION, promote_if_better, register
from models.scorer import OUTPUT_COLUMNS, AegisScorer
from models.validation import ScoringInputError


def _frame(feature_names: list[str], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(scale=2.0, size=(n, len(feature_names))), columns=feature_names)


def test_scorer_output_contract(scorer: AegisScorer, feature_names: list[str]) -> None:
    frame = _frame(feature_names, 20, seed=0)
    frame.index = range(100, 120)
    out = scorer.score(frame)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert out.index.tolist() == frame.index.tolist()
    assert out["score"].dtype == np.float64 and out["expected_value"].dtype == np.float64
    assert set(out["decision"]) <= {"allow", "review", "block"}
    assert (out["policy_version"] == scorer.policy.version).all()
    assert (out["feature_version"] == "fv-test-1").all()
    row = out.iloc[0]
    reasons = json.loads(row["top_reasons"])
    assert len(reasons) == 3 and set(reasons[0]) == {"feature", "value", "contribution"}
    magnitudes = [abs(r["contribution"]) for r in reasons]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert magnitudes[0] == pytest.approx(max(abs(v) for v in row["shap"]))
    first = reasons[0]
    assert first["value"] == frame.iloc[0][first["feature"]]
    assert first["contribution"] == row["shap"][feature_names.index(first["feature"])]
    assert scorer.score(frame.iloc[:0]).shape == (0, len(OUTPUT_COLUMNS))
    with pytest.raises(ScoringInputError, match="missing columns"):
        scorer.score(frame.drop(columns=[feature_names[3]]))


def test_pyfunc_roundtrip_is_exact(
    mlflow_env: tuple[MlflowClient, str], scorer: AegisScorer, feature_names: list[str]
) -> None:
    client, experiment_id = mlflow_env
    frame = _frame(feature_names, 300, seed=1)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = log_model(
            AegisFraudModel(scorer.ensemble, scorer.policy, feature_names, scorer.feature_version),
            name="aegis_model",
            input_example=frame.head(3),
        )
    assert info.signature is not None
    input_names = [spec.name for spec in info.signature.inputs.inputs]
    assert input_names == feature_names
    output_names = [spec.name for spec in info.signature.outputs.inputs]
    assert output_names == list(OUTPUT_COLUMNS)

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    out = loaded.predict(frame)
    shap_matrix = np.array(out["shap"].tolist(), dtype=np.float64)
    np.testing.assert_allclose(
        out["expected_value"].to_numpy() + shap_matrix.sum(axis=1), out["score"].to_numpy(), rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(out["score"].to_numpy(), scorer.ensemble.predict(frame), rtol=0, atol=1e-12)

    # the plain scorer behind the pyfunc gives identical results
    plain = load_scorer(info.model_uri)
    pd.testing.assert_frame_equal(plain.score(frame).reset_index(drop=True), out)

    # registry: register the logged model, make it champion and load it by alias
    version = register(client, "aegis-fraud", info.model_uri, run_id=run.info.run_id)
    assert promote_if_better(client, "aegis-fraud", version.version, 0.5, None) == "champion"
    by_alias = mlflow.pyfunc.load_model(f"models:/aegis-fraud@{CHAMPION}")
    np.testing.assert_allclose(by_alias.predict(frame.head(10))["score"], out["score"].head(10), atol=0)
