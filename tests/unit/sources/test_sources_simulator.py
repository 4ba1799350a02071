"""Simulator: reproducibility, rates, labels, realism, contract conformance, stream semantics."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from sources.contract import (
    LABEL_FRAME_DTYPES,
    TRANSACTION_FRAME_DTYPES,
    FraudScenario,
    frame_to_events,
    validate_event,
)
from sources.simulator import (
    DelaySpec,
    Simulator,
    SimulatorConfig,
    luhn_check_digit,
    luhn_valid,
)

SMALL = SimulatorConfig(seed=5, n_customers=300, n_terminals=600)
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def small_week() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A week of a small world with a 5% fraud rate, so every scenario shows up."""
    return Simulator(SMALL.with_fraud_rate(0.05)).history(days=7)


# ----------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_frames() -> None:
    a_tx, a_lab = Simulator(SMALL).history(days=5)
    b_tx, b_lab = Simulator(SimulatorConfig(seed=5, n_customers=300, n_terminals=600)).history(days=5)
    pd.testing.assert_frame_equal(a_tx, b_tx)
    pd.testing.assert_frame_equal(a_lab, b_lab)


def test_other_seed_gives_other_data() -> None:
    a_tx, _ = Simulator(SMALL).history(days=2)
    b_tx, _ = Simulator(dataclasses.replace(SMALL, seed=6)).history(days=2)
    assert not set(a_tx["transaction_id"]) & set(b_tx["transaction_id"])
    assert len(a_tx) != len(b_tx) or not np.allclose(a_tx["amount"], b_tx["amount"])


def test_overlapping_windows_agree() -> None:
    sim = Simulator(SMALL)
    start = SMALL.start_timestamp
    whole, _ = sim.history(start, days=4)
    part, part_labels = sim.history(start + DAY + pd.Timedelta(hours=5), days=2)
    inside = whole[(whole.event_time >= part.event_time.min()) & (whole.event_time <= part.event_time.max())]
    pd.testing.assert_frame_equal(inside.reset_index(drop=True), part.reset_index(drop=True))
    assert set(part_labels.transaction_id) == set(part.transaction_id)


# ----------------------------------------------------------------------------- shape and labels


def test_frames_have_contract_columns_and_dtypes(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, labels = history_30d
    assert {c: str(t) for c, t in tx.dtypes.items()} == TRANSACTION_FRAME_DTYPES
    assert {c: str(t) for c, t in labels.dtypes.items()} == LABEL_FRAME_DTYPES
    assert len(tx) > 100_000
    assert tx["event_time"].is_monotonic_increasing and labels["reported_at"].is_monotonic_increasing
    assert tx["transaction_id"].is_unique
    start = SimulatorConfig().start_timestamp
    assert tx["event_time"].min() >= start and tx["event_time"].max() < start + 30 * DAY
    assert (tx["is_fraud"] == (tx["fraud_scenario"] > 0)).all()


def test_one_label_per_transaction_with_configured_delays(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, labels = history_30d
    assert labels["transaction_id"].is_unique and len(labels) == len(tx)
    m = tx.merge(labels, on="transaction_id", suffixes=("", "_label"), validate="one_to_one")
    assert (m["is_fraud"] == m["is_fraud_label"]).all()
    assert (m["customer_id"] == m["customer_id_label"]).all() and (m["terminal_id"] == m["terminal_id_label"]).all()
    delay = m["reported_at"] - m["event_time"]
    fraud = m["is_fraud"]
    assert (delay[~fraud] == pd.Timedelta(days=7)).all()  # genuine: fixed maturity
    assert delay[fraud].min() >= pd.Timedelta(days=1) and delay[fraud].max() <= pd.Timedelta(days=7)
    assert delay[fraud].std() > pd.Timedelta(days=1)  # spread, not constant


def test_delay_spec_kinds() -> None:
    rng = np.random.default_rng(0)
    assert (DelaySpec(2, 2, "fixed").sample_seconds(rng, 5) == 2 * 86_400).all()
    u = DelaySpec(1, 10).sample_seconds(rng, 10_000) / 86_400
    assert u.min() >= 1 and u.max() <= 10 and abs(u.mean() - 5.5) < 0.2
    ln = DelaySpec(1, 10, "lognormal").sample_seconds(rng, 10_000) / 86_400
    assert ln.min() >= 1 and ln.max() <= 10 and abs(np.median(ln) - np.sqrt(10)) < 0.2
    with pytest.raises(ValueError):
        DelaySpec(3, 1)
    with pytest.raises(ValueError):
        DelaySpec(0, 1, "lognormal")


def test_custom_label_delays_are_used() -> None:
    cfg = dataclasses.replace(
        SMALL.with_fraud_rate(0.05),
        fraud_label_delay=DelaySpec(0.5, 0.5, "fixed"),
        genuine_label_delay=DelaySpec(3, 4),
    )
    tx, labels = Simulator(cfg).history(days=3)
    delay = labels.set_index("transaction_id")["reported_at"] - tx.set_index("transaction_id")["event_time"]
    fraud = tx.set_index("transaction_id")["is_fraud"].reindex(delay.index)
    assert (delay[fraud] == pd.Timedelta(hours=12)).all()
    assert delay[~fraud].between(pd.Timedelta(days=3), pd.Timedelta(days=4)).all()


# ----------------------------------------------------------------------------- fraud rates


def test_fraud_rate_and_scenario_mix_match_config(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, _ = history_30d
    cfg = SimulatorConfig()
    assert cfg.fraud_rate == pytest.approx(0.01)
    assert tx["is_fraud"].mean() == pytest.approx(cfg.fraud_rate, rel=0.2)
    observed = tx["fraud_scenario"].value_counts() / len(tx)
    for scenario, rate in cfg.scenario_rates.items():
        assert observed.get(int(scenario), 0.0) == pytest.approx(rate, rel=0.5), scenario


def test_with_fraud_rate_scales_every_scenario() -> None:
    cfg = SimulatorConfig().with_fraud_rate(0.04)
    assert cfg.fraud_rate == pytest.approx(0.04)
    assert cfg.scenario_rates[FraudScenario.CARD_TESTING] == pytest.approx(0.008)
    tx, _ = Simulator(dataclasses.replace(cfg, n_customers=1_000)).history(days=10)
    assert tx["is_fraud"].mean() == pytest.approx(0.04, rel=0.25)
    none, _ = Simulator(dataclasses.replace(SMALL.with_fraud_rate(0.0))).history(days=3)
    assert not none["is_fraud"].any()


def test_invalid_config_is_rejected() -> None:
    for bad in (
        {"n_customers": 0},
        {"n_terminals": 3},
        {"timezone": "Mars/Olympus"},
        {"tx_per_day": (3.0, 1.0)},
        {"amount_outlier_rate": -0.1},
        {"card_testing_rate": 0.6},
        {"out_of_order_fraction": 1.5},
        {"weekday_factors": (1.0,) * 6},
        {"max_out_of_order_seconds": -1.0},
    ):
        with pytest.raises(ValueError):
            SimulatorConfig(**bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- realism


def test_card_numbers_are_luhn_valid_one_per_customer(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, _ = history_30d
    cards = tx.dropna(subset=["card_number"])
    assert 0.9 < len(cards) / len(tx) < 1.0  # most, not all, transactions carry the card
    assert cards.groupby("customer_id")["card_number"].nunique().max() == 1
    assert cards.groupby("card_number")["customer_id"].nunique().max() == 1
    unique_cards = cards["card_number"].unique()
    assert all(len(n) == 16 and luhn_valid(n) for n in unique_cards)
    assert tx.loc[tx.is_fraud, "card_number"].notna().all()
    assert luhn_check_digit("7992739871") == "3" and luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_daily_and_weekly_cycles(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, _ = history_30d
    genuine = tx[~tx.is_fraud]
    local = genuine["event_time"].dt.tz_convert(SimulatorConfig().timezone)
    night = (local.dt.hour < 6).mean()
    assert night < 0.05
    by_hour = local.dt.hour.value_counts(normalize=True)
    assert by_hour[12] > 5 * by_hour[3]
    by_day = local.dt.dayofweek.value_counts()
    assert by_day[5] > by_day[6] * 1.3  # busy Saturdays, quiet Sundays


def test_channels_devices_locations_currencies(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, _ = history_30d
    genuine = tx[~tx.is_fraud]
    share = genuine["channel"].value_counts(normalize=True)
    assert share["pos"] > 0.5 and share["ecom"] > 0.15 and share["atm"] > 0.03 and share["moto"] > 0.005
    assert genuine.loc[genuine.channel == "ecom", "device_id"].notna().all()
    assert genuine.loc[genuine.channel != "ecom", "device_id"].isna().all()
    assert genuine.loc[genuine.channel == "moto", "latitude"].isna().all()
    assert genuine["merchant_category"].str.fullmatch(r"\d{4}").all()
    assert (genuine.loc[genuine.channel == "atm", "merchant_category"] == "6011").all()
    assert genuine["currency"].value_counts(normalize=True)["EUR"] > 0.75
    # customers use a handful of devices and mostly usual terminals
    assert genuine.dropna(subset=["device_id"]).groupby("customer_id")["device_id"].nunique().max() <= 2
    pos = genuine[genuine.channel == "pos"]
    per_customer = pos.groupby("customer_id")["terminal_id"].agg(["nunique", "size"])
    busy = per_customer[per_customer["size"] >= 30]
    assert (busy["nunique"] / busy["size"]).median() < 0.4


def km_from_home(tx: pd.DataFrame) -> pd.Series:
    pos = tx[(tx.channel == "pos") & ~tx.is_fraud]
    home = pos.groupby("customer_id")[["latitude", "longitude"]].median().reindex(tx.customer_id)
    lat0 = np.radians(home.latitude.to_numpy())
    dlat = np.radians(tx.latitude.to_numpy()) - lat0
    dlon = (np.radians(tx.longitude.to_numpy()) - np.radians(home.longitude.to_numpy())) * np.cos(lat0)
    return pd.Series(6371 * np.hypot(dlat, dlon), index=tx.index)


def test_fraud_scenarios_have_their_signatures(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, _ = history_30d
    km = km_from_home(tx)
    mean_amount = tx[~tx.is_fraud].groupby("customer_id")["amount"].mean()
    ratio = tx["amount"] / tx["customer_id"].map(mean_amount)
    s = tx["fraud_scenario"]
    genuine = s == 0
    # 1: amounts several times the customer's usual
    assert ratio[s == 1].median() > 4 * ratio[genuine].median()
    # 2: a few terminals, most of their traffic fraud during the compromise
    s2 = tx[s == 2]
    assert s2["terminal_id"].nunique() < len(s2) / 3
    assert set(s2["channel"]) <= {"pos", "atm"}
    # 3: far from home, new devices, bigger amounts, bursts
    assert km[s == 3].median() > 200 > km[genuine].median() * 10
    ato_devices = set(tx.loc[s == 3, "device_id"].dropna())
    assert ato_devices and not ato_devices & set(tx.loc[genuine, "device_id"].dropna())
    assert ratio[s == 3].median() > 2 * ratio[genuine].median()
    assert tx[s == 3].groupby("customer_id").size().median() >= 3
    # 4: tiny amounts, mostly online, bursts within minutes
    s4 = tx[s == 4]
    assert s4["amount"].max() <= 5.0 and (s4["channel"] == "ecom").mean() > 0.7
    span = s4.groupby(["customer_id", s4.event_time.dt.date])["event_time"].agg(lambda t: t.max() - t.min())
    assert span.median() < pd.Timedelta(minutes=30)


# ----------------------------------------------------------------------------- contract conformance


def test_every_generated_event_validates(small_week: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, labels = small_week
    assert set(tx["fraud_scenario"]) == {0, 1, 2, 3, 4}
    errors = [(e, err) for e in frame_to_events(tx, "transaction") if (err := validate_event(e, "transaction"))]
    assert not errors, errors[:3]
    errors = [(e, err) for e in frame_to_events(labels, "label") if (err := validate_event(e, "label"))]
    assert not errors, errors[:3]


def test_default_history_frauds_validate(history_30d: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, _ = history_30d
    sample = pd.concat([tx[tx.is_fraud], tx[~tx.is_fraud].sample(2_000, random_state=0)])
    assert all(validate_event(e, "transaction") == [] for e in frame_to_events(sample, "transaction"))


def test_population_tables(default_simulator: Simulator) -> None:
    customers, terminals = default_simulator.customers, default_simulator.terminals
    assert len(customers) == 2_000 and customers["customer_id"].is_unique
    assert len(terminals) == 4_000 and set(terminals["channel"]) == {"pos", "ecom", "atm", "moto"}
    assert customers["card_number"].map(luhn_valid).all()
    assert customers["home_latitude"].between(35, 65).all()


# ----------------------------------------------------------------------------- stream


def test_stream_is_the_same_world_as_history() -> None:
    sim = Simulator(SMALL)
    start = SMALL.start_timestamp + pd.Timedelta(hours=7)
    tx, labels = sim.history(start, days=2)
    events = list(sim.stream(start, duration=pd.Timedelta(days=2)))
    stream_tx = [e for e in events if e.kind == "transaction"]
    assert [e.event["transaction_id"] for e in stream_tx] == tx["transaction_id"].tolist()
    times = pd.to_datetime([e.event["event_time"] for e in stream_tx], utc=True)
    assert (times == tx["event_time"].to_numpy()).all()
    assert [e.fraud_scenario for e in stream_tx] == tx["fraud_scenario"].tolist()
    stream_labels = {e.event["transaction_id"]: e for e in events if e.kind == "label"}
    assert set(stream_labels) == set(labels["transaction_id"])
    first = labels.iloc[0]
    assert stream_labels[first.transaction_id].emit_time == first.reported_at


def test_stream_order_keys_and_labels_after_transactions() -> None:
    sim = Simulator(SMALL.with_fraud_rate(0.05))
    start = pd.Timestamp("2026-03-02T09:30:00Z")
    events = list(sim.stream(start, count=1_500, time_compression=60.0))
    txs = [e for e in events if e.kind == "transaction"]
    assert len(txs) == 1_500
    assert len(events) == 3_000  # labels drained
    emit = [e.emit_time for e in events]
    assert emit == sorted(emit)
    last_by_customer: dict[str, pd.Timestamp] = {}
    seen: set[str] = set()
    for e in events:
        assert e.key == e.event["customer_id"]
        assert validate_event(e.event, e.kind) == []
        if e.kind == "transaction":
            t = pd.Timestamp(e.event["event_time"])
            assert t == e.emit_time
            assert last_by_customer.get(e.key, t) <= t
            last_by_customer[e.key] = t
            seen.add(e.event["transaction_id"])
        else:
            assert e.event["transaction_id"] in seen
            assert pd.Timestamp(e.event["reported_at"]) == e.emit_time
    assert {e.fraud_scenario for e in txs} >= {0, 3}


def test_stream_time_compression() -> None:
    sim = Simulator(SMALL)
    start = pd.Timestamp("2026-03-02T00:00:00Z")
    events = list(sim.stream(start, duration="1h", time_compression=24.0, label_time_compression=1440.0))
    txs = [e for e in events if e.kind == "transaction"]
    times = pd.to_datetime([e.event["event_time"] for e in txs], utc=True)
    assert times.min() >= start and times.max() < start + pd.Timedelta(hours=1)
    # one hour of stream holds one simulated day of activity
    day, _ = sim.history(start, days=1)
    assert len(txs) == len(day)
    delays = [pd.Timestamp(e.event["reported_at"]) for e in events if e.kind == "label"]
    by_id = {e.event["transaction_id"]: pd.Timestamp(e.event["event_time"]) for e in txs}
    lab = {e.event["transaction_id"]: pd.Timestamp(e.event["reported_at"]) for e in events if e.kind == "label"}
    assert len(delays) == len(txs)
    assert max(lab[k] - by_id[k] for k in by_id) <= pd.Timedelta(days=7) / 1440 + pd.Timedelta(milliseconds=1)


def test_stream_out_of_order_within_lateness_bound() -> None:
    cfg = dataclasses.replace(SMALL, out_of_order_fraction=0.2, max_out_of_order_seconds=30.0)
    events = list(
        Simulator(cfg).stream("2026-03-02T08:00:00Z", count=3_000, time_compression=100.0, include_labels=False)
    )
    assert all(e.kind == "transaction" for e in events) and len(events) == 3_000
    times = np.array([pd.Timestamp(e.event["event_time"]).value for e in events]) / 1e9
    emits = np.array([e.emit_time.value for e in events]) / 1e9
    late = emits - times
    assert (late >= 0).all() and late.max() <= 30.0
    assert 0.1 < (late > 0).mean() < 0.3
    running_max = np.maximum.accumulate(times)
    assert (times < running_max).sum() > 50  # really out of order...
    assert (running_max - times).max() <= 30.0  # ...but never beyond the allowed lateness
    per_customer: dict[str, list[float]] = defaultdict(list)
    for e, t in zip(events, times, strict=True):
        per_customer[e.key].append(t)
    assert any(np.any(np.diff(v) < 0) for v in per_customer.values())


def test_stream_stops_without_draining_labels() -> None:
    sim = Simulator(SMALL)
    events = list(sim.stream("2026-03-02T00:00:00Z", count=200, drain_labels=False, label_time_compression=1e4))
    assert sum(e.kind == "transaction" for e in events) == 200
    assert events[-1].kind == "transaction"
    assert 0 < sum(e.kind == "label" for e in events) < 200


def test_stream_realtime_from_now() -> None:
    sim = Simulator(SMALL)
    t0 = time.time()
    events = list(sim.stream(count=5, time_compression=1e5, include_labels=False, realtime=True))
    assert len(events) == 5 and time.time() - t0 < 10
    now = pd.Timestamp.now(tz="UTC")
    assert all(abs(pd.Timestamp(e.event["event_time"]) - now) < pd.Timedelta(minutes=1) for e in events)
