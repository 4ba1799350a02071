"""`aegis backfill --from D --to D [--model ALIAS|VERSION]`, `aegis maintain`, `aegis nightly`.

The backfill recomputes silver.features and gold.scores for an event-date range from bronze with
the stream's own feature engine and scoring UDF, and replaces exactly those date partitions in
one Delta commit per table (replaceWhere). Run it under spark-submit as ``jobs/backfill.py``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from features.table import features_table
from jobs.base import JobContext, SparkProgress
from jobs.kinds import BackfillConfig
from jobs.pipeline import TargetSpan, featurize
from jobs.scoring import ModelScorer
from jobs.tables import feature_params
from lakehouse.delta_io import append_idempotent, replace_range
from lakehouse.tables import RUN_LOG, SCORES, TableContract, all_tables

log = logging.getLogger("aegis.backfill")


def _range_predicate(first: date, last: date) -> str:
    return f"event_date >= '{first}' AND event_date <= '{last}'"


def backfill(ctx: JobContext, config: BackfillConfig) -> dict[str, Any]:
    """Recompute features and scores for the range; returns the summary."""
    if config.date_to < config.date_from:
        raise ValueError(f"--to {config.date_to} is before --from {config.date_from}")
    assert ctx.spark is not None
    settings, spark = ctx.settings, ctx.spark
    params = feature_params(settings)
    root = settings.lakehouse_root
    first, last = config.date_from, config.date_to
    predicate = _range_predicate(first, last)
    summary: dict[str, Any] = {"from": str(first), "to": str(last), "run_id": ctx.run_id, "stages": {}}

    started = time.monotonic()
    log.info("backfill %s: stage 1/2 features for %s..%s", ctx.run_id, first, last)
    span = TargetSpan(first, last, F.col("event_date").between(F.lit(first), F.lit(last)))
    features = featurize(spark, settings, params, span, "backfill", ctx.run_id).persist()
    with SparkProgress(spark, f"backfill {ctx.run_id}: features"):
        rows = features.count()
        replace_range(features, features_table(params), root, predicate)
    summary["stages"]["features"] = {"rows": rows, "seconds": round(time.monotonic() - started, 2)}
    log.info("backfill %s: features %s rows in %.1fs", ctx.run_id, f"{rows:,}", time.monotonic() - started)

    if config.score:
        started = time.monotonic()
        log.info("backfill %s: stage 2/2 scores with SHAP for %s rows", ctx.run_id, f"{rows:,}")
        scorer = ModelScorer(spark, settings, params, "backfill", ref=config.model, run_id=ctx.run_id)
        scores = scorer(features)
        with SparkProgress(spark, f"backfill {ctx.run_id}: scores with SHAP", rows=rows):
            replace_range(scores, SCORES, root, predicate)
        model = scorer.current()
        summary["model"] = {"name": model.name, "version": model.version}
        summary["stages"]["scores"] = {"rows": rows, "seconds": round(time.monotonic() - started, 2)}
        log.info("backfill %s: scores done in %.1fs", ctx.run_id, time.monotonic() - started)
    features.unpersist()
    if config.resync_serving:
        summary["serving"] = resync_serving(spark, settings, first, last)
    return summary


def resync_serving(spark: SparkSession, settings: Settings, first: date, last: date) -> dict[str, Any]:
    """Re-sync the replaced dates into the serving store; an unreachable store is reported, not fatal
    (the Delta tables are the truth: `aegis serving resync --from D --to D` catches up later)."""
    import psycopg

    from serving.sync import resync

    try:
        return resync(spark, settings, first, last, features=features_table(feature_params(settings)))
    except psycopg.OperationalError as exc:
        log.warning("backfill: serving store unreachable, not re-synced (run `aegis serving resync --from %s "
                    "--to %s`): %s", first, last, str(exc).strip().splitlines()[0] if str(exc) else exc)
        return {"skipped": "serving store unreachable"}


def record_run(spark: SparkSession, settings: Settings, run_id: str, job: str, status: str,
               started_at: datetime, params: dict[str, Any], summary: dict[str, Any]) -> None:
    """Append the run's summary to ops.run_log (lineage for operators and analysts)."""
    row = [(run_id, job, status, started_at, datetime.now(UTC), json.dumps(params, default=str),
            json.dumps(summary, default=str))]
    df = spark.createDataFrame(row, RUN_LOG.schema)
    append_idempotent(df, RUN_LOG, settings.lakehouse_root, f"run-log.{run_id}", 0)


def _table_size(spark: SparkSession, path: str) -> tuple[int, int]:
    detail = DeltaTable.forPath(spark, path).detail().select("numFiles", "sizeInBytes").first()
    return (int(detail[0]), int(detail[1])) if detail else (0, 0)


def maintain(ctx: JobContext, retention_hours: int = 168, zorder: bool = True) -> dict[str, Any]:
    """OPTIMIZE (+ Z-ORDER on lookup keys) and VACUUM every table; files and bytes before/after."""
    assert ctx.spark is not None
    spark = ctx.spark
    report: dict[str, Any] = {}
    contracts: list[TableContract] = all_tables(features_table(feature_params(ctx.settings)))
    for contract in contracts:
        path = contract.path(ctx.settings.lakehouse_root)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        files_before, bytes_before = _table_size(spark, path)
        table = DeltaTable.forPath(spark, path)
        keys = [k for k in contract.lookup_keys if k not in contract.partition_by]
        optimizer = table.optimize()
        if zorder and keys:
            optimizer.executeZOrderBy(*keys)
        else:
            optimizer.executeCompaction()
        table.vacuum(retention_hours / 1.0)
        files_after, bytes_after = _table_size(spark, path)
        report[contract.name] = {
            "files_before": files_before, "files_after": files_after,
            "bytes_before": bytes_before, "bytes_after": bytes_after, "zorder_by": keys,
        }
        log.info("maintain %s: files %d -> %d, bytes %s -> %s", contract.name, files_before, files_after,
                 f"{bytes_before:,}", f"{bytes_after:,}")
    return report


def nightly_quality(ctx: JobContext, day: date) -> dict[str, Any]:
    """Validate the day's bronze/silver/gold and build Data Docs; fails the step on a critical expectation."""
    from quality.nightly import validate_day

    assert ctx.spark is not None
    return validate_day(ctx.spark, ctx.settings, day, ctx.run_id).raise_for_critical()


def run(settings: Settings, config: BackfillConfig, spark: SparkSession | None = None,
        launched_by_spark_submit: bool = False) -> int:
    """`aegis backfill` entry point."""
    from lakehouse.session import create_session

    session = spark or create_session(settings, "backfill", launched_by_spark_submit)
    ctx = JobContext(settings, session)
    started_at = datetime.now(UTC)
    try:
        summary = backfill(ctx, config)
    except Exception as exc:
        record_run(session, settings, ctx.run_id, "backfill", "failed", started_at, config.model_dump(),
                   {"error": str(exc)})
        raise
    record_run(session, settings, ctx.run_id, "backfill", "succeeded", started_at, config.model_dump(), summary)
    print(json.dumps(summary, default=str))
    return 0


def run_maintain(settings: Settings, retention_hours: int, spark: SparkSession | None = None) -> int:
    """`aegis maintain` entry point."""
    from lakehouse.session import create_session

    session = spark or create_session(settings, "maintain")
    ctx = JobContext(settings, session)
    started_at = datetime.now(UTC)
    report = maintain(ctx, retention_hours)
    record_run(session, settings, ctx.run_id, "maintain", "succeeded", started_at,
               {"retention_hours": retention_hours}, report)
    print(json.dumps(report))
    return 0


def run_nightly(settings: Settings, day: date | None, retrain: bool, spark: SparkSession | None = None) -> int:
    """Backfill yesterday, maintain, (optionally) retrain; non-zero with a summary if a step fails."""
    from lakehouse.session import create_session

    target = day or (datetime.now(UTC).date() - timedelta(days=1))
    session = spark or create_session(settings, "nightly")
    ctx = JobContext(settings, session)
    started_at = datetime.now(UTC)
    steps: dict[str, Any] = {}
    failed = False
    plan = [
        ("backfill", lambda: backfill(ctx, BackfillConfig(date_from=target, date_to=target))),
        ("quality", lambda: nightly_quality(ctx, target)),
        ("maintain", lambda: maintain(ctx)),
    ]
    if retrain:
        from jobs import train

        plan.append(("train", lambda: train.train(ctx, train.TrainConfig(promote=True))))
    for name, step in plan:
        try:
            steps[name] = {"status": "succeeded", "result": step()}
        except Exception as exc:  # each step commits on its own; later steps still run
            failed = True
            steps[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            log.error("nightly %s: step %s failed: %s", target, name, exc)
    status = "failed" if failed else "succeeded"
    record_run(session, settings, ctx.run_id, "nightly", status, started_at, {"date": str(target)}, steps)
    print(json.dumps({"date": str(target), "status": status,
                      "steps": {k: v["status"] for k, v in steps.items()}}))
    for name, value in steps.items():
        if value["status"] == "failed":
            print(f"nightly: step {name} failed: {value['error']} (re-run `aegis nightly --date {target}`)",
                  file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":  # spark-submit jobs/backfill.py --from D --to D [--profile P]
    import argparse

    from jobs.submit import submit_main

    cli = argparse.ArgumentParser()
    cli.add_argument("--from", dest="date_from", required=True, type=date.fromisoformat)
    cli.add_argument("--to", dest="date_to", required=True, type=date.fromisoformat)
    cli.add_argument("--model")
    known, _ = cli.parse_known_args()
    cfg = BackfillConfig(date_from=known.date_from, date_to=known.date_to, model=known.model)
    sys.exit(submit_main("backfill", lambda s, spark: run(s, cfg, spark, True)))
