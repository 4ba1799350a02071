"""`aegis tables`: every Delta table with its location, current version and row count."""

from __future__ import annotations

import json

from conf.settings import Settings
from features.catalog import FeatureParams
from features.table import features_table
from lakehouse.delta_io import table_status
from lakehouse.session import create_session
from lakehouse.tables import all_tables


def feature_params(settings: Settings) -> FeatureParams:
    """The feature parameterisation from config."""
    f = settings.features
    return FeatureParams(f.timezone, f.terminal_label_delay_days, f.night_start_hour, f.night_end_hour)


def run(settings: Settings, as_json: bool = False) -> int:
    spark = create_session(settings, "tables")
    contracts = all_tables(features_table(feature_params(settings)))
    statuses = [table_status(spark, t, settings.lakehouse_root) for t in contracts]
    if as_json:
        print(json.dumps([s.__dict__ for s in statuses]))
        return 0
    print(f"{'table':<30} {'version':>8} {'rows':>12}  location")
    for s in statuses:
        version = "-" if s.version is None else str(s.version)
        rows = "(not created)" if s.rows is None else f"{s.rows:,}"
        print(f"{s.name:<30} {version:>8} {rows:>12}  {s.location}")
    return 0
