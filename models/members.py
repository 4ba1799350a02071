"""Ensemble members: one protocol (fit, raw output, TreeSHAP of the raw output, expected value), three trees.

A member's *raw output* is what its trees add up to, so path-dependent TreeSHAP is exact and additive for
it: ``raw(x) == expected_value + shap(x).sum(axis=1)``. The combiner (models.ensemble) enters each member
through an affine *stacking column* ``column(raw(x))`` with slope ``slope``; members whose raw output has no
natural scale (the isolation forest's path length) standardise it on their fitting rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import lightgbm as lgb
import numpy as np
from sklearn.ensemble import IsolationForest, RandomForestClassifier


@dataclass(frozen=True)
class GBMParams:
    """Size and regularisation of the LightGBM member (kept small for fast TreeSHAP).

    ``n_estimators`` is the cap; early stopping on the validation rows chooses the number
    of rounds actually kept (and refitted on training + validation rows).
    """

    num_leaves: int = 15
    max_depth: int = 4
    learning_rate: float = 0.05
    n_estimators: int = 200
    early_stopping_rounds: int = 40
    min_child_samples: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0


@dataclass(frozen=True)
class IsoParams:
    """Size of the IsolationForest member (depth <= ceil(log2(max_samples)))."""

    n_estimators: int = 25
    max_samples: int = 32


@dataclass(frozen=True)
class ForestParams:
    """Size of the RandomForest member (TreeSHAP cost grows with leaves x depth^2)."""

    n_estimators: int = 20
    max_depth: int = 6
    min_samples_leaf: int = 20
    max_features: str | float = "sqrt"


@runtime_checkable
class Member(Protocol):
    """What the combiner needs of a member. ``x`` is a C-contiguous float64 matrix in feature order."""

    #: Stable name: the stacking weight ``w_<name>`` and the member_outputs column come from it.
    name: ClassVar[str]
    #: E[raw] under the trees' own path-dependent distribution (TreeSHAP's base value).
    expected_value: float
    @property
    def slope(self) -> float:
        """d column / d raw: the factor from the raw output's SHAP values to the stacking column's."""

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> None:
        """Fit on ``x, y``; supervised members may use the validation rows (early stopping)."""

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The raw tree output per row."""

    def column(self, raw: np.ndarray) -> np.ndarray:
        """The stacking column of raw outputs (affine, with slope ``slope``)."""

    def shap(self, x: np.ndarray) -> np.ndarray:
        """Exact TreeSHAP of ``raw``: ``raw(x) == expected_value + shap(x).sum(axis=1)``."""

    @property
    def n_trees(self) -> int:
        """Trees kept (0 before fitting)."""


def _shap_explainer(model: Any) -> Any:
    import shap  # local import: shap is heavy and only needed for explanations

    return shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")


class GBMMember:
    """LightGBM binary classifier; raw output = the log-odds margin ``m(x)`` (native ``pred_contrib`` SHAP).

    With validation rows, early stopping chooses the number of rounds, kept in ``rounds``; a later fit
    without validation rows (the refit on training + validation rows) reuses it.
    """

    name: ClassVar[str] = "gbm"

    def __init__(self, params: GBMParams, *, n_threads: int = 1, train_threads: int = 0,
                 random_state: int = 0) -> None:
        self.params = params
        self.n_threads = n_threads
        self.train_threads = train_threads
        self.random_state = random_state
        self.booster: lgb.Booster | None = None
        self.rounds = 0
        self.expected_value = 0.0
        self.slope = 1.0

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> None:
        p = self.params
        params: dict[str, Any] = {
            "objective": "binary",
            "metric": "binary_logloss",
            "num_leaves": p.num_leaves,
            "max_depth": p.max_depth,
            "learning_rate": p.learning_rate,
            "min_child_samples": p.min_child_samples,
            "feature_fraction": p.feature_fraction,
            "bagging_fraction": p.bagging_fraction,
            "bagging_freq": p.bagging_freq,
            "lambda_l2": p.lambda_l2,
            "num_threads": self.train_threads,
            "seed": self.random_state,
            "deterministic": True,
            "verbosity": -1,
        }
        dtrain = lgb.Dataset(x, label=y)
        if x_valid is None or y_valid is None:
            booster = lgb.train(params, dtrain, num_boost_round=max(1, self.rounds or p.n_estimators))
            best = booster.current_iteration()
        else:
            dvalid = lgb.Dataset(x_valid, label=y_valid, reference=dtrain)
            callbacks: list[Callable[..., Any]] = []
            if p.early_stopping_rounds > 0:
                callbacks.append(lgb.early_stopping(p.early_stopping_rounds, verbose=False))
            booster = lgb.train(params, dtrain, num_boost_round=p.n_estimators, valid_sets=[dvalid],
                                callbacks=callbacks)
            best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        # Keep only the trees that are used: smaller model, faster SHAP.
        self.booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        self.rounds = int(best)
        contrib = self.booster.predict(x[:1], pred_contrib=True, num_threads=self.n_threads)
        self.expected_value = float(np.asarray(contrib)[0, -1])

    def raw(self, x: np.ndarray) -> np.ndarray:
        assert self.booster is not None
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.booster.predict(x, raw_score=True, num_threads=self.n_threads), dtype=np.float64)

    def column(self, raw: np.ndarray) -> np.ndarray:
        return raw

    def shap(self, x: np.ndarray) -> np.ndarray:
        assert self.booster is not None
        contrib = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=self.n_threads))
        return np.asarray(contrib[:, :-1], dtype=np.float64)

    @property
    def n_trees(self) -> int:
        return 0 if self.booster is None else int(self.booster.num_trees())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        booster = state.pop("booster")
        state["booster_model_str"] = None if booster is None else booster.model_to_string()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        model_str = state.pop("booster_model_str", None)
        self.__dict__.update(state)
        self.booster = None if model_str is None else lgb.Booster(model_str=model_str)


class ForestMember:
    """sklearn RandomForestClassifier; raw output = mean over its trees of the leaf's fraud share ``f(x)``.

    It enters through its probability, not its logit, so that the combined logit stays affine in tree
    outputs. Trees compare float32 inputs: raw output and SHAP both see float32-rounded values.
    """

    name: ClassVar[str] = "forest"

    def __init__(self, params: ForestParams, *, train_threads: int = 0, random_state: int = 0) -> None:
        self.params = params
        self.train_threads = train_threads
        self.random_state = random_state
        self.forest: RandomForestClassifier | None = None
        self.expected_value = 0.0
        self.slope = 1.0
        self._explainer: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> None:
        p = self.params
        forest = RandomForestClassifier(
            n_estimators=p.n_estimators,
            max_depth=p.max_depth,
            min_samples_leaf=p.min_samples_leaf,
            max_features=p.max_features,
            random_state=self.random_state,
            n_jobs=self.train_threads if self.train_threads > 0 else -1,
        )
        forest.fit(x.astype(np.float32), y)
        forest.set_params(n_jobs=1)  # scoring runs on one core per Spark task / API worker
        self.forest = forest
        self._explainer = None
        self.shap(x[:1])
        self.expected_value = float(np.ravel(self._explainer.expected_value)[-1])

    def raw(self, x: np.ndarray) -> np.ndarray:
        assert self.forest is not None
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.forest.predict_proba(np.ascontiguousarray(x, dtype=np.float32))[:, 1],
                          dtype=np.float64)

    def column(self, raw: np.ndarray) -> np.ndarray:
        return raw

    def shap(self, x: np.ndarray) -> np.ndarray:
        """TreeSHAP of the forest's fraud probability (class 1)."""
        if self._explainer is None:
            self._explainer = _shap_explainer(self.forest)
        x32 = np.asarray(x, dtype=np.float32).astype(np.float64)
        phi = np.asarray(self._explainer.shap_values(x32, check_additivity=False), dtype=np.float64)
        if phi.ndim == 3:  # (rows, features, classes)
            phi = phi[:, :, 1]
        return phi.reshape(x32.shape[0], -1)

    @property
    def n_trees(self) -> int:
        return 0 if self.forest is None else len(self.forest.estimators_)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_explainer": None}  # rebuilt lazily


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): expected path length of an unsuccessful BST search (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def node_depths(children_left: np.ndarray, children_right: np.ndarray) -> np.ndarray:
    """Depth of every node (root = 0)."""
    depth = np.zeros(children_left.shape[0], dtype=np.float64)
    stack = [0]
    while stack:
        node = stack.pop()
        for child in (children_left[node], children_right[node]):
            if child != -1:
                depth[child] = depth[node] + 1.0
                stack.append(int(child))
    return depth


class IsolationMember:
    """sklearn IsolationForest (unsupervised); raw output = the mean path length ``h(x)`` over its trees.

    The stacking column is the anomaly z-score ``a(x) = -(h(x) - mean_h) / std_h`` (shorter path = more
    anomalous), with ``mean_h`` / ``std_h`` measured on the fitting rows, so ``slope = -1 / std_h``.
    """

    name: ClassVar[str] = "anomaly"

    def __init__(self, params: IsoParams, *, random_state: int = 0) -> None:
        self.params = params
        self.random_state = random_state
        self.iso: IsolationForest | None = None
        self.leaf_values: list[np.ndarray] = []
        self.expected_value = 0.0
        self.path_length_mean, self.path_length_std = 0.0, 1.0
        self._explainer: Any = None

    @property
    def slope(self) -> float:
        return -1.0 / self.path_length_std

    def column(self, raw: np.ndarray) -> np.ndarray:
        return -(raw - self.path_length_mean) / self.path_length_std

    def fit(self, x: np.ndarray, y: np.ndarray | None = None, x_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> None:
        p = self.params
        iso = IsolationForest(n_estimators=p.n_estimators, max_samples=min(p.max_samples, len(x)),
                              random_state=self.random_state, n_jobs=1)
        iso.fit(x.astype(np.float32))
        self.iso = iso
        self.leaf_values = []
        for est in iso.estimators_:
            tree = est.tree_
            depth = node_depths(tree.children_left, tree.children_right)
            self.leaf_values.append(depth + average_path_length(tree.n_node_samples))
        self._explainer = None
        self.shap(x[:1])
        self.expected_value = float(np.ravel(self._explainer.expected_value)[0])
        h = self.raw(x)
        self.path_length_mean, self.path_length_std = float(h.mean()), float(max(h.std(), 1e-12))

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Mean isolation path length h(x) (sklearn's definition, trees average)."""
        assert self.iso is not None
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        total = np.zeros(x32.shape[0], dtype=np.float64)
        n_features = x32.shape[1]
        for est, feats, values in zip(self.iso.estimators_, self.iso.estimators_features_, self.leaf_values,
                                      strict=True):
            sub = x32 if len(feats) == n_features and np.array_equal(feats, np.arange(n_features)) else x32[:, feats]
            total += values[est.apply(np.ascontiguousarray(sub), check_input=False)]
        return total / len(self.iso.estimators_)

    def shap(self, x: np.ndarray) -> np.ndarray:
        if self._explainer is None:
            self._explainer = _shap_explainer(self.iso)
        # sklearn trees compare float32 inputs; feed shap exactly the same values.
        x32 = np.asarray(x, dtype=np.float32).astype(np.float64)
        phi = np.asarray(self._explainer.shap_values(x32, check_additivity=False), dtype=np.float64)
        return phi.reshape(x32.shape[0], -1)

    @property
    def n_trees(self) -> int:
        return 0 if self.iso is None else len(self.iso.estimators_)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_explainer": None}  # rebuilt lazily
