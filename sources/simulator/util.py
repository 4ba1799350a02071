"""Helpers of the simulator: card numbers (Luhn), time conversions, distances, vectorised sampling."""

from __future__ import annotations

import datetime as dt
from typing import TypeAlias

import numpy as np
import pandas as pd

from sources.contract import TIMESTAMP_UNIT

TimeLike: TypeAlias = str | dt.datetime | pd.Timestamp


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


def luhn_numbers(payload_digits: np.ndarray) -> list[str]:
    """Vectorised Luhn: ``payload_digits`` is (n, k) ints; returns n strings."""
    k = payload_digits.shape[1]
    doubled = payload_digits.copy()
    cols = k - 1 - np.arange(0, k, 2)  # rightmost payload digit and every second one leftwards
    d = doubled[:, cols] * 2
    doubled[:, cols] = np.where(d > 9, d - 9, d)
    check = (10 - doubled.sum(axis=1) % 10) % 10
    full = np.concatenate([payload_digits, check[:, None]], axis=1).astype(np.uint8) + ord("0")
    return [row.tobytes().decode("ascii") for row in full]


def to_utc(value: TimeLike) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def ts_ms(value: TimeLike) -> int:
    return int(to_utc(value).value // 1_000_000)


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def nearest_k(
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


def pick_rows(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """Sample one column index per row of cumulative probabilities ``cum``."""
    u = rng.random((cum.shape[0], 1))
    return np.minimum((u > cum).sum(axis=1), cum.shape[1] - 1)


def top_k_random(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """Per row, ``k`` column indices sampled without replacement ~ weights (Gumbel top-k)."""
    keys = np.log(np.maximum(weights, 1e-300)) + rng.gumbel(size=weights.shape)
    return np.argsort(-keys, axis=1)[:, :k]


def bursts(
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


def device_str(number: int) -> str:
    return f"D{int(number):012x}"


def ms_to_ts(ms: np.ndarray) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(np.asarray(ms, dtype=np.int64).astype("datetime64[ms]"))
    return index.tz_localize("UTC").as_unit(TIMESTAMP_UNIT)


def ms_to_timestamp(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")
