"""The :class:`Simulator`: one seeded world, seen as a history (frames) or as a live stream (events)."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from sources.simulator.config import SimulatorConfig
from sources.simulator.frames import Framer
from sources.simulator.merge import StreamEvent, merged_events
from sources.simulator.population import build_population, calibrate, customers_frame, terminals_frame
from sources.simulator.scenarios import Days
from sources.simulator.util import TimeLike, ts_ms
from sources.simulator.world import CITIES, ECOM_MERCHANT_CURRENCIES, MS_PER_DAY


class Simulator:
    """Card-transaction simulator; see the package docstring for the model."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._currencies = sorted({c[3] for c in CITIES} | {c for c, _ in ECOM_MERCHANT_CURRENCIES})
        self._pop = build_population(self.config, self._currencies)
        self._calibration = calibrate(self.config, self._pop)
        self._days = Days(self.config, self._pop, self._calibration)
        self._framer = Framer(self._pop, self._currencies)

    @property
    def customers(self) -> pd.DataFrame:
        """The simulated customers (profile, home, card, devices)."""
        return customers_frame(self._pop, self._currencies)

    @property
    def terminals(self) -> pd.DataFrame:
        """The simulated terminals / merchants."""
        return terminals_frame(self._pop, self._currencies)

    def history(self, start: TimeLike | None = None, days: float = 30.0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Transactions with event_time in ``[start, start + days)`` and their labels.

        Returns ``(transactions, labels)``: transactions in the contract
        columns plus ``is_fraud``/``fraud_scenario``, sorted by event_time;
        one label per transaction (reported_at may lie after the period:
        filter ``reported_at <= t`` for what is known at ``t``), sorted by
        reported_at. ``start`` defaults to ``config.start``; naive times are UTC.
        """
        start_ms = ts_ms(self.config.start if start is None else start)
        end_ms = start_ms + round(days * MS_PER_DAY)
        if end_ms <= start_ms:
            raise ValueError("days must be > 0")
        # the day before may have bursts spilling over midnight into the period
        b = self._days.blocks(self._days.local_date(start_ms) - dt.timedelta(days=1), self._days.local_date(end_ms - 1))
        keep = (b["t"] >= start_ms) & (b["t"] < end_ms)
        b = {k: v[keep] for k, v in b.items()}
        order = np.lexsort((b["id_lo"], b["id_hi"], b["t"]))
        b = {k: v[order] for k, v in b.items()}
        tx, labels = self._framer(b, b["t"] + b["delay_ms"])
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
        start_ms = int(time.time() * 1000) if start is None else ts_ms(start)
        end_ms: float = math.inf
        if duration is not None:
            end_ms = start_ms + pd.Timedelta(duration).total_seconds() * 1000
        sim_end = start_ms + (end_ms - start_ms) * time_compression if end_ms != math.inf else math.inf

        if count is not None and self._calibration.expected_daily_total <= 0:
            raise ValueError("the configuration produces no transactions")
        return merged_events(
            self._days, self._framer, start_ms, sim_end, count, include_labels=include_labels,
            drain_labels=drain_labels, time_compression=time_compression, label_time_compression=ltc,
            realtime=realtime,
        )
