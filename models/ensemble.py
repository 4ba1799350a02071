"""Fraud-scoring ensemble with explanations that add up exactly to the score.

Members
-------
* a small LightGBM binary classifier (supervised), raw output = log-odds margin ``m(x)``;
* a small sklearn ``IsolationForest`` (unsupervised), raw output = mean path length
  ``h(x)`` over its trees (shorter path = more anomalous). It is turned into an anomaly
  z-score ``a(x) = -(h(x) - mu_h) / sd_h`` with ``mu_h``/``sd_h`` measured on training data.

Combination
-----------
The members are stacked in logit space with weights learned on validation data by a
(nearly unpenalised) logistic regression on ``[m, a]``::

    z(x)     = b + w_gbm * m(x) + w_anom * a(x)
    score(x) = sigmoid(z(x))                       in (0, 1)

Exact explanation (the SHAP-combination rule)
---------------------------------------------
TreeSHAP is exact and additive for each member's *raw* output:
``m(x) = E_gbm + sum_j phi_gbm_j(x)`` and ``h(x) = E_iso + sum_j phi_iso_j(x)``
(LightGBM native ``pred_contrib`` and shap's ``TreeExplainer`` for the IsolationForest,
both ``tree_path_dependent``). Because ``z`` is affine in the raw outputs, the logit
contributions ``psi_j = w_gbm * phi_gbm_j - (w_anom / sd_h) * phi_iso_j`` satisfy
``z(x) = E[z] + sum_j psi_j(x)`` exactly, where
``E[z] = b + w_gbm * E_gbm - w_anom * (E_iso - mu_h) / sd_h``.

They are mapped to probability units with the *secant slope* of the sigmoid between the
base logit and the row's logit::

    s(x)    = (sigmoid(z(x)) - sigmoid(E[z])) / (z(x) - E[z])    (sigmoid'(midpoint) if |z - E[z]| < 1e-6)
    c_j(x)  = s(x) * psi_j(x)
    expected_value = sigmoid(E[z])       (a constant: the score of the "average" logit,
                                          not the mean score)

Hence ``expected_value + sum_j c_j(x) == score(x)`` by construction (up to float
rounding, far below 1e-6). The rule is the same as distributing
``sigmoid(z) - sigmoid(E[z])`` proportionally to the logit contributions; since ``s > 0``
every contribution keeps its sign and the ranking of features within a row, so it is
monotone.

Sizing (see ``benchmarks/bench_model.py``)
------------------------------------------
Path-dependent TreeSHAP costs O(trees * leaves * depth^2) per row. Defaults
(LightGBM <= 150 trees of <= 15 leaves / depth 4, IsolationForest 50 trees on 32-row
sub-samples, i.e. depth <= 5) explain several thousand rows/s on ONE core while the GBM
keeps almost all of the accuracy of much larger models on tabular fraud features; the
anomaly member mainly adds robustness to unseen fraud patterns, so it is kept tiny.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression

__all__ = [
    "CombinerWeights",
    "FraudEnsemble",
    "GBMParams",
    "IsoParams",
    "secant_slope",
]

# Below this |z - E[z]| the secant slope is replaced by the derivative at the midpoint.
_SECANT_EPS = 1e-6
# Max tolerated disagreement between the raw logit and the SHAP-reconstructed logit.
_ADDITIVITY_TOL = 1e-6


@dataclass(frozen=True)
class GBMParams:
    """Size and regularisation of the LightGBM member (kept small for fast TreeSHAP)."""

    num_leaves: int = 15
    max_depth: int = 4
    learning_rate: float = 0.1
    n_estimators: int = 150
    early_stopping_rounds: int = 20
    min_child_samples: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0


@dataclass(frozen=True)
class IsoParams:
    """Size of the IsolationForest member (depth <= ceil(log2(max_samples)))."""

    n_estimators: int = 50
    max_samples: int = 32


@dataclass(frozen=True)
class CombinerWeights:
    """Logit-space stacking weights: z = intercept + w_gbm*m + w_anomaly*a."""

    intercept: float
    w_gbm: float
    w_anomaly: float
    path_length_mean: float
    path_length_std: float


def secant_slope(z: np.ndarray, base: float) -> np.ndarray:
    """Slope of the sigmoid's secant between ``base`` and each ``z`` (always > 0)."""
    z = np.asarray(z, dtype=np.float64)
    d = z - base
    small = np.abs(d) < _SECANT_EPS
    safe_d = np.where(small, 1.0, d)
    slope = (expit(z) - expit(base)) / safe_d
    mid = expit(base + 0.5 * d)
    return np.where(small, mid * (1.0 - mid), slope)


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): expected path length of an unsuccessful BST search (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _node_depths(children_left: np.ndarray, children_right: np.ndarray) -> np.ndarray:
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


@dataclass
class _FitInfo:
    n_train: int = 0
    n_valid: int = 0
    gbm_best_iteration: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class FraudEnsemble:
    """LightGBM + IsolationForest stacked in logit space, with exact additive explanations.

    ``feature_names`` fixes the column order of every input and of every explanation.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        gbm_params: GBMParams | None = None,
        iso_params: IsoParams | None = None,
        *,
        use_anomaly: bool = True,
        n_threads: int = 1,
        train_threads: int = 0,
        random_state: int = 0,
        combiner_c: float = 100.0,
    ) -> None:
        names = list(feature_names)
        if not names:
            raise ValueError("feature_names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError("feature_names contains duplicates")
        self.feature_names: list[str] = names
        self.gbm_params = gbm_params or GBMParams()
        self.iso_params = iso_params or IsoParams()
        self.use_anomaly = use_anomaly
        self.n_threads = n_threads
        self.train_threads = train_threads
        self.random_state = random_state
        self.combiner_c = combiner_c
        self.weights: CombinerWeights | None = None
        self.fit_info = _FitInfo()
        self._booster: lgb.Booster | None = None
        self._iso: IsolationForest | None = None
        self._iso_leaf_values: list[np.ndarray] = []
        self._gbm_expected: float = 0.0
        self._iso_expected: float = 0.0
        self._iso_explainer: Any = None

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        train_df: pd.DataFrame | np.ndarray,
        y: Sequence[int] | np.ndarray | pd.Series,
        valid_df: pd.DataFrame | np.ndarray,
        y_valid: Sequence[int] | np.ndarray | pd.Series,
    ) -> FraudEnsemble:
        """Fit both members on ``train_df`` and the stacking weights on ``valid_df``.

        The validation set is also used for GBM early stopping (log-loss).
        """
        x_tr = self._matrix(train_df)
        x_va = self._matrix(valid_df)
        y_tr = self._labels(y, len(x_tr), "y")
        y_va = self._labels(y_valid, len(x_va), "y_valid")
        for name, labels in (("y", y_tr), ("y_valid", y_va)):
            if labels.min() == labels.max():
                raise ValueError(f"{name} must contain both classes (0 and 1)")

        self._fit_gbm(x_tr, y_tr, x_va, y_va)
        path_mean, path_std = 0.0, 1.0
        if self.use_anomaly:
            self._fit_iso(x_tr)
            h_tr = self._path_length(x_tr)
            path_mean = float(h_tr.mean())
            path_std = float(max(h_tr.std(), 1e-12))

        m_va = self._gbm_margin(x_va)
        if self.use_anomaly:
            a_va = -(self._path_length(x_va) - path_mean) / path_std
            design = np.column_stack([m_va, a_va])
        else:
            design = m_va[:, None]
        lr = LogisticRegression(C=self.combiner_c, l1_ratio=0.0, max_iter=1000)
        lr.fit(design, y_va)
        coef = lr.coef_.ravel()
        self.weights = CombinerWeights(
            intercept=float(lr.intercept_[0]),
            w_gbm=float(coef[0]),
            w_anomaly=float(coef[1]) if self.use_anomaly else 0.0,
            path_length_mean=path_mean,
            path_length_std=path_std,
        )
        self.fit_info = _FitInfo(
            n_train=len(x_tr),
            n_valid=len(x_va),
            gbm_best_iteration=self.gbm_n_trees,
            extra={"combiner_c": self.combiner_c},
        )
        return self

    def _fit_gbm(self, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray) -> None:
        p = self.gbm_params
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
        dtrain = lgb.Dataset(x_tr, label=y_tr)
        dvalid = lgb.Dataset(x_va, label=y_va, reference=dtrain)
        callbacks: list[Callable[..., Any]] = []
        if p.early_stopping_rounds > 0:
            callbacks.append(lgb.early_stopping(p.early_stopping_rounds, verbose=False))
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=p.n_estimators,
            valid_sets=[dvalid],
            callbacks=callbacks,
        )
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        # Keep only the trees that are used: smaller model, faster SHAP.
        self._booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        contrib = self._booster.predict(x_tr[:1], pred_contrib=True, num_threads=self.n_threads)
        self._gbm_expected = float(np.asarray(contrib)[0, -1])

    def _fit_iso(self, x_tr: np.ndarray) -> None:
        p = self.iso_params
        iso = IsolationForest(
            n_estimators=p.n_estimators,
            max_samples=min(p.max_samples, len(x_tr)),
            random_state=self.random_state,
            n_jobs=1,
        )
        iso.fit(x_tr.astype(np.float32))
        self._iso = iso
        self._iso_leaf_values = []
        for est in iso.estimators_:
            tree = est.tree_
            depth = _node_depths(tree.children_left, tree.children_right)
            self._iso_leaf_values.append(depth + _average_path_length(tree.n_node_samples))
        self._iso_explainer = None
        _, expected = self._iso_shap(x_tr[:1])
        self._iso_expected = expected

    # ------------------------------------------------------------------ members
    def _matrix(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(data, pd.DataFrame):
            missing = [c for c in self.feature_names if c not in data.columns]
            if missing:
                raise KeyError(f"missing feature columns: {missing}")
            x = data[self.feature_names].to_numpy(dtype=np.float64)
        else:
            x = np.asarray(data, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != len(self.feature_names):
                raise ValueError(f"expected a 2-D array with {len(self.feature_names)} columns, got {x.shape}")
        return np.ascontiguousarray(x)

    @staticmethod
    def _labels(y: Sequence[int] | np.ndarray | pd.Series, n: int, name: str) -> np.ndarray:
        arr = np.asarray(y).astype(np.int64).ravel()
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} labels for {n} rows")
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be binary 0/1")
        return arr

    def _require_fitted(self) -> CombinerWeights:
        if self.weights is None or self._booster is None:
            raise RuntimeError("FraudEnsemble is not fitted")
        return self.weights

    def _gbm_margin(self, x: np.ndarray) -> np.ndarray:
        assert self._booster is not None
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self._booster.predict(x, raw_score=True, num_threads=self.n_threads), dtype=np.float64)

    def _path_length(self, x: np.ndarray) -> np.ndarray:
        """Mean isolation path length h(x) (sklearn's definition, trees average)."""
        assert self._iso is not None
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        total = np.zeros(x32.shape[0], dtype=np.float64)
        n_features = x32.shape[1]
        for est, feats, values in zip(
            self._iso.estimators_, self._iso.estimators_features_, self._iso_leaf_values, strict=True
        ):
            sub = x32 if len(feats) == n_features and np.array_equal(feats, np.arange(n_features)) else x32[:, feats]
            total += values[est.apply(np.ascontiguousarray(sub), check_input=False)]
        return total / len(self._iso.estimators_)

    def _iso_shap(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        if self._iso_explainer is None:
            import shap  # local import: shap is heavy and only needed for explanations

            self._iso_explainer = shap.TreeExplainer(self._iso, feature_perturbation="tree_path_dependent")
        # sklearn trees compare float32 inputs; feed shap exactly the same values.
        x32 = np.asarray(x, dtype=np.float32).astype(np.float64)
        phi = np.asarray(self._iso_explainer.shap_values(x32, check_additivity=False), dtype=np.float64)
        expected = float(np.ravel(self._iso_explainer.expected_value)[0])
        return phi.reshape(x32.shape[0], -1), expected

    # ------------------------------------------------------------------ public API
    @property
    def expected_logit(self) -> float:
        """E[z]: the base value of the logit-space explanation."""
        w = self._require_fitted()
        base = w.intercept + w.w_gbm * self._gbm_expected
        if self.use_anomaly:
            base -= w.w_anomaly * (self._iso_expected - w.path_length_mean) / w.path_length_std
        return float(base)

    @property
    def expected_value(self) -> float:
        """sigmoid(E[z]): the base value of the probability-space explanation."""
        return float(expit(self.expected_logit))

    @property
    def gbm_n_trees(self) -> int:
        """Number of trees kept in the LightGBM member."""
        return 0 if self._booster is None else int(self._booster.num_trees())

    @property
    def iso_n_trees(self) -> int:
        """Number of trees in the IsolationForest member (0 if disabled)."""
        return 0 if self._iso is None else len(self._iso.estimators_)

    def member_outputs(self, df: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Raw member outputs: GBM margin, mean path length and anomaly z-score."""
        w = self._require_fitted()
        x = self._matrix(df)
        out = {"gbm_margin": self._gbm_margin(x)}
        if self.use_anomaly:
            h = self._path_length(x)
            out["path_length"] = h
            out["anomaly_z"] = -(h - w.path_length_mean) / w.path_length_std
        return pd.DataFrame(out)

    def predict_logit(self, df: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Combined logit z(x)."""
        w = self._require_fitted()
        x = self._matrix(df)
        z = w.intercept + w.w_gbm * self._gbm_margin(x)
        if self.use_anomaly:
            z = z - w.w_anomaly * (self._path_length(x) - w.path_length_mean) / w.path_length_std
        return np.asarray(z, dtype=np.float64)

    def predict(self, df: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fraud score in (0, 1): sigmoid of the combined logit."""
        return np.asarray(expit(self.predict_logit(df)), dtype=np.float64)

    def explain_logit(self, df: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, float]:
        """Exact logit-space contributions psi [n, n_features] and base E[z]."""
        w = self._require_fitted()
        x = self._matrix(df)
        assert self._booster is not None
        if x.shape[0] == 0:
            return np.zeros((0, len(self.feature_names)), dtype=np.float64), self.expected_logit
        contrib = np.asarray(self._booster.predict(x, pred_contrib=True, num_threads=self.n_threads))
        psi = w.w_gbm * contrib[:, :-1]
        if self.use_anomaly:
            phi_iso, _ = self._iso_shap(x)
            psi = psi - (w.w_anomaly / w.path_length_std) * phi_iso
        return np.ascontiguousarray(psi, dtype=np.float64), self.expected_logit

    def predict_and_explain(self, df: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Scores, probability-space contributions and expected value in one pass.

        ``expected_value + contributions.sum(1) == scores`` (to ~1e-12).
        """
        x = self._matrix(df)
        z = self.predict_logit(x)
        psi, base = self.explain_logit(x)
        z_shap = base + psi.sum(axis=1)
        if z.size and float(np.max(np.abs(z_shap - z))) > _ADDITIVITY_TOL:
            raise RuntimeError(
                f"TreeSHAP additivity violated in logit space (max |diff| = {np.max(np.abs(z_shap - z)):.3g})"
            )
        contributions = secant_slope(z, base)[:, None] * psi
        return np.asarray(expit(z), dtype=np.float64), contributions, float(expit(base))

    def explain(self, df: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, float]:
        """Probability-space contributions [n, n_features] and the (constant) expected value.

        ``expected_value + contributions.sum(axis=1) == predict(df)``.
        """
        _, contributions, expected = self.predict_and_explain(df)
        return contributions, expected

    def describe(self) -> dict[str, Any]:
        """Sizes and weights, e.g. for logging as MLflow params."""
        w = self._require_fitted()
        return {
            "feature_count": len(self.feature_names),
            "gbm_n_trees": self.gbm_n_trees,
            "iso_n_trees": self.iso_n_trees,
            **{f"gbm_{k}": v for k, v in asdict(self.gbm_params).items()},
            **{f"iso_{k}": v for k, v in asdict(self.iso_params).items()},
            **{f"combiner_{k}": v for k, v in asdict(w).items()},
            "use_anomaly": self.use_anomaly,
            "expected_logit": self.expected_logit,
        }

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        booster = state.pop("_booster")
        state["_booster_model_str"] = None if booster is None else booster.model_to_string()
        state["_iso_explainer"] = None  # rebuilt lazily
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        model_str = state.pop("_booster_model_str", None)
        self.__dict__.update(state)
        self._booster = None if model_str is None else lgb.Booster(model_str=model_str)
        self._iso_explainer = None
