"""The declared feature set. Engines (features.engine) only decide how to run these declarations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from features.spec import Aggregation, Entity, Feature, Window, feature_set_version

CUSTOMER_WINDOWS = (timedelta(hours=1), timedelta(days=1), timedelta(days=7), timedelta(days=30))
TERMINAL_WINDOWS = (timedelta(days=1), timedelta(days=7), timedelta(days=30))
SECONDS_SINCE_PREVIOUS_CAP = timedelta(days=30)


@dataclass(frozen=True)
class FeatureParams:
    """Engine-independent parameters of the feature set (from conf `features`)."""

    timezone: str = "UTC"
    terminal_label_delay_days: int = 7
    night_start_hour: int = 0
    night_end_hour: int = 7


def declare_features(params: FeatureParams | None = None) -> list[Feature]:
    """Every feature, in model-input order."""
    p = params or FeatureParams()
    delay = timedelta(days=p.terminal_label_delay_days)
    feats: list[Feature] = [
        Feature("amount", Entity.TRANSACTION, Aggregation.VALUE, "The transaction amount."),
    ]
    for length in CUSTOMER_WINDOWS:
        w = Window(length)
        lbl = w.label
        feats += [
            Feature(f"customer_tx_count_{lbl}", Entity.CUSTOMER, Aggregation.COUNT,
                    f"Customer's transactions in the last {lbl}, this one included.", window=w),
            Feature(f"customer_amount_sum_{lbl}", Entity.CUSTOMER, Aggregation.SUM,
                    f"Sum of the customer's amounts in the last {lbl}.", window=w),
            Feature(f"customer_amount_mean_{lbl}", Entity.CUSTOMER, Aggregation.MEAN,
                    f"Mean of the customer's amounts in the last {lbl}.", window=w),
            Feature(f"customer_amount_max_{lbl}", Entity.CUSTOMER, Aggregation.MAX,
                    f"Largest of the customer's amounts in the last {lbl}.", window=w),
            Feature(f"customer_amount_std_{lbl}", Entity.CUSTOMER, Aggregation.STD,
                    f"Population standard deviation of the customer's amounts in the last {lbl}.",
                    window=w),
        ]
    month = Window(timedelta(days=30))
    feats += [
        Feature("customer_seconds_since_prev", Entity.CUSTOMER, Aggregation.SECONDS_SINCE_PREVIOUS,
                "Seconds since the customer's previous transaction, capped at 30 days (also the value "
                "for a first transaction).", source="event_time",
                window=Window(SECONDS_SINCE_PREVIOUS_CAP), fill=SECONDS_SINCE_PREVIOUS_CAP.total_seconds()),
        Feature("customer_amount_ratio_mean_30d", Entity.CUSTOMER, Aggregation.RATIO_TO_MEAN,
                "Amount divided by the customer's 30-day mean amount (1 when the mean is 0).",
                window=month, fill=1.0, inputs=("amount", "customer_amount_mean_30d")),
        Feature("customer_amount_zscore_30d", Entity.CUSTOMER, Aggregation.ZSCORE,
                "(amount - 30-day mean) / 30-day std (0 when the std is 0).", window=month,
                inputs=("amount", "customer_amount_mean_30d", "customer_amount_std_30d")),
        Feature("customer_terminal_is_new_30d", Entity.CUSTOMER, Aggregation.IS_NEW_TERMINAL,
                "1 if the customer used no transaction on this terminal in the previous 30 days.",
                source="terminal_id", window=month),
    ]
    for length in TERMINAL_WINDOWS:
        w = Window(length, offset=delay)
        lbl = w.label
        feats += [
            Feature(f"terminal_tx_count_{lbl}", Entity.TERMINAL, Aggregation.COUNT,
                    f"Terminal's transactions in a {_days(length)} window ending {_days(delay)} before "
                    "this transaction.", window=w),
            Feature(f"terminal_fraud_rate_{lbl}", Entity.TERMINAL, Aggregation.FRAUD_RATE,
                    f"Share of the terminal's transactions in that {_days(length)} window that were "
                    "reported fraudulent at or before this transaction's time (0 without transactions).",
                    source="is_fraud", window=w, label_delay=delay, inputs=(f"terminal_tx_count_{lbl}",)),
        ]
    feats += [
        Feature("hour_sin", Entity.TRANSACTION, Aggregation.CYCLIC_SIN,
                f"sin(2π·hour/24), hour of day with fractions, in {p.timezone}.", source="hour",
                params={"period": 24.0}),
        Feature("hour_cos", Entity.TRANSACTION, Aggregation.CYCLIC_COS,
                f"cos(2π·hour/24) in {p.timezone}.", source="hour", params={"period": 24.0}),
        Feature("dow_sin", Entity.TRANSACTION, Aggregation.CYCLIC_SIN,
                f"sin(2π·day/7), Monday = 0, in {p.timezone}.", source="day_of_week",
                params={"period": 7.0}),
        Feature("dow_cos", Entity.TRANSACTION, Aggregation.CYCLIC_COS,
                f"cos(2π·day/7), Monday = 0, in {p.timezone}.", source="day_of_week",
                params={"period": 7.0}),
        Feature("is_weekend", Entity.TRANSACTION, Aggregation.FLAG,
                f"1 on Saturday and Sunday in {p.timezone}.", source="day_of_week",
                params={"from": 5.0, "to": 7.0}),
        Feature("is_night", Entity.TRANSACTION, Aggregation.FLAG,
                f"1 when {p.night_start_hour} <= hour < {p.night_end_hour} in {p.timezone}.",
                source="hour_of_day", params={"from": float(p.night_start_hour), "to": float(p.night_end_hour)}),
    ]
    return feats


def feature_names(params: FeatureParams | None = None) -> list[str]:
    """Column names of the model inputs, in order."""
    return [f.name for f in declare_features(params)]


def feature_version(params: FeatureParams | None = None) -> str:
    """Version string recorded with every feature row and every score."""
    return feature_set_version(declare_features(params))


def max_lookback(params: FeatureParams | None = None) -> timedelta:
    """How much history before a transaction any feature can need."""
    spans = [f.window.length + f.window.offset for f in declare_features(params) if f.window]
    return max(spans)


def _days(value: timedelta) -> str:
    days = value.total_seconds() / 86400
    return f"{days:g}-day"


# Handbook baseline (Fraud Detection Handbook, ch. 3) expressed with the declarations above.
HANDBOOK_FEATURES = [
    "amount", "is_weekend", "is_night",
    "customer_tx_count_1d", "customer_amount_mean_1d",
    "customer_tx_count_7d", "customer_amount_mean_7d",
    "customer_tx_count_30d", "customer_amount_mean_30d",
    "terminal_tx_count_1d_delay7d", "terminal_fraud_rate_1d_delay7d",
    "terminal_tx_count_7d_delay7d", "terminal_fraud_rate_7d_delay7d",
    "terminal_tx_count_30d_delay7d", "terminal_fraud_rate_30d_delay7d",
]
