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

The members share one protocol (:class:`models.members.Member`: fit, raw output, TreeSHAP of the raw
output, expected value, stacking column); :class:`FraudEnsemble` is the combiner and nothing in it
knows which trees a member grows. How the member sizes were chosen (backtests, SHAP cost per tree) is
in docs/model-card.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from models.members import (
    ForestMember,
    ForestParams,
    GBMMember,
    GBMParams,
    IsolationMember,
    IsoParams,
    Member,
)

__all__ = ["CombinerWeights", "FraudEnsemble", "secant_slope"]

# Below this |z - E[z]| the secant slope is replaced by the derivative at the midpoint.
_SECANT_EPS = 1e-6
# Max tolerated disagreement between the raw logit and the SHAP-reconstructed logit.
_ADDITIVITY_TOL = 1e-6


@dataclass(frozen=True)
class CombinerWeights:
    """Logit-space stacking weights: z = intercept + w_gbm*m + w_anomaly*a + w_forest*f."""

    intercept: float
    w_gbm: float
    w_anomaly: float
    path_length_mean: float
    path_length_std: float
    w_forest: float = 0.0

    def of(self, member: Member) -> float:
        """The weight of a member's stacking column."""
        return float(getattr(self, f"w_{member.name}"))


def secant_slope(z: np.ndarray, base: float) -> np.ndarray:
    """Slope of the sigmoid's secant between ``base`` and each ``z`` (always > 0)."""
    z = np.asarray(z, dtype=np.float64)
    d = z - base
    small = np.abs(d) < _SECANT_EPS
    safe_d = np.where(small, 1.0, d)
    slope = (expit(z) - expit(base)) / safe_d
    mid = expit(base + 0.5 * d)
    return np.where(small, mid * (1.0 - mid), slope)


@dataclass
class _FitInfo:
    n_train: int = 0
    n_valid: int = 0
    gbm_best_iteration: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class FraudEnsemble:
    """LightGBM + IsolationForest + RandomForest stacked in logit space, explained exactly.

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
        #: The members in stacking order (the order of the combiner's design columns).
        self.members: list[Member] = [GBMMember(self.gbm_params, n_threads=n_threads, train_threads=train_threads,
                                                random_state=random_state)]
        if use_anomaly:
            self.members.append(IsolationMember(self.iso_params, random_state=random_state))
        if use_forest:
            self.members.append(ForestMember(self.forest_params, train_threads=train_threads,
                                             random_state=random_state))
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

        for member in self.members:
            member.fit(x_tr, y_tr, x_va, y_va)
        design = np.column_stack([m.column(m.raw(x_va)) for m in self.members])
        lr = LogisticRegression(C=self.combiner_c, l1_ratio=0.0, max_iter=1000)
        lr.fit(design, y_va)
        learned = {m.name: float(c) for m, c in zip(self.members, lr.coef_.ravel(), strict=True)}
        self.validation_scores = np.asarray(expit(lr.decision_function(design)), dtype=np.float64)

        if self.refit:
            x_all = np.concatenate([x_tr, x_va])
            y_all = np.concatenate([y_tr, y_va])
            for member in self.members:
                member.fit(x_all, y_all)  # the GBM keeps the rounds early stopping chose
        iso = self._member(IsolationMember)
        self.weights = CombinerWeights(
            intercept=float(lr.intercept_[0]),
            w_gbm=learned["gbm"],
            w_anomaly=learned.get("anomaly", 0.0),
            path_length_mean=iso.path_length_mean if iso else 0.0,
            path_length_std=iso.path_length_std if iso else 1.0,
            w_forest=learned.get("forest", 0.0),
        )
        gbm = self._member(GBMMember)
        assert gbm is not None
        self.fit_info = _FitInfo(
            n_train=len(x_tr),
            n_valid=len(x_va),
            gbm_best_iteration=gbm.rounds,
            extra={"combiner_c": self.combiner_c, "refit": self.refit},
        )
        return self

    # ------------------------------------------------------------------ inputs
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
        if self.weights is None:
            raise RuntimeError("FraudEnsemble is not fitted")
        return self.weights

    def _member(self, kind: type[Any]) -> Any:
        return next((m for m in self.members if isinstance(m, kind)), None)

    # ------------------------------------------------------------------ public API
    @property
    def expected_logit(self) -> float:
        """E[z]: the base value of the logit-space explanation."""
        w = self._require_fitted()
        base = w.intercept
        for m in self.members:
            base += w.of(m) * float(m.column(np.array([m.expected_value]))[0])
        return float(base)

    @property
    def expected_value(self) -> float:
        """sigmoid(E[z]): the base value of the probability-space explanation."""
        return float(expit(self.expected_logit))

    def _n_trees(self, kind: type[Any]) -> int:
        member = self._member(kind)
        return 0 if member is None else int(member.n_trees)

    @property
    def gbm_n_trees(self) -> int:
        """Number of trees kept in the LightGBM member."""
        return self._n_trees(GBMMember)

    @property
    def forest_n_trees(self) -> int:
        """Number of trees in the RandomForest member (0 if disabled)."""
        return self._n_trees(ForestMember)

    @property
    def iso_n_trees(self) -> int:
        """Number of trees in the IsolationForest member (0 if disabled)."""
        return self._n_trees(IsolationMember)

    def member_outputs(self, df: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Raw member outputs: GBM margin, forest probability, mean path length and anomaly z-score."""
        self._require_fitted()
        x = self._matrix(df)
        gbm, forest, iso = self._member(GBMMember), self._member(ForestMember), self._member(IsolationMember)
        out = {"gbm_margin": gbm.raw(x)}
        if forest is not None:
            out["forest_proba"] = forest.raw(x)
        if iso is not None:
            h = iso.raw(x)
            out["path_length"] = h
            out["anomaly_z"] = iso.column(h)
        return pd.DataFrame(out)

    def predict_logit(self, df: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Combined logit z(x)."""
        w = self._require_fitted()
        x = self._matrix(df)
        z = np.full(x.shape[0], w.intercept, dtype=np.float64)
        for m in self.members:
            z = z + w.of(m) * m.column(m.raw(x))
        return np.asarray(z, dtype=np.float64)

    def predict(self, df: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fraud score in (0, 1): sigmoid of the combined logit."""
        return np.asarray(expit(self.predict_logit(df)), dtype=np.float64)

    def explain_logit(self, df: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, float]:
        """Exact logit-space contributions psi [n, n_features] and base E[z]."""
        w = self._require_fitted()
        x = self._matrix(df)
        psi = np.zeros((x.shape[0], len(self.feature_names)), dtype=np.float64)
        if x.shape[0] == 0:
            return psi, self.expected_logit
        for m in self.members:
            psi = psi + (w.of(m) * m.slope) * m.shap(x)
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
        return {**self.__dict__, "validation_scores": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "members" not in state:
            state = _members_from_flat_state(state)
        self.__dict__.update(state)


def _members_from_flat_state(state: dict[str, Any]) -> dict[str, Any]:
    """Ensembles pickled before the member protocol (registered models) kept each member's parts as
    fields of their own; build the members from them (and load those pickled before the forest member
    existed as GBM + IsolationForest)."""
    import lightgbm as lgb

    state = dict(state)
    for key, default in (("_forest", None), ("_forest_expected", 0.0), ("use_forest", False),
                         ("forest_params", ForestParams()), ("refit", False), ("validation_scores", None)):
        state.setdefault(key, default)
    weights: CombinerWeights | None = state.get("weights")
    gbm = GBMMember(state["gbm_params"], n_threads=state["n_threads"], train_threads=state["train_threads"],
                    random_state=state["random_state"])
    model_str = state.pop("_booster_model_str", None)
    gbm.booster = None if model_str is None else lgb.Booster(model_str=model_str)
    gbm.rounds = state["fit_info"].gbm_best_iteration
    gbm.expected_value = state.pop("_gbm_expected", 0.0)
    members: list[Member] = [gbm]
    if state["use_anomaly"]:
        iso = IsolationMember(state["iso_params"], random_state=state["random_state"])
        iso.iso, iso.leaf_values, iso.expected_value = state["_iso"], state["_iso_leaf_values"], state["_iso_expected"]
        if weights is not None:
            iso.path_length_mean, iso.path_length_std = weights.path_length_mean, weights.path_length_std
        members.append(iso)
    if state["use_forest"] and state["_forest"] is not None:
        forest = ForestMember(state["forest_params"], train_threads=state["train_threads"],
                              random_state=state["random_state"])
        forest.forest, forest.expected_value = state["_forest"], state["_forest_expected"]
        members.append(forest)
    for key in ("_iso", "_iso_leaf_values", "_iso_expected", "_iso_explainer", "_forest", "_forest_expected",
                "_forest_explainer", "_booster"):
        state.pop(key, None)
    state["members"] = members
    return state
