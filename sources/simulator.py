"""Seeded, vectorised card-transaction simulator producing contract-shaped data.

The simulated world is a deterministic function of :class:`SimulatorConfig`
(including ``seed``): a population of customers and terminals, and one block
of transactions per *local* calendar day (in ``config.timezone``), each drawn
from its own random stream keyed by ``(seed, day)``. :meth:`Simulator.history`
and :meth:`Simulator.stream` are two views of that same world, so a given
seed always yields the same transactions for the same period, whichever way
(and in whatever order) they are asked for.

Population
    Customers live around real European cities (home lat/lon), have a spending
    profile (mean amount, transactions per day, channel mix), a preferred
    currency (their city's: mostly EUR), one Luhn-valid 16-digit card, one or
    two devices, a few usual POS terminals and ATMs near home and a few usual
    online merchants. Terminals have a channel (pos/ecom/atm/moto), an MCC
    (which scales amounts), a location, a currency and a popularity.

Genuine activity
    Poisson number of transactions per customer and day, scaled by a weekly
    cycle; local time of day from an hourly profile (few at night); mostly on
    usual terminals, some exploration nearby, rare travel far away.

Fraud scenarios (``fraud_scenario`` codes, see :class:`FraudScenario`)
    1. amount outliers: genuine-looking transactions with 4-10x the customer's
       usual amount;
    2. compromised terminals: for 3-14 days, 90% of the transactions of a
       compromised POS terminal/ATM are fraud (terminals picked in proportion
       to their traffic);
    3. account takeover: a burst of 3-10 transactions within hours, at new
       online merchants from a new device geolocated far from home (or at POS
       terminals in another city), with 2-6x larger amounts;
    4. card testing: a burst of 5-20 tiny online (sometimes MOTO) payments
       within minutes, from a bot device.

    Per-scenario rates are fractions of all transactions (defaults sum to
    1%); scenarios 1-2 relabel genuine transactions, 3-4 add transactions.
    Episode counts per day follow a seeded low-discrepancy schedule rather
    than Poisson draws, so a few weeks already match the configured rates
    (30 days x 2,000 customers: overall rate within ~10% of the config).

Labels
    Every transaction gets exactly one label: frauds at ``event_time`` + a
    chargeback delay (default uniform 1-7 days), genuine transactions at
    ``event_time`` + a maturity delay (default fixed 7 days). A transaction is
    *matured* once its label is reported, so ``labels.reported_at <= t`` tells
    exactly which transactions are known at ``t``. Keep the fraud delays at or
    below the genuine maturity delay (the defaults do): otherwise "still
    unlabelled after the maturity delay" would leak "fraud".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import math
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
import pandas as pd

from sources.contract import (
    CHANNELS,
    LABEL_FRAME_DTYPES,
    SCHEMA_VERSION,
    TIMESTAMP_UNIT,
    TRANSACTION_FRAME_DTYPES,
    EventKind,
    FraudScenario,
    frame_to_events,
)

__all__ = [
    "DelaySpec",
    "FraudScenario",
    "Simulator",
    "SimulatorConfig",
    "StreamEvent",
    "luhn_check_digit",
    "luhn_valid",
]

TimeLike: TypeAlias = str | dt.datetime | pd.Timestamp

_POS, _ECOM, _ATM, _MOTO = 0, 1, 2, 3  # indices into CHANNELS
_MS_PER_DAY = 86_400_000

# (name, lat, lon, currency, weight)
_CITIES: tuple[tuple[str, float, float, str, float], ...] = (
    ("Paris", 48.8566, 2.3522, "EUR", 0.14),
    ("Lyon", 45.7640, 4.8357, "EUR", 0.05),
    ("Marseille", 43.2965, 5.3698, "EUR", 0.04),
    ("Toulouse", 43.6047, 1.4442, "EUR", 0.03),
    ("Bordeaux", 44.8378, -0.5792, "EUR", 0.03),
    ("Lille", 50.6292, 3.0573, "EUR", 0.03),
    ("Nantes", 47.2184, -1.5536, "EUR", 0.03),
    ("Brussels", 50.8503, 4.3517, "EUR", 0.05),
    ("Amsterdam", 52.3676, 4.9041, "EUR", 0.05),
    ("Frankfurt", 50.1109, 8.6821, "EUR", 0.04),
    ("Berlin", 52.5200, 13.4050, "EUR", 0.06),
    ("Munich", 48.1351, 11.5820, "EUR", 0.04),
    ("Milan", 45.4642, 9.1900, "EUR", 0.05),
    ("Madrid", 40.4168, -3.7038, "EUR", 0.05),
    ("Barcelona", 41.3874, 2.1686, "EUR", 0.04),
    ("Lisbon", 38.7223, -9.1393, "EUR", 0.03),
    ("Vienna", 48.2082, 16.3738, "EUR", 0.03),
    ("Zurich", 47.3769, 8.5417, "CHF", 0.03),
    ("London", 51.5074, -0.1278, "GBP", 0.04),
    ("Stockholm", 59.3293, 18.0686, "SEK", 0.02),
    ("Copenhagen", 55.6761, 12.5683, "DKK", 0.02),
    ("Warsaw", 52.2297, 21.0122, "PLN", 0.02),
    ("Prague", 50.0755, 14.4378, "CZK", 0.02),
)
# Where fraudsters' devices / bots appear to connect from.
_FRAUD_HUBS: tuple[tuple[float, float], ...] = (
    (6.5244, 3.3792),  # Lagos
    (44.4268, 26.1025),  # Bucharest
    (41.0082, 28.9784),  # Istanbul
    (50.4501, 30.5234),  # Kyiv
    (-23.5505, -46.6333),  # Sao Paulo
    (40.7128, -74.0060),  # New York
    (1.3521, 103.8198),  # Singapore
    (14.5995, 120.9842),  # Manila
    (55.7558, 37.6173),  # Moscow
    (19.0760, 72.8777),  # Mumbai
)
# Per channel: (mcc, weight, amount factor).
_MCC_CATALOGUE: dict[int, tuple[tuple[str, float, float], ...]] = {
    _POS: (
        ("5411", 0.30, 1.0),  # grocery stores
        ("5812", 0.14, 1.1),  # restaurants
        ("5814", 0.12, 0.35),  # fast food
        ("5541", 0.10, 1.3),  # fuel
        ("5912", 0.07, 0.6),  # pharmacies
        ("5311", 0.06, 1.6),  # department stores
        ("5651", 0.08, 1.8),  # clothing
        ("5732", 0.04, 3.0),  # electronics
        ("5942", 0.03, 0.7),  # books
        ("7011", 0.02, 3.5),  # hotels
        ("4121", 0.04, 0.8),  # taxis
    ),
    _ECOM: (
        ("5999", 0.25, 1.0),  # misc retail
        ("5732", 0.10, 2.5),  # electronics
        ("5815", 0.18, 0.25),  # digital goods
        ("4899", 0.10, 0.4),  # subscriptions / streaming
        ("5311", 0.15, 1.2),  # marketplaces
        ("4722", 0.08, 4.0),  # travel agencies
        ("5691", 0.14, 1.3),  # clothing
    ),
    _ATM: (("6011", 1.0, 1.0),),
    _MOTO: (
        ("5964", 0.5, 1.3),  # catalogue merchants
        ("4722", 0.3, 3.0),  # travel
        ("5999", 0.2, 1.0),  # misc
    ),
}
_TERMINAL_CHANNEL_SHARES = (0.78, 0.14, 0.06, 0.02)  # pos, ecom, atm, moto
_CUSTOMER_CHANNEL_MIX = (0.62, 0.27, 0.08, 0.03)
_ECOM_MERCHANT_CURRENCIES = (("EUR", 0.72), ("USD", 0.14), ("GBP", 0.09), ("CHF", 0.03), ("SEK", 0.02))
_ATM_AMOUNTS = np.array([20.0, 40.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0])
_N_USUAL = {_POS: 8, _ECOM: 5, _ATM: 2, _MOTO: 1}
_N_NEAR = {_POS: 40, _ATM: 5}
_RNG_TAGS = {
    "population": 1,
    "genuine": 2,
    "compromise": 3,
    "ato": 4,
    "card_testing": 5,
    "outlier": 6,
    "ids": 7,
    "labels": 8,
    "lateness": 9,
    "compromise_hit": 10,
}
_ID_SALT = 0x5A17


# ----------------------------------------------------------------------------- config


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


_DEFAULT_HOURLY = (
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
    hourly_weights: tuple[float, ...] = _DEFAULT_HOURLY
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
        return _to_utc(self.start)

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


class StreamEvent(NamedTuple):
    """One item of :meth:`Simulator.stream`.

    ``event`` is the wire-form dict (validates against the contract schema),
    ``key`` the Kafka key (customer_id), ``emit_time`` the wall-clock time at
    which it should be produced (``>= event_time``; later for out-of-order
    transactions and for labels), ``fraud_scenario`` the ground truth of the
    transaction concerned (0 = genuine).
    """

    kind: EventKind
    emit_time: pd.Timestamp
    key: str
    event: dict[str, Any]
    fraud_scenario: int


# ----------------------------------------------------------------------------- helpers


def luhn_check_digit(payload: str) -> str:
    """Luhn check digit to append to a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """Whether a digit string passes the Luhn check."""
    return number.isdigit() and len(number) >= 2 and luhn_check_digit(number[:-1]) == number[-1]


def _luhn_numbers(payload_digits: np.ndarray) -> list[str]:
    """Vectorised Luhn: ``payload_digits`` is (n, k) ints; returns n strings."""
    k = payload_digits.shape[1]
    doubled = payload_digits.copy()
    cols = k - 1 - np.arange(0, k, 2)  # rightmost payload digit and every second one leftwards
    d = doubled[:, cols] * 2
    doubled[:, cols] = np.where(d > 9, d - 9, d)
    check = (10 - doubled.sum(axis=1) % 10) % 10
    full = np.concatenate([payload_digits, check[:, None]], axis=1).astype(np.uint8) + ord("0")
    return [row.tobytes().decode("ascii") for row in full]


def _to_utc(value: TimeLike) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def _ts_ms(value: TimeLike) -> int:
    return int(_to_utc(value).value // 1_000_000)


def _haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _nearest(
    lat: np.ndarray, lon: np.ndarray, cand: np.ndarray, t_lat: np.ndarray, t_lon: np.ndarray, k: int
) -> np.ndarray:
    """Per point, the ``k`` nearest candidate terminals (unordered)."""
    out = np.empty((len(lat), k), dtype=np.int64)
    c_lat, c_lon = t_lat[cand][None, :], t_lon[cand][None, :]
    cos_lat = np.cos(np.radians(lat))[:, None]
    step = max(1, 4_000_000 // max(len(cand), 1))
    for s in range(0, len(lat), step):
        d2 = (lat[s : s + step, None] - c_lat) ** 2 + ((lon[s : s + step, None] - c_lon) * cos_lat[s : s + step]) ** 2
        if k < len(cand):
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        else:
            part = np.tile(np.arange(len(cand)), (d2.shape[0], 1))
        out[s : s + step] = cand[part]
    return out


def _pick_rows(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """Sample one column index per row of cumulative probabilities ``cum``."""
    u = rng.random((cum.shape[0], 1))
    return np.minimum((u > cum).sum(axis=1), cum.shape[1] - 1)


def _top_k_random(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """Per row, ``k`` column indices sampled without replacement ~ weights (Gumbel top-k)."""
    keys = np.log(np.maximum(weights, 1e-300)) + rng.gumbel(size=weights.shape)
    return np.argsort(-keys, axis=1)[:, :k]


def _bursts(
    rng: np.random.Generator, n: int, size: tuple[int, int], mean_gap_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Burst index per transaction and offsets (s) from the burst start."""
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    sizes = rng.integers(size[0], size[1] + 1, n)
    burst = np.repeat(np.arange(n), sizes)
    gaps = rng.exponential(mean_gap_s, len(burst))
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    gaps[first] = 0.0
    csum = np.cumsum(gaps)
    offsets = csum - np.repeat(csum[first], sizes)
    return burst, offsets


# ----------------------------------------------------------------------------- simulator


@dataclass
class _Population:
    n_customers: int
    home_lat: np.ndarray
    home_lon: np.ndarray
    city: np.ndarray
    currency: np.ndarray  # index into currencies
    tx_per_day: np.ndarray
    mean_amount: np.ndarray
    channel_cum: np.ndarray  # (C, 4)
    devices: np.ndarray  # (C, 2) device numbers
    second_device: np.ndarray  # bool
    card_numbers: np.ndarray  # object
    usual: dict[int, np.ndarray]
    usual_cum: dict[int, np.ndarray]
    near: dict[int, np.ndarray]
    t_channel: np.ndarray
    t_lat: np.ndarray
    t_lon: np.ndarray
    t_mcc: np.ndarray  # object
    t_factor: np.ndarray
    t_currency: np.ndarray
    t_popularity: np.ndarray
    pool: dict[int, np.ndarray]
    pool_p: dict[int, np.ndarray]
    customer_ids: np.ndarray  # object
    terminal_ids: np.ndarray  # object
    t_daily_volume: np.ndarray = field(default_factory=lambda: np.zeros(0))


class Simulator:
    """Card-transaction simulator; see the module docstring for the model."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._tz = zoneinfo.ZoneInfo(self.config.timezone)
        self._currencies = sorted({c[3] for c in _CITIES} | {c for c, _ in _ECOM_MERCHANT_CURRENCIES})
        wf = np.asarray(self.config.weekday_factors, dtype=float)
        self._weekday = wf / wf.mean()
        hw = np.asarray(self.config.hourly_weights, dtype=float)
        self._hour_p = hw / hw.sum()
        self._pop = self._build_population()
        self._compromise_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._calibrate()

    # ------------------------------------------------------------------ population

    def _rng(self, tag: str, ordinal: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, _RNG_TAGS[tag], ordinal])

    def _build_population(self) -> _Population:
        cfg = self.config
        rng = self._rng("population")
        n_c, n_t = cfg.n_customers, cfg.n_terminals
        city_lat = np.array([c[1] for c in _CITIES])
        city_lon = np.array([c[2] for c in _CITIES])
        city_w = np.array([c[4] for c in _CITIES])
        city_w = city_w / city_w.sum()
        city_cur = np.array([self._currencies.index(c[3]) for c in _CITIES])

        # Terminals: channel counts, at least one of each channel.
        counts = np.maximum(1, np.round(np.array(_TERMINAL_CHANNEL_SHARES) * n_t).astype(int))
        counts[_POS] = n_t - counts[1:].sum()
        t_channel = np.repeat(np.arange(4), counts).astype(np.int8)
        t_city = rng.choice(len(_CITIES), n_t, p=city_w)
        t_lat = city_lat[t_city] + rng.normal(0, 0.08, n_t)
        t_lon = city_lon[t_city] + rng.normal(0, 0.12, n_t)
        t_mcc = np.empty(n_t, dtype=object)
        t_factor = np.ones(n_t)
        for ch, catalogue in _MCC_CATALOGUE.items():
            idx = np.flatnonzero(t_channel == ch)
            w = np.array([m[1] for m in catalogue])
            pick = rng.choice(len(catalogue), len(idx), p=w / w.sum())
            t_mcc[idx] = np.array([m[0] for m in catalogue], dtype=object)[pick]
            t_factor[idx] = np.array([m[2] for m in catalogue])[pick]
        t_currency = city_cur[t_city].copy()
        remote = np.flatnonzero((t_channel == _ECOM) | (t_channel == _MOTO))
        mc = np.array([self._currencies.index(c) for c, _ in _ECOM_MERCHANT_CURRENCIES])
        mp = np.array([p for _, p in _ECOM_MERCHANT_CURRENCIES])
        t_currency[remote] = mc[rng.choice(len(mc), len(remote), p=mp / mp.sum())]
        t_popularity = rng.lognormal(0.0, 1.0, n_t)
        ecom_idx = np.flatnonzero(t_channel == _ECOM)
        t_popularity[ecom_idx] = 1.0 / (1.0 + rng.permutation(len(ecom_idx))) ** 0.9  # Zipf-like

        # Customers.
        c_city = rng.choice(len(_CITIES), n_c, p=city_w)
        home_lat = city_lat[c_city] + rng.normal(0, 0.06, n_c)
        home_lon = city_lon[c_city] + rng.normal(0, 0.09, n_c)
        tx_per_day = rng.uniform(*cfg.tx_per_day, n_c)
        lo, hi = np.log(cfg.mean_amount[0]), np.log(cfg.mean_amount[1])
        mean_amount = np.exp(rng.uniform(lo, hi, n_c))
        mix = rng.dirichlet(np.array(_CUSTOMER_CHANNEL_MIX) * 20.0, n_c)
        channel_cum = np.cumsum(mix, axis=1)
        channel_cum[:, -1] = 1.0
        devices = rng.integers(0, 2**48, (n_c, 2), dtype=np.int64)
        second_device = rng.random(n_c) < 0.3
        payload = np.concatenate([np.tile([4, 9], (n_c, 1)), rng.integers(0, 10, (n_c, 13))], axis=1)
        cards = np.array(_luhn_numbers(payload), dtype=object)
        while len(set(cards)) < n_c:  # astronomically rare; keep cards unique
            _, first = np.unique(cards, return_index=True)
            dup = np.setdiff1d(np.arange(n_c), first)
            payload[dup, 2:] = rng.integers(0, 10, (len(dup), 13))
            cards[dup] = _luhn_numbers(payload[dup])

        pool = {ch: np.flatnonzero(t_channel == ch) for ch in range(4)}
        pool_p = {ch: t_popularity[p] / t_popularity[p].sum() for ch, p in pool.items()}
        usual: dict[int, np.ndarray] = {}
        usual_cum: dict[int, np.ndarray] = {}
        near: dict[int, np.ndarray] = {}
        for ch in (_POS, _ATM):
            cand = pool[ch]
            k_near = min(_N_NEAR[ch], len(cand))
            nearest = np.empty((n_c, k_near), dtype=np.int64)
            for city in range(len(_CITIES)):
                who = np.flatnonzero(c_city == city)
                local = cand[t_city[cand] == city]  # cities are far apart: look within the city
                nearest[who] = _nearest(home_lat[who], home_lon[who], local if len(local) >= k_near else cand,
                                        t_lat, t_lon, k_near)  # fmt: skip
            near[ch] = nearest
            k = min(_N_USUAL[ch], k_near)
            chosen = _top_k_random(rng, t_popularity[nearest], k)
            usual[ch] = np.take_along_axis(nearest, chosen, axis=1)
        for ch in (_ECOM, _MOTO):
            cand = pool[ch]
            k = min(_N_USUAL[ch], len(cand))
            # by popularity, with replacement (a repeat just weighs more): O(customers x k)
            usual[ch] = rng.choice(cand, (n_c, k), p=pool_p[ch])
        for ch in range(4):
            w = rng.dirichlet(np.ones(usual[ch].shape[1]), n_c)
            cum = np.cumsum(w, axis=1)
            cum[:, -1] = 1.0
            usual_cum[ch] = cum

        return _Population(
            n_customers=n_c,
            home_lat=home_lat,
            home_lon=home_lon,
            city=c_city,
            currency=city_cur[c_city],
            tx_per_day=tx_per_day,
            mean_amount=mean_amount,
            channel_cum=channel_cum,
            devices=devices,
            second_device=second_device,
            card_numbers=cards,
            usual=usual,
            usual_cum=usual_cum,
            near=near,
            t_channel=t_channel,
            t_lat=t_lat,
            t_lon=t_lon,
            t_mcc=t_mcc,
            t_factor=t_factor,
            t_currency=t_currency,
            t_popularity=t_popularity,
            pool=pool,
            pool_p=pool_p,
            customer_ids=np.array([f"C{i:07d}" for i in range(n_c)], dtype=object),
            terminal_ids=np.array([f"T{i:07d}" for i in range(n_t)], dtype=object),
        )

    def _calibrate(self) -> None:
        """Expected volumes, from which per-day fraud event intensities follow."""
        cfg, pop = self.config, self._pop
        mix = np.diff(np.concatenate([np.zeros((pop.n_customers, 1)), pop.channel_cum], axis=1), axis=1)
        vol = np.zeros(cfg.n_terminals)
        keep = 1.0 - cfg.explore_share
        for ch in range(4):
            rate = pop.tx_per_day * mix[:, ch]
            travel = cfg.travel_share if ch in (_POS, _ATM) else 0.0
            w = np.diff(np.concatenate([np.zeros((pop.n_customers, 1)), pop.usual_cum[ch]], axis=1), axis=1)
            np.add.at(vol, pop.usual[ch], (keep - travel) * rate[:, None] * w)
            if ch in pop.near:
                k = pop.near[ch].shape[1]
                np.add.at(vol, pop.near[ch], cfg.explore_share * rate[:, None] / k)
                vol[pop.pool[ch]] += travel * rate.sum() / len(pop.pool[ch])
            else:
                vol[pop.pool[ch]] += cfg.explore_share * rate.sum() * pop.pool_p[ch]
        pop.t_daily_volume = vol
        genuine = float(pop.tx_per_day.sum())
        injected = cfg.account_takeover_rate + cfg.card_testing_rate
        self._expected_daily_total = genuine / (1.0 - injected)
        self._expected_daily_genuine = genuine
        phys = np.concatenate([pop.pool[_POS], pop.pool[_ATM]])
        v = vol[phys]
        self._compromise_pool = phys
        self._compromise_p = v / v.sum()
        traffic = float((v**2).sum() / v.sum())  # expected daily volume of a terminal drawn ~ volume
        per_episode = cfg.compromise_fraud_share * float(np.mean(cfg.compromise_days)) * traffic
        total = self._expected_daily_total
        self._lambda_compromise = cfg.compromised_terminal_rate * total / max(per_episode, 1e-12)
        self._lambda_ato = cfg.account_takeover_rate * total / float(np.mean(cfg.ato_burst_size))
        self._lambda_ct = cfg.card_testing_rate * total / float(np.mean(cfg.card_testing_burst_size))

    @property
    def customers(self) -> pd.DataFrame:
        """The simulated customers (profile, home, card, devices)."""
        pop = self._pop
        cities = np.array([c[0] for c in _CITIES], dtype=object)
        return pd.DataFrame(
            {
                "customer_id": pop.customer_ids,
                "city": cities[pop.city],
                "home_latitude": pop.home_lat,
                "home_longitude": pop.home_lon,
                "currency": np.array(self._currencies, dtype=object)[pop.currency],
                "tx_per_day": pop.tx_per_day,
                "mean_amount": pop.mean_amount,
                "card_number": pop.card_numbers,
                "device_ids": [
                    [_device_str(d) for d in (row if two else row[:1])]
                    for row, two in zip(pop.devices, pop.second_device, strict=True)
                ],
            }
        )

    @property
    def terminals(self) -> pd.DataFrame:
        """The simulated terminals / merchants."""
        pop = self._pop
        return pd.DataFrame(
            {
                "terminal_id": pop.terminal_ids,
                "channel": np.array(CHANNELS, dtype=object)[pop.t_channel],
                "merchant_category": pop.t_mcc,
                "latitude": pop.t_lat,
                "longitude": pop.t_lon,
                "currency": np.array(self._currencies, dtype=object)[pop.t_currency],
                "expected_daily_tx": pop.t_daily_volume,
            }
        )

    # ------------------------------------------------------------------ one local day

    def _midnight_ms(self, day: dt.date) -> int:
        local = dt.datetime.combine(day, dt.time(0), tzinfo=self._tz)
        return int(local.timestamp() * 1000)

    def _scheduled_count(self, tag: str, rate: float, ordinal: int) -> int:
        """Number of fraud episodes starting on a day: ``rate`` per day on average.

        A low-discrepancy schedule (with a seeded phase) instead of Poisson
        draws, so that fraud rates over a few weeks stay close to the config.
        """
        phase = float(self._rng(tag, 0).random())
        return int(math.floor(rate * (ordinal + 1) + phase) - math.floor(rate * ordinal + phase))

    def _compromise_plan(self, ordinal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        plan = self._compromise_cache.get(ordinal)
        if plan is None:
            cfg = self.config
            rng = self._rng("compromise", ordinal)
            n = self._scheduled_count("compromise", self._lambda_compromise, ordinal)
            term = rng.choice(self._compromise_pool, n, p=self._compromise_p)
            midnight = self._midnight_ms(dt.date.fromordinal(ordinal))
            start = midnight + (rng.random(n) * _MS_PER_DAY).astype(np.int64)
            end = start + (rng.uniform(*cfg.compromise_days, n) * _MS_PER_DAY).astype(np.int64)
            plan = (term, start, end)
            if len(self._compromise_cache) > 4096:
                self._compromise_cache.clear()
            self._compromise_cache[ordinal] = plan
        return plan

    def _day_block(self, day: dt.date) -> dict[str, np.ndarray]:
        """All transactions (genuine and fraud) generated for one local day."""
        cfg, pop = self.config, self._pop
        ordinal = day.toordinal()
        midnight = self._midnight_ms(day)
        day_len = self._midnight_ms(day + dt.timedelta(days=1)) - midnight

        # --- genuine activity
        rng = self._rng("genuine", ordinal)
        counts = rng.poisson(pop.tx_per_day * self._weekday[day.weekday()])
        cust = np.repeat(np.arange(pop.n_customers), counts)
        n = len(cust)
        hour = rng.choice(24, n, p=self._hour_p)
        sec = hour * 3600.0 + rng.random(n) * 3600.0
        t = midnight + np.minimum((sec * 1000 * day_len / _MS_PER_DAY).astype(np.int64), day_len - 1)
        channel = _pick_rows(rng, pop.channel_cum[cust]).astype(np.int8)
        term = np.empty(n, dtype=np.int64)
        r = rng.random(n)
        for ch in range(4):
            idx = np.flatnonzero(channel == ch)
            cu = cust[idx]
            slot = _pick_rows(rng, pop.usual_cum[ch][cu])
            chosen = pop.usual[ch][cu, slot]
            explore = r[idx] < cfg.explore_share
            ne = int(explore.sum())
            if ch in pop.near:
                near = pop.near[ch]
                chosen[explore] = near[cu[explore], rng.integers(0, near.shape[1], ne)]
                travel = (r[idx] >= cfg.explore_share) & (r[idx] < cfg.explore_share + cfg.travel_share)
                chosen[travel] = rng.choice(pop.pool[ch], int(travel.sum()))
            else:
                chosen[explore] = rng.choice(pop.pool[ch], ne, p=pop.pool_p[ch])
            term[idx] = chosen
        sigma = cfg.amount_sigma
        amount = pop.mean_amount[cust] * pop.t_factor[term] * rng.lognormal(-(sigma**2) / 2, sigma, n)
        atm = channel == _ATM
        target = 2.0 * pop.mean_amount[cust[atm]] * rng.lognormal(0.0, 0.4, int(atm.sum()))
        mids = (_ATM_AMOUNTS[1:] + _ATM_AMOUNTS[:-1]) / 2
        amount[atm] = _ATM_AMOUNTS[np.searchsorted(mids, target)]
        amount = np.maximum(np.round(amount, 2), 0.5)
        lat = pop.t_lat[term].copy()
        lon = pop.t_lon[term].copy()
        ecom = channel == _ECOM
        ne = int(ecom.sum())
        lat[ecom] = pop.home_lat[cust[ecom]] + rng.normal(0, 0.03, ne)
        lon[ecom] = pop.home_lon[cust[ecom]] + rng.normal(0, 0.04, ne)
        moto = channel == _MOTO
        lat[moto] = np.nan
        lon[moto] = np.nan
        device = np.full(n, -1, dtype=np.int64)
        second = pop.second_device[cust[ecom]] & (rng.random(ne) < 0.15)
        device[ecom] = pop.devices[cust[ecom], second.astype(np.int64)]
        currency = pop.t_currency[term].copy()
        remote = ecom | moto
        own = remote & (rng.random(n) < 0.9)
        currency[own] = pop.currency[cust[own]]
        has_card = rng.random(n) < cfg.card_number_share
        scenario = np.zeros(n, dtype=np.int8)

        # --- scenario 2: compromised terminals (episodes started up to max duration ago)
        back = math.ceil(cfg.compromise_days[1]) + 1
        plans = [self._compromise_plan(o) for o in range(ordinal - back, ordinal + 1)]
        e_term = np.concatenate([p[0] for p in plans])
        e_start = np.concatenate([p[1] for p in plans])
        e_end = np.concatenate([p[2] for p in plans])
        active = (e_start < midnight + day_len) & (e_end > midnight)
        if active.any():
            frng = self._rng("compromise_hit", ordinal)
            hit = np.zeros(n, dtype=bool)
            for tt, s, e in zip(e_term[active], e_start[active], e_end[active], strict=True):
                hit |= (term == tt) & (t >= s) & (t < e)
            hit &= frng.random(n) < cfg.compromise_fraud_share
            scenario[hit] = FraudScenario.COMPROMISED_TERMINAL
            has_card[hit] = True
        # --- scenario 1: amount outliers on non-ATM genuine transactions
        orng = self._rng("outlier", ordinal)
        eligible = (scenario == 0) & ~atm
        n_elig = int(eligible.sum())
        if n_elig and cfg.amount_outlier_rate > 0:
            expected_total = n / (1.0 - cfg.account_takeover_rate - cfg.card_testing_rate)
            p = cfg.amount_outlier_rate * expected_total / n_elig
            out = eligible & (orng.random(n) < min(p, 1.0))
            k = int(out.sum())
            amount[out] = np.round(pop.mean_amount[cust[out]] * orng.uniform(*cfg.outlier_multiplier, k), 2)
            scenario[out] = FraudScenario.AMOUNT_OUTLIER
            has_card[out] = True

        parts = [
            {
                "t": t,
                "cust": cust,
                "term": term,
                "amount": amount,
                "lat": lat,
                "lon": lon,
                "device": device,
                "currency": currency,
                "has_card": has_card,
                "scenario": scenario,
            },
            self._account_takeover(ordinal, midnight, day_len),
            self._card_testing(ordinal, midnight, day_len),
        ]
        block = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        m = len(block["t"])
        irng = self._rng("ids", ordinal)
        block["id_hi"] = irng.integers(0, 2**63, m, dtype=np.int64)
        block["id_lo"] = irng.integers(0, 2**63, m, dtype=np.int64)
        lrng = self._rng("labels", ordinal)
        fraud = block["scenario"] > 0
        delay = np.empty(m)
        delay[fraud] = cfg.fraud_label_delay.sample_seconds(lrng, int(fraud.sum()))
        delay[~fraud] = cfg.genuine_label_delay.sample_seconds(lrng, int((~fraud).sum()))
        block["delay_ms"] = np.round(delay * 1000).astype(np.int64)
        return block

    def _far_location(
        self, rng: np.random.Generator, cust: np.ndarray, abroad_share: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """A location away from each customer's home city (or a foreign hub)."""
        n = len(cust)
        hubs = np.array(_FRAUD_HUBS)
        cities = np.array([(c[1], c[2]) for c in _CITIES])
        h = hubs[rng.integers(0, len(hubs), n)]
        shift = rng.integers(1, len(cities), n)  # never the home city
        c = cities[(self._pop.city[cust] + shift) % len(cities)]
        loc = np.where((rng.random(n) < abroad_share)[:, None], h, c)
        return loc[:, 0] + rng.normal(0, 0.05, n), loc[:, 1] + rng.normal(0, 0.07, n)

    def _account_takeover(self, ordinal: int, midnight: int, day_len: int) -> dict[str, np.ndarray]:
        cfg, pop = self.config, self._pop
        rng = self._rng("ato", ordinal)
        nb = self._scheduled_count("ato", self._lambda_ato, ordinal)
        victims = rng.integers(0, pop.n_customers, nb)
        hour_p = 0.5 * self._hour_p + 0.5 / 24
        start_s = rng.choice(24, nb, p=hour_p) * 3600.0 + rng.random(nb) * 3600.0
        burst, offs = _bursts(rng, nb, cfg.ato_burst_size, cfg.ato_mean_gap_minutes * 60)
        m = len(burst)
        cust = victims[burst]
        t = midnight + ((start_s[burst] + offs) * 1000).astype(np.int64)
        online = (rng.random(nb) < 0.75)[burst]
        term = np.empty(m, dtype=np.int64)
        term[online] = rng.choice(pop.pool[_ECOM], int(online.sum()))
        # card-present legs: POS terminals far from home (first of 4 candidates > 200 km)
        off = np.flatnonzero(~online)
        cand = rng.choice(pop.pool[_POS], (len(off), 4))
        dist = _haversine_km(
            pop.home_lat[cust[off], None], pop.home_lon[cust[off], None], pop.t_lat[cand], pop.t_lon[cand]
        )
        far = dist > 200
        pick = np.where(far.any(axis=1), far.argmax(axis=1), dist.argmax(axis=1))
        term[off] = cand[np.arange(len(off)), pick]
        b_lat, b_lon = self._far_location(rng, victims, abroad_share=0.5)
        lat = np.where(online, b_lat[burst], pop.t_lat[term])
        lon = np.where(online, b_lon[burst], pop.t_lon[term])
        dev_b = rng.integers(0, 2**48, nb, dtype=np.int64)
        device = np.where(online, dev_b[burst], -1)
        amount = np.round(pop.mean_amount[cust] * rng.uniform(*cfg.ato_amount_multiplier, m), 2)
        return {
            "t": t,
            "cust": cust,
            "term": term,
            "amount": amount,
            "lat": lat,
            "lon": lon,
            "device": device,
            "currency": pop.t_currency[term],
            "has_card": np.ones(m, dtype=bool),
            "scenario": np.full(m, FraudScenario.ACCOUNT_TAKEOVER, dtype=np.int8),
        }

    def _card_testing(self, ordinal: int, midnight: int, day_len: int) -> dict[str, np.ndarray]:
        cfg, pop = self.config, self._pop
        rng = self._rng("card_testing", ordinal)
        nb = self._scheduled_count("card_testing", self._lambda_ct, ordinal)
        victims = rng.integers(0, pop.n_customers, nb)
        start_ms = rng.random(nb) * day_len
        burst, offs = _bursts(rng, nb, cfg.card_testing_burst_size, cfg.card_testing_mean_gap_seconds)
        m = len(burst)
        cust = victims[burst]
        t = midnight + (start_ms[burst] + offs * 1000).astype(np.int64)
        online_b = rng.random(nb) < 0.85
        online = online_b[burst]
        # one or two merchants per burst
        m_ecom = rng.choice(pop.pool[_ECOM], (nb, 2))
        m_moto = rng.choice(pop.pool[_MOTO], (nb, 2))
        two = rng.random(nb) < 0.4
        which = np.where(two[burst], rng.integers(0, 2, m), 0)
        term = np.where(online, m_ecom[burst, which], m_moto[burst, which])
        b_lat, b_lon = self._far_location(rng, victims, abroad_share=0.9)
        lat = np.where(online, b_lat[burst], np.nan)
        lon = np.where(online, b_lon[burst], np.nan)
        dev_b = rng.integers(0, 2**48, nb, dtype=np.int64)
        device = np.where(online, dev_b[burst], -1)
        amount = np.round(rng.uniform(*cfg.card_testing_amount, m), 2)
        amount[rng.random(m) < 0.25] = 1.0
        return {
            "t": t,
            "cust": cust,
            "term": term,
            "amount": amount,
            "lat": lat,
            "lon": lon,
            "device": device,
            "currency": pop.t_currency[term],
            "has_card": np.ones(m, dtype=bool),
            "scenario": np.full(m, FraudScenario.CARD_TESTING, dtype=np.int8),
        }

    def _blocks(self, first: dt.date, last: dt.date) -> dict[str, np.ndarray]:
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        blocks = [self._day_block(d) for d in days]
        return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}

    def _local_date(self, ms: int) -> dt.date:
        return dt.datetime.fromtimestamp(ms / 1000, tz=self._tz).date()

    # ------------------------------------------------------------------ frames

    def _frames(self, b: dict[str, np.ndarray], reported_ms: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        pop = self._pop
        n = len(b["t"])
        tx_id = np.array(
            [f"{hi:016x}{lo:016x}" for hi, lo in zip(b["id_hi"].tolist(), b["id_lo"].tolist(), strict=True)],
            dtype=object,
        )
        cust_id = pop.customer_ids[b["cust"]]
        term_id = pop.terminal_ids[b["term"]]
        dev = b["device"]
        device = np.full(n, None, dtype=object)
        has_dev = dev >= 0
        if has_dev.any():
            uniq, inv = np.unique(dev[has_dev], return_inverse=True)
            device[has_dev] = np.array([_device_str(d) for d in uniq.tolist()], dtype=object)[inv]
        card = np.where(b["has_card"], pop.card_numbers[b["cust"]], None)
        is_fraud = b["scenario"] > 0
        version = np.full(n, SCHEMA_VERSION, dtype=object)
        tx = pd.DataFrame(
            {
                "schema_version": version,
                "transaction_id": tx_id,
                "event_time": _ms_to_ts(b["t"]),
                "customer_id": cust_id,
                "terminal_id": term_id,
                "amount": b["amount"].astype(np.float64),
                "currency": np.array(self._currencies, dtype=object)[b["currency"]],
                "card_number": card,
                "device_id": device,
                "merchant_category": pop.t_mcc[b["term"]],
                "channel": np.array(CHANNELS, dtype=object)[pop.t_channel[b["term"]]],
                "latitude": np.round(b["lat"], 5),
                "longitude": np.round(b["lon"], 5),
                "is_fraud": is_fraud,
                "fraud_scenario": b["scenario"].astype(np.int8),
            }
        ).astype(TRANSACTION_FRAME_DTYPES)
        labels = pd.DataFrame(
            {
                "schema_version": version,
                "transaction_id": tx_id,
                "customer_id": cust_id,
                "terminal_id": term_id,
                "is_fraud": is_fraud,
                "reported_at": _ms_to_ts(reported_ms),
            }
        ).astype(LABEL_FRAME_DTYPES)
        return tx, labels

    # ------------------------------------------------------------------ public API

    def history(self, start: TimeLike | None = None, days: float = 30.0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Transactions with event_time in ``[start, start + days)`` and their labels.

        Returns ``(transactions, labels)``: transactions in the contract
        columns plus ``is_fraud``/``fraud_scenario``, sorted by event_time;
        one label per transaction (reported_at may lie after the period:
        filter ``reported_at <= t`` for what is known at ``t``), sorted by
        reported_at. ``start`` defaults to ``config.start``; naive times are UTC.
        """
        start_ms = _ts_ms(self.config.start if start is None else start)
        end_ms = start_ms + round(days * _MS_PER_DAY)
        if end_ms <= start_ms:
            raise ValueError("days must be > 0")
        # the day before may have bursts spilling over midnight into the period
        b = self._blocks(self._local_date(start_ms) - dt.timedelta(days=1), self._local_date(end_ms - 1))
        keep = (b["t"] >= start_ms) & (b["t"] < end_ms)
        b = {k: v[keep] for k, v in b.items()}
        order = np.lexsort((b["id_lo"], b["id_hi"], b["t"]))
        b = {k: v[order] for k, v in b.items()}
        tx, labels = self._frames(b, b["t"] + b["delay_ms"])
        labels = labels.sort_values(["reported_at", "transaction_id"], kind="stable").reset_index(drop=True)
        return tx, labels

    def stream(
        self,
        start: TimeLike | None = None,
        count: int | None = None,
        duration: pd.Timedelta | dt.timedelta | str | None = None,
        *,
        include_labels: bool = True,
        drain_labels: bool = True,
        time_compression: float = 1.0,
        label_time_compression: float | None = None,
        realtime: bool = False,
    ) -> Iterator[StreamEvent]:
        """Live-style stream of transaction (and label) events in emission order.

        Simulated time starts at ``start`` (default: now) and runs
        ``time_compression`` times faster than the emitted clock: an event
        simulated at ``start + x`` carries ``event_time = start + x /
        time_compression`` (so activity, cycles and bursts are compressed
        too). Label delays are divided by ``label_time_compression`` (default
        ``time_compression``), e.g. 1440 turns a 7-day maturity into 7
        minutes. Stops after ``count`` transactions or after ``duration`` of
        emitted time (infinite if both are None); with ``drain_labels`` the
        labels of the emitted transactions are then still yielded. With
        ``config.out_of_order_fraction > 0``, that share of transactions is
        emitted up to ``config.max_out_of_order_seconds`` late (in emitted
        time); the rest is in event-time order, and a label never precedes
        its transaction. ``realtime=True`` sleeps until each ``emit_time``.
        """
        if time_compression <= 0 or (label_time_compression is not None and label_time_compression <= 0):
            raise ValueError("compression factors must be > 0")
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        ltc = time_compression if label_time_compression is None else label_time_compression
        start_ms = int(time.time() * 1000) if start is None else _ts_ms(start)
        end_ms: float = math.inf
        if duration is not None:
            end_ms = start_ms + pd.Timedelta(duration).total_seconds() * 1000
        sim_end = start_ms + (end_ms - start_ms) * time_compression if end_ms != math.inf else math.inf

        if count is not None and self._expected_daily_total <= 0:
            raise ValueError("the configuration produces no transactions")

        heap: list[tuple[int, int, int, Any]] = []  # (emit_ms, seq, kind 0=tx 1=label, payload)
        seq = 0
        emitted = 0
        pending_tx = 0
        day = self._local_date(start_ms) - dt.timedelta(days=1)
        producing = True
        while True:
            horizon: float = math.inf
            if producing:
                if self._midnight_ms(day) >= sim_end or (count is not None and emitted >= count):
                    producing = False
                else:
                    items = self._stream_day(day, start_ms, sim_end, time_compression, ltc, include_labels)
                    for emit_at, payload in items:
                        heapq.heappush(heap, (emit_at, seq, 0, payload))
                        seq += 1
                        pending_tx += 1
                    day = day + dt.timedelta(days=1)
                    horizon = start_ms + (self._midnight_ms(day) - start_ms) / time_compression
            while heap and heap[0][0] < horizon:
                emit_ms, _, kind, payload = heapq.heappop(heap)
                if kind == 0:
                    pending_tx -= 1
                    if count is not None and emitted >= count:
                        continue
                    ev, lab, reported_ms, scenario = payload
                    emitted += 1
                    if lab is not None:
                        heapq.heappush(heap, (max(reported_ms, emit_ms), seq, 1, (lab, scenario)))
                        seq += 1
                    out = StreamEvent("transaction", _ms_to_timestamp(emit_ms), ev["customer_id"], ev, scenario)
                else:
                    lab, scenario = payload
                    out = StreamEvent("label", _ms_to_timestamp(emit_ms), lab["customer_id"], lab, scenario)
                if realtime:
                    wait = emit_ms / 1000 - time.time()
                    if wait > 0:
                        time.sleep(wait)
                yield out
                if not drain_labels:
                    if count is not None and emitted >= count:
                        return
                    if not producing and pending_tx == 0:
                        return
            if not producing and (not heap or (not drain_labels and pending_tx == 0)):
                return

    def _stream_day(
        self,
        day: dt.date,
        start_ms: int,
        sim_end: float,
        time_compression: float,
        label_time_compression: float,
        include_labels: bool,
    ) -> Iterator[tuple[int, tuple[dict[str, Any], dict[str, Any] | None, int, int]]]:
        """(emit_ms, (tx event, label event, label emit ms, scenario)) for one local day."""
        cfg = self.config
        b = self._day_block(day)
        keep = (b["t"] >= start_ms) & (b["t"] < sim_end)
        b = {k: v[keep] for k, v in b.items()}
        order = np.lexsort((b["id_lo"], b["id_hi"], b["t"]))
        b = {k: v[order] for k, v in b.items()}
        wall = start_ms + np.round((b["t"] - start_ms) / time_compression).astype(np.int64)
        reported = wall + np.round(b["delay_ms"] / label_time_compression).astype(np.int64)
        b["t"] = wall
        tx, labels = self._frames(b, reported)
        late_rng = self._rng("lateness", day.toordinal())
        late = late_rng.random(len(wall)) < cfg.out_of_order_fraction
        lateness = late_rng.uniform(0, cfg.max_out_of_order_seconds * 1000, len(wall))
        emit = wall + np.where(late, lateness, 0.0).astype(np.int64)
        label_events = frame_to_events(labels, "label") if include_labels else None
        scenario = b["scenario"].tolist()
        for i, ev in enumerate(frame_to_events(tx, "transaction")):
            lab = next(label_events) if label_events is not None else None
            yield int(emit[i]), (ev, lab, int(reported[i]), scenario[i])


def _device_str(number: int) -> str:
    return f"D{int(number):012x}"


def _ms_to_ts(ms: np.ndarray) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(np.asarray(ms, dtype=np.int64).astype("datetime64[ms]"))
    return index.tz_localize("UTC").as_unit(TIMESTAMP_UNIT)


def _ms_to_timestamp(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")
