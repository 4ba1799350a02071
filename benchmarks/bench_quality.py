"""`make bench-quality`: model quality on the handbook data, with the handbook's protocol.

The handbook (1.17 M transactions, 2018-04-01..07-31) is imported with ``jobs.importer`` (7-day
label delay) into an isolated lakehouse (default ``var/bench/quality/lakehouse``) and featurized
by our feature engine (``jobs.pipeline.featurize`` -> ``features.engine.compute_features``, the
backfill path) into silver. A second run reuses bronze and silver when they are complete, so it
only reads the features and trains.

Two models, trained on the same rows, evaluated on the same test week (2018-07-15..07-21, after
the 7-day label delay 07-08..07-14):

* ``ensemble``: ``models.training.train_ensemble`` (LightGBM + RandomForest + IsolationForest,
  production hyper-parameters) on all declared features. It needs a validation set (GBM
  rounds by early stopping, stacking weights): the last days of the training period, in time
  order, without a gap (their labels are known at test time too). Once rounds and weights are
  chosen, the members are refitted on the whole training period (``refit=True``);
* ``random_forest``: scikit-learn ``RandomForestClassifier(n_estimators=100, random_state=0,
  n_jobs=2)`` on the handbook's 15 baseline features (``features.catalog.HANDBOOK_FEATURES``),
  the handbook's baseline recipe, fitted on the whole training period.

Protocols (training periods; the test week is the same):

* ``july_week``: 2018-07-01..07-07 (the handbook's one-week protocol shifted into our months);
  ensemble validation 07-06..07-07 (members first fit on 07-01..07-05, then refitted on the week);
* ``all_history``: 2018-05-08..07-07, i.e. everything before the test period except the first
  37 days (the features' longest look-back, 30 days + the 7-day terminal delay) as warm-up;
  ensemble validation 07-01..07-07 (production's 7 validation days; members first fit on
  05-08..06-30, then refitted on the whole period).

Test set: the handbook filter (``models.metrics.handbook_test_filter``): on each test day, leave
out customers with a fraud in 2018-07-01..(day - 8), i.e. known compromised since the training
week. The same filtered test set is used for both protocols so their figures are comparable.
Metrics: AUC ROC, average precision and the handbook's card precision@100 (daily, detected
cards removed from later days, averaged over the 7 test days).

Human-readable table on stdout, progress on stderr, one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = REPO.parent / "shared" / "data" / "handbook"
sys.path.insert(0, str(REPO))

log = logging.getLogger("aegis.bench.quality")

DELAY_DAYS = 7
TEST_FROM = date(2018, 7, 15)
TEST_TO = date(2018, 7, 21)  # inclusive
FILTER_HISTORY_FROM = date(2018, 7, 1)  # "known compromised" = frauds since the July training week
FEATURES_FROM = date(2018, 5, 8)  # silver rows needed from here (2018-04-01 + 37 days of look-back)
LABELS_AS_OF = datetime(2018, 7, 29)  # every label of the test week is reported by then (7-day delay)
CARD_K = 100

# Handbook chapter 3, random forest, trained 2018-07-25..07-31, tested 2018-08-08..08-14 (their README).
PUBLISHED_RF = {"auc_roc": 0.867, "average_precision": 0.658, "card_precision_at_100": 0.287}


@dataclass(frozen=True)
class Protocol:
    """A training period ``[train_from, train_to]`` whose last days from ``valid_from`` validate."""

    name: str
    train_from: date
    valid_from: date
    train_to: date  # inclusive

    def describe(self) -> str:
        fit_to = self.valid_from - timedelta(days=1)
        return (f"train {self.train_from}..{self.train_to} (ensemble: rounds and stacking weights chosen with "
                f"members fit on {self.train_from}..{fit_to} and validated on {self.valid_from}..{self.train_to}, "
                "then members refitted on the whole period)")


PROTOCOLS = (
    Protocol("july_week", date(2018, 7, 1), date(2018, 7, 6), date(2018, 7, 7)),
    Protocol("all_history", FEATURES_FROM, date(2018, 7, 1), date(2018, 7, 7)),
)


def _stage(message: str) -> float:
    log.info(message)
    return time.monotonic()


def _settings(root: Path) -> Any:
    from conf.settings import load_settings

    return load_settings("local", environ={}, overrides={
        "paths": {
            "home": str(REPO),
            "lakehouse": str(root / "lakehouse"),
            "checkpoints": str(root / "lakehouse" / "_checkpoints"),
            "run": str(root / "run"),
            "cache": str(REPO / ".cache"),
        },
        "spark": {"master": "local[2]", "driver_memory": "4g"},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_root": str(root / "mlflow")},
    })


def _handbook_files() -> list[Path]:
    return sorted(HANDBOOK.glob("transactions-*.parquet"))


def _handbook_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def ensure_bronze(spark: Any, settings: Any, files: list[Path]) -> dict[str, Any]:
    """Import the handbook unless bronze already holds every transaction and label."""
    from jobs import importer
    from lakehouse.delta_io import table_status
    from lakehouse.tables import LABELS, TRANSACTIONS

    expected = _handbook_rows(files)
    root = settings.lakehouse_root
    have_tx = table_status(spark, TRANSACTIONS, root).rows or 0
    have_labels = table_status(spark, LABELS, root).rows or 0
    if have_tx >= expected and have_labels >= expected:
        log.info("bronze: reusing %s transactions and %s labels in %s", f"{have_tx:,}", f"{have_labels:,}", root)
        return {"rows": have_tx, "imported": False, "seconds": 0.0}
    started = _stage(f"bronze: importing {len(files)} handbook files ({expected:,} rows) into {root} "
                     "(7-day label delay; a few minutes)")
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the table and the JSON line
        importer.run(settings, importer.ImportConfig(paths=[str(f) for f in files], label_delay="7d"), spark)
    return {"rows": expected, "imported": True, "seconds": round(time.monotonic() - started, 1)}


def ensure_silver(spark: Any, settings: Any, first: date, last: date) -> dict[str, Any]:
    """silver.features for ``first..last`` from our engine (the train job's own step), unless silver has them."""
    from jobs.base import JobContext
    from jobs.train import ensure_features

    started = _stage(f"silver: features {first}..{last} with the feature engine (backfill path; several minutes on"
                     " 2 cores unless already there)")
    rows, computed = ensure_features(JobContext(settings, spark, run_id="bench-quality"), first, last)
    seconds = time.monotonic() - started
    log.info("silver: %s rows (%s) in %.1fs", f"{rows:,}", "computed" if computed else "reused", seconds)
    return {"rows": rows, "computed": computed, "seconds": round(seconds, 1) if computed else 0.0}


def load_frame(spark: Any, settings: Any, first: date, last: date) -> pd.DataFrame:
    """Silver features joined with the labels reported by ``LABELS_AS_OF`` (the train job's reader)."""
    from jobs.base import JobContext
    from jobs.train import training_frame

    frame = training_frame(JobContext(settings, spark, run_id="bench-quality"), first, last, LABELS_AS_OF)
    frame["is_fraud"] = frame["is_fraud"].astype(np.int64)
    return frame


def _between(frame: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    days = frame["event_date"].dt.date
    return frame.loc[((days >= first) & (days <= last)).to_numpy()]


def quality(test: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """AUC ROC, average precision and card precision@100 on the (filtered) test set."""
    from models.metrics import auc_roc, average_precision, card_precision_at_k

    scored = test[["event_date", "customer_id", "is_fraud"]].assign(score=scores)
    return {
        "auc_roc": auc_roc(test["is_fraud"], scores),
        "average_precision": average_precision(test["is_fraud"], scores),
        f"card_precision_at_{CARD_K}": card_precision_at_k(scored, CARD_K),
    }


def run_protocol(protocol: Protocol, frame: pd.DataFrame, test: pd.DataFrame, history: pd.DataFrame,
                 all_features: list[str], handbook_features: list[str]) -> dict[str, Any]:
    """Train both models on the protocol's period and score the test set."""
    from sklearn.ensemble import RandomForestClassifier

    from models.training import train_ensemble

    rows = _between(frame, protocol.train_from, protocol.train_to)
    fit = rows.loc[(rows["event_date"].dt.date < protocol.valid_from).to_numpy()]
    valid = rows.loc[(rows["event_date"].dt.date >= protocol.valid_from).to_numpy()]
    out: dict[str, Any] = {
        "train_from": str(protocol.train_from), "train_to": str(protocol.train_to),
        "ensemble_fit_to": str(protocol.valid_from - timedelta(days=1)),
        "ensemble_valid_from": str(protocol.valid_from),
        "train_rows": len(rows), "train_frauds": int(rows["is_fraud"].sum()),
        "ensemble_fit_rows": len(fit), "ensemble_valid_rows": len(valid),
        "ensemble_valid_frauds": int(valid["is_fraud"].sum()),
    }

    started = _stage(f"{protocol.name}: ensemble on {len(all_features)} features, {len(fit):,} fit + "
                     f"{len(valid):,} validation rows")
    result = train_ensemble(fit, valid, test, all_features, delay_days=DELAY_DAYS, history=history)
    seconds = time.monotonic() - started
    out["ensemble"] = {
        **quality(test, result.test_scores),
        "fit_seconds": round(seconds, 1),
        "gbm_trees": result.ensemble.gbm_n_trees,
        "forest_trees": result.ensemble.forest_n_trees,
        "iso_trees": result.ensemble.iso_n_trees,
        "refit": result.ensemble.refit,
        "n_features": len(all_features),
    }
    log.info("%s: ensemble done in %.1fs (%d GBM trees kept, stacking weights %s)", protocol.name, seconds,
             result.ensemble.gbm_n_trees, result.ensemble.weights)

    started = _stage(f"{protocol.name}: random forest (100 trees, n_jobs=2) on the 15 handbook features, "
                     f"{len(rows):,} rows")
    forest = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=2)
    forest.fit(rows[handbook_features].to_numpy(dtype=np.float64), rows["is_fraud"].to_numpy())
    scores = forest.predict_proba(test[handbook_features].to_numpy(dtype=np.float64))[:, 1]
    seconds = time.monotonic() - started
    out["random_forest"] = {**quality(test, scores), "fit_seconds": round(seconds, 1),
                            "n_features": len(handbook_features)}
    log.info("%s: random forest done in %.1fs", protocol.name, seconds)
    return out


def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def table(results: dict[str, Any]) -> str:
    """The markdown table (both protocols, both models, the published RF row for context)."""
    cp = f"card_precision_at_{CARD_K}"
    lines = [
        "| protocol (training period) | model | features | AUC ROC | Average precision | Card precision@100 |",
        "|---|---|---|---|---|---|",
    ]
    labels = {"july_week": "July week (07-01..07-07)", "all_history": "all history (05-08..07-07)"}
    for name, res in results["protocols"].items():
        for key, model, feats in (("ensemble", "Aegis ensemble", f"all {res['ensemble']['n_features']}"),
                                  ("random_forest", "random forest (handbook recipe)", "handbook 15")):
            m = res[key]
            lines.append(f"| {labels[name]} | {model} | {feats} | {_fmt(m['auc_roc'])} | "
                         f"{_fmt(m['average_precision'])} | {_fmt(m[cp])} |")
    p = PUBLISHED_RF
    lines.append(f"| *published, their test week 08-08..08-14 (train 07-25..07-31)* | random forest | handbook 15 | "
                 f"{p['auc_roc']:.3f} | {p['average_precision']:.3f} | {p[cp]:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last stdout line is a JSON summary."""
    from features.catalog import HANDBOOK_FEATURES, feature_names
    from jobs.base import configure_logging
    from models.metrics import handbook_test_filter

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "var" / "bench" / "quality",
                        help="folder of the isolated lakehouse (reused when complete)")
    parser.add_argument("--rebuild", action="store_true", help="delete --root first (re-import, re-featurize)")
    args = parser.parse_args(argv)
    configure_logging("INFO")
    total_started = time.monotonic()

    files = _handbook_files()
    if not files:
        print(f"bench-quality: no handbook files in {HANDBOOK}", file=sys.stderr)
        return 2
    root = args.root.resolve()
    if args.rebuild:
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    settings = _settings(root)
    if settings.features.terminal_label_delay_days != DELAY_DAYS:
        raise SystemExit("bench-quality assumes features.terminal_label_delay_days = 7 (the handbook's delay)")

    from lakehouse.session import create_session

    _stage(f"spark: starting a {settings.spark.master} session over {settings.lakehouse_root}")
    spark = create_session(settings, "bench-quality")
    try:
        bronze = ensure_bronze(spark, settings, files)
        silver = ensure_silver(spark, settings, FEATURES_FROM, TEST_TO)
        started = _stage(f"read: silver {FEATURES_FROM}..{TEST_TO} joined with labels into pandas")
        frame = load_frame(spark, settings, FEATURES_FROM, TEST_TO)
        read_seconds = time.monotonic() - started
        log.info("read: %s rows, %s frauds in %.1fs", f"{len(frame):,}", f"{int(frame['is_fraud'].sum()):,}",
                 read_seconds)
    finally:
        spark.stop()  # free the JVM before training

    all_features = feature_names()
    handbook_features = list(HANDBOOK_FEATURES)
    missing = [c for c in all_features if c not in frame.columns]
    if missing:
        raise SystemExit(f"silver lacks feature columns {missing}")

    raw_test = _between(frame, TEST_FROM, TEST_TO)
    history = _between(frame, FILTER_HISTORY_FROM, TEST_TO)
    test = handbook_test_filter(raw_test, history, DELAY_DAYS).reset_index(drop=True)
    log.info("test: %s -> %s rows after the handbook filter (%s -> %s frauds)", f"{len(raw_test):,}",
             f"{len(test):,}", int(raw_test["is_fraud"].sum()), int(test["is_fraud"].sum()))

    results: dict[str, Any] = {"protocols": {}}
    for protocol in PROTOCOLS:
        results["protocols"][protocol.name] = run_protocol(protocol, frame, test, history, all_features,
                                                           handbook_features)

    total = time.monotonic() - total_started
    print(f"Model quality on the handbook data: test {TEST_FROM}..{TEST_TO} "
          f"({len(test):,} transactions, {int(test['is_fraud'].sum())} frauds after the handbook filter; "
          f"{len(raw_test):,} / {int(raw_test['is_fraud'].sum())} before)")
    for protocol in PROTOCOLS:
        print(f"  {protocol.name}: {protocol.describe()}")
    print()
    print(table(results))
    print()
    print(f"wall time {total:.0f}s (import {bronze['seconds']:.0f}s, features {silver['seconds']:.0f}s, "
          f"read {read_seconds:.0f}s, training + scoring the rest)")

    summary = {
        "bench": "quality",
        "test_from": str(TEST_FROM), "test_to": str(TEST_TO),
        "test_rows": len(test), "test_frauds": int(test["is_fraud"].sum()),
        "test_rows_unfiltered": len(raw_test), "test_frauds_unfiltered": int(raw_test["is_fraud"].sum()),
        "label_delay_days": DELAY_DAYS, "card_k": CARD_K,
        "protocols": {
            name: {k: ({mk: (round(mv, 4) if isinstance(mv, float) else mv) for mk, mv in v.items()}
                       if isinstance(v, dict) else v) for k, v in res.items()}
            for name, res in results["protocols"].items()
        },
        "published_random_forest": {**PUBLISHED_RF, "train": "2018-07-25..07-31", "test": "2018-08-08..08-14"},
        "bronze": bronze, "silver": silver, "read_seconds": round(read_seconds, 1),
        "total_seconds": round(total, 1),
        "spark_master": settings.spark.master,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
