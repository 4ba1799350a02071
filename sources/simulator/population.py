"""The population: customers around real cities with their profiles, cards and devices; terminals; volumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sources.contract import CHANNELS
from sources.simulator.config import SimulatorConfig
from sources.simulator.util import device_str, luhn_numbers, nearest_k, top_k_random
from sources.simulator.world import (
    ATM,
    CITIES,
    CUSTOMER_CHANNEL_MIX,
    ECOM,
    ECOM_MERCHANT_CURRENCIES,
    MCC_CATALOGUE,
    MOTO,
    N_NEAR,
    N_USUAL,
    POS,
    TERMINAL_CHANNEL_SHARES,
    rng_for,
)


@dataclass
class Population:
    """Customers (``C`` rows) and terminals (``t_*``) as arrays; ids are the contract's."""

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



@dataclass(frozen=True)
class Calibration:
    """Expected daily volumes and the per-day intensities of the fraud episodes that follow from them."""

    expected_daily_total: float
    expected_daily_genuine: float
    compromise_pool: np.ndarray  # physical terminals (POS, ATM) a compromise may hit ...
    compromise_p: np.ndarray  # ... in proportion to their traffic
    lambda_compromise: float
    lambda_ato: float
    lambda_ct: float


def build_population(cfg: SimulatorConfig, currencies: list[str]) -> Population:
    """Customers and terminals of the world ``cfg`` describes (its own random stream)."""
    rng = rng_for(cfg.seed, "population")
    n_c, n_t = cfg.n_customers, cfg.n_terminals
    city_lat = np.array([c[1] for c in CITIES])
    city_lon = np.array([c[2] for c in CITIES])
    city_w = np.array([c[4] for c in CITIES])
    city_w = city_w / city_w.sum()
    city_cur = np.array([currencies.index(c[3]) for c in CITIES])

    # Terminals: channel counts, at least one of each channel.
    counts = np.maximum(1, np.round(np.array(TERMINAL_CHANNEL_SHARES) * n_t).astype(int))
    counts[POS] = n_t - counts[1:].sum()
    t_channel = np.repeat(np.arange(4), counts).astype(np.int8)
    t_city = rng.choice(len(CITIES), n_t, p=city_w)
    t_lat = city_lat[t_city] + rng.normal(0, 0.08, n_t)
    t_lon = city_lon[t_city] + rng.normal(0, 0.12, n_t)
    t_mcc = np.empty(n_t, dtype=object)
    t_factor = np.ones(n_t)
    for ch, catalogue in MCC_CATALOGUE.items():
        idx = np.flatnonzero(t_channel == ch)
        w = np.array([m[1] for m in catalogue])
        pick = rng.choice(len(catalogue), len(idx), p=w / w.sum())
        t_mcc[idx] = np.array([m[0] for m in catalogue], dtype=object)[pick]
        t_factor[idx] = np.array([m[2] for m in catalogue])[pick]
    t_currency = city_cur[t_city].copy()
    remote = np.flatnonzero((t_channel == ECOM) | (t_channel == MOTO))
    mc = np.array([currencies.index(c) for c, _ in ECOM_MERCHANT_CURRENCIES])
    mp = np.array([p for _, p in ECOM_MERCHANT_CURRENCIES])
    t_currency[remote] = mc[rng.choice(len(mc), len(remote), p=mp / mp.sum())]
    t_popularity = rng.lognormal(0.0, 1.0, n_t)
    ecom_idx = np.flatnonzero(t_channel == ECOM)
    t_popularity[ecom_idx] = 1.0 / (1.0 + rng.permutation(len(ecom_idx))) ** 0.9  # Zipf-like

    # Customers.
    c_city = rng.choice(len(CITIES), n_c, p=city_w)
    home_lat = city_lat[c_city] + rng.normal(0, 0.06, n_c)
    home_lon = city_lon[c_city] + rng.normal(0, 0.09, n_c)
    tx_per_day = rng.uniform(*cfg.tx_per_day, n_c)
    lo, hi = np.log(cfg.mean_amount[0]), np.log(cfg.mean_amount[1])
    mean_amount = np.exp(rng.uniform(lo, hi, n_c))
    mix = rng.dirichlet(np.array(CUSTOMER_CHANNEL_MIX) * 20.0, n_c)
    channel_cum = np.cumsum(mix, axis=1)
    channel_cum[:, -1] = 1.0
    devices = rng.integers(0, 2**48, (n_c, 2), dtype=np.int64)
    second_device = rng.random(n_c) < 0.3
    payload = np.concatenate([np.tile([4, 9], (n_c, 1)), rng.integers(0, 10, (n_c, 13))], axis=1)
    cards = np.array(luhn_numbers(payload), dtype=object)
    while len(set(cards)) < n_c:  # astronomically rare; keep cards unique
        _, first = np.unique(cards, return_index=True)
        dup = np.setdiff1d(np.arange(n_c), first)
        payload[dup, 2:] = rng.integers(0, 10, (len(dup), 13))
        cards[dup] = luhn_numbers(payload[dup])

    pool = {ch: np.flatnonzero(t_channel == ch) for ch in range(4)}
    pool_p = {ch: t_popularity[p] / t_popularity[p].sum() for ch, p in pool.items()}
    usual: dict[int, np.ndarray] = {}
    usual_cum: dict[int, np.ndarray] = {}
    near: dict[int, np.ndarray] = {}
    for ch in (POS, ATM):
        cand = pool[ch]
        k_near = min(N_NEAR[ch], len(cand))
        nearest = np.empty((n_c, k_near), dtype=np.int64)
        for city in range(len(CITIES)):
            who = np.flatnonzero(c_city == city)
            local = cand[t_city[cand] == city]  # cities are far apart: look within the city
            nearest[who] = nearest_k(home_lat[who], home_lon[who], local if len(local) >= k_near else cand,
                                      t_lat, t_lon, k_near)  # fmt: skip
        near[ch] = nearest
        k = min(N_USUAL[ch], k_near)
        chosen = top_k_random(rng, t_popularity[nearest], k)
        usual[ch] = np.take_along_axis(nearest, chosen, axis=1)
    for ch in (ECOM, MOTO):
        cand = pool[ch]
        k = min(N_USUAL[ch], len(cand))
        # by popularity, with replacement (a repeat just weighs more): O(customers x k)
        usual[ch] = rng.choice(cand, (n_c, k), p=pool_p[ch])
    for ch in range(4):
        w = rng.dirichlet(np.ones(usual[ch].shape[1]), n_c)
        cum = np.cumsum(w, axis=1)
        cum[:, -1] = 1.0
        usual_cum[ch] = cum

    return Population(
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


def calibrate(cfg: SimulatorConfig, pop: Population) -> Calibration:
    """Expected volumes, from which per-day fraud event intensities follow (sets ``pop.t_daily_volume``)."""
    mix = np.diff(np.concatenate([np.zeros((pop.n_customers, 1)), pop.channel_cum], axis=1), axis=1)
    vol = np.zeros(cfg.n_terminals)
    keep = 1.0 - cfg.explore_share
    for ch in range(4):
        rate = pop.tx_per_day * mix[:, ch]
        travel = cfg.travel_share if ch in (POS, ATM) else 0.0
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
    total = genuine / (1.0 - injected)
    phys = np.concatenate([pop.pool[POS], pop.pool[ATM]])
    v = vol[phys]
    traffic = float((v**2).sum() / v.sum())  # expected daily volume of a terminal drawn ~ volume
    per_episode = cfg.compromise_fraud_share * float(np.mean(cfg.compromise_days)) * traffic
    return Calibration(
        expected_daily_total=total,
        expected_daily_genuine=genuine,
        compromise_pool=phys,
        compromise_p=v / v.sum(),
        lambda_compromise=cfg.compromised_terminal_rate * total / max(per_episode, 1e-12),
        lambda_ato=cfg.account_takeover_rate * total / float(np.mean(cfg.ato_burst_size)),
        lambda_ct=cfg.card_testing_rate * total / float(np.mean(cfg.card_testing_burst_size)),
    )


def customers_frame(pop: Population, currencies: list[str]) -> pd.DataFrame:
    """The simulated customers (profile, home, card, devices)."""
    cities = np.array([c[0] for c in CITIES], dtype=object)
    return pd.DataFrame(
        {
            "customer_id": pop.customer_ids,
            "city": cities[pop.city],
            "home_latitude": pop.home_lat,
            "home_longitude": pop.home_lon,
            "currency": np.array(currencies, dtype=object)[pop.currency],
            "tx_per_day": pop.tx_per_day,
            "mean_amount": pop.mean_amount,
            "card_number": pop.card_numbers,
            "device_ids": [
                [device_str(d) for d in (row if two else row[:1])]
                for row, two in zip(pop.devices, pop.second_device, strict=True)
            ],
        }
    )

def terminals_frame(pop: Population, currencies: list[str]) -> pd.DataFrame:
    """The simulated terminals / merchants."""
    return pd.DataFrame(
        {
            "terminal_id": pop.terminal_ids,
            "channel": np.array(CHANNELS, dtype=object)[pop.t_channel],
            "merchant_category": pop.t_mcc,
            "latitude": pop.t_lat,
            "longitude": pop.t_lon,
            "currency": np.array(currencies, dtype=object)[pop.t_currency],
            "expected_daily_tx": pop.t_daily_volume,
        }
    )
