"""Shared fixtures for the sources tests: one 30-day default history per session."""

from __future__ import annotations

import pandas as pd
import pytest

from sources.simulator import Simulator, SimulatorConfig


@pytest.fixture(scope="session")
def default_simulator() -> Simulator:
    return Simulator(SimulatorConfig())


@pytest.fixture(scope="session")
def history_30d(default_simulator: Simulator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """30 days x 2,000 customers with the default config (~135k transactions)."""
    return default_simulator.history(days=30)
