"""Plain (MLflow-free) scorer: validation + ensemble + explanation + policy.

Spark pandas UDFs load the model once per executor (``models.pyfunc.load_scorer``) and
call :meth:`AegisScorer.score` on every Arrow batch.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.ensemble import FraudEnsemble
from models.policy import DecisionPolicy
from models.validation import validate_scoring_frame

__all__ = ["OUTPUT_COLUMNS", "WORKER_COPY", "AegisScorer"]

#: File name of a scorer's plain pickle beside a downloaded model: Spark's Python workers load it
#: without importing MLflow (its import and dependency check cost ~4.6 s of CPU per new worker).
WORKER_COPY = "aegis-scorer.pkl"

#: Columns of :meth:`AegisScorer.score`, in order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "score",
    "decision",
    "expected_value",
    "shap",
    "top_reasons",
    "policy_version",
    "feature_version",
)


class AegisScorer:
    """Scores a frame of features and explains every score exactly.

    Output columns (see :data:`OUTPUT_COLUMNS`):

    * ``score`` (float64, 0..1) and ``decision`` ("allow" | "review" | "block");
    * ``expected_value`` (float64) and ``shap`` (list of float64 in ``feature_names``
      order, probability units) with ``expected_value + sum(shap) == score``;
    * ``top_reasons``: a JSON **string** (Spark/MLflow friendly) holding a list of
      ``{"feature", "value", "contribution"}`` objects for the ``top_k_reasons`` largest
      ``|contribution|``, largest first. A positive contribution pushes towards fraud;
    * ``policy_version`` and ``feature_version`` (str).
    """

    def __init__(
        self,
        ensemble: FraudEnsemble,
        policy: DecisionPolicy,
        feature_names: Sequence[str],
        feature_version: str,
        *,
        top_k_reasons: int = 3,
        allow_extra_columns: bool = False,
    ) -> None:
        names = list(feature_names)
        if names != list(ensemble.feature_names):
            raise ValueError("feature_names must equal the ensemble's feature_names (same order)")
        self.ensemble = ensemble
        self.policy = policy
        self.feature_names = names
        self.feature_version = str(feature_version)
        self.top_k_reasons = int(top_k_reasons)
        self.allow_extra_columns = allow_extra_columns
        self._json_names = [json.dumps(n) for n in names]

    def score(self, df: pd.DataFrame) -> pd.DataFrame:
        """Validate ``df`` and return the scored frame (same index as ``df``)."""
        x = validate_scoring_frame(df, self.feature_names, allow_extra=self.allow_extra_columns)
        scores, contributions, expected = self.ensemble.predict_and_explain(x)
        n = len(scores)
        return pd.DataFrame(
            {
                "score": scores,
                "decision": self.policy.decide(scores) if n else np.array([], dtype=object),
                "expected_value": np.full(n, expected, dtype=np.float64),
                "shap": pd.Series(contributions.tolist(), dtype=object, index=df.index) if n else [],
                "top_reasons": self._top_reasons(x, contributions),
                "policy_version": np.full(n, self.policy.version, dtype=object),
                "feature_version": np.full(n, self.feature_version, dtype=object),
            },
            index=df.index,
            columns=list(OUTPUT_COLUMNS),
        )

    def _top_reasons(self, x: np.ndarray, contributions: np.ndarray) -> np.ndarray:
        n, n_features = contributions.shape
        out = np.empty(n, dtype=object)
        if n == 0:
            return out
        k = min(self.top_k_reasons, n_features)
        if k <= 0:
            out[:] = "[]"
            return out
        magnitude = np.abs(contributions)
        top = (
            np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
            if k < n_features
            else np.tile(np.arange(n_features), (n, 1))
        )
        rows = np.arange(n)[:, None]
        order = np.argsort(-magnitude[rows, top], axis=1, kind="stable")
        top = top[rows, order]
        values = x[rows, top].tolist()
        contribs = contributions[rows, top].tolist()
        names = self._json_names
        for i, (idx, vals, cons) in enumerate(zip(top.tolist(), values, contribs, strict=True)):
            items = [
                f'{{"feature": {names[j]}, "value": {v!r}, "contribution": {c!r}}}'
                for j, v, c in zip(idx, vals, cons, strict=True)
            ]
            out[i] = "[" + ", ".join(items) + "]"
        return out

    def save(self, path: str | Path) -> None:
        """Pickle this scorer to ``path`` atomically (written beside, then renamed)."""
        target = Path(path)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        with partial.open("wb") as out:
            pickle.dump(self, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, target)

    @staticmethod
    def load(path: str | Path) -> AegisScorer:
        """A scorer saved by :meth:`save` (a file this project wrote, like MLflow's own pickle)."""
        with Path(path).open("rb") as source:
            scorer = pickle.load(source)
        if not isinstance(scorer, AegisScorer):
            raise TypeError(f"{path} does not hold an AegisScorer (got {type(scorer).__name__})")
        return scorer

    def describe(self) -> dict[str, Any]:
        """Versions and sizes, for logging."""
        return {
            "feature_version": self.feature_version,
            "policy": self.policy.to_dict(),
            "feature_names": list(self.feature_names),
            "ensemble": self.ensemble.describe(),
        }
