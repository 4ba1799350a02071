"""One local day of the world: genuine activity and the four fraud scenarios, as arrays (see the package doc)."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo

import numpy as np

from sources.contract import FraudScenario
from sources.simulator.config import SimulatorConfig
from sources.simulator.population import Calibration, Population
from sources.simulator.util import bursts, haversine_km, pick_rows
from sources.simulator.world import ATM, ATM_AMOUNTS, CITIES, ECOM, FRAUD_HUBS, MOTO, MS_PER_DAY, POS, rng_for


class Days:
    """Generates the block of transactions of any local day; a day's block depends on the seed and the day only."""

    def __init__(self, config: SimulatorConfig, pop: Population, cal: Calibration) -> None:
        self.config = config
        self._pop = pop
        self._cal = cal
        self._tz = zoneinfo.ZoneInfo(config.timezone)
        wf = np.asarray(config.weekday_factors, dtype=float)
        self._weekday = wf / wf.mean()
        hw = np.asarray(config.hourly_weights, dtype=float)
        self._hour_p = hw / hw.sum()
        self._compromise_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def rng(self, tag: str, ordinal: int = 0) -> np.random.Generator:
        return rng_for(self.config.seed, tag, ordinal)

    def midnight_ms(self, day: dt.date) -> int:
        local = dt.datetime.combine(day, dt.time(0), tzinfo=self._tz)
        return int(local.timestamp() * 1000)

    def _scheduled_count(self, tag: str, rate: float, ordinal: int) -> int:
        """Number of fraud episodes starting on a day: ``rate`` per day on average.

        A low-discrepancy schedule (with a seeded phase) instead of Poisson
        draws, so that fraud rates over a few weeks stay close to the config.
        """
        phase = float(self.rng(tag, 0).random())
        return int(math.floor(rate * (ordinal + 1) + phase) - math.floor(rate * ordinal + phase))

    def _compromise_plan(self, ordinal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        plan = self._compromise_cache.get(ordinal)
        if plan is None:
            cfg = self.config
            rng = self.rng("compromise", ordinal)
            n = self._scheduled_count("compromise", self._cal.lambda_compromise, ordinal)
            term = rng.choice(self._cal.compromise_pool, n, p=self._cal.compromise_p)
            midnight = self.midnight_ms(dt.date.fromordinal(ordinal))
            start = midnight + (rng.random(n) * MS_PER_DAY).astype(np.int64)
            end = start + (rng.uniform(*cfg.compromise_days, n) * MS_PER_DAY).astype(np.int64)
            plan = (term, start, end)
            if len(self._compromise_cache) > 4096:
                self._compromise_cache.clear()
            self._compromise_cache[ordinal] = plan
        return plan

    def day_block(self, day: dt.date) -> dict[str, np.ndarray]:
        """All transactions (genuine and fraud) generated for one local day."""
        cfg, pop = self.config, self._pop
        ordinal = day.toordinal()
        midnight = self.midnight_ms(day)
        day_len = self.midnight_ms(day + dt.timedelta(days=1)) - midnight

        # --- genuine activity
        rng = self.rng("genuine", ordinal)
        counts = rng.poisson(pop.tx_per_day * self._weekday[day.weekday()])
        cust = np.repeat(np.arange(pop.n_customers), counts)
        n = len(cust)
        hour = rng.choice(24, n, p=self._hour_p)
        sec = hour * 3600.0 + rng.random(n) * 3600.0
        t = midnight + np.minimum((sec * 1000 * day_len / MS_PER_DAY).astype(np.int64), day_len - 1)
        channel = pick_rows(rng, pop.channel_cum[cust]).astype(np.int8)
        term = np.empty(n, dtype=np.int64)
        r = rng.random(n)
        for ch in range(4):
            idx = np.flatnonzero(channel == ch)
            cu = cust[idx]
            slot = pick_rows(rng, pop.usual_cum[ch][cu])
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
        atm = channel == ATM
        target = 2.0 * pop.mean_amount[cust[atm]] * rng.lognormal(0.0, 0.4, int(atm.sum()))
        mids = (ATM_AMOUNTS[1:] + ATM_AMOUNTS[:-1]) / 2
        amount[atm] = ATM_AMOUNTS[np.searchsorted(mids, target)]
        amount = np.maximum(np.round(amount, 2), 0.5)
        lat = pop.t_lat[term].copy()
        lon = pop.t_lon[term].copy()
        ecom = channel == ECOM
        ne = int(ecom.sum())
        lat[ecom] = pop.home_lat[cust[ecom]] + rng.normal(0, 0.03, ne)
        lon[ecom] = pop.home_lon[cust[ecom]] + rng.normal(0, 0.04, ne)
        moto = channel == MOTO
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
            frng = self.rng("compromise_hit", ordinal)
            hit = np.zeros(n, dtype=bool)
            for tt, s, e in zip(e_term[active], e_start[active], e_end[active], strict=True):
                hit |= (term == tt) & (t >= s) & (t < e)
            hit &= frng.random(n) < cfg.compromise_fraud_share
            scenario[hit] = FraudScenario.COMPROMISED_TERMINAL
            has_card[hit] = True
        # --- scenario 1: amount outliers on non-ATM genuine transactions
        orng = self.rng("outlier", ordinal)
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
        irng = self.rng("ids", ordinal)
        block["id_hi"] = irng.integers(0, 2**63, m, dtype=np.int64)
        block["id_lo"] = irng.integers(0, 2**63, m, dtype=np.int64)
        lrng = self.rng("labels", ordinal)
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
        hubs = np.array(FRAUD_HUBS)
        cities = np.array([(c[1], c[2]) for c in CITIES])
        h = hubs[rng.integers(0, len(hubs), n)]
        shift = rng.integers(1, len(cities), n)  # never the home city
        c = cities[(self._pop.city[cust] + shift) % len(cities)]
        loc = np.where((rng.random(n) < abroad_share)[:, None], h, c)
        return loc[:, 0] + rng.normal(0, 0.05, n), loc[:, 1] + rng.normal(0, 0.07, n)

    def _account_takeover(self, ordinal: int, midnight: int, day_len: int) -> dict[str, np.ndarray]:
        cfg, pop = self.config, self._pop
        rng = self.rng("ato", ordinal)
        nb = self._scheduled_count("ato", self._cal.lambda_ato, ordinal)
        victims = rng.integers(0, pop.n_customers, nb)
        hour_p = 0.5 * self._hour_p + 0.5 / 24
        start_s = rng.choice(24, nb, p=hour_p) * 3600.0 + rng.random(nb) * 3600.0
        burst, offs = bursts(rng, nb, cfg.ato_burst_size, cfg.ato_mean_gap_minutes * 60)
        m = len(burst)
        cust = victims[burst]
        t = midnight + ((start_s[burst] + offs) * 1000).astype(np.int64)
        online = (rng.random(nb) < 0.75)[burst]
        term = np.empty(m, dtype=np.int64)
        term[online] = rng.choice(pop.pool[ECOM], int(online.sum()))
        # card-present legs: POS terminals far from home (first of 4 candidates > 200 km)
        off = np.flatnonzero(~online)
        cand = rng.choice(pop.pool[POS], (len(off), 4))
        dist = haversine_km(
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
        rng = self.rng("card_testing", ordinal)
        nb = self._scheduled_count("card_testing", self._cal.lambda_ct, ordinal)
        victims = rng.integers(0, pop.n_customers, nb)
        start_ms = rng.random(nb) * day_len
        burst, offs = bursts(rng, nb, cfg.card_testing_burst_size, cfg.card_testing_mean_gap_seconds)
        m = len(burst)
        cust = victims[burst]
        t = midnight + (start_ms[burst] + offs * 1000).astype(np.int64)
        online_b = rng.random(nb) < 0.85
        online = online_b[burst]
        # one or two merchants per burst
        m_ecom = rng.choice(pop.pool[ECOM], (nb, 2))
        m_moto = rng.choice(pop.pool[MOTO], (nb, 2))
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

    def blocks(self, first: dt.date, last: dt.date) -> dict[str, np.ndarray]:
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        blocks = [self.day_block(d) for d in days]
        return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}

    def local_date(self, ms: int) -> dt.date:
        return dt.datetime.fromtimestamp(ms / 1000, tz=self._tz).date()
