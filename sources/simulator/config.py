"""What the simulated world is made of: :class:`SimulatorConfig` (and label delays, :class:`DelaySpec`)."""

from __future__ import annotations

import dataclasses
import math
import zoneinfo
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from sources.contract import FraudScenario
from sources.simulator.util import to_utc


@dataclass(frozen=True)
class DelaySpec:
    """Distribution of a label delay, in days.

    ``uniform``: uniform on ``[low_days, high_days]``; ``fixed``: always
    ``low_days``; ``lognormal``: median ``sqrt(low*high)``, ~95% inside
    ``[low, high]``, clipped to it.
    """

    low_days: float
    high_days: float
    kind: Literal["uniform", "fixed", "lognormal"] = "uniform"

    def __post_init__(self) -> None:
        if not 0 <= self.low_days <= self.high_days:
            raise ValueError(f"need 0 <= low_days <= high_days, got {self.low_days}, {self.high_days}")
        if self.kind not in ("uniform", "fixed", "lognormal"):
            raise ValueError(f"unknown delay kind {self.kind!r}")
        if self.kind == "lognormal" and self.low_days <= 0:
            raise ValueError("lognormal delays need low_days > 0")

    @property
    def max_days(self) -> float:
        """Largest delay this distribution can produce."""
        return self.low_days if self.kind == "fixed" else self.high_days

    def sample_seconds(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` delays, in seconds."""
        lo, hi = self.low_days * 86_400.0, self.high_days * 86_400.0
        if self.kind == "fixed" or lo == hi:
            return np.full(n, lo)
        if self.kind == "uniform":
            return rng.uniform(lo, hi, n)
        mu = 0.5 * (math.log(lo) + math.log(hi))
        sigma = (math.log(hi) - math.log(lo)) / (2 * 1.96)
        return np.clip(rng.lognormal(mu, sigma, n), lo, hi)


DEFAULT_HOURLY = (
    0.5, 0.3, 0.2, 0.15, 0.15, 0.3, 1.0, 2.5, 4.0, 4.5, 5.0, 5.5,
    7.0, 6.5, 5.0, 4.8, 5.2, 6.0, 7.0, 6.5, 5.0, 3.5, 2.2, 1.2,
)  # fmt: skip


@dataclass(frozen=True)
class SimulatorConfig:
    """All parameters of the simulated world; equal configs give equal data."""

    seed: int = 42
    n_customers: int = 2_000
    n_terminals: int = 4_000
    #: Default start of :meth:`Simulator.history` (a Monday).
    start: str = "2026-01-05T00:00:00+00:00"
    #: Local time zone of customers: daily/weekly cycles follow it.
    timezone: str = "Europe/Paris"
    #: Per-customer mean transactions per day, drawn uniformly in this range.
    tx_per_day: tuple[float, float] = (0.5, 4.0)
    #: Per-customer mean amount (EUR-ish units), drawn log-uniformly.
    mean_amount: tuple[float, float] = (15.0, 90.0)
    #: Log-normal spread of genuine amounts around the customer/MCC mean.
    amount_sigma: float = 0.5
    #: Relative activity Monday..Sunday (normalised to mean 1).
    weekday_factors: tuple[float, ...] = (0.92, 0.95, 1.0, 1.02, 1.12, 1.22, 0.77)
    #: Relative activity per local hour 0..23.
    hourly_weights: tuple[float, ...] = DEFAULT_HOURLY
    #: Share of genuine transactions at a non-usual terminal (nearby / by popularity).
    explore_share: float = 0.08
    #: Share of genuine POS/ATM transactions at a random terminal anywhere.
    travel_share: float = 0.005
    #: Share of genuine transactions carrying the card number (fraud always does).
    card_number_share: float = 0.95
    # Fraud rates as fractions of all transactions, per scenario.
    amount_outlier_rate: float = 0.002
    compromised_terminal_rate: float = 0.003
    account_takeover_rate: float = 0.003
    card_testing_rate: float = 0.002
    #: Scenario 1: amount = customer mean x uniform(range).
    outlier_multiplier: tuple[float, float] = (4.0, 10.0)
    #: Scenario 2: duration of a compromise, days (uniform).
    compromise_days: tuple[float, float] = (3.0, 14.0)
    #: Scenario 2: share of the terminal's transactions that are fraud meanwhile.
    compromise_fraud_share: float = 0.9
    #: Scenario 3: transactions per burst (inclusive) and amount multiplier.
    ato_burst_size: tuple[int, int] = (3, 10)
    ato_amount_multiplier: tuple[float, float] = (2.0, 6.0)
    #: Scenario 3: mean gap between burst transactions, minutes.
    ato_mean_gap_minutes: float = 20.0
    #: Scenario 4: transactions per burst (inclusive), amounts, mean gap seconds.
    card_testing_burst_size: tuple[int, int] = (5, 20)
    card_testing_amount: tuple[float, float] = (0.5, 5.0)
    card_testing_mean_gap_seconds: float = 40.0
    #: Label delays (see module doc): fraud chargebacks and genuine maturity.
    fraud_label_delay: DelaySpec = field(default_factory=lambda: DelaySpec(1.0, 7.0, "uniform"))
    genuine_label_delay: DelaySpec = field(default_factory=lambda: DelaySpec(7.0, 7.0, "fixed"))
    #: stream(): share of transactions emitted late, and the lateness bound.
    out_of_order_fraction: float = 0.0
    max_out_of_order_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.n_customers < 1:
            raise ValueError("n_customers must be >= 1")
        if self.n_terminals < 8:
            raise ValueError("n_terminals must be >= 8")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        pd.Timestamp(self.start)
        for name in ("tx_per_day", "mean_amount", "outlier_multiplier", "compromise_days",
                     "ato_burst_size", "ato_amount_multiplier", "card_testing_burst_size",
                     "card_testing_amount"):  # fmt: skip
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name}: need 0 <= low <= high, got {(lo, hi)}")
        if self.mean_amount[0] <= 0 or self.compromise_days[0] <= 0 or self.ato_burst_size[0] < 1:
            raise ValueError("mean_amount, compromise_days and ato_burst_size lows must be > 0")
        if self.card_testing_burst_size[0] < 1:
            raise ValueError("card_testing_burst_size low must be >= 1")
        if len(self.weekday_factors) != 7 or min(self.weekday_factors) <= 0:
            raise ValueError("weekday_factors needs 7 positive values")
        if len(self.hourly_weights) != 24 or min(self.hourly_weights) < 0 or sum(self.hourly_weights) <= 0:
            raise ValueError("hourly_weights needs 24 non-negative values")
        for name in ("explore_share", "travel_share", "card_number_share", "compromise_fraud_share",
                     "out_of_order_fraction"):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.explore_share + self.travel_share > 1:
            raise ValueError("explore_share + travel_share must be <= 1")
        if min(self.scenario_rates.values()) < 0 or self.fraud_rate >= 0.5:
            raise ValueError("fraud rates must be >= 0 and sum to < 0.5")
        if self.max_out_of_order_seconds < 0:
            raise ValueError("max_out_of_order_seconds must be >= 0")
        if self.ato_mean_gap_minutes <= 0 or self.card_testing_mean_gap_seconds <= 0:
            raise ValueError("mean gaps must be > 0")

    @property
    def scenario_rates(self) -> dict[FraudScenario, float]:
        """Expected fraction of all transactions per fraud scenario."""
        return {
            FraudScenario.AMOUNT_OUTLIER: self.amount_outlier_rate,
            FraudScenario.COMPROMISED_TERMINAL: self.compromised_terminal_rate,
            FraudScenario.ACCOUNT_TAKEOVER: self.account_takeover_rate,
            FraudScenario.CARD_TESTING: self.card_testing_rate,
        }

    @property
    def fraud_rate(self) -> float:
        """Expected overall fraud rate (sum of the scenario rates)."""
        return float(sum(self.scenario_rates.values()))

    @property
    def start_timestamp(self) -> pd.Timestamp:
        """``start`` as a tz-aware UTC timestamp (naive strings are UTC)."""
        return to_utc(self.start)

    def with_fraud_rate(self, rate: float) -> SimulatorConfig:
        """Copy with all scenario rates scaled so that they sum to ``rate``."""
        total = self.fraud_rate
        if total == 0:
            share = {s: 0.25 for s in self.scenario_rates}
        else:
            share = {s: r / total for s, r in self.scenario_rates.items()}
        return dataclasses.replace(
            self,
            amount_outlier_rate=rate * share[FraudScenario.AMOUNT_OUTLIER],
            compromised_terminal_rate=rate * share[FraudScenario.COMPROMISED_TERMINAL],
            account_takeover_rate=rate * share[FraudScenario.ACCOUNT_TAKEOVER],
            card_testing_rate=rate * share[FraudScenario.CARD_TESTING],
        )

