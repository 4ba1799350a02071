"""Integration fixtures: a lakehouse with simulated history and a registered champion model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conf.settings import Settings
from jobs.base import JobContext
from tests.conftest import make_settings

HISTORY_DAYS = 42
CUSTOMERS = 400
TERMINALS = 300


@pytest.fixture(scope="session")
def trained(spark, settings: Settings) -> Iterator[dict]:
    """Bronze filled with simulated history and a model registered as @champion (once per run)."""
    from jobs import simulate, train

    sim = simulate.SimulateConfig(history_days=HISTORY_DAYS, customers=CUSTOMERS, terminals=TERMINALS, seed=11)
    simulate.write_history(settings, sim, HISTORY_DAYS)
    summary = train.train(JobContext(settings, spark), train.TrainConfig(promote=True))
    assert summary["alias"] == "champion"
    yield summary


def isolated_settings(settings: Settings, name: str, **overrides: object) -> Settings:
    """Same broker and MLflow registry, its own lakehouse, topics and query name (plus ``overrides``)."""
    return make_settings(
        settings.paths.home,
        paths__lakehouse=str(settings.paths.home / name / "lakehouse"),
        paths__checkpoints=str(settings.paths.home / name / "checkpoints"),
        kafka__bootstrap_servers=settings.kafka.bootstrap_servers,
        kafka__broker__port=settings.kafka.broker.port,
        kafka__broker__controller_port=settings.kafka.broker.controller_port,
        kafka__topics__transactions=f"{name}.transactions",
        kafka__topics__labels=f"{name}.labels",
        kafka__topics__scores=f"{name}.scores",
        kafka__max_offsets_per_trigger=120,
        stream__query_name=f"{name}-stream",
        **overrides,
    )
