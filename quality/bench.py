"""Per-micro-batch validation cost: gx on a Spark dataframe asset vs the single aggregation.

    python -m quality.bench [--rows 2000] [--runs 5]

Builds a Kafka-shaped batch (key, value, topic, partition, offset, timestamp) of transaction
events (~1% bad), parses it like the stream does, then times (wall clock, and CPU of the driver
JVM + Python, which is less sensitive to other load on the machine) :func:`validate_dataframe` (gx) and
:func:`stream_batch_checks` on the same persisted batch after a warm-up. Prints medians in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from conf.settings import Settings

KAFKA_SCHEMA = StructType([
    StructField("key", BinaryType(), True),
    StructField("value", BinaryType(), True),
    StructField("topic", StringType(), True),
    StructField("partition", IntegerType(), True),
    StructField("offset", LongType(), True),
    StructField("timestamp", TimestampType(), True),
])
CURRENCIES = ("EUR", "USD", "GBP", "CHF")


def kafka_frame(spark: SparkSession, values: Sequence[bytes | None], topic: str = "aegis.transactions",
                keys: Sequence[bytes | None] | None = None) -> DataFrame:
    """A DataFrame shaped like Spark's Kafka source (one partition, consecutive offsets)."""
    now = datetime.now(UTC)
    keys = keys or [b"k"] * len(values)
    rows = [(k, v, topic, 0, i, now) for i, (k, v) in enumerate(zip(keys, values, strict=True))]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def synthetic_events(n: int, bad_share: float = 0.01, seed: int = 7) -> list[bytes]:
    """``n`` transaction events around now; about ``bad_share`` of them break a rule."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        event = {
            "schema_version": "1", "transaction_id": f"tx-{i:06d}",
            "event_time": (now - timedelta(seconds=rng.randint(0, 3600))).isoformat(),
            "customer_id": f"C{rng.randint(1, 500):07d}", "terminal_id": f"T{rng.randint(1, 300):07d}",
            "amount": round(rng.lognormvariate(3.5, 1.0), 2), "currency": rng.choice(CURRENCIES),
            "card_number": "4111111111111111", "channel": rng.choice(("pos", "ecom")), "merchant_category": "5411",
        }
        if rng.random() < bad_share:
            event["amount"] = -1.0
        out.append(json.dumps(event).encode())
    return out


def _cpu_ms(pid: int | None) -> float:
    """CPU time (user + system, ms) of this Python process plus the JVM ``pid`` (Linux /proc)."""
    total = time.process_time() * 1000
    if pid is not None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _time(fn: Callable[[], object], runs: int, pid: int | None = None) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of ``runs`` calls."""
    wall, cpu = [], []
    for _ in range(runs):
        cpu_started, started = _cpu_ms(pid), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append(_cpu_ms(pid) - cpu_started)
    return wall, cpu


def _jvm_pid(spark: SparkSession) -> int | None:
    try:
        return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    except Exception:
        return None


def measure(spark: SparkSession, rows: int = 2000, runs: int = 5, warmup: int = 2,
            settings: Settings | None = None) -> dict[str, float]:
    """Wall and CPU (driver JVM + Python) ms per batch of each approach on one parsed, persisted batch;
    with ``settings``, also the idempotent Delta append of one batch's result rows."""
    from quality.ingest import parse_transactions
    from quality.rules import load_suite
    from quality.validate import stream_batch_checks, validate_dataframe, write_results

    suite = load_suite("transactions")
    tx = parse_transactions(kafka_frame(spark, synthetic_events(rows)), "bench-key").persist()
    tx.count()
    try:
        approaches: dict[str, Callable[[], object]] = {
            "gx": lambda: validate_dataframe(tx, "transactions", "bench", stream_batch_id=0, examples=False),
            "gx_with_examples": lambda: validate_dataframe(tx, "transactions", "bench", stream_batch_id=0),
            "aggregation": lambda: stream_batch_checks(tx, suite, "bench", 0),
        }
        if settings is not None:
            result_rows = stream_batch_checks(tx, suite, "bench", 0)
            versions = iter(range(1_000_000))
            approaches["write_results"] = lambda: write_results(spark, settings, result_rows, "bench", next(versions))
        pid = _jvm_pid(spark)
        out: dict[str, float] = {"rows": rows, "runs": runs, "load_avg_1m": round(os.getloadavg()[0], 1)}
        for name, fn in approaches.items():
            _time(fn, warmup)
            wall, cpu = _time(fn, runs, pid)
            out[f"{name}_wall_median_ms"] = round(statistics.median(wall))
            out[f"{name}_wall_min_ms"] = round(min(wall))
            out[f"{name}_cpu_median_ms"] = round(statistics.median(cpu))
        out["load_avg_1m_after"] = round(os.getloadavg()[0], 1)
        return out
    finally:
        tx.unpersist()


def record_check_cost(values: Sequence[bytes | None], keys: Sequence[bytes | None] | None = None,
                      card_key: str = "bench-key") -> dict[str, float]:
    """CPU microseconds per record of the strict contract check (one core, no Spark): what the stream's
    parsing step costs per event on top of moving the bytes through Arrow."""
    from quality.records import RecordChecker

    checker = RecordChecker("transaction", card_key)
    keys = keys or [b"C0000001"] * len(values)
    now = datetime.now(UTC)
    started = time.process_time()
    rejected = sum(not checker.check(k, v, now).valid for k, v in zip(keys, values, strict=True))
    seconds = time.process_time() - started
    return {"contract_check_us_per_event": round(1e6 * seconds / max(len(values), 1), 1),
            "contract_check_events": len(values), "contract_check_rejected": rejected}


def main() -> None:
    from conf.settings import load_settings
    from lakehouse.session import create_session

    cli = argparse.ArgumentParser()
    cli.add_argument("--rows", type=int, default=2000)
    cli.add_argument("--runs", type=int, default=5)
    args = cli.parse_args()
    home = Path(tempfile.mkdtemp(prefix="aegis-quality-bench-"))
    settings = load_settings("test", overrides={"paths": {"home": str(home), "cache": str(Path(".cache").resolve())}})
    spark = create_session(settings, "quality-bench")
    try:
        print(json.dumps(measure(spark, args.rows, args.runs, settings=settings)))
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
