"""The catalog's tables: every contract by its catalog name, silver's built from the feature declarations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from features.catalog import FeatureParams
from features.table import features_table
from lakehouse.tables import TableContract, all_tables

if TYPE_CHECKING:
    from conf.settings import Settings

DATABASE = "aegis"
DEFAULT_LABEL_DELAY_DAYS = 7


def short_name(contract: TableContract) -> str:
    """The catalog name of a contract: ``bronze.transactions`` -> ``transactions``."""
    return contract.name.rsplit(".", 1)[-1]


def catalog_tables(params: FeatureParams | None = None) -> dict[str, TableContract]:
    """Catalog name -> contract, for every table, in data-flow order."""
    return {short_name(c): c for c in all_tables(features_table(params))}


def resolve_table(table_name: str, params: FeatureParams | None = None) -> TableContract:
    """The contract for ``transactions``, ``aegis.transactions`` or ``bronze.transactions``."""
    tables = catalog_tables(params)
    key = table_name.removeprefix(f"{DATABASE}.")
    for name, contract in tables.items():
        if key in (name, contract.name):
            return contract
    raise KeyError(f"unknown table {table_name!r}; expected one of {', '.join(tables)}")


def label_delay_days(settings: Settings | None) -> int:
    """Days after which a transaction's label counts as matured (``features.terminal_label_delay_days``)."""
    return settings.features.terminal_label_delay_days if settings is not None else DEFAULT_LABEL_DELAY_DAYS


def feature_params(settings: Settings | None) -> FeatureParams:
    """The feature parameterisation of ``settings`` (defaults without settings)."""
    if settings is None:
        return FeatureParams()
    f = settings.features
    return FeatureParams(f.timezone, f.terminal_label_delay_days, f.night_start_hour, f.night_end_hour)
