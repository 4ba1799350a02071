"""The stream's compilation of the declarations into the state processor's config (no Spark)."""

from __future__ import annotations

import json
from datetime import timedelta

from features.catalog import FeatureParams, declare_features, max_lookback
from features.derive import is_row_feature
from features.spec import Aggregation, Entity
from features.state_plan import state_plan

DAY_US = 86_400_000_000


def test_every_window_feature_of_a_key_is_in_its_route_and_nothing_else() -> None:
    feats = declare_features(FeatureParams())
    plan = state_plan(FeatureParams(), timedelta(0))
    routed = {(route, str(spec["name"])) for route, specs in plan.routes.items() for spec in specs}
    for feat in feats:
        in_state = feat.entity in (Entity.CUSTOMER, Entity.TERMINAL) and not is_row_feature(feat)
        route = "c" if feat.entity is Entity.CUSTOMER else "t"
        assert ((route, feat.name) in routed) == in_state, feat.name
    # Derivations are computed after the state, from their declared inputs.
    ratio = next(f for f in feats if f.aggregation is Aggregation.RATIO_TO_MEAN)
    assert ratio.inputs == ("amount", "customer_amount_mean_30d")
    assert {"customer_amount_mean_30d", "customer_amount_std_30d"} <= set(plan.feature_names)


def test_windows_offsets_and_operations_come_from_the_declarations() -> None:
    plan = state_plan(FeatureParams(terminal_label_delay_days=3), timedelta(seconds=5))
    terminal = {str(s["name"]): s for s in plan.routes["t"]}
    rate = terminal["terminal_fraud_rate_7d_delay3d"]
    assert (rate["op"], rate["source"], rate["length_us"], rate["offset_us"]) == ("fraud_rate", "is_fraud",
                                                                                   7 * DAY_US, 3 * DAY_US)
    customer = {str(s["name"]): s for s in plan.routes["c"]}
    assert customer["customer_terminal_is_new_30d"]["op"] == "is_new_pair"
    assert customer["customer_terminal_is_new_30d"]["source"] == "terminal_id"
    assert customer["customer_amount_std_1h"]["length_us"] == 3_600_000_000
    # Events are kept for the longest look-back (30 days + the 3-day delay) plus the lateness.
    assert max_lookback(FeatureParams(terminal_label_delay_days=3)) == timedelta(days=33)
    assert plan.retention_us == 33 * DAY_US + 5_000_000
    assert plan.lateness_us == 5_000_000


def test_the_config_is_the_json_the_jvm_reads() -> None:
    plan = state_plan(FeatureParams(), timedelta(0))
    config = json.loads(plan.config("`a` string", "`b` string", ["amount"]))
    assert config["format"] == 1
    assert config["routes"]["c"]["carry"] is True and config["routes"]["t"]["carry"] is False
    assert config["carry"] == ["amount"]
    assert [s["name"] for s in config["routes"]["t"]["features"]] == [
        f"terminal_{kind}_{w}d_delay7d" for w in (1, 7, 30) for kind in ("tx_count", "fraud_rate")]
