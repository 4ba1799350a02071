"""The checked-in listing of the compiled feature set (features/compiled.md), rendered from code."""

from __future__ import annotations

from pathlib import Path

from features.catalog import FeatureParams, declare_features, feature_version
from features.spec import Aggregation, Feature
from features.state_plan import ROUTES, STATE_OPERATIONS, is_state_feature

LISTING_PATH = Path(__file__).resolve().parent / "compiled.md"


def render_listing(params: FeatureParams | None = None) -> str:
    """Markdown table of every feature: id, column, type, entity, operation, source or inputs, window, fill,
    and how each engine computes it."""
    p = params or FeatureParams()
    feats = declare_features(p)
    lines = [
        "# Compiled feature set",
        "",
        "Generated from features/catalog.py by `make features-listing`; a test fails when it is stale.",
        "",
        f"Feature version: `{feature_version(p)}` — {len(feats)} features, time zone {p.timezone}, "
        f"terminal label delay {p.terminal_label_delay_days} days.",
        "",
        "Engines: *batch* is features/engine.py (Spark window functions: backfill, training, the parity",
        "reference); *stream* is the keyed state of jvm/ (route `c` = customer, `t` = terminal) through",
        "features/state_plan.py. Row features (calendar encodings, derivations from their declared",
        "inputs) are features/derive.py in both.",
        "",
        "| # | id | column | type | entity | operation | reads | window | fill | batch | stream | description |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(feats, 1):
        window = f.window.label if f.window else "-"
        reads = ", ".join(f"`{c}`" for c in f.inputs) if f.inputs else f"`{f.source}`"
        lines.append(
            f"| {i} | `{f.id}` | `{f.name}` | {f.dtype} | {f.entity.value} | {f.aggregation.value} | {reads} | "
            f"{window} | {f.fill:g} | {_batch_engine(f)} | {_stream_engine(f)} | {f.description} |"
        )
    return "\n".join(lines) + "\n"


def _batch_engine(feat: Feature) -> str:
    if feat.aggregation is Aggregation.VALUE:
        return "column"
    if feat.aggregation is Aggregation.FRAUD_RATE:
        return "label join / input"
    return "row" if feat.inputs or feat.window is None else "window"


def _stream_engine(feat: Feature) -> str:
    if is_state_feature(feat):
        return f"state `{ROUTES[feat.entity]}`: {STATE_OPERATIONS[feat.aggregation]}"
    return "column" if feat.aggregation is Aggregation.VALUE else "row"
