"""The analysts' side: the `aegis` SQL catalog and its views, `aegis sql`, time travel, DuckDB / polars
without Spark, and the notebooks executed end to end against a lakehouse with history, scores and labels."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from analysts.catalog import DATABASE, catalog_tables
from analysts.local import duckdb_connection, polars_frame
from analysts.spark import register_catalog
from analysts.views import VIEWS
from conf.settings import Settings
from features.table import features_table
from jobs import sql
from jobs.backfill import BackfillConfig, backfill, record_run
from jobs.base import JobConfig, JobContext
from jobs.cli import parse
from jobs.scoring import ModelScorer
from jobs.tables import feature_params
from lakehouse.delta_io import append_idempotent, read_table, replace_range
from lakehouse.tables import QUARANTINE, SCORES, TRANSACTIONS
from quality.validate import result_row, write_results
from tests.support import REPO, make_settings

pytestmark = pytest.mark.integration

TABLES = list(catalog_tables())
VIEW_NAMES = [v.name for v in VIEWS]
# Two days old enough for their labels to have matured (label delay: 7 days), so precision, recall and AUC exist.
DAYS = (datetime.now(UTC).date() - timedelta(days=9), datetime.now(UTC).date() - timedelta(days=8))
NOTEBOOKS = ("scores_and_decisions", "model_evaluation", "data_quality")


def _quarantine_rows(spark: Any, now: datetime) -> Any:
    rows = []
    for i, (reason, rules) in enumerate([
        ("between(amount): amount -5.0 outside [0, 1000000]", ["between(amount)"]),
        ("between(amount): amount -1.0 outside [0, 1000000]", ["between(amount)"]),
        ("missing field: customer_id", ["contract"]),
        ("in_set(currency): XXX", ["in_set(currency)", "contract"]),
    ]):
        at = now - timedelta(days=i % 2)
        rows.append((b"k", b"{}", "aegis.transactions", 0, 100 + i, at, f"bad-{i}", reason, rules, "stream", 7, at,
                     at.date()))
    return spark.createDataFrame(rows, QUARANTINE.schema)


@pytest.fixture(scope="module")
def lake(spark, settings: Settings, trained) -> dict[str, Any]:
    """An isolated copy of the trained fixture's bronze and silver, two matured days scored into gold (with
    SHAP), a few quarantined records and expectation results, one late transaction appended as a new Delta
    version, and the catalog registered."""
    home = settings.paths.home / "analysts"
    shutil.rmtree(home, ignore_errors=True)
    s = make_settings(settings.paths.home, paths__lakehouse=str(home / "lakehouse"),
                      paths__checkpoints=str(home / "checkpoints"))
    root = s.lakehouse_root
    for layer in ("bronze", "silver"):
        shutil.copytree(settings.lakehouse_root / layer, root / layer)
    ctx = JobContext(s, spark, run_id="analysts")
    started = datetime.now(UTC)
    summary = _score_days(ctx)
    record_run(spark, s, ctx.run_id, "backfill", "succeeded", started, {"from": str(DAYS[0])}, summary)

    now = datetime.now(UTC)
    append_idempotent(_quarantine_rows(spark, now), QUARANTINE, root, "analysts-quarantine", 0)
    results = [result_row("transactions", f"expect_column_values_to_not_be_null({col})", ok, critical, {"n": 1},
                          "analysts", now - timedelta(days=day), data_date=DAYS[1])
               for day in (0, 1) for col, ok, critical in (("amount", True, True), ("device_id", day == 1, False))]
    write_results(spark, s, results, "analysts-validation", 0)

    transactions = spark.read.format("delta").load(TRANSACTIONS.path(root))
    before = {"version": _version(spark, TRANSACTIONS.path(root)), "rows": transactions.count()}
    late = transactions.filter(F.col("event_date") == F.lit(DAYS[1])).limit(1)
    late = late.withColumn("transaction_id", F.lit("analysts-late-1")).withColumn("source", F.lit("import"))
    append_idempotent(late, TRANSACTIONS, root, "analysts-late", 0)

    names = register_catalog(spark, s)
    return {"settings": s, "names": names, "before": before, "model_version": summary["model"]["version"]}


def _score_days(ctx: JobContext) -> dict[str, Any]:
    """Fill gold for DAYS. Training already computed silver for the whole history, so only the backfill's
    scoring stage runs on it (the feature stage would take minutes on a loaded 2-core machine); without
    complete silver the whole backfill runs."""
    spark, s = ctx.spark, ctx.settings
    params = feature_params(s)
    in_range = F.col("event_date").between(F.lit(DAYS[0]), F.lit(DAYS[1]))
    features = read_table(spark, features_table(params), s.lakehouse_root).filter(in_range)
    if features.count() < read_table(spark, TRANSACTIONS, s.lakehouse_root).filter(in_range).count():
        return backfill(ctx, BackfillConfig(date_from=DAYS[0], date_to=DAYS[1]))
    scorer = ModelScorer(spark, s, params, "backfill", run_id=ctx.run_id)
    predicate = f"event_date >= '{DAYS[0]}' AND event_date <= '{DAYS[1]}'"
    replace_range(scorer(features), SCORES, s.lakehouse_root, predicate)
    model = scorer.current()
    return {"from": str(DAYS[0]), "to": str(DAYS[1]), "model": {"name": model.name, "version": model.version}}


def _version(spark: Any, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def _settings(lake: dict[str, Any]) -> Settings:
    return lake["settings"]


# ------------------------------------------------------------------------------------------ catalog


def test_catalog_lists_every_table_and_view(spark, lake) -> None:
    expected = [f"{DATABASE}.{n}" for n in TABLES + VIEW_NAMES]
    assert lake["names"] == expected
    listed = {t.name: t.tableType for t in spark.catalog.listTables(DATABASE)}
    assert {n: listed.get(n) for n in TABLES} == dict.fromkeys(TABLES, "EXTERNAL")
    assert {n: listed.get(n) for n in VIEW_NAMES} == dict.fromkeys(VIEW_NAMES, "VIEW")
    # Registering again (every `aegis sql` does) is a no-op that keeps the locations.
    assert register_catalog(spark, _settings(lake)) == expected
    location = spark.sql(f"DESCRIBE DETAIL {DATABASE}.scores").first()["location"]
    assert location.rstrip("/").endswith(str(_settings(lake).lakehouse_root / "gold" / "scores"))


@pytest.fixture(scope="module")
def duck(lake) -> Any:
    """The same lakehouse in DuckDB, no Spark."""
    return duckdb_connection(_settings(lake).lakehouse_root)


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.10g}")
    if isinstance(value, datetime):  # Spark gives naive local time, DuckDB aware UTC
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


@pytest.mark.parametrize("view", VIEWS, ids=VIEW_NAMES)
def test_every_view_answers_with_its_documented_columns_and_the_same_in_duckdb(spark, lake, duck, view) -> None:
    df = spark.sql(f"SELECT * FROM {DATABASE}.{view.name}")
    assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == [(c.name, c.dtype) for c in view.columns]
    comments = {f.name: f.metadata.get("comment") for f in df.schema.fields}
    assert comments == {c.name: c.description for c in view.columns}
    rows = sorted(tuple(_normalise(v) for v in r) for r in df.collect())
    assert rows, view.name
    # The view SQL is portable: DuckDB (deltalake -> Arrow) answers exactly the same rows.
    key = view.column_names
    duck_rows = duck.sql(f"SELECT {', '.join(key)} FROM {view.name}").to_arrow_table().to_pylist()
    assert sorted(tuple(_normalise(r[k]) for k in key) for r in duck_rows) == rows


def test_daily_summary_and_model_performance_add_up(spark, lake) -> None:
    daily = {r["event_date"]: r for r in spark.sql(f"SELECT * FROM {DATABASE}.daily_summary").collect()}
    for day in DAYS:
        row = daily[day]
        late = 1 if day == DAYS[1] else 0
        assert row["scored"] == row["transactions"] - late > 0
        assert row["allowed"] + row["reviewed"] + row["blocked"] == row["scored"]
        assert row["matured_scored"] == row["scored"]  # both days are older than the label delay
        assert row["matured_frauds"] > 0 and 0 <= row["recall"] <= 1
        assert row["precision"] is None or 0 <= row["precision"] <= 1
    perf = {str(r["event_date"]): r for r in spark.sql(f"SELECT * FROM {DATABASE}.model_performance").collect()}
    assert {(d, r["model_version"]) for d, r in perf.items()} == {(str(d), lake["model_version"]) for d in DAYS}
    # Recomputed independently (pandas + scikit-learn) from the tables.
    labels = spark.table(f"{DATABASE}.labels").groupBy("transaction_id").agg(
        F.max(F.col("is_fraud").cast("int")).alias("is_fraud"))
    frame = (spark.table(f"{DATABASE}.scores").join(labels, "transaction_id", "left").fillna({"is_fraud": 0})
             .select(F.col("event_date").cast("string").alias("day"), "score", "decision", "is_fraud").toPandas())
    for day, part in frame.groupby("day"):
        y, flagged = part["is_fraud"].to_numpy(), part["decision"].isin(["review", "block"]).to_numpy()
        r, d = perf[day], daily[date.fromisoformat(day)]
        assert r["matured"] == len(part) and r["frauds"] == d["matured_frauds"] == y.sum()
        assert r["auc"] == pytest.approx(roc_auc_score(y, part["score"]))
        assert r["flagged"] == d["reviewed"] + d["blocked"] == flagged.sum()
        assert d["recall"] == pytest.approx((y & flagged).sum() / y.sum())
        assert d["precision"] == pytest.approx((y & flagged).sum() / flagged.sum())
        assert d["frauds_confirmed"] >= d["matured_frauds"]


# ---------------------------------------------------------------------------------------- aegis sql


def _cli(argv: list[str]) -> JobConfig:
    """The typed job config the ``aegis`` CLI builds from ``argv``."""
    return parse(argv)


def test_aegis_sql_prints_a_table(spark, lake) -> None:
    out = io.StringIO()
    query = f"SELECT event_date, scored, precision FROM {DATABASE}.daily_summary WHERE scored > 0 ORDER BY event_date"
    assert sql.run(_settings(lake), query, stdout=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split(" | ") == ["event_date", "scored", "precision"]
    assert [line.split(" | ")[0] for line in lines[2:4]] == [str(d) for d in DAYS]
    assert lines[-1] == "(2 rows)"
    assert spark.catalog.currentDatabase() == "default"  # the shared session is left as found


def test_aegis_sql_writes_csv_and_parquet(spark, lake, tmp_path: Path, capsys) -> None:
    query = f"SELECT transaction_id, score, decision, top_reasons FROM {DATABASE}.scores"
    expected = spark.sql(query).count()
    job = _cli(["sql", query, "--out", str(tmp_path / "scores.csv")])
    assert job.run(_settings(lake)) == 0
    table = pacsv.read_csv(tmp_path / "scores.csv")
    assert table.num_rows == expected and table.column_names == ["transaction_id", "score", "decision", "top_reasons"]
    assert json.loads(table["top_reasons"][0].as_py())[0].keys() == {"feature", "value", "contribution"}
    job = _cli(["sql", query, "--out", str(tmp_path / "scores.parquet")])
    assert job.run(_settings(lake)) == 0
    assert pq.read_table(tmp_path / "scores.parquet").num_rows == expected
    assert f"wrote {expected:,} rows" in capsys.readouterr().err


def test_aegis_sql_reports_bad_sql(lake, capsys) -> None:
    assert sql.run(_settings(lake), "SELECT nope FROM aegis.scores") == 1
    assert "nope" in capsys.readouterr().err


def test_sql_shell_reads_statements_until_quit(lake) -> None:
    script = (
        "SELECT COUNT(*) AS n\n  FROM aegis.scores;\n"
        "\\d\n"
        "SELECT 'a;b' AS s; -- two statements on one line\n"
        "SELECT missing_column FROM aegis.scores;\n"
        "\\q\n"
        "SELECT 'after quit';\n"
    )
    out = io.StringIO()
    assert sql.shell(_settings(lake), stdin=io.StringIO(script), stdout=out) == 1  # one statement failed
    text = out.getvalue()
    assert "daily_summary" in text and "transactions" in text and "a;b" in text
    assert "error:" in text and "after quit" not in text


def test_time_travel_and_history(spark, lake) -> None:
    before = lake["before"]
    count = spark.sql(f"SELECT COUNT(*) FROM {DATABASE}.transactions VERSION AS OF {before['version']}").first()[0]
    assert count == before["rows"]
    assert spark.table(f"{DATABASE}.transactions").count() == before["rows"] + 1
    history = spark.sql(f"DESCRIBE HISTORY {DATABASE}.transactions").collect()
    assert history[0]["version"] == before["version"] + 1 and history[0]["operation"] == "WRITE"
    out = io.StringIO()
    query = (f"SELECT COUNT(*) AS n FROM {DATABASE}.transactions VERSION AS OF {before['version']} "
             f"WHERE transaction_id = 'analysts-late-1'")
    assert sql.run(_settings(lake), query, stdout=out) == 0
    assert out.getvalue().splitlines()[2].strip() == "0"


# ------------------------------------------------------------------------------------ without Spark


def test_duckdb_and_polars_read_what_spark_reads(spark, lake, duck) -> None:
    root = _settings(lake).lakehouse_root
    for name in TABLES:
        spark_rows = spark.table(f"{DATABASE}.{name}").count()
        assert duck.sql(f"SELECT COUNT(*) FROM {DATABASE}.{name}").fetchall() == [(spark_rows,)], name
        assert polars_frame(root, name).select(pl.len()).collect().item() == spark_rows, name
    old = polars_frame(root, "transactions", version=lake["before"]["version"]).select("transaction_id").collect()
    assert old.height == lake["before"]["rows"]


# ---------------------------------------------------------------------------------------- notebooks


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aegis_notebooks_run", REPO / "notebooks" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _errors(nb: Any) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for cell in nb.cells for o in cell.get("outputs", [])
            if o.get("output_type") == "error"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_end_to_end(lake, name: str, tmp_path: Path) -> None:
    nb = _runner().execute_notebook(REPO / "notebooks" / f"{name}.ipynb", _settings(lake).lakehouse_root,
                                    tmp_path / "figures", timeout=300)
    assert not _errors(nb)
    figures = sorted(p.name for p in (tmp_path / "figures" / name).glob("*.png"))
    assert len(figures) >= 3, figures
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert "No scores yet" not in text and "Nothing quarantined" not in text


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_handles_an_empty_lakehouse(name: str, tmp_path: Path) -> None:
    nb = _runner().execute_notebook(REPO / "notebooks" / f"{name}.ipynb", tmp_path / "empty", tmp_path / "figures",
                                    timeout=300)
    assert not _errors(nb)
    assert list((tmp_path / "figures" / name).glob("*.png"))


def test_checked_in_notebooks_are_clean() -> None:
    import nbformat

    for name in NOTEBOOKS:
        nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert nb.cells[0].metadata.get("tags") == ["parameters"] and "AEGIS_LAKEHOUSE" in nb.cells[0].source
        assert nb.metadata["kernelspec"]["name"] == "python3"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), name
