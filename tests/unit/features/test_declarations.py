"""Feature declarations: pure checks, no Spark."""

from __future__ import annotations

from datetime import timedelta

from features.catalog import (
    HANDBOOK_FEATURES,
    FeatureParams,
    declare_features,
    feature_names,
    feature_version,
)
from features.listing import LISTING_PATH, render_listing
from features.spec import Aggregation, Entity, Window


def test_checked_in_listing_is_current() -> None:
    assert LISTING_PATH.read_text() == render_listing(), "run `make features-listing` and commit the result"


def test_names_and_ids_are_unique() -> None:
    feats = declare_features()
    assert len({f.name for f in feats}) == len(feats) == 37
    assert len({f.id for f in feats}) == len(feats)
    assert feats[1].id == "customer.tx_count_1h.v1"


def test_handbook_features_are_expressible() -> None:
    assert set(HANDBOOK_FEATURES) <= set(feature_names())
    assert len(HANDBOOK_FEATURES) == 15


def test_terminal_windows_carry_the_label_delay_offset() -> None:
    terminal = [f for f in declare_features(FeatureParams(terminal_label_delay_days=3)) if f.entity is Entity.TERMINAL]
    assert {f.window.offset for f in terminal if f.window} == {timedelta(days=3)}
    assert "terminal_fraud_rate_7d_delay3d" in {f.name for f in terminal}
    rates = [f for f in terminal if f.aggregation is Aggregation.FRAUD_RATE]
    assert all(f.label_delay == timedelta(days=3) for f in rates)


def test_version_changes_with_declarations() -> None:
    assert feature_version() == feature_version(FeatureParams())
    assert feature_version() != feature_version(FeatureParams(terminal_label_delay_days=3))
    assert feature_version() != feature_version(FeatureParams(timezone="Europe/Brussels"))


def test_window_labels() -> None:
    assert Window(timedelta(hours=1)).label == "1h"
    assert Window(timedelta(days=30), timedelta(days=7)).label == "30d_delay7d"
