"""Resolve the served model from the registry (the edge) and score with the shared UDF."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession

from conf.settings import Settings
from features.catalog import FeatureParams, feature_names
from models.pyfunc import load_scorer
from models.registry import get_alias_version
from models.scorer import WORKER_COPY
from models.spark_scoring import MODEL_PATH_PROPERTY, MODEL_VERSION_PROPERTY, score_features

log = logging.getLogger("aegis.scoring")


class NoModelError(RuntimeError):
    """No model version is registered under the requested alias or number."""


@dataclass(frozen=True)
class ResolvedModel:
    """A registered model version downloaded to a local folder."""

    name: str
    version: str
    path: str


def mlflow_client(settings: Settings) -> MlflowClient:
    """An MLflow client on the configured tracking and registry stores."""
    Path(settings.path(settings.mlflow.artifact_root)).mkdir(parents=True, exist_ok=True)
    # Model downloads from a local store take milliseconds: no tqdm bar on the console.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(settings.mlflow_registry_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=settings.mlflow_registry_uri)


def resolve_model(settings: Settings, client: MlflowClient, ref: str | None = None) -> ResolvedModel:
    """Resolve an alias (default: the serving alias) or a version number and download it locally."""
    name = settings.mlflow.model_name
    ref = ref or settings.mlflow.serving_alias
    if ref.isdigit():
        version = client.get_model_version(name, ref)
    else:
        found = get_alias_version(client, name, ref)
        if found is None:
            raise NoModelError(f"no version of model {name!r} has alias @{ref}; run `aegis train --promote`")
        version = found
    target = settings.run_dir / "models" / name / str(version.version)
    if not (target / "MLmodel").exists():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version.version}", dst_path=str(target))
    if not (target / WORKER_COPY).is_file():
        load_scorer(str(target)).save(target / WORKER_COPY)
    return ResolvedModel(name, str(version.version), str(target))


class ModelScorer:
    """Callable features -> scores that re-resolves the alias at most every refresh interval."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        params: FeatureParams,
        source: str,
        ref: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.names = feature_names(params)
        self.source = source
        self.ref = ref
        self.run_id = run_id or settings.stream.query_name
        self.client = mlflow_client(settings)
        self.model: ResolvedModel | None = None
        self._checked = 0.0

    def current(self) -> ResolvedModel:
        """The model to use now (hot swap: a moved alias is picked up between micro-batches)."""
        now = time.monotonic()
        if self.model is None or now - self._checked >= self.settings.stream.model_refresh_seconds:
            resolved = resolve_model(self.settings, self.client, self.ref)
            if self.model is None or resolved.version != self.model.version:
                log.info("scoring with %s version %s", resolved.name, resolved.version)
            self.model = resolved
            self._checked = now
        return self.model

    def __call__(self, features: DataFrame, batch_id: int | None = None, keep: tuple[str, ...] = ()) -> DataFrame:
        """Score with the model current now (a batch job: backfill, analysts)."""
        model = self.current()
        return score_features(
            features, model.path, model.name, model.version, self.names, self.source, self.run_id, batch_id, keep
        )

    def in_plan(self, features: DataFrame, keep: tuple[str, ...] = ()) -> DataFrame:
        """Score in a plan built once (a stream): the model comes from :meth:`task_properties`."""
        return score_features(
            features, None, self.settings.mlflow.model_name, None, self.names, self.source, self.run_id, keep=keep
        )

    def task_properties(self) -> dict[str, str]:
        """The local properties that carry the current model to the next micro-batch's tasks."""
        model = self.current()
        return {MODEL_PATH_PROPERTY: model.path, MODEL_VERSION_PROPERTY: model.version}
