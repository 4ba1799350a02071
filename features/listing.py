"""The checked-in listing of the compiled feature set (features/compiled.md), rendered from code."""

from __future__ import annotations

from pathlib import Path

from features.catalog import FeatureParams, declare_features, feature_version

LISTING_PATH = Path(__file__).resolve().parent / "compiled.md"


def render_listing(params: FeatureParams | None = None) -> str:
    """Markdown table of every feature: id, column, type, entity, aggregation, window, fill."""
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
        "| # | id | column | type | entity | aggregation | window | fill | description |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(feats, 1):
        window = f.window.label if f.window else "-"
        lines.append(
            f"| {i} | `{f.id}` | `{f.name}` | {f.dtype} | {f.entity.value} | {f.aggregation.value} | "
            f"{window} | {f.fill:g} | {f.description} |"
        )
    return "\n".join(lines) + "\n"
