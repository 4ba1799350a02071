"""The data dictionary (docs/tables.md) and the Spark-free catalog: no JVM needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analysts.catalog import DATABASE, catalog_tables, resolve_table
from analysts.dictionary import DICTIONARY_PATH, render_data_dictionary
from analysts.local import duckdb_connection, polars_frame
from analysts.views import VIEWS
from features.table import features_table
from lakehouse.tables import all_tables

EXPECTED_TABLES = ["transactions", "labels", "quarantine", "features", "scores", "validation_results", "run_log"]
EXPECTED_VIEWS = ["daily_summary", "model_performance", "risky_terminals", "risky_customers", "quarantine_reasons"]
SPARK_TYPES = {"bigint", "int", "double", "date", "string", "timestamp"}


def test_checked_in_data_dictionary_is_current() -> None:
    assert DICTIONARY_PATH.read_text() == render_data_dictionary(), (
        "docs/tables.md is stale: run `.venv/bin/python -m analysts.dictionary --write` and commit the result"
    )


def test_catalog_names_every_table_and_view() -> None:
    assert list(catalog_tables()) == EXPECTED_TABLES
    assert [v.name for v in VIEWS] == EXPECTED_VIEWS


def test_dictionary_documents_every_column_with_type_partitioning_and_retention() -> None:
    text = render_data_dictionary()
    for contract in all_tables(features_table()):
        section = text.split(f"### `{DATABASE}.{contract.name.rsplit('.', 1)[-1]}`", 1)[1].split("\n### ", 1)[0]
        assert contract.description in section
        assert "Retention: " + contract.retention in section
        partitioning = ", ".join(f"`{p}`" for p in contract.partition_by) or "none"
        assert f"Partitioned by: {partitioning}" in section
        for column in contract.columns:
            assert f"| `{column.name}` | `{column.dtype.simpleString()}` |" in section, (contract.name, column.name)
    for view in VIEWS:
        section = text.split(f"### `{DATABASE}.{view.name}`", 1)[1]
        for column in view.columns:
            assert f"| `{column.name}` | `{column.dtype}` | {column.description} |" in section


def test_views_are_documented_and_only_read_the_catalog() -> None:
    tables = set(catalog_tables())
    for view in VIEWS:
        assert view.description and len(set(view.column_names)) == len(view.columns), view.name
        assert all(c.description and c.dtype in SPARK_TYPES for c in view.columns), view.name
        referenced = set(re.findall(rf"\b{DATABASE}\.(\w+)", view.query()))
        assert referenced and referenced <= tables, (view.name, referenced)


def test_resolve_table_accepts_every_spelling() -> None:
    assert resolve_table("transactions").name == "bronze.transactions"
    assert resolve_table("aegis.scores").name == "gold.scores"
    assert resolve_table("silver.features").name == "silver.features"
    with pytest.raises(KeyError, match="unknown table"):
        resolve_table("nope")


def test_duckdb_and_polars_on_an_empty_lakehouse(tmp_path: Path) -> None:
    con = duckdb_connection(tmp_path)
    for name, contract in catalog_tables().items():
        relation = con.sql(f"SELECT * FROM {DATABASE}.{name}")
        assert relation.columns == contract.column_names
        assert relation.fetchall() == []
        frame = polars_frame(tmp_path, name).collect()
        assert frame.columns == contract.column_names and frame.height == 0
    for view in VIEWS:
        relation = con.sql(f"SELECT * FROM {view.name}")  # aegis is on the search path
        assert relation.columns == view.column_names
        assert relation.fetchall() == []
