"""`aegis train [--from D --to D] [--promote]` (and ``spark-submit jobs/train.py``).

silver.features + the labels known at training time (point in time) -> time split with label-delay
gaps -> ensemble + decision policy -> evaluation -> one MLflow run with the pyfunc registered;
``@champion`` moves only when the new version beats the current one on the same test period.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from features.catalog import declare_features, feature_version
from features.table import features_table
from jobs.base import JobContext
from jobs.kinds import TrainConfig
from jobs.pipeline import TargetSpan, featurize
from jobs.scoring import mlflow_client, resolve_model
from jobs.tables import feature_params
from lakehouse.delta_io import read_table, replace_range
from lakehouse.tables import LABELS, TRANSACTIONS
from models.metrics import average_precision
from models.pyfunc import load_scorer, log_model
from models.registry import CHAMPION, get_alias_version, promote_if_better, register
from models.scorer import AegisScorer
from models.training import TrainResult, plots, time_split, train_ensemble

log = logging.getLogger("aegis.train")
VALID_DAYS = 7
TEST_DAYS = 7


def _table_version(spark: SparkSession, path: str) -> int | None:
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row[0]) if row else None


def ensure_features(ctx: JobContext, first: date, last: date) -> tuple[int, bool]:
    """Build silver for the range with the batch engine when it lacks rows of the current version.

    Returns (rows in the range, whether they were computed now).
    """
    assert ctx.spark is not None
    spark, settings = ctx.spark, ctx.settings
    params = feature_params(settings)
    root = settings.lakehouse_root
    in_range = F.col("event_date").between(F.lit(first), F.lit(last))
    bronze_rows = read_table(spark, TRANSACTIONS, root).filter(in_range).count()
    silver_rows = (
        read_table(spark, features_table(params), root)
        .filter(in_range & (F.col("feature_version") == feature_version(params)))
        .count()
    )
    if silver_rows >= bronze_rows:
        return silver_rows, False
    log.info("train: silver has %d of %d rows for %s..%s; computing features in batch", silver_rows,
             bronze_rows, first, last)
    span = TargetSpan(first, last, in_range)
    rows = featurize(spark, settings, params, span, "backfill", ctx.run_id)
    replace_range(rows, features_table(params), root, f"event_date >= '{first}' AND event_date <= '{last}'")
    return bronze_rows, True


def training_frame(ctx: JobContext, first: date, last: date, as_of: datetime) -> pd.DataFrame:
    """Features joined with the labels reported by ``as_of``; only matured transactions."""
    assert ctx.spark is not None
    spark, settings = ctx.spark, ctx.settings
    params = feature_params(settings)
    root = settings.lakehouse_root
    delay = timedelta(days=settings.features.terminal_label_delay_days)
    names = [f.name for f in declare_features(params)]
    features = (
        read_table(spark, features_table(params), root)
        .filter(F.col("event_date").between(F.lit(first), F.lit(last)))
        .filter(F.col("feature_version") == feature_version(params))
        .filter(F.col("event_time") <= F.lit(as_of - delay))  # matured only; never "genuine by silence"
        .select("transaction_id", "customer_id", "event_time", "event_date", *names)
    )
    known = (
        read_table(spark, LABELS, root)
        .filter(F.col("reported_at") <= F.lit(as_of))
        .groupBy("transaction_id")
        .agg(F.max(F.col("is_fraud").cast("int")).alias("is_fraud"))
    )
    frame: pd.DataFrame = features.join(known, "transaction_id", "left").fillna({"is_fraud": 0}).toPandas()
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True).dt.tz_localize(None)
    frame["event_date"] = pd.to_datetime(frame["event_date"])
    return frame.sort_values("event_time", kind="stable").reset_index(drop=True)


def _range(ctx: JobContext, config: TrainConfig) -> tuple[date, date, datetime]:
    assert ctx.spark is not None
    bounds = (
        read_table(ctx.spark, TRANSACTIONS, ctx.settings.lakehouse_root)
        .agg(F.min("event_date"), F.max("event_date"), F.max("event_time"))
        .first()
    )
    if bounds is None or bounds[0] is None:
        raise ValueError("bronze.transactions is empty: import or simulate history first "
                         "(`aegis import FILE` or `aegis simulate --history 60`)")
    first = config.date_from or bounds[0]
    last = config.date_to or bounds[1]
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    labels_end = (
        read_table(ctx.spark, LABELS, ctx.settings.lakehouse_root).agg(F.max("reported_at")).first()
    )
    # Training happens "as of" the end of the window (or the last label known, if later data is absent).
    as_of_candidates = [datetime.combine(last + timedelta(days=1), datetime.min.time())]
    if labels_end and labels_end[0] is not None:
        as_of_candidates.append(labels_end[0].replace(tzinfo=None))
    return first, last, min(as_of_candidates)


def train(ctx: JobContext, config: TrainConfig) -> dict[str, Any]:
    """Train, evaluate, log and register; returns the summary."""
    assert ctx.spark is not None
    settings = ctx.settings
    first, last, as_of = _range(ctx, config)
    delay_days = settings.features.terminal_label_delay_days
    ensure_features(ctx, first, last)
    frame = training_frame(ctx, first, last, as_of)
    matured_end = pd.Timestamp(as_of) - pd.Timedelta(days=delay_days)
    test_to = matured_end.floor("D") + pd.Timedelta(days=1) if matured_end.floor("D") < matured_end else matured_end
    test_from = test_to - pd.Timedelta(days=TEST_DAYS)
    valid_from = test_from - pd.Timedelta(days=delay_days + VALID_DAYS)
    train_to = valid_from - pd.Timedelta(days=delay_days)
    train_from = pd.Timestamp(first)
    if train_to - train_from < pd.Timedelta(days=3):
        need = TEST_DAYS + VALID_DAYS + 2 * delay_days + 3 + delay_days
        raise ValueError(f"training window {first}..{last} is too short: need at least {need} days of history "
                         f"(3 train + gap {delay_days} + {VALID_DAYS} valid + gap + {TEST_DAYS} test + maturity)")
    split = time_split(frame, train_from, train_to, delay_days, valid_days=VALID_DAYS, test_days=TEST_DAYS)
    for name, part in (("train", split.train), ("validation", split.valid), ("test", split.test)):
        if part["is_fraud"].sum() == 0:
            raise ValueError(f"the {name} period has no fraud labels; widen --from/--to")
    names = [f.name for f in declare_features(feature_params(settings))]
    log.info("train: %d train / %d valid / %d test rows", len(split.train), len(split.valid), len(split.test))
    result = train_ensemble(split.train, split.valid, split.test, names, delay_days=delay_days, history=frame)
    return log_and_register(ctx, config, result, split, (first, last, as_of))


def _champion_metric(settings: Settings, client: mlflow.MlflowClient, test: pd.DataFrame,
                     names: list[str]) -> float | None:
    current = get_alias_version(client, settings.mlflow.model_name, CHAMPION)
    if current is None:
        return None
    model = resolve_model(settings, client, str(current.version))
    scorer = load_scorer(model.path)
    if list(scorer.feature_names) != names:
        return float("nan")  # a different feature set cannot be compared: the new model wins
    return average_precision(test["is_fraud"], scorer.score(test[names])["score"])


def log_and_register(ctx: JobContext, config: TrainConfig, result: TrainResult, split: Any,
                     window: tuple[date, date, datetime]) -> dict[str, Any]:
    """One MLflow run: params, metrics, lineage, plots and the registered pyfunc; then aliases."""
    assert ctx.spark is not None
    settings, spark = ctx.settings, ctx.spark
    params = feature_params(settings)
    client = mlflow_client(settings)
    experiment = mlflow.set_experiment(settings.mlflow.experiment)
    names = result.feature_names
    fv = feature_version(params)
    scorer = AegisScorer(result.ensemble, result.policy, names, fv)
    root = settings.lakehouse_root
    versions = {
        t.name: _table_version(spark, t.path(root)) for t in (TRANSACTIONS, LABELS, features_table(params))
    }
    first, last, as_of = window
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"train-{ctx.run_id}") as run:
        mlflow.log_params({k: v for k, v in result.params.items() if not isinstance(v, dict | list)})
        mlflow.log_params({
            "feature_version": fv, "window_from": str(first), "window_to": str(last), "as_of": str(as_of),
            "train_from": str(split.train_from), "train_to": str(split.train_to),
            "valid_from": str(split.valid_from), "valid_to": str(split.valid_to),
            "test_from": str(split.test_from), "test_to": str(split.test_to),
        })
        mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if np.isfinite(v)})
        mlflow.log_dict({"feature_ids": [f.id for f in declare_features(params)], "feature_version": fv,
                         "delta_table_versions": versions}, "lineage.json")
        contributions, _ = result.ensemble.explain(split.test[names].head(5000))
        figures = plots(split.test["is_fraud"], result.test_scores, contributions, names)
        with tempfile.TemporaryDirectory() as tmp:
            for fig_name, fig in figures.items():
                path = Path(tmp) / f"{fig_name}.png"
                fig.savefig(path, dpi=90)
                mlflow.log_artifact(str(path), "plots")
        info = log_model(scorer, "model", split.valid[names].head(50),
                         metadata={"train_run": ctx.run_id, "test_period": f"{split.test_from}..{split.test_to}"})
        version = register(client, settings.mlflow.model_name, info.model_uri, run_id=run.info.run_id,
                           tags={"feature_version": fv, "policy_version": result.policy.version})
    test_metric = float(result.metrics.get(config.promotion_metric, float("nan")))
    alias = "challenger"
    if config.promote:
        champion_metric = _champion_metric(settings, client, split.test, names)
        alias = promote_if_better(
            client, settings.mlflow.model_name, version.version, test_metric, champion_metric,
            metric_name=config.promotion_metric, test_period=f"{split.test_from}..{split.test_to}",
        )
    else:
        client.set_registered_model_alias(settings.mlflow.model_name, "challenger", str(version.version))
    summary = {
        "model": settings.mlflow.model_name, "version": str(version.version), "alias": alias,
        "run_id": run.info.run_id, "feature_version": fv, "policy_version": result.policy.version,
        "metrics": {k: round(float(v), 4) for k, v in result.metrics.items() if k.startswith("test_")},
    }
    log.info("train: registered %s version %s as @%s", settings.mlflow.model_name, version.version, alias)
    return summary


def run(settings: Settings, config: TrainConfig, spark: SparkSession | None = None,
        launched_by_spark_submit: bool = False) -> int:
    """`aegis train` entry point."""
    from lakehouse.session import create_session

    session = spark or create_session(settings, "train", launched_by_spark_submit)
    summary = train(JobContext(settings, session), config)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":  # spark-submit jobs/train.py [--profile P] [--set k=v]
    from jobs.submit import submit_main

    started = datetime.now(UTC)
    # Scheduled retraining promotes when better (`aegis train` only with --promote).
    sys.exit(submit_main("train", lambda s, spark: run(s, TrainConfig(promote=True), spark, True)))
