"""Small on-disk fixtures in the handbook schema, for tests of any package.

Example::

    from sources.fixtures import write_handbook_fixture
    fx = write_handbook_fixture(tmp_path)  # 3 days, 50 customers
    df = pd.read_parquet(fx.parquet_path)  # same rows as fx.csv_path / fx.frame
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sources.handbook import to_handbook
from sources.simulator import Simulator, SimulatorConfig

__all__ = ["HandbookFixture", "handbook_fixture_frame", "write_handbook_fixture"]


@dataclass(frozen=True)
class HandbookFixture:
    """Paths of a written fixture and the frame they hold."""

    parquet_path: Path
    csv_path: Path
    frame: pd.DataFrame


def handbook_fixture_frame(
    days: int = 3,
    n_customers: int = 50,
    n_terminals: int = 100,
    seed: int = 7,
    start: str = "2018-04-01",
    fraud_rate: float = 0.05,
) -> pd.DataFrame:
    """A simulated handbook-schema frame, like the benchmark files but tiny.

    Times are whole seconds (as in the benchmark data), naive UTC; the fraud
    rate is raised (default 5%) so that a tiny sample still holds frauds.
    Deterministic for equal arguments; the default seed yields all four fraud
    scenarios (341 rows, 21 frauds).
    """
    config = SimulatorConfig(seed=seed, n_customers=n_customers, n_terminals=n_terminals).with_fraud_rate(fraud_rate)
    tx, _ = Simulator(config).history(start=pd.Timestamp(start, tz="UTC"), days=days)
    tx = tx.assign(event_time=tx["event_time"].dt.floor("s"))
    return to_handbook(tx, origin=pd.Timestamp(start))


def write_handbook_fixture(
    directory: str | Path,
    days: int = 3,
    n_customers: int = 50,
    n_terminals: int = 100,
    seed: int = 7,
    start: str = "2018-04-01",
    fraud_rate: float = 0.05,
    name: str = "handbook",
) -> HandbookFixture:
    """Write ``<name>.parquet`` and ``<name>.csv`` (same rows) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frame = handbook_fixture_frame(days, n_customers, n_terminals, seed, start, fraud_rate)
    parquet_path = directory / f"{name}.parquet"
    csv_path = directory / f"{name}.csv"
    frame.to_parquet(parquet_path, index=False)
    frame.to_csv(csv_path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return HandbookFixture(parquet_path, csv_path, frame)
