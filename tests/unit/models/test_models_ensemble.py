"""Ensemble: exact additivity of explanations, learnability, pickling."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from models.ensemble import FraudEnsemble, secant_slope
from models.members import ForestMember, GBMParams, IsolationMember, IsoParams, Member, average_path_length
from models.metrics import auc_roc
from models.scorer import AegisScorer
from models.synthetic import make_transactions
from models.training import TrainResult


def _random_frame(feature_names: list[str], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=rng.uniform(0.5, 4.0, size=len(feature_names)), size=(n, len(feature_names)))
    x[:5] *= 50.0  # a few extreme rows
    return pd.DataFrame(x, columns=feature_names)


def test_scorer_explanation_is_exact_on_random_data(scorer: AegisScorer, feature_names: list[str]) -> None:
    frame = _random_frame(feature_names, 2_000, seed=1)
    out = scorer.score(frame)
    shap_matrix = np.array(out["shap"].tolist())
    assert shap_matrix.shape == (2_000, len(feature_names))
    reconstructed = out["expected_value"].to_numpy() + shap_matrix.sum(axis=1)
    np.testing.assert_allclose(reconstructed, out["score"].to_numpy(), rtol=0, atol=1e-6)
    assert float(np.max(np.abs(reconstructed - out["score"].to_numpy()))) < 1e-9
    # the score is the ensemble's prediction, not a re-derived quantity
    np.testing.assert_allclose(out["score"].to_numpy(), scorer.ensemble.predict(frame), rtol=0, atol=1e-12)
    assert ((out["score"] > 0) & (out["score"] < 1)).all()


def test_explain_is_exact_for_ensemble_not_member(trained: TrainResult, feature_names: list[str]) -> None:
    ens = trained.ensemble
    assert ens.use_anomaly and ens.iso_n_trees > 0 and ens.weights is not None
    assert ens.weights.w_anomaly != 0.0  # both members really contribute
    frame = _random_frame(feature_names, 500, seed=2)
    contributions, expected = ens.explain(frame)
    assert isinstance(expected, float)
    np.testing.assert_allclose(expected + contributions.sum(axis=1), ens.predict(frame), rtol=0, atol=1e-6)
    # logit space is additive too
    psi, base = ens.explain_logit(frame)
    np.testing.assert_allclose(base + psi.sum(axis=1), ens.predict_logit(frame), rtol=0, atol=1e-9)
    # probability-space contributions keep the sign of the logit contributions (monotone rule)
    assert np.all(np.sign(contributions) == np.sign(psi))


def test_secant_slope_is_positive_and_exact() -> None:
    z = np.array([-30.0, -2.0, 0.1, 0.1 + 1e-9, 0.1 + 1e-3, 3.0, 40.0])
    base = 0.1
    s = secant_slope(z, base)
    assert np.all(s > 0) and np.all(s <= 0.25)
    sigmoid = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(1 / (1 + np.exp(-base)) + s * (z - base), sigmoid, atol=1e-15)


def test_path_length_matches_sklearn(trained: TrainResult, feature_names: list[str]) -> None:
    ens = trained.ensemble
    frame = _random_frame(feature_names, 300, seed=3)
    h = ens.member_outputs(frame)["path_length"].to_numpy()
    iso = next(m for m in ens.members if isinstance(m, IsolationMember)).iso
    assert iso is not None
    c = average_path_length(np.array([iso.max_samples_]))[0]
    h_sklearn = -np.log2(-iso.score_samples(frame.to_numpy())) * c
    np.testing.assert_allclose(h, h_sklearn, rtol=1e-9)


def test_learnability_on_separable_synthetic_signal(trained: TrainResult) -> None:
    assert trained.metrics["test_auc_roc"] > 0.9
    assert trained.metrics["valid_auc_roc"] > 0.9


def test_gbm_only_variant_is_additive(feature_names: list[str]) -> None:
    df = make_transactions(feature_names, 6_000, n_days=10, fraud_rate=0.05, signal=1.5, seed=11)
    train, valid = df.iloc[:4_000], df.iloc[4_000:]
    ens = FraudEnsemble(feature_names, GBMParams(n_estimators=30), use_anomaly=False)
    ens.fit(train, train["is_fraud"], valid, valid["is_fraud"])
    assert ens.iso_n_trees == 0
    contributions, expected = ens.explain(valid)
    np.testing.assert_allclose(expected + contributions.sum(axis=1), ens.predict(valid), atol=1e-6)
    assert auc_roc(valid["is_fraud"], ens.predict(valid)) > 0.9


def test_fit_rejects_single_class(feature_names: list[str]) -> None:
    df = make_transactions(feature_names, 500, n_days=5, seed=3)
    ens = FraudEnsemble(feature_names, iso_params=IsoParams(n_estimators=5))
    with pytest.raises(ValueError, match="both classes"):
        ens.fit(df, np.zeros(len(df)), df, df["is_fraud"])


def test_pickle_roundtrip_keeps_predictions(trained: TrainResult, feature_names: list[str]) -> None:
    frame = _random_frame(feature_names, 200, seed=4)
    clone = pickle.loads(cloudpickle.dumps(trained.ensemble))
    np.testing.assert_array_equal(clone.predict(frame), trained.ensemble.predict(frame))
    c1, e1 = clone.explain(frame)
    c2, e2 = trained.ensemble.explain(frame)
    np.testing.assert_allclose(c1, c2, atol=1e-12)
    assert e1 == pytest.approx(e2, abs=1e-15)


def test_column_order_of_input_does_not_matter(scorer: AegisScorer, feature_names: list[str]) -> None:
    frame = _random_frame(feature_names, 50, seed=5)
    shuffled = frame[list(reversed(feature_names))]
    np.testing.assert_array_equal(scorer.score(frame)["score"], scorer.score(shuffled)["score"])


def test_forest_member_contributes_and_is_explained(trained: TrainResult, feature_names: list[str]) -> None:
    ens = trained.ensemble
    assert ens.use_forest and ens.forest_n_trees > 0 and ens.weights is not None
    assert ens.weights.w_forest != 0.0
    frame = _random_frame(feature_names, 300, seed=6)
    outputs = ens.member_outputs(frame)
    assert ((outputs["forest_proba"] >= 0) & (outputs["forest_proba"] <= 1)).all()
    # the forest's TreeSHAP alone is exact for its probability output
    forest = next(m for m in ens.members if isinstance(m, ForestMember))
    phi = forest.shap(frame[feature_names].to_numpy(dtype=np.float64))
    np.testing.assert_allclose(forest.expected_value + phi.sum(axis=1), outputs["forest_proba"], rtol=0, atol=1e-9)
    # without the forest the logit loses exactly the forest's weighted output
    w = ens.weights
    z = ens.predict_logit(frame)
    members = list(ens.members)
    ens.members = [m for m in members if m is not forest]
    try:
        np.testing.assert_allclose(ens.predict_logit(frame), z - w.w_forest * outputs["forest_proba"], atol=1e-9)
    finally:
        ens.members = members


def test_every_member_follows_the_protocol_and_is_exactly_explained(trained: TrainResult,
                                                                    feature_names: list[str]) -> None:
    ens = trained.ensemble
    assert [m.name for m in ens.members] == ["gbm", "anomaly", "forest"]  # the stacking (design) order
    x = _random_frame(feature_names, 200, seed=8)[feature_names].to_numpy(dtype=np.float64)
    for member in ens.members:
        assert isinstance(member, Member) and member.n_trees > 0
        phi = member.shap(x)
        assert phi.shape == x.shape
        np.testing.assert_allclose(member.expected_value + phi.sum(axis=1), member.raw(x), rtol=0, atol=1e-9,
                                   err_msg=member.name)
        # the stacking column is affine in the raw output with slope ``slope``
        raw = member.raw(x)
        np.testing.assert_allclose(member.column(raw + 1.0) - member.column(raw), member.slope, rtol=1e-9)


def _flat_state(ens: FraudEnsemble) -> dict[str, object]:
    """The pickled state of an ensemble before the member protocol: each member's parts as fields."""
    state = {k: v for k, v in ens.__getstate__().items() if k != "members"}
    gbm = next(m for m in ens.members if m.name == "gbm")
    state.update({"_booster_model_str": gbm.booster.model_to_string(), "_gbm_expected": gbm.expected_value,
                  "_forest": None, "_forest_expected": 0.0, "_forest_explainer": None})
    for m in ens.members:
        if isinstance(m, IsolationMember):
            state.update({"_iso": m.iso, "_iso_leaf_values": m.leaf_values, "_iso_expected": m.expected_value,
                          "_iso_explainer": None})
        if isinstance(m, ForestMember):
            state.update({"_forest": m.forest, "_forest_expected": m.expected_value})
    return state


def test_an_ensemble_pickled_before_the_member_protocol_loads(trained: TrainResult,
                                                              feature_names: list[str]) -> None:
    """Registered models hold the flat pre-protocol state; they must load and score identically."""
    ens = trained.ensemble
    old = FraudEnsemble.__new__(FraudEnsemble)
    old.__setstate__(_flat_state(ens))
    frame = _random_frame(feature_names, 100, seed=9)
    expected_scores, expected_contrib, expected_base = ens.predict_and_explain(frame)
    scores, contrib, base = old.predict_and_explain(frame)
    np.testing.assert_array_equal(scores, expected_scores)
    np.testing.assert_array_equal(contrib, expected_contrib)
    assert base == expected_base and old.describe() == ens.describe()


def test_refit_uses_validation_rows_and_keeps_out_of_sample_validation_scores(feature_names: list[str]) -> None:
    df = make_transactions(feature_names, 6_000, n_days=10, fraud_rate=0.05, signal=1.5, seed=12)
    train, valid = df.iloc[:4_000], df.iloc[4_000:]
    small = GBMParams(n_estimators=40)
    kept = FraudEnsemble(feature_names, small, IsoParams(n_estimators=5), refit=False)
    kept.fit(train, train["is_fraud"], valid, valid["is_fraud"])
    refit = FraudEnsemble(feature_names, small, IsoParams(n_estimators=5), refit=True)
    refit.fit(train, train["is_fraud"], valid, valid["is_fraud"])
    # same rounds and stacking weights; the members differ because they saw the validation rows
    assert refit.gbm_n_trees == kept.gbm_n_trees == refit.fit_info.gbm_best_iteration
    assert refit.weights is not None and kept.weights is not None
    assert refit.weights.w_gbm == kept.weights.w_gbm and refit.weights.w_forest == kept.weights.w_forest
    assert not np.allclose(refit.predict(valid), kept.predict(valid))
    # validation_scores are the out-of-sample scores (= the non-refitted ensemble's)
    assert refit.validation_scores is not None
    np.testing.assert_allclose(refit.validation_scores, kept.predict(valid), atol=1e-9)
    contributions, expected = refit.explain(valid)
    np.testing.assert_allclose(expected + contributions.sum(axis=1), refit.predict(valid), atol=1e-6)
    clone = pickle.loads(pickle.dumps(refit))
    assert clone.validation_scores is None


def test_ensemble_pickled_before_the_forest_member_still_loads(feature_names: list[str]) -> None:
    df = make_transactions(feature_names, 4_000, n_days=10, fraud_rate=0.05, signal=1.5, seed=13)
    train, valid = df.iloc[:3_000], df.iloc[3_000:]
    ens = FraudEnsemble(feature_names, GBMParams(n_estimators=20), IsoParams(n_estimators=5), use_forest=False)
    ens.fit(train, train["is_fraud"], valid, valid["is_fraud"])
    state = _flat_state(ens)
    for key in ("_forest", "_forest_expected", "_forest_explainer", "use_forest", "forest_params", "refit"):
        state.pop(key)
    old = FraudEnsemble.__new__(FraudEnsemble)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.predict(valid), ens.predict(valid))
    contributions, expected = old.explain(valid)
    np.testing.assert_allclose(expected + contributions.sum(axis=1), old.predict(valid), atol=1e-6)
