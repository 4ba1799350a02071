"""Blocks of simulated arrays as contract-shaped pandas frames (transactions and their labels)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sources.contract import CHANNELS, LABEL_FRAME_DTYPES, SCHEMA_VERSION, TRANSACTION_FRAME_DTYPES
from sources.simulator.population import Population
from sources.simulator.util import device_str, ms_to_ts


class Framer:
    """Turns the arrays of a block into the contract's frames, with the population's ids and attributes."""

    def __init__(self, pop: Population, currencies: list[str]) -> None:
        self._pop = pop
        self._currencies = currencies

    def __call__(self, b: dict[str, np.ndarray], reported_ms: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A block (or part of one) as contract frames: transactions, and labels reported at ``reported_ms``."""
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
            device[has_dev] = np.array([device_str(d) for d in uniq.tolist()], dtype=object)[inv]
        card = np.where(b["has_card"], pop.card_numbers[b["cust"]], None)
        is_fraud = b["scenario"] > 0
        version = np.full(n, SCHEMA_VERSION, dtype=object)
        tx = pd.DataFrame(
            {
                "schema_version": version,
                "transaction_id": tx_id,
                "event_time": ms_to_ts(b["t"]),
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
                "reported_at": ms_to_ts(reported_ms),
            }
        ).astype(LABEL_FRAME_DTYPES)
        return tx, labels
