"""The nightly backfill: idempotent partition replacement, lineage, parity with the stream, maintenance."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from conf.settings import Settings
from features.catalog import feature_names
from features.table import features_table
from jobs import importer, simulate
from jobs.backfill import BackfillConfig, backfill, maintain, record_run
from jobs.base import JobContext
from jobs.pipeline import overtaken_by_late_arrivals
from jobs.scoring import ModelScorer
from jobs.tables import feature_params
from lakehouse.delta_io import read_table
from lakehouse.tables import RUN_LOG, SCORES
from sources.fixtures import write_handbook_fixture
from stream.query import await_queries, start
from tests.support import CUSTOMERS, TERMINALS, isolated_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FIXTURE_DAYS = (date(2018, 4, 1), date(2018, 4, 2), date(2018, 4, 3))


@pytest.fixture(scope="module")
def lake(spark, settings: Settings, kafka_broker, trained, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """An isolated lakehouse: 3 imported handbook-schema days plus live events through the stream,
    with the backfill of the old days running while the stream runs."""
    s = isolated_settings(settings, "backfill")
    kafka_broker.ensure_topics({s.kafka.topics.transactions: 2, s.kafka.topics.labels: 2, s.kafka.topics.scores: 2})
    fixture = write_handbook_fixture(tmp_path_factory.mktemp("handbook"), days=3)
    importer.run(s, importer.ImportConfig(paths=[str(fixture.parquet_path)]), spark)
    simulate.produce(s, simulate.SimulateConfig(rate=0, count=120, customers=CUSTOMERS, terminals=TERMINALS,
                                                seed=33))
    params = feature_params(s)
    queries = start(spark, s, params, ModelScorer(spark, s, params, "stream"))
    try:
        # The stream writes today's partitions while the backfill replaces the fixture's days.
        backfill(JobContext(s, spark, run_id="bf-first"),
                 BackfillConfig(date_from=FIXTURE_DAYS[0], date_to=FIXTURE_DAYS[-1]))
        await_queries(queries, max_seconds=240, until_idle=True, idle_seconds=5)
    finally:
        queries.stop()
    return s


def _frame(spark, s: Settings, table: str, day: date | None = None) -> pd.DataFrame:
    contract = SCORES if table == "gold" else features_table(feature_params(s))
    df = read_table(spark, contract, s.lakehouse_root)
    if day is not None:
        df = df.filter(F.col("event_date") == F.lit(day))
    return df.toPandas().set_index("transaction_id").sort_index()


def test_backfill_ran_alongside_the_stream(spark, lake: Settings) -> None:
    gold = _frame(spark, lake, "gold")
    assert set(gold["source"]) == {"stream", "backfill"}
    assert (gold[gold["source"] == "stream"]["event_date"] > FIXTURE_DAYS[-1]).all()
    assert len(gold[gold["source"] == "backfill"]) == 341  # every fixture transaction scored once


def test_lineage_on_backfilled_rows(spark, lake: Settings, trained) -> None:
    gold = _frame(spark, lake, "gold", FIXTURE_DAYS[1])
    assert set(gold["source"]) == {"backfill"} and set(gold["run_id"]) == {"bf-first"}
    assert set(gold["model_version"]) == {trained["version"]}
    assert gold["policy_version"].notna().all() and gold["feature_version"].notna().all()
    for _, row in gold.head(20).iterrows():
        assert abs(row["shap_expected_value"] + sum(row["shap_values"]) - row["score"]) < 1e-6


def test_backfill_twice_gives_the_same_tables_and_leaves_other_dates(spark, lake: Settings) -> None:
    before = {t: _frame(spark, lake, t) for t in ("silver", "gold")}
    ctx = JobContext(lake, spark, run_id="bf-second")
    backfill(ctx, BackfillConfig(date_from=FIXTURE_DAYS[1], date_to=FIXTURE_DAYS[1]))
    after = {t: _frame(spark, lake, t) for t in ("silver", "gold")}
    names = feature_names(feature_params(lake))
    for table in ("silver", "gold"):
        assert list(after[table].index) == list(before[table].index), table
        untouched = before[table][before[table]["event_date"] != FIXTURE_DAYS[1]]
        scalar = [c for c in untouched.columns if c not in ("shap_values", "top_reasons")]
        pd.testing.assert_frame_equal(after[table].loc[untouched.index, scalar], untouched[scalar])
        redone = after[table][after[table]["event_date"] == FIXTURE_DAYS[1]]
        assert set(redone["run_id"]) == {"bf-second"}
    np.testing.assert_array_equal(after["silver"][names].to_numpy(), before["silver"][names].to_numpy())
    np.testing.assert_array_equal(after["gold"]["score"].to_numpy(), before["gold"]["score"].to_numpy())


def test_backfill_reproduces_the_stream_exactly(spark, lake: Settings) -> None:
    streamed = {t: _frame(spark, lake, t) for t in ("silver", "gold")}
    live = streamed["gold"][streamed["gold"]["source"] == "stream"]
    days = sorted(set(live["event_date"]))
    silver = read_table(spark, features_table(feature_params(lake)), lake.lakehouse_root)
    overtaken = overtaken_by_late_arrivals(silver.filter(F.col("source") == "stream"), feature_params(lake))
    affected = pd.Index([r[0] for r in overtaken.collect()])
    backfill(JobContext(lake, spark, run_id="bf-parity"), BackfillConfig(date_from=days[0], date_to=days[-1]))
    redone = {t: _frame(spark, lake, t) for t in ("silver", "gold")}
    names = feature_names(feature_params(lake))
    assert len(affected) <= len(live) // 10, "the simulated traffic should be mostly in order"
    ids = live.index.difference(affected)
    assert set(redone["gold"].loc[live.index, "source"]) == {"backfill"}
    np.testing.assert_allclose(redone["silver"].loc[ids, names].to_numpy(),
                               streamed["silver"].loc[ids, names].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(redone["gold"].loc[ids, "score"].to_numpy(), live.loc[ids, "score"].to_numpy(),
                               rtol=0, atol=1e-12)
    assert (redone["gold"].loc[ids, "decision"] == live.loc[ids, "decision"]).all()


def test_maintenance_compacts_and_reports(spark, lake: Settings) -> None:
    report = maintain(JobContext(lake, spark), retention_hours=168)
    assert "gold.scores" in report and "silver.features" in report
    for name, sizes in report.items():
        assert sizes["files_after"] <= sizes["files_before"], name
    record_run(spark, lake, "maint-1", "maintain", "succeeded", datetime.now(UTC), {}, report)
    runs = read_table(spark, RUN_LOG, lake.lakehouse_root).filter(F.col("run_id") == "maint-1").count()
    assert runs == 1
    assert Path(lake.lakehouse_root, "gold", "scores", "_delta_log").exists()
