"""`aegis features listing|build|parity`."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import functions as F

from conf.settings import Settings
from features.catalog import declare_features, feature_version
from features.engine import lookback
from features.listing import LISTING_PATH, render_listing
from features.table import features_table
from jobs.pipeline import TargetSpan, featurize, overtaken_by_late_arrivals
from jobs.tables import feature_params
from lakehouse.delta_io import read_table, replace_range
from lakehouse.session import create_session
from lakehouse.tables import TRANSACTIONS

PARITY_TOLERANCE = 1e-9


def listing(settings: Settings, write: bool = False, path: Path = LISTING_PATH) -> int:
    """Print (or rewrite) the compiled feature listing."""
    text = render_listing(feature_params(settings))
    if write:
        path.write_text(text)
        print(f"wrote {path}")
    else:
        print(text)
    return 0


def _require_range(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    if date_from is None or date_to is None:
        raise ValueError("--from and --to are required (YYYY-MM-DD)")
    if date_to < date_from:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    return date_from, date_to


def build(settings: Settings, date_from: date | None, date_to: date | None) -> int:
    """Batch-compute silver.features for a date range (replaces those partitions)."""
    first, last = _require_range(date_from, date_to)
    spark = create_session(settings, "features-build")
    params = feature_params(settings)
    span = TargetSpan(first, last, F.col("event_date").between(F.lit(first), F.lit(last)))
    rows = featurize(spark, settings, params, span, "backfill", uuid.uuid4().hex[:12])
    predicate = f"event_date >= '{first}' AND event_date <= '{last}'"
    replace_range(rows, features_table(params), settings.lakehouse_root, predicate)
    print(f"features: rebuilt {first}..{last}")
    return 0


@dataclass(frozen=True)
class ParityReport:
    """Stream rows against the batch engine's recomputation of the same transactions."""

    first: date
    last: date
    stream_rows: int
    batch_rows: int
    unmatched: int
    overtaken: int  # rows whose windows gained a late event after the stream computed them
    held: int  # rows still held behind the stream's frontier
    max_difference: dict[str, float | None]

    @property
    def mismatched(self) -> list[str]:
        return [n for n, v in self.max_difference.items() if v is None or v > PARITY_TOLERANCE]

    @property
    def ok(self) -> bool:
        return not self.mismatched and self.unmatched == 0 and self.stream_rows > 0


def compare(settings: Settings, first: date, last: date) -> ParityReport:
    """Recompute the range's stream rows in batch and measure the largest difference per feature."""
    spark = create_session(settings, "features-parity")
    params = feature_params(settings)
    names = [f.name for f in declare_features(params)]
    silver = read_table(spark, features_table(params), settings.lakehouse_root)
    stream_rows = silver.filter((F.col("source") == "stream") & (F.col("feature_version") == feature_version(params)))
    in_range = F.col("event_date").between(F.lit(first), F.lit(last))
    reach = F.col("event_date").between(F.lit(first - lookback(params) - timedelta(days=1)), F.lit(last))
    overtaken = overtaken_by_late_arrivals(stream_rows.filter(reach), params).persist()
    streamed = stream_rows.filter(in_range & ~F.col("is_late")).join(overtaken, "transaction_id", "left_anti")
    # The batch engine recomputes exactly the transactions the stream ingested in the range, up to
    # the newest one it featurized: later ones are still held behind its frontier (not yet due).
    newest = stream_rows.agg(F.max("event_time")).first()[0]  # type: ignore[index]
    ingested_by_stream = F.col("event_date").between(F.lit(first), F.lit(last)) & (F.col("source") == "stream")
    due = ingested_by_stream & (F.col("event_time") <= F.lit(newest)) if newest is not None else ingested_by_stream
    held = (read_table(spark, TRANSACTIONS, settings.lakehouse_root).filter(ingested_by_stream & ~due).count()
            if newest is not None else 0)
    span = TargetSpan(first, last, due)
    late_ids = stream_rows.filter(F.col("is_late")).select("transaction_id")
    batch = (featurize(spark, settings, params, span, "parity", "parity")
             .join(late_ids, "transaction_id", "left_anti").join(overtaken, "transaction_id", "left_anti"))
    joined = streamed.alias("s").join(batch.alias("b"), "transaction_id", "full_outer")
    diffs = [F.max(F.abs(F.col(f"s.{n}") - F.col(f"b.{n}"))).alias(n) for n in names]
    counts = joined.agg(
        F.count(F.col("s.transaction_id")).alias("_stream_rows"),
        F.count(F.col("b.event_time")).alias("_batch_rows"),
        F.sum(F.when(F.col("s.event_time").isNull() | F.col("b.event_time").isNull(), 1).otherwise(0)).alias(
            "_unmatched"
        ),
        *diffs,
    ).first()
    assert counts is not None
    return ParityReport(first, last, counts["_stream_rows"], counts["_batch_rows"], counts["_unmatched"] or 0,
                        overtaken.count(), held, {n: counts[n] for n in names})


def parity(settings: Settings, date_from: date | None, date_to: date | None) -> int:
    """Recompute the range in batch and compare with what the stream wrote; non-zero on mismatch."""
    first, last = _require_range(date_from, date_to)
    report = compare(settings, first, last)
    print(f"parity {first}..{last}: stream rows {report.stream_rows:,}, batch rows {report.batch_rows:,}, "
          f"unmatched {report.unmatched:,} (left out: late rows, {report.overtaken:,} rows whose windows gained a "
          f"late event after the stream computed them, and {report.held:,} rows still held behind the stream's "
          "frontier)")
    print(f"{'feature':<40} {'max |stream - batch|':>22}")
    for n, value in report.max_difference.items():
        flag = "" if value is not None and value <= PARITY_TOLERANCE else "  MISMATCH"
        if value is None and report.stream_rows == 0:
            flag = "  (no stream rows)"
        print(f"{n:<40} {('-' if value is None else f'{value:.3e}'):>22}{flag}")
    print("parity: OK" if report.ok else "parity: FAILED", file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
