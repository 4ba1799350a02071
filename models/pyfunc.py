"""MLflow pyfunc packaging of the Aegis scorer (MLflow 3 API: ``name=``, no artifact_path).

The ``python_model`` instance is pickled by MLflow with cloudpickle. Classes of the
``models`` package are pickled by reference, so by default the package source is shipped
with the model (``code_paths``) and put on ``sys.path`` when the model is loaded.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModel

from models.ensemble import FraudEnsemble
from models.policy import DecisionPolicy
from models.scorer import OUTPUT_COLUMNS, AegisScorer

__all__ = [
    "OUTPUT_COLUMNS",
    "AegisFraudModel",
    "AegisScorer",
    "default_pip_requirements",
    "infer_model_signature",
    "load_scorer",
    "log_model",
]

_REQUIREMENTS = ("mlflow", "lightgbm", "scikit-learn", "shap", "pandas", "numpy", "scipy", "cloudpickle")


class AegisFraudModel(PythonModel):
    """pyfunc wrapper; all logic lives in :class:`AegisScorer`."""

    def __init__(
        self,
        ensemble: FraudEnsemble,
        policy: DecisionPolicy,
        feature_names: Sequence[str],
        feature_version: str,
    ) -> None:
        self.scorer = AegisScorer(ensemble, policy, feature_names, feature_version)

    @classmethod
    def from_scorer(cls, scorer: AegisScorer) -> AegisFraudModel:
        """Wrap an existing scorer."""
        model = cls.__new__(cls)
        model.scorer = scorer
        return model

    def predict(
        self,
        context: Any,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Validate and score ``model_input``; see :class:`AegisScorer` for the columns."""
        return self.scorer.score(model_input).reset_index(drop=True)


def default_pip_requirements() -> list[str]:
    """Pinned requirements of the installed environment (fast; no inference subprocess)."""
    reqs = []
    for dist in _REQUIREMENTS:
        try:
            reqs.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(dist)
    return reqs


def infer_model_signature(scorer: AegisScorer, input_example: pd.DataFrame) -> ModelSignature:
    """Signature inferred from ``input_example`` and the scorer's output on it."""
    example = input_example[scorer.feature_names]
    return infer_signature(example, scorer.score(example).reset_index(drop=True))


def log_model(
    model: AegisFraudModel | AegisScorer,
    name: str,
    input_example: pd.DataFrame,
    *,
    registered_model_name: str | None = None,
    include_package_code: bool = True,
    code_paths: Sequence[str] | None = None,
    pip_requirements: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log the model with ``mlflow.pyfunc.log_model(name=...)`` and an inferred signature.

    Uses the active run (or MLflow 3's run-less logged model). ``metadata`` is enriched
    with feature/policy versions and the feature list.
    """
    python_model = model if isinstance(model, AegisFraudModel) else AegisFraudModel.from_scorer(model)
    scorer = python_model.scorer
    example = input_example[scorer.feature_names].head(5)
    signature = infer_model_signature(scorer, example)
    paths = list(code_paths or [])
    if include_package_code:
        paths.append(str(Path(__file__).resolve().parent))
    meta = {
        "feature_version": scorer.feature_version,
        "policy_version": scorer.policy.version,
        "feature_names": list(scorer.feature_names),
        "output_columns": list(OUTPUT_COLUMNS),
        **(metadata or {}),
    }
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=python_model,
        signature=signature,
        input_example=example,
        code_paths=paths or None,
        pip_requirements=list(pip_requirements) if pip_requirements is not None else default_pip_requirements(),
        registered_model_name=registered_model_name,
        metadata=meta,
        params=params,
        tags=tags,
        **kwargs,
    )


def load_scorer(model_uri: str) -> AegisScorer:
    """Load a logged model and return its plain :class:`AegisScorer` (e.g. once per executor)."""
    loaded = mlflow.pyfunc.load_model(model_uri)
    python_model = loaded.unwrap_python_model()
    if not isinstance(python_model, AegisFraudModel):
        raise TypeError(f"{model_uri} is not an AegisFraudModel (got {type(python_model).__name__})")
    return python_model.scorer
