"""Fraud-scoring ensemble with explanations that add up exactly to the score.

Members
-------
* a LightGBM binary classifier (supervised), raw output = log-odds margin ``m(x)``;
* a small sklearn ``RandomForestClassifier`` (supervised), output = mean over its trees of
  the leaf's fraud share ``f(x)`` in [0, 1] (``predict_proba[:, 1]``);
* a small sklearn ``IsolationForest`` (unsupervised), raw output = mean path length
  ``h(x)`` over its trees (shorter path = more anomalous). It is turned into an anomaly
  z-score ``a(x) = -(h(x) - mu_h) / sd_h`` with ``mu_h``/``sd_h`` measured on training data.

Combination
-----------
The members are stacked in logit space with weights learned on validation data by a
(nearly unpenalised) logistic regression on ``[m, a, f]``::

    z(x)     = b + w_gbm * m(x) + w_anom * a(x) + w_forest * f(x)
    score(x) = sigmoid(z(x))                       in (0, 1)

Fitting (``refit=True``, the default): the members are fitted on the training rows, the
GBM's number of boosting rounds is chosen by early stopping on the validation rows and the
stacking weights are learned on the members' validation outputs (out of sample); then
every member is fitted again on training + validation rows with the chosen number of
rounds and the learned weights (the anomaly z-score is re-standardised on those rows).
The validation rows are the most recent labelled ones, so they are not lost to the
members; :attr:`FraudEnsemble.validation_scores` keeps the out-of-sample validation
scores for choosing the decision policy.

Exact explanation (the SHAP-combination rule)
---------------------------------------------
TreeSHAP is exact and additive for each member's *raw* output:
``m(x) = E_gbm + sum_j phi_gbm_j(x)``, ``f(x) = E_rf + sum_j phi_rf_j(x)`` and
``h(x) = E_iso + sum_j phi_iso_j(x)`` (LightGBM native ``pred_contrib``, shap's
``TreeExplainer`` for the two sklearn forests, all ``tree_path_dependent``). Because ``z``
is affine in the raw outputs, the logit contributions
``psi_j = w_gbm * phi_gbm_j + w_forest * phi_rf_j - (w_anom / sd_h) * phi_iso_j`` satisfy
``z(x) = E[z] + sum_j psi_j(x)`` exactly, where
``E[z] = b + w_gbm * E_gbm + w_forest * E_rf - w_anom * (E_iso - mu_h) / sd_h``.
(The forest enters through its probability ``f``, not its logit, precisely so that ``z``
stays affine in tree outputs.)

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

Sizing and the quality / explanation-speed trade-off (see ``benchmarks/bench_model.py``
and the README's "Quality on the handbook")
---------------------------------------------------------------------------------------
Path-dependent TreeSHAP costs O(trees * leaves * depth^2) per row, so the explanation,
not the prediction, sets the member sizes. Every choice below was made on backtests that
end before the handbook test period (three one-week and three all-history protocols
ending 06-09, 06-16 and 06-23, compared with the handbook's random forest), never on the
test week itself:

* LightGBM: trees of <= 15 leaves / depth 4, learning rate 0.05, at most 200 rounds with
  early stopping after 40 (on the handbook data early stopping keeps 80-200 rounds). It
  is most of the SHAP time: ~1.2 us per tree and row on one core. Rate 0.05 instead of
  0.1 (with refitting) was worth about +0.007 average precision and +0.004 card
  precision@100 in the one-week backtests; 31-leaf / depth-6 trees cost ~3x per tree
  for +0.003 average precision and no card-precision gain, a 300-round cap changed
  nothing (+-0.001) against 200, and class weighting (``scale_pos_weight``) lost precision.
* Refitting on training + validation rows: +0.003 average precision, +0.002 card
  precision@100 (one week), since the validation days are the most recent ones.
* RandomForest: 20 trees, depth <= 6, >= 20 rows per leaf (~16 leaves per tree on fraud
  data, where nodes become pure fast). A bagged, differently biased view of the same
  features: +0.006 average precision and +0.002 card precision@100 in the one-week
  backtests. 30 trees or depth 8 did no better and cost up to 2x more; a 100-tree forest
  of unlimited depth gained +0.003 more average precision but its unbounded trees are not
  affordable for exact SHAP; extra-trees (50, depth 8) added nothing.
* IsolationForest: 25 trees on 32-row sub-samples (depth <= 5), for robustness to fraud
  patterns absent from the labels; its stacking weight is small on the handbook and 50
  trees did no better.

``make bench-model`` measures ~3,300-3,500 explained rows/s on one core with these sizes
(147 GBM trees on its synthetic data; an estimated ~2,900 at the 200-round cap), i.e. ~1.5x the
2,000 rows/s target; the previous, smaller model (LightGBM at rate 0.1, <= 150 rounds,
no forest, no refit, 50 isolation trees) explained ~6,700 rows/s but was only tied with
the handbook's random forest on average precision and card precision@100.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

__all__ = [
    "CombinerWeights",
    "ForestParams",
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


@dataclass(frozen=True)
class CombinerWeights:
    """Logit-space stacking weights: z = intercept + w_gbm*m + w_anomaly*a + w_forest*f."""

    intercept: float
    w_gbm: float
    w_anomaly: float
    path_length_mean: float
    path_length_std: float
    w_forest: float = 0.0


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
    """LightGBM + RandomForest + IsolationForest stacked in logit space, explained exactly.

    ``feature_names`` fixes the column order of every input and of every explanation.
    ``use_forest=False`` / ``use_anomaly=False`` drop a member; ``refit=False`` keeps the
    members fitted on the training rows only (see the module docstring).
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        gbm_params: GBMParams | None = None,
        iso_params: IsoParams | None = None,
        forest_params: ForestParams | None = None,
        *,
        use_anomaly: bool = True,
        use_forest: bool = True,
        refit: bool = True,
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
        self.forest_params = forest_params or ForestParams()
        self.use_anomaly = use_anomaly
        self.use_forest = use_forest
        self.refit = refit
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
        self._forest: RandomForestClassifier | None = None
        self._forest_expected: float = 0.0
        self._forest_explainer: Any = None
        #: Out-of-sample validation scores of the fit (members fitted on the training rows
        #: only), for choosing thresholds; not pickled.
        self.validation_scores: np.ndarray | None = None

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        train_df: pd.DataFrame | np.ndarray,
        y: Sequence[int] | np.ndarray | pd.Series,
        valid_df: pd.DataFrame | np.ndarray,
        y_valid: Sequence[int] | np.ndarray | pd.Series,
    ) -> FraudEnsemble:
        """Fit the members on ``train_df`` and the stacking weights on ``valid_df``.

        The validation set also chooses the GBM's number of rounds (early stopping on
        log-loss). With ``refit`` the members are then fitted again on both sets.
        """
        x_tr = self._matrix(train_df)
        x_va = self._matrix(valid_df)
        y_tr = self._labels(y, len(x_tr), "y")
        y_va = self._labels(y_valid, len(x_va), "y_valid")
        for name, labels in (("y", y_tr), ("y_valid", y_va)):
            if labels.min() == labels.max():
                raise ValueError(f"{name} must contain both classes (0 and 1)")

        rounds = self._fit_gbm(x_tr, y_tr, x_va, y_va)
        path_mean, path_std = self._fit_unsupervised_and_forest(x_tr, y_tr)

        columns = [self._gbm_margin(x_va)]
        if self.use_anomaly:
            columns.append(-(self._path_length(x_va) - path_mean) / path_std)
        if self.use_forest:
            columns.append(self._forest_proba(x_va))
        design = np.column_stack(columns)
        lr = LogisticRegression(C=self.combiner_c, l1_ratio=0.0, max_iter=1000)
        lr.fit(design, y_va)
        coef = [float(c) for c in lr.coef_.ravel()]
        w_gbm = coef.pop(0)
        w_anomaly = coef.pop(0) if self.use_anomaly else 0.0
        w_forest = coef.pop(0) if self.use_forest else 0.0
        self.validation_scores = np.asarray(expit(lr.decision_function(design)), dtype=np.float64)

        if self.refit:
            x_all = np.concatenate([x_tr, x_va])
            y_all = np.concatenate([y_tr, y_va])
            self._fit_gbm(x_all, y_all, None, None, rounds=rounds)
            path_mean, path_std = self._fit_unsupervised_and_forest(x_all, y_all)
        self.weights = CombinerWeights(
            intercept=float(lr.intercept_[0]),
            w_gbm=w_gbm,
            w_anomaly=w_anomaly,
            path_length_mean=path_mean,
            path_length_std=path_std,
            w_forest=w_forest,
        )
        self.fit_info = _FitInfo(
            n_train=len(x_tr),
            n_valid=len(x_va),
            gbm_best_iteration=rounds,
            extra={"combiner_c": self.combiner_c, "refit": self.refit},
        )
        return self

    def _fit_unsupervised_and_forest(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Fit the forest and the isolation forest; returns the path-length mean and std on ``x``."""
        if self.use_forest:
            self._fit_forest(x, y)
        if not self.use_anomaly:
            return 0.0, 1.0
        self._fit_iso(x)
        h = self._path_length(x)
        return float(h.mean()), float(max(h.std(), 1e-12))

    def _fit_gbm(
        self,
        x_tr: np.ndarray,
        y_tr: np.ndarray,
        x_va: np.ndarray | None,
        y_va: np.ndarray | None,
        *,
        rounds: int | None = None,
    ) -> int:
        """Fit the booster; with validation rows, early stopping chooses the rounds (returned)."""
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
        if x_va is None or y_va is None:
            booster = lgb.train(params, dtrain, num_boost_round=max(1, rounds or p.n_estimators))
            best = booster.current_iteration()
        else:
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
        return int(best)

    def _fit_forest(self, x: np.ndarray, y: np.ndarray) -> None:
        p = self.forest_params
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
        self._forest = forest
        self._forest_explainer = None
        _, expected = self._forest_shap(x[:1])
        self._forest_expected = expected

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

    def _forest_proba(self, x: np.ndarray) -> np.ndarray:
        """Mean over the forest's trees of the leaf's fraud share (``predict_proba[:, 1]``)."""
        assert self._forest is not None
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        return np.asarray(self._forest.predict_proba(x32)[:, 1], dtype=np.float64)

    def _forest_shap(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """TreeSHAP of the forest's fraud probability (class 1) and its expected value."""
        if self._forest_explainer is None:
            import shap  # local import: shap is heavy and only needed for explanations

            self._forest_explainer = shap.TreeExplainer(self._forest, feature_perturbation="tree_path_dependent")
        x32 = np.asarray(x, dtype=np.float32).astype(np.float64)
        phi = np.asarray(self._forest_explainer.shap_values(x32, check_additivity=False), dtype=np.float64)
        if phi.ndim == 3:  # (rows, features, classes)
            phi = phi[:, :, 1]
        expected = float(np.ravel(self._forest_explainer.expected_value)[-1])
        return phi.reshape(x32.shape[0], -1), expected

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
        if self.use_forest:
            base += w.w_forest * self._forest_expected
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
    def forest_n_trees(self) -> int:
        """Number of trees in the RandomForest member (0 if disabled)."""
        return 0 if self._forest is None else len(self._forest.estimators_)

    @property
    def iso_n_trees(self) -> int:
        """Number of trees in the IsolationForest member (0 if disabled)."""
        return 0 if self._iso is None else len(self._iso.estimators_)

    def member_outputs(self, df: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Raw member outputs: GBM margin, forest probability, mean path length and anomaly z-score."""
        w = self._require_fitted()
        x = self._matrix(df)
        out = {"gbm_margin": self._gbm_margin(x)}
        if self.use_forest:
            out["forest_proba"] = self._forest_proba(x)
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
        if self.use_forest:
            z = z + w.w_forest * self._forest_proba(x)
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
        if self.use_forest:
            phi_forest, _ = self._forest_shap(x)
            psi = psi + w.w_forest * phi_forest
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
            "forest_n_trees": self.forest_n_trees,
            "iso_n_trees": self.iso_n_trees,
            **{f"gbm_{k}": v for k, v in asdict(self.gbm_params).items()},
            **{f"forest_{k}": v for k, v in asdict(self.forest_params).items()},
            **{f"iso_{k}": v for k, v in asdict(self.iso_params).items()},
            **{f"combiner_{k}": v for k, v in asdict(w).items()},
            "use_anomaly": self.use_anomaly,
            "use_forest": self.use_forest,
            "refit": self.refit,
            "expected_logit": self.expected_logit,
        }

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        booster = state.pop("_booster")
        state["_booster_model_str"] = None if booster is None else booster.model_to_string()
        state["_iso_explainer"] = None  # rebuilt lazily
        state["_forest_explainer"] = None
        state["validation_scores"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        model_str = state.pop("_booster_model_str", None)
        # Ensembles pickled before the forest member existed load as GBM + IsolationForest.
        for key, default in (("_forest", None), ("_forest_expected", 0.0), ("use_forest", False),
                             ("forest_params", ForestParams()), ("refit", False), ("validation_scores", None)):
            state.setdefault(key, default)
        self.__dict__.update(state)
        self._booster = None if model_str is None else lgb.Booster(model_str=model_str)
        self._iso_explainer = None
        self._forest_explainer = None
