"""docs/tables.md, the data dictionary: every table and view, every column with type and meaning.

``python -m analysts.dictionary [--write]`` prints or rewrites it (``make tables-doc``); no Spark needed.
"""

from __future__ import annotations

from pathlib import Path

from analysts.catalog import DATABASE, catalog_tables
from analysts.views import VIEWS
from features.catalog import FeatureParams

DICTIONARY_PATH = Path(__file__).resolve().parents[1] / "docs" / "tables.md"

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_data_dictionary(params: FeatureParams | None = None) -> str:
    """docs/tables.md: every table and view, every column with type and meaning (no Spark needed)."""
    tables = catalog_tables(params)
    lines = [
        "# Aegis data dictionary",
        "",
        "Generated from lakehouse/tables.py and features/table.py (table contracts) and analysts/views.py "
        "with analysts/views/*.sql (views) by `python -m analysts.dictionary --write`; "
        "tests/unit/analysts/test_data_dictionary.py fails when it is stale.",
        "",
        f"Everything is registered in the SQL database `{DATABASE}` (`aegis sql`, `make sql`) and, without "
        "Spark, in DuckDB (`analysts.local.duckdb_connection`). Types are Spark SQL types.",
        "",
        "Time travel: every table is a Delta table, so `DESCRIBE HISTORY aegis.<table>` lists its versions and "
        "`SELECT ... FROM aegis.<table> VERSION AS OF <n>` (or `TIMESTAMP AS OF '<ts>'`) reads an old one, "
        "as long as the log entry is retained (`delta.logRetentionDuration`) and VACUUM has not removed its "
        "files (`delta.deletedFileRetentionDuration`).",
        "",
        "## Contents",
        "",
        "| name | kind | description |",
        "|---|---|---|",
    ]
    for name, contract in tables.items():
        lines.append(f"| [`{DATABASE}.{name}`](#{DATABASE}{name}) | table | {_cell(contract.description)} |")
    for view in VIEWS:
        lines.append(f"| [`{DATABASE}.{view.name}`](#{DATABASE}{view.name}) | view | {_cell(view.description)} |")
    lines += ["", "## Tables", ""]
    for name, contract in tables.items():
        partitioning = ", ".join(f"`{p}`" for p in contract.partition_by) or "none"
        keys = ", ".join(f"`{k}`" for k in contract.lookup_keys) or "none"
        lines += [
            f"### `{DATABASE}.{name}`",
            "",
            contract.description,
            "",
            f"- Delta table `{contract.name}` at `<lakehouse>/{contract.relative_path}`",
            f"- Partitioned by: {partitioning}",
            f"- Lookup keys (Z-ORDER): {keys}",
            f"- Retention: {contract.retention}",
        ]
        for key, value in sorted(contract.properties.items()):
            if key in ("delta.logRetentionDuration", "delta.deletedFileRetentionDuration"):
                lines.append(f"- `{key}` = `{value}`")
        lines += ["", "| column | type | nullable | description |", "|---|---|---|---|"]
        for c in contract.columns:
            nullable = "yes" if c.nullable else "no"
            lines.append(f"| `{c.name}` | `{c.dtype.simpleString()}` | {nullable} | {_cell(c.description)} |")
        lines.append("")
    lines += ["## Views", ""]
    for view in VIEWS:
        lines += [
            f"### `{DATABASE}.{view.name}`",
            "",
            view.description,
            "",
            "| column | type | description |",
            "|---|---|---|",
        ]
        for col in view.columns:
            lines.append(f"| `{col.name}` | `{col.dtype}` | {_cell(col.description)} |")
        lines += ["", "<details><summary>SQL</summary>", "", "```sql", view.query(), "```", "", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m analysts.dictionary [--write]``: print or rewrite docs/tables.md."""
    import argparse

    parser = argparse.ArgumentParser(description="render the Aegis data dictionary (docs/tables.md)")
    parser.add_argument("--write", action="store_true", help=f"rewrite {DICTIONARY_PATH}")
    args = parser.parse_args(argv)
    text = render_data_dictionary()
    if args.write:
        DICTIONARY_PATH.write_text(text)
        print(f"wrote {DICTIONARY_PATH}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
