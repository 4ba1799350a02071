"""silver.features as a table contract: lakehouse's frame of the table around the declared features."""

from __future__ import annotations

from pyspark.sql.types import DoubleType

from features.catalog import FeatureParams, declare_features
from lakehouse.tables import Column, TableContract, features_contract


def feature_columns(params: FeatureParams | None = None) -> tuple[Column, ...]:
    """One non-null double column per declared feature, in model-input order, documented by its declaration."""
    return tuple(Column(f.name, DoubleType(), f"[{f.id}] {f.description}", False)
                 for f in declare_features(params or FeatureParams()))


def features_table(params: FeatureParams | None = None) -> TableContract:
    """silver.features for a given feature parameterisation (columns come from the declarations)."""
    return features_contract(feature_columns(params))
