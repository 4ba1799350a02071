"""Shared fixtures for the models tests (synthetic data, trained model, MLflow in tmp)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.catalog import feature_names
from models.scorer import AegisScorer
from models.synthetic import make_transactions
from models.training import TimeSplit, TrainResult, time_split, train_ensemble

# The real feature set's column names (features/catalog.py is the one declaration).
FEATURES: list[str] = feature_names()
assert len(FEATURES) == 37 and len(set(FEATURES)) == 37


@pytest.fixture(scope="session")
def feature_names() -> list[str]:
    return list(FEATURES)


@pytest.fixture(scope="session")
def transactions(feature_names: list[str]) -> pd.DataFrame:
    # 28 days: train 7d | delay 7d | valid 7d | delay 7d  ... test needs 7 more days
    return make_transactions(feature_names, 24_000, n_days=35, n_customers=1_500, fraud_rate=0.02, signal=1.0, seed=7)


@pytest.fixture(scope="session")
def split(transactions: pd.DataFrame) -> TimeSplit:
    return time_split(transactions, "2024-01-01", "2024-01-08", delay_days=7, valid_days=7, test_days=7)


@pytest.fixture(scope="session")
def trained(split: TimeSplit, feature_names: list[str]) -> TrainResult:
    return train_ensemble(
        split.train, split.valid, split.test, feature_names, review_cards_per_day=20, card_k=20, delay_days=7
    )


@pytest.fixture(scope="session")
def scorer(trained: TrainResult, feature_names: list[str]) -> AegisScorer:
    return AegisScorer(trained.ensemble, trained.policy, feature_names, feature_version="fv-test-1")


@pytest.fixture
def mlflow_env(tmp_path: Path) -> Iterator[tuple[MlflowClient, str]]:
    """Real sqlite-backed tracking + registry in ``tmp_path``; returns (client, experiment_id)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous_tracking = mlflow.get_tracking_uri()
    previous_registry = mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment_id = client.create_experiment("aegis-test", artifact_location=(tmp_path / "artifacts").as_uri())
        yield client, experiment_id
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)
