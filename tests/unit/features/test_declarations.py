"""Feature declarations: pure checks, no Spark."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from features.catalog import (
    HANDBOOK_FEATURES,
    FeatureParams,
    declare_features,
    feature_names,
    feature_version,
)
from features.listing import LISTING_PATH, render_listing
from features.spec import Aggregation, Entity, Window, feature_set_version


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


#: The version of the shipped declarations. A change here is a change of every feature row's and every
#: score's feature_version: update it together with features/compiled.md (`make features-listing`).
PINNED_VERSIONS = {FeatureParams(): "fs-58bd7ce7d8", FeatureParams(terminal_label_delay_days=3): "fs-84cd9fc064"}


def test_version_is_the_pinned_content_hash() -> None:
    for params, version in PINNED_VERSIONS.items():
        assert feature_version(params) == version, params


def test_version_is_a_function_of_the_declarations_only() -> None:
    # Built twice, independently: same declarations, same version.
    assert feature_set_version(declare_features()) == feature_set_version(declare_features(FeatureParams()))
    assert feature_version(FeatureParams()) == feature_version(FeatureParams(timezone="UTC"))


@pytest.mark.parametrize(
    "change",
    [
        {"description": "Another meaning."},
        {"window": Window(timedelta(hours=2))},
        {"fill": 1.0},
        {"source": "event_time"},
        {"version": 2},
        {"inputs": ("amount",)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_version_changes_when_one_declaration_changes(change: dict[str, object]) -> None:
    feats = declare_features()
    changed = [*feats[:5], dataclasses.replace(feats[5], **change), *feats[6:]]  # type: ignore[arg-type]
    assert feature_set_version(changed) != feature_set_version(feats)


def test_version_changes_with_order_additions_and_parameters() -> None:
    feats = declare_features()
    base = feature_set_version(feats)
    assert feature_set_version([feats[1], feats[0], *feats[2:]]) != base  # model-input order is part of it
    assert feature_set_version(feats[:-1]) != base
    assert feature_version(FeatureParams(terminal_label_delay_days=3)) != base
    assert feature_version(FeatureParams(timezone="Europe/Brussels")) != base


def test_window_labels() -> None:
    assert Window(timedelta(hours=1)).label == "1h"
    assert Window(timedelta(days=30), timedelta(days=7)).label == "30d_delay7d"
