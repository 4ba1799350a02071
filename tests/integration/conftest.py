"""Integration fixtures: a lakehouse with simulated history and a registered champion model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conf.settings import Settings
from jobs.base import JobContext
from tests.support import CUSTOMERS, HISTORY_DAYS, TERMINALS


@pytest.fixture(scope="session")
def trained(spark, settings: Settings) -> Iterator[dict]:
    """Bronze filled with simulated history and a model registered as @champion (once per run)."""
    from jobs import simulate, train

    sim = simulate.SimulateConfig(history_days=HISTORY_DAYS, customers=CUSTOMERS, terminals=TERMINALS, seed=11)
    simulate.write_history(settings, sim, HISTORY_DAYS)
    summary = train.train(JobContext(settings, spark), train.TrainConfig(promote=True))
    assert summary["alias"] == "champion"
    yield summary


