"""`aegis demo` / `make demo`: the whole path on embedded defaults, bounded, with a live view.

Broker up -> (first run) simulated history into bronze and a model trained and registered ->
the streaming job running -> live simulated traffic -> a live view (events/s, Kafka -> gold
latency, decisions, quarantine, model, latest flagged with reasons) -> the decision shares next
to the policy's targets -> a clean stop: producer, query, Spark (its JVM and Python workers) and
the broker it started, in that order, so no client outlives the broker and no process is left.

Live traffic runs on a simulated clock (``sources.live``): the history's world continued, at
``rate / natural rate`` simulated seconds per wall second, so every customer keeps the rhythm
the model learned (about two transactions a day) instead of transacting every few seconds.
Event times and label report times are simulated times; the history ends ``clock_lead_days``
before now so that they stay in the past (a run continues from the newest event in bronze).
Kafka -> gold latency is wall clock (Kafka append time to the gold write); the stream's
``allowed_lateness_seconds`` is event time, so on this clock it spans ``1 / speed`` as much wall time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings
from jobs import kafka_admin, simulate, train
from jobs.base import JobContext
from jobs.decision_shares import comparison_lines, live_shares, policy_targets
from jobs.kinds import DemoConfig
from jobs.live_view import BatchFigures, LiveFigures, LiveTracker, LiveView, flagged_lines, plain_line
from jobs.scoring import ModelScorer, mlflow_client
from jobs.tables import feature_params
from lakehouse.delta_io import read_table
from lakehouse.tables import SCORES, TRANSACTIONS
from models.registry import CHAMPION, get_alias_version
from sources.live import SimClock
from stream.query import StreamQueries, is_busy
from stream.query import start as start_stream

log = logging.getLogger("aegis.demo")
MIN_LIVE_SECONDS = 10.0
CLOCK_MARGIN = pd.Timedelta(minutes=5)  # simulated time stops this far before the wall clock


def _population(config: DemoConfig, **extra: object) -> simulate.SimulateConfig:
    return simulate.SimulateConfig(customers=config.customers, terminals=config.terminals, seed=config.seed,
                                   **extra)  # type: ignore[arg-type]


def stream_figures(queries: StreamQueries) -> tuple[list[BatchFigures], list[dict[str, Any]]]:
    """What the live view reads from the stream: both queries' micro-batch summaries, latest flagged rows."""
    return list(queries.summaries()), queries.flagged


def _newest_event(spark: SparkSession, settings: Settings) -> pd.Timestamp | None:
    row = read_table(spark, TRANSACTIONS, settings.lakehouse_root).agg(
        F.unix_micros(F.max("event_time")).alias("us")).first()
    return None if row is None or row["us"] is None else pd.Timestamp(int(row["us"]), unit="us", tz="UTC")


def _prepare_model(spark: SparkSession, settings: Settings, config: DemoConfig) -> str:
    """The @champion version; on the first run, history simulated into bronze and a model trained."""
    client = mlflow_client(settings)
    if get_alias_version(client, settings.mlflow.model_name, CHAMPION) is None:
        if _newest_event(spark, settings) is None:
            end = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=config.clock_lead_days)).floor("s")
            print(f"demo: simulating {config.history_days} days of history (to {end:%Y-%m-%d %H:%M} UTC, "
                  f"{config.clock_lead_days:g} days ago: live traffic continues it on a faster clock) into bronze",
                  flush=True)
            simulate.write_history(settings, _population(config), config.history_days, end=end, spark=spark)
        print("demo: training the ensemble and registering it as @champion (first run only)", flush=True)
        summary = train.train(JobContext(settings, spark), train.TrainConfig(promote=True))
        print(f"demo: model {summary['model']} v{summary['version']} @{summary['alias']}, test metrics "
              f"{summary['metrics']}", flush=True)
    champion = get_alias_version(client, settings.mlflow.model_name, CHAMPION)
    if champion is None:
        raise RuntimeError("demo: training did not leave a @champion model")
    return str(champion.version)


def _live_window(spark: SparkSession, settings: Settings, config: DemoConfig) -> tuple[pd.Timestamp, float, float]:
    """(simulated start, speed, wall seconds of live traffic): continue bronze without passing now."""
    start = _newest_event(spark, settings)
    if start is None:
        raise RuntimeError("demo: bronze.transactions is empty; run `make clean` and `make demo` again")
    start = start + pd.Timedelta(milliseconds=1)
    sim = simulate.simulator_for(_population(config))
    speed = SimClock.for_rate(sim, config.rate, start).speed
    room = SimClock(start, 0.0, speed).room_until(pd.Timestamp.now(tz="UTC") - CLOCK_MARGIN)
    if room < MIN_LIVE_SECONDS:
        raise ValueError(
            f"demo: the simulated clock has caught up with the wall clock (bronze ends {start:%Y-%m-%d %H:%M} UTC; "
            f"at {config.rate:g} tx/s it runs {speed:,.0f}x): `make clean` starts a fresh demo, or lower --rate")
    seconds = min(config.seconds, room)
    if seconds < config.seconds:
        print(f"demo: {seconds:.0f}s of live traffic instead of {config.seconds:.0f}s: simulated time would "
              f"pass now after that (`make clean` starts a fresh demo)", flush=True)
    return start, speed, seconds


def _start_api(settings: Settings, config: DemoConfig, spark: SparkSession) -> Any:
    """With ``config.api``: the serving store, its sync queries and the API + review console, in the background."""
    if not config.api:
        return None
    from jobs.serving_job import start_serving

    print("demo: starting the serving store (embedded PostgreSQL), its sync and the API", flush=True)
    handle = start_serving(settings, spark)
    print(f"demo: review console at {handle.url} (analyst key in local runs: aegis-analyst-dev)", flush=True)
    return handle


def _drain(queries: StreamQueries, config: DemoConfig, scored: Callable[[], int], sent: int,
           show: Callable[[], None]) -> None:
    """Let the stream finish what is in Kafka: until every sent transaction is scored, or the queries
    are idle, at most ``drain_seconds``."""
    until = time.monotonic() + config.drain_seconds
    while queries.is_active and time.monotonic() < until:
        time.sleep(config.refresh_seconds)
        show()
        if scored() >= sent:
            return
        if not any(is_busy(q) for q in queries.queries):
            return
    if queries.is_active:
        print(f"demo: the stream had not scored everything after {config.drain_seconds:.0f}s of draining "
              f"({scored():,} of {sent:,}); stopping it after its current micro-batch", flush=True)


def run(settings: Settings, config: DemoConfig) -> int:
    """Run the demo; exits 0 after ``seconds`` of live traffic, a summary and a clean stop."""
    from lakehouse.session import create_session, stop_session

    broker = kafka_admin.broker_for(settings)
    own_broker = not broker.status()["running"]
    print("demo: starting the embedded Kafka broker" if own_broker else "demo: using the running Kafka broker",
          flush=True)
    kafka_admin.up(settings)
    spark: SparkSession | None = None
    queries: StreamQueries | None = None
    stop = threading.Event()
    producer: threading.Thread | None = None
    serving: Any = None
    try:
        spark = create_session(settings, "demo")
        version = _prepare_model(spark, settings, config)
        targets = policy_targets(mlflow_client(settings), settings.mlflow.model_name, version)
        sim_start, speed, seconds = _live_window(spark, settings, config)
        serving = _start_api(settings, config, spark)
        params = feature_params(settings)
        queries = running = start_stream(spark, settings, params, ModelScorer(spark, settings, params, "stream"))
        # The first simulated hours are generated before the clock starts (two seconds from now).
        clock = SimClock(sim_start, time.time() + 2.0, speed)
        sim_end = sim_start + clock.sim_span(seconds)
        print(f"demo: stream running; live traffic for {seconds:.0f}s at {config.rate:g} tx/s on average: simulated "
              f"{sim_start:%Y-%m-%d %H:%M} -> {sim_end:%Y-%m-%d %H:%M} UTC, {speed:,.0f}x the wall clock, each "
              f"customer at its natural pace", flush=True)
        sent: dict[str, int] = {"transaction": 0, "label": 0}
        producer = threading.Thread(target=simulate.produce_live, name="aegis-demo-traffic",
                                    args=(settings, _population(config), clock, sim_end, stop, sent))
        tracker = LiveTracker()

        def figures() -> LiveFigures:
            summaries, flagged = stream_figures(running)
            shown = min(max(clock.sim_at(time.time()), sim_start), sim_end)
            return tracker.update(summaries, flagged, sent=sent, sim_time=f"{shown:%Y-%m-%d %H:%M}")

        with LiveView() as view:
            producer.start()
            while producer.is_alive() and running.is_active:
                producer.join(timeout=config.refresh_seconds)
                view.show(figures())
            if running.is_active:
                view.show(figures(), force=True)
                if not view.tty:
                    print("demo: traffic done; letting the stream drain what is in Kafka", flush=True)
                _drain(running, config, lambda: figures().scored, sent["transaction"], lambda: view.show(figures()))
        if running.exception() is not None:
            raise RuntimeError(f"streaming query failed: {running.exception()}")
        running.stop_between_batches()
        final = figures()
        print("\n" + plain_line(final).replace("[live", "[final", 1), flush=True)
        for line in flagged_lines(final, limit=5):
            print(line, flush=True)
        scores = read_table(spark, SCORES, settings.lakehouse_root)
        shares = live_shares(scores, sim_start.floor("ms").to_pydatetime(), sim_end.ceil("ms").to_pydatetime())
        print("", *comparison_lines(shares, targets), sep="\n", flush=True)
        total = scores.filter(F.col("source") == "stream").count()
        print(f"\ndemo: done. gold.scores holds {total:,} streamed scores under {settings.lakehouse_root}.", flush=True)
    finally:
        stop.set()
        if producer is not None and producer.is_alive():
            producer.join()  # its producer is closed before the broker stops
        if queries is not None and queries.is_active:
            queries.stop_between_batches(timeout=60.0)
        if serving is not None:
            serving.stop()  # the API, the sync queries and the embedded PostgreSQL, before Spark and the broker
        if spark is not None:
            stop_session(spark)
        if own_broker:
            broker.stop()
    stopped = ("the API, the serving store, " if config.api else "") + "the stream, Spark"
    print(f"demo: stopped {stopped}" + (" and the broker." if own_broker else " (the broker keeps running)."))
    print("\nTry next:\n"
          "  aegis tables                                   every table, its version and row count\n"
          "  aegis sql \"SELECT decision, count(*) FROM gold.scores GROUP BY decision\"\n"
          "  aegis serve                                    the score lookup API and the review console "
          f"(http://{settings.api.host}:{settings.api.port}/console)\n"
          "  make demo                                      again: the stream continues where this run ended",
          flush=True)
    return 0
