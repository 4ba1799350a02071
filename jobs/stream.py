"""The streaming scoring job: Kafka -> keyed feature state -> gold.scores + the scores topic,
with bronze, labels, quarantine and quality results on a cold query beside it (package stream/).

Run it with ``aegis stream`` or ``spark-submit jobs/stream.py --profile cluster``.
"""

from __future__ import annotations

import logging
import os
import sys

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

log = logging.getLogger("aegis.stream")


def run(settings: Settings, config: StreamConfig, spark: SparkSession | None = None,
        launched_by_spark_submit: bool = False) -> int:
    """Run the stream until stopped, the time budget ends or (until_idle) Kafka is drained."""
    execute(settings, config, spark, launched_by_spark_submit)
    return 0


def execute(settings: Settings, config: StreamConfig, spark: SparkSession | None = None,
            launched_by_spark_submit: bool = False, features_only: bool = False) -> StreamQueries:
    """:func:`run`, returning the stopped queries (their summaries); ``features_only`` scores nothing."""
    from jobs.scoring import ModelScorer
    from jobs.tables import feature_params
    from lakehouse.session import create_session

    session = spark or create_session(settings, "stream", launched_by_spark_submit)
    params = feature_params(settings)
    scorer = None if features_only else ModelScorer(session, settings, params, source="stream")
    queries = start(session, settings, params, scorer)
    metrics = StreamMetrics(queries.summaries)
    session.streams.addListener(metrics)
    server = serve_metrics(metrics, settings.stream.metrics_port, settings.stream.metrics_host)
    try:
        await_queries(queries, config.max_seconds, config.until_idle, config.idle_seconds)
    finally:
        queries.stop()
        session.streams.removeListener(metrics)
        if server is not None:
            server.shutdown()
    scored = sum(b.scored for b in queries.hot_path.history)
    ingested = sum(b.bronze for b in queries.cold_path.history)
    log.info("stream: stopped; %d transactions scored, %d ingested into bronze", scored, ingested)
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
