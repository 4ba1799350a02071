"""The stream under failure and change: kill -9 and restart, model hot swap without restart."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from conf.settings import Settings
from features.table import features_table
from jobs import features_job, simulate
from jobs.scoring import ModelScorer, mlflow_client
from jobs.tables import feature_params
from lakehouse.delta_io import read_table
from lakehouse.tables import QUARANTINE, SCORES, TRANSACTIONS
from models.registry import CHAMPION, get_alias_version, set_alias
from stream.query import start
from tests.support import CUSTOMERS, REPO, TERMINALS, isolated_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(s: Settings) -> dict[str, str]:
    """The same settings for a child `aegis` process, through AEGIS_* variables."""
    env = dict(os.environ)
    env.update({
        "AEGIS_PROFILE": "test",
        "AEGIS_HOME": str(s.paths.home),
        "AEGIS_PATHS__CACHE": str(s.cache_dir),
        "AEGIS_PATHS__LAKEHOUSE": str(s.lakehouse_root),
        "AEGIS_PATHS__CHECKPOINTS": str(s.checkpoint_root),
        "AEGIS_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
        "AEGIS_KAFKA__TOPICS__TRANSACTIONS": s.kafka.topics.transactions,
        "AEGIS_KAFKA__TOPICS__LABELS": s.kafka.topics.labels,
        "AEGIS_KAFKA__TOPICS__SCORES": s.kafka.topics.scores,
        "AEGIS_KAFKA__MAX_OFFSETS_PER_TRIGGER": str(s.kafka.max_offsets_per_trigger),
        "AEGIS_STREAM__QUERY_NAME": s.stream.query_name,
        # As `aegis stream` runs outside tests: the cold query in a child process of its own.
        "AEGIS_STREAM__COLD_IN_CHILD_PROCESS": "true",
    })
    return env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _aegis(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", *args]


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(spark, settings: Settings, kafka_broker,
                                                               trained) -> None:
    s = isolated_settings(settings, "kill9")
    kafka_broker.ensure_topics({s.kafka.topics.transactions: 2, s.kafka.topics.labels: 2, s.kafka.topics.scores: 2})
    sent = simulate.produce(s, simulate.SimulateConfig(rate=0, count=240, customers=CUSTOMERS,
                                                       terminals=TERMINALS, seed=5))["transaction"]
    rng = random.Random(42)
    log = (Path(s.paths.home) / "kill9.log").open("ab")
    landed = 0
    for attempt in range(2):
        child = subprocess.Popen(_aegis("stream"), env=_env(s), cwd=REPO, stdout=log, stderr=log,
                                 start_new_session=True)
        # Let at least one more micro-batch commit, then kill at a random moment of the next ones.
        before = landed
        _wait_for(lambda: _bronze_rows(spark, s) > before, 240)  # noqa: B023
        time.sleep(rng.uniform(0.5, 6.0))
        if attempt == 0:
            # The parent alone, no goodbye: its JVM and the cold query's process must follow it.
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            _wait_for(lambda: not _group_alive(child.pid), 180)  # noqa: B023
        else:
            os.killpg(child.pid, signal.SIGKILL)  # the driver, the cold process, their Python workers
            child.wait()
        landed = _bronze_rows(spark, s)
        print(f"kill #{attempt + 1}: {landed} of {sent} in bronze")
        if landed >= sent:
            break
    final = subprocess.run(_aegis("stream", "--until-idle", "--max-seconds", "400"), env=_env(s), cwd=REPO,
                           stdout=log, stderr=log, timeout=600)
    assert final.returncode == 0
    root = s.lakehouse_root
    for name, table in (("bronze", read_table(spark, TRANSACTIONS, root)),
                        ("silver", read_table(spark, features_table(feature_params(s)), root)),
                        ("gold", read_table(spark, SCORES, root))):
        assert table.count() == sent, name
        assert table.select("transaction_id").distinct().count() == sent, name
    assert read_table(spark, QUARANTINE, root).count() == 0
    # The state restored from the checkpoint after each kill featurized exactly as the batch engine.
    days = read_table(spark, TRANSACTIONS, root).agg(F.min("event_date"), F.max("event_date")).first()
    report = features_job.compare(s, days[0], days[1])
    assert report.ok and report.stream_rows == sent, report


def test_moving_champion_hot_swaps_the_running_stream(spark, settings: Settings, kafka_broker, trained) -> None:
    s = isolated_settings(settings, "hotswap")
    kafka_broker.ensure_topics({s.kafka.topics.transactions: 2, s.kafka.topics.labels: 2, s.kafka.topics.scores: 2})
    client = mlflow_client(s)
    name = s.mlflow.model_name
    first = get_alias_version(client, name, CHAMPION)
    assert first is not None
    params = feature_params(s)
    queries = start(spark, s, params, ModelScorer(spark, s, params, "stream"))
    try:
        simulate.produce(s, simulate.SimulateConfig(rate=0, count=60, customers=CUSTOMERS, terminals=TERMINALS,
                                                    seed=21))
        _wait_for(lambda: _versions(spark, s) == {str(first.version)}, 300)
        second = client.create_model_version(name, first.source, run_id=first.run_id,
                                             tags={"feature_version": "same", "note": "hot swap test"})
        set_alias(client, name, CHAMPION, second.version)
        swapped_at = time.monotonic()
        feeder = threading.Thread(target=lambda: [
            simulate.produce(s, simulate.SimulateConfig(rate=0, count=20, customers=CUSTOMERS,
                                                        terminals=TERMINALS, seed=100 + i)) or time.sleep(3)
            for i in range(12)])
        feeder.start()
        _wait_for(lambda: str(second.version) in _versions(spark, s), 120)
        assert time.monotonic() - swapped_at < 60, "the new champion must score within one minute"
        assert queries.is_active, "hot swap must not restart the query"
        feeder.join()
    finally:
        queries.stop()
        set_alias(client, name, CHAMPION, first.version)  # other tests expect the fixture's champion
    gold = read_table(spark, SCORES, s.lakehouse_root)
    assert gold.filter(F.col("model_version").isNull()).count() == 0
    assert gold.count() == gold.select("transaction_id").distinct().count()


def _bronze_rows(spark, s: Settings) -> int:
    return read_table(spark, TRANSACTIONS, s.lakehouse_root).count()


def _versions(spark, s: Settings) -> set[str]:
    rows = read_table(spark, SCORES, s.lakehouse_root).select("model_version").distinct().collect()
    return {r[0] for r in rows}


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(2)
    raise AssertionError(f"condition not met within {timeout}s")
