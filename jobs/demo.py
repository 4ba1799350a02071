"""`aegis demo` / `make demo`: the whole path on embedded defaults, bounded, with a live console.

Broker up -> (first run) simulated history into bronze and a model trained and registered ->
the streaming job running -> live simulated traffic -> a summary every few seconds (rate,
decisions, latest flagged transactions with reasons) -> clean stop.
"""

from __future__ import annotations

import logging
import threading
import time

from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import kafka_admin, simulate, stream, train
from jobs.base import JobConfig, JobContext
from jobs.scoring import ModelScorer, mlflow_client
from jobs.tables import feature_params
from lakehouse.delta_io import read_table
from lakehouse.tables import TRANSACTIONS
from models.registry import CHAMPION, get_alias_version

log = logging.getLogger("aegis.demo")


class DemoConfig(JobConfig):
    """How long and how much live traffic; the simulated population."""

    seconds: float = 60.0
    rate: float = 100.0
    history_days: int = 45
    customers: int = 1500
    terminals: int = 800
    seed: int = 7
    drain_seconds: float = 180.0


def _population(config: DemoConfig, **extra: object) -> simulate.SimulateConfig:
    return simulate.SimulateConfig(customers=config.customers, terminals=config.terminals, seed=config.seed,
                                   **extra)  # type: ignore[arg-type]


def _print_status(processor: stream.MicroBatchProcessor, started: float, final: bool = False) -> None:
    batches = processor.history
    ingested = sum(b.bronze for b in batches)
    scored = sum(b.scored for b in batches)
    quarantined = sum(b.quarantined for b in batches)
    decisions: dict[str, int] = {}
    for b in batches:
        for k, v in b.decisions.items():
            decisions[k] = decisions.get(k, 0) + v
    elapsed = max(time.monotonic() - started, 1e-6)
    p99 = [float(b.latency_ms["p99"]) for b in batches[-5:] if b.latency_ms.get("p99") is not None]
    title = "FINAL" if final else "live"
    print(f"\n[{title} {elapsed:5.0f}s] batches {len(batches)}, ingested {ingested:,}, scored {scored:,} "
          f"({scored / elapsed:.0f}/s), quarantined {quarantined}, decisions "
          + ", ".join(f"{k}={v:,}" for k, v in sorted(decisions.items()))
          + (f", recent p99 Kafka->score {max(p99) / 1000:.2f}s" if p99 else ""), flush=True)
    for row in processor.flagged[-(8 if final else 3):]:
        reasons = "; ".join(f"{r['feature']}={r['value']:.4g} ({r['contribution']:+.3f})"
                            for r in row["top_reasons"] or [])
        print(f"  {row['decision'].upper():6} score {row['score']:.3f}  tx {row['transaction_id']}  "
              f"customer {row['customer_id']}  amount {row['amount']:.2f}  model v{row['model_version']}"
              f"  because {reasons}", flush=True)


def run(settings: Settings, config: DemoConfig) -> int:
    """Run the demo; exits 0 after ``seconds`` of live traffic and a final summary."""
    from lakehouse.session import create_session

    print("demo: starting the embedded Kafka broker", flush=True)
    broker = kafka_admin.up(settings)
    spark = create_session(settings, "demo")
    client = mlflow_client(settings)
    if get_alias_version(client, settings.mlflow.model_name, CHAMPION) is None:
        if read_table(spark, TRANSACTIONS, settings.lakehouse_root).limit(1).count() == 0:
            print(f"demo: simulating {config.history_days} days of history into bronze", flush=True)
            simulate.write_history(settings, _population(config, history_days=config.history_days),
                                   config.history_days)
        print("demo: training the ensemble and registering it as @champion (first run only)", flush=True)
        summary = train.train(JobContext(settings, spark), train.TrainConfig(promote=True))
        print(f"demo: model {summary['model']} v{summary['version']} @{summary['alias']}, test metrics "
              f"{summary['metrics']}", flush=True)
    params = feature_params(settings)
    processor = stream.MicroBatchProcessor(settings, params, ModelScorer(spark, settings, params, "stream"))
    query = stream.start_query(spark, settings, processor)
    print(f"demo: stream running; producing live traffic at {config.rate:.0f} tx/s for {config.seconds:.0f}s",
          flush=True)
    producer = threading.Thread(
        target=simulate.produce, daemon=True,
        # Chargebacks arrive within seconds on the demo clock (a week compressed ~20,000x).
        args=(settings, _population(config, rate=config.rate, duration=config.seconds,
                                    label_time_compression=20000.0)),
    )
    started = time.monotonic()
    producer.start()
    try:
        while producer.is_alive() and query.isActive:
            producer.join(timeout=10.0)
            _print_status(processor, started)
        print("demo: traffic stopped; letting the stream drain what is in Kafka", flush=True)
        drain_until = time.monotonic() + config.drain_seconds
        last_print = time.monotonic()
        while query.isActive and time.monotonic() < drain_until:
            time.sleep(2)
            progress = query.lastProgress
            status = query.status
            idle = not status.get("isDataAvailable") and not status.get("isTriggerActive")
            if progress and progress.get("numInputRows", 0) == 0 and idle:
                break
            if time.monotonic() - last_print >= 10:
                _print_status(processor, started)
                last_print = time.monotonic()
        if query.exception() is not None:
            raise RuntimeError(f"streaming query failed: {query.exception()}")
    finally:
        query.stop()
    _print_status(processor, started, final=True)
    gold = spark.read.format("delta").load(str(settings.lakehouse_root / "gold" / "scores"))
    total = gold.filter(F.col("source") == "stream").count()
    print(f"\ndemo: done. gold.scores holds {total:,} streamed scores under {settings.lakehouse_root}; "
          f"try `aegis tables`, `aegis models list`. Stopping the broker.", flush=True)
    broker.stop()
    return 0
