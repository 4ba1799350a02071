"""The nightly data-quality gate: one day of bronze, silver and gold through the three suites with gx.

:func:`validate_day` validates ``bronze.transactions`` (event_date = day), ``silver.features`` and
``gold.scores`` of that day with the suites in conf/expectations through a file-backed gx context
(kept under ``var/run/great_expectations`` by default), appends one row per expectation to
``quality.validation_results``, and builds gx Data Docs (HTML) into ``quality.data_docs_dir``.
Everything is local: no network. The report names the failed critical expectations; the nightly
job fails when there are any (:meth:`NightlyQualityReport.raise_for_critical`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from features.catalog import FeatureParams
from features.table import features_table
from lakehouse.delta_io import read_table
from lakehouse.tables import SCORES, TRANSACTIONS, TableContract
from quality.suites import SUITE_NAMES, build_suite
from quality.validate import RESULT_FORMAT, add_examples, failed, quiet_context, rows_from_gx, write_results

log = logging.getLogger("aegis.quality")

SITE = "aegis_data_docs"
DATASOURCE = "aegis_nightly"


class QualityGateError(RuntimeError):
    """Critical expectations failed; the message names them."""


@dataclass
class NightlyQualityReport:
    """What the nightly validation of one day found."""

    day: date
    run_id: str
    rows: list[dict[str, Any]]
    rows_checked: dict[str, int] = field(default_factory=dict)
    data_docs_index: Path | None = None
    seconds: float = 0.0
    suite_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failed_critical(self) -> list[str]:
        """``suite: expectation`` of every failed critical expectation."""
        return failed(self.rows, critical_only=True)

    @property
    def failed_warnings(self) -> list[str]:
        """``suite: expectation`` of failed non-critical expectations (reported, not failing)."""
        return [f for f in failed(self.rows) if f not in self.failed_critical]

    @property
    def ok(self) -> bool:
        return not self.failed_critical

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (for ops.run_log)."""
        return {
            "date": str(self.day), "run_id": self.run_id, "expectations": len(self.rows),
            "rows_checked": self.rows_checked, "failed_critical": self.failed_critical,
            "failed_warnings": self.failed_warnings,
            "data_docs": str(self.data_docs_index) if self.data_docs_index else None,
            "seconds": round(self.seconds, 2), "suite_seconds": self.suite_seconds,
        }

    def raise_for_critical(self) -> dict[str, Any]:
        """The summary, or QualityGateError naming the failed critical expectations."""
        if self.failed_critical:
            raise QualityGateError(
                f"{len(self.failed_critical)} critical expectation(s) failed for {self.day}: "
                + "; ".join(self.failed_critical) + (f" (Data Docs: {self.data_docs_index})"
                                                     if self.data_docs_index else "")
            )
        return self.summary()


def _feature_params(settings: Settings) -> FeatureParams:
    f = settings.features
    return FeatureParams(f.timezone, f.terminal_label_delay_days, f.night_start_hour, f.night_end_hour)


def day_tables(settings: Settings) -> dict[str, TableContract]:
    """The table each suite validates."""
    return {"transactions": TRANSACTIONS, "features": features_table(_feature_params(settings)), "scores": SCORES}


def day_slice(spark: SparkSession, settings: Settings, suite: str, day: date) -> DataFrame:
    """The rows of ``day`` (event_date) of the table that ``suite`` validates."""
    contract = day_tables(settings)[suite]
    return read_table(spark, contract, settings.lakehouse_root).filter(F.col("event_date") == F.lit(day))


def docs_site_config(docs_dir: Path) -> dict[str, Any]:
    """A local filesystem Data Docs site rooted at ``docs_dir`` (absolute)."""
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }


def file_context(settings: Settings, gx_root: Path | None = None) -> Any:
    """A file-backed gx context (default ``<paths.run>/great_expectations``) with one Data Docs site
    writing into ``quality.data_docs_dir``."""
    import great_expectations as gx

    root = gx_root or settings.run_dir / "great_expectations"
    root.mkdir(parents=True, exist_ok=True)
    context = quiet_context(gx.get_context(mode="file", project_root_dir=str(root)))
    docs_dir = settings.path(settings.quality.data_docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    sites = context.list_data_docs_sites()
    for name in list(sites):
        if name != SITE:
            context.delete_data_docs_site(name)
    if SITE in context.list_data_docs_sites():
        context.update_data_docs_site(SITE, docs_site_config(docs_dir))
    else:
        context.add_data_docs_site(SITE, docs_site_config(docs_dir))
    return context


def _checkpoint(context: Any, suite_name: str, now: datetime) -> Any:
    """(Re)register datasource asset, suite, validation definition and checkpoint for one suite."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    source = context.data_sources.get(DATASOURCE)
    asset = source.add_dataframe_asset(name=suite_name)
    batch_definition = asset.add_batch_definition_whole_dataframe("day")
    suite = context.suites.add_or_update(build_suite(suite_name, now))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"nightly-{suite_name}", data=batch_definition, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"nightly-{suite_name}",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs", site_names=[SITE])],
            result_format=RESULT_FORMAT,
        )
    )


def validate_day(
    spark: SparkSession, settings: Settings, day: date, run_id: str, suites: tuple[str, ...] = SUITE_NAMES,
    gx_root: Path | None = None, now: datetime | None = None,
) -> NightlyQualityReport:
    """Validate ``day`` of each suite's table with gx, store the results, build Data Docs."""
    import great_expectations as gx

    started = time.monotonic()
    validated_at = now or datetime.now(UTC)
    context = file_context(settings, gx_root)
    if DATASOURCE in context.data_sources.all():  # assets are re-added for this run's suites
        context.data_sources.delete(DATASOURCE)
    context.data_sources.add_spark(DATASOURCE, persist=False)
    rows: list[dict[str, Any]] = []
    checked: dict[str, int] = {}
    timings: dict[str, float] = {}
    for name in suites:
        suite_started = time.monotonic()
        df = day_slice(spark, settings, name, day).persist()
        try:
            checked[name] = df.count()
            checkpoint = _checkpoint(context, name, validated_at)
            result = checkpoint.run(
                batch_parameters={"dataframe": df},
                run_id=gx.RunIdentifier(run_name=f"{day}-{run_id}", run_time=validated_at),
            )
            suite_rows: list[dict[str, Any]] = []
            for validation in result.run_results.values():
                suite_rows += rows_from_gx(validation, name, run_id, validated_at, data_date=day)
            rows += add_examples(df, name, suite_rows, validated_at)
        finally:
            df.unpersist()
        timings[name] = round(time.monotonic() - suite_started, 2)
        log.info("quality %s: %s: %s rows, %d expectations in %.1fs", day, name, f"{checked[name]:,}",
                 len(suite_rows), timings[name])
    index = settings.path(settings.quality.data_docs_dir) / "index.html"
    if not index.exists():
        context.build_data_docs(site_names=[SITE])
    write_results(spark, settings, rows, f"quality.nightly.{run_id}.{day}", 0)
    report = NightlyQualityReport(day, run_id, rows, checked, index if index.exists() else None,
                                  time.monotonic() - started, timings)
    if report.failed_critical:
        log.error("quality %s: critical expectations failed: %s", day, "; ".join(report.failed_critical))
    return report
