"""The streaming scoring job: Kafka -> keyed feature state -> gold.scores + the scores topic,
with bronze, labels, quarantine and quality results on a cold query beside it (package stream/),
in a child process of its own unless ``stream.cold_in_child_process`` is off (jobs/cold_process.py).

Run it with ``aegis stream`` or ``spark-submit jobs/stream.py --profile cluster``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

if __name__ == "__main__":
    # Run as a script (spark-submit jobs/stream.py), Python puts jobs/ first on the path, where this
    # file would shadow the `stream` package.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

from pyspark.sql import SparkSession

from conf.settings import Settings
from jobs.kinds import StreamConfig
from jobs.observability import StreamMetrics, serve_metrics
from stream.query import StreamQueries, await_queries, start
from stream.summary import BatchSummary

log = logging.getLogger("aegis.stream")


def run(settings: Settings, config: StreamConfig, spark: SparkSession | None = None,
        launched_by_spark_submit: bool = False) -> int:
    """Run the stream until stopped, the time budget ends or (until_idle) Kafka is drained."""
    execute(settings, config, spark, launched_by_spark_submit)
    return 0


def execute(settings: Settings, config: StreamConfig, spark: SparkSession | None = None,
            launched_by_spark_submit: bool = False, features_only: bool = False,
            stop: threading.Event | None = None,
            on_batch: Callable[[BatchSummary], None] | None = None) -> StreamQueries:
    """:func:`run`, returning the stopped queries (their summaries); ``features_only`` scores nothing,
    ``stop`` ends the run between micro-batches, ``on_batch`` sees each cold micro-batch's summary."""
    from jobs import cold_process
    from jobs.scoring import ModelScorer
    from jobs.tables import feature_params
    from lakehouse.session import create_session

    s = settings.stream
    child = None
    if s.queries == "both" and s.cold_in_child_process and not launched_by_spark_submit:
        settings, child = cold_process.split_off_cold(settings, config.max_seconds, config.until_idle,
                                                      config.idle_seconds)
    try:
        session = spark or create_session(settings, f"stream-{s.queries}" if s.queries != "both" else "stream",
                                          launched_by_spark_submit)
        params = feature_params(settings)
        scorer = None if features_only or settings.stream.queries == "cold" else ModelScorer(
            session, settings, params, source="stream")
        queries = start(session, settings, params, scorer)
        if on_batch is not None and queries.cold_path is not None:
            queries.cold_path.on_summary = on_batch
        summaries = queries.summaries if child is None else lambda: queries.summaries() + child.summaries()
        metrics = StreamMetrics(summaries)
        session.streams.addListener(metrics)
        server = serve_metrics(metrics, settings.stream.metrics_port, settings.stream.metrics_host)
        try:
            await_queries(queries, config.max_seconds, config.until_idle, config.idle_seconds, stop=stop,
                          check=child.check if child is not None else None)
        finally:
            queries.stop_between_batches()
            session.streams.removeListener(metrics)
            if server is not None:
                server.shutdown()
        if child is not None and config.until_idle:
            child.wait(timeout=config.idle_seconds * 10 + 120)
    finally:
        if child is not None:
            rc = child.stop()
            if rc not in (0, -15):
                raise RuntimeError(f"the cold query's process ended with code {rc} (its log is above)")
    cold = queries.cold_history + (child.summaries() if child is not None else [])
    log.info("stream: stopped; %d transactions scored, %d ingested into bronze",
             sum(b.scored for b in queries.hot_history), sum(b.bronze for b in cold))
    return queries


if __name__ == "__main__":  # spark-submit jobs/stream.py [--profile P] [--set k=v] [--max-seconds S] [--until-idle]
    import argparse

    from jobs.submit import submit_main

    cli = argparse.ArgumentParser()
    cli.add_argument("--max-seconds", type=float)
    cli.add_argument("--until-idle", action="store_true")
    known, _ = cli.parse_known_args()
    cfg = StreamConfig(max_seconds=known.max_seconds, until_idle=known.until_idle)
    sys.exit(submit_main("stream", lambda s, spark: run(s, cfg, spark, True)))
