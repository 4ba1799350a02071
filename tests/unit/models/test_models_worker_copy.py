"""The scorer's worker copy: the plain pickle Spark's Python workers load instead of MLflow."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.scorer import WORKER_COPY, AegisScorer

REPO = Path(__file__).resolve().parents[3]


def test_worker_copy_scores_exactly_like_the_original(scorer: AegisScorer, transactions: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    scorer.save(tmp_path / WORKER_COPY)
    copy = AegisScorer.load(tmp_path / WORKER_COPY)
    frame = transactions[scorer.feature_names].head(200)
    ours, theirs = scorer.score(frame), copy.score(frame)
    assert np.array_equal(ours["score"].to_numpy(), theirs["score"].to_numpy())
    assert np.array_equal(np.stack(ours["shap"].to_numpy()), np.stack(theirs["shap"].to_numpy()))
    assert list(ours["decision"]) == list(theirs["decision"])
    assert copy.feature_version == scorer.feature_version
    assert [p.name for p in tmp_path.iterdir()] == [WORKER_COPY]  # the partial file was renamed away


def test_loading_something_else_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / WORKER_COPY
    path.write_bytes(pickle.dumps({"not": "a scorer"}))
    with pytest.raises(TypeError, match=WORKER_COPY):
        AegisScorer.load(path)


def test_a_worker_copy_loads_without_importing_mlflow(scorer: AegisScorer, tmp_path: Path) -> None:
    scorer.save(tmp_path / WORKER_COPY)
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from models.scorer import AegisScorer; "
            f"AegisScorer.load({str(tmp_path / WORKER_COPY)!r}); print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
