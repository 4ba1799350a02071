"""The demo's live view: figures from the stream's micro-batch summaries, shown with ``rich``.

The one interface to the stream is :meth:`LiveTracker.update`: it takes the micro-batch summaries
(anything with the :class:`BatchFigures` attributes, newest last) and the latest flagged rows, and
returns the :class:`LiveFigures` the view displays. A different stream only needs to hand over
those two sequences. On a terminal the figures refresh in place (``rich.live``); otherwise
(a pipe, CI, a test) a plain line is printed every ``plain_every`` seconds.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

WINDOW_SECONDS = 60.0


class BatchFigures(Protocol):
    """What the view reads of one micro-batch summary."""

    records: int  # Kafka records read (transactions and labels)
    scored: int
    quarantined: int
    decisions: dict[str, int]
    latency_ms: dict[str, float]  # Kafka append -> gold write, wall clock: p50, p99 of the batch
    model_version: str | None


@dataclass
class LiveFigures:
    """Everything the live view shows at one moment."""

    elapsed: float
    records_per_s: float  # over the last minute
    scored_per_s: float
    latency_p50_s: float | None  # scored-weighted median of the batch medians, last minute
    latency_p99_s: float | None  # highest batch p99 of the last minute (an upper bound of the p99)
    decisions: dict[str, int]
    quarantined: int
    scored: int
    batches: int
    model_version: str | None
    flagged: list[dict[str, Any]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    sim_time: str | None = None


class LiveTracker:
    """Turns the stream's batch summaries into :class:`LiveFigures` (each summary is time-stamped
    when first seen, so rates and latencies cover the last minute of wall time)."""

    def __init__(self, started: float | None = None, window: float = WINDOW_SECONDS) -> None:
        self.started = time.monotonic() if started is None else started
        self.window = window
        self._seen = 0
        self._recent: deque[tuple[float, BatchFigures]] = deque()

    def update(self, summaries: Sequence[BatchFigures], flagged: Sequence[Mapping[str, Any]],
               now: float | None = None, sent: Mapping[str, int] | None = None,
               sim_time: str | None = None) -> LiveFigures:
        """The figures after ``summaries`` (all batches so far, newest last) and ``flagged`` rows."""
        now = time.monotonic() if now is None else now
        for summary in summaries[self._seen:]:
            self._recent.append((now, summary))
        self._seen = len(summaries)
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()
        recent = [s for _, s in self._recent]
        span = max(min(self.window, now - self.started), 1e-6)
        decisions: dict[str, int] = {}
        for s in summaries:
            for kind, n in s.decisions.items():
                decisions[kind] = decisions.get(kind, 0) + n
        timed = [s for s in recent if s.latency_ms.get("p50") is not None and s.scored]
        p50 = _weighted_median([(float(s.latency_ms["p50"]), s.scored) for s in timed]) if timed else None
        p99s = [float(s.latency_ms["p99"]) for s in timed if s.latency_ms.get("p99") is not None]
        version = next((s.model_version for s in reversed(summaries) if s.model_version), None)
        return LiveFigures(
            elapsed=now - self.started,
            records_per_s=sum(s.records for s in recent) / span,
            scored_per_s=sum(s.scored for s in recent) / span,
            latency_p50_s=p50 / 1000 if p50 is not None else None,
            latency_p99_s=max(p99s) / 1000 if p99s else None,
            decisions=decisions,
            quarantined=sum(s.quarantined for s in summaries),
            scored=sum(s.scored for s in summaries),
            batches=len(summaries),
            model_version=version,
            flagged=[dict(r) for r in flagged[-5:]][::-1],
            sent=dict(sent or {}),
            sim_time=sim_time,
        )


def _weighted_median(pairs: list[tuple[float, int]]) -> float:
    ordered = sorted(pairs)
    half = sum(w for _, w in ordered) / 2
    running = 0
    for value, weight in ordered:
        running += weight
        if running >= half:
            return value
    return ordered[-1][0]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def reasons_text(row: Mapping[str, Any], limit: int = 3) -> str:
    """``feature=value (+contribution)`` for a flagged row's top reasons."""
    parts = []
    for r in (row.get("top_reasons") or [])[:limit]:
        value = r.get("value")
        shown = f"{value:.4g}" if isinstance(value, int | float) else str(value)
        parts.append(f"{r.get('feature')}={shown} ({float(r.get('contribution') or 0):+.3f})")
    return "; ".join(parts)


def _decisions_text(decisions: Mapping[str, int]) -> str:
    total = sum(decisions.values())
    if not total:
        return "-"
    return ", ".join(f"{k} {v:,} ({v / total:.1%})" for k, v in sorted(decisions.items()))


def plain_line(f: LiveFigures) -> str:
    """One line of figures (for pipes and logs)."""
    sent = f.sent.get("transaction", 0)
    sim = f", simulated clock {f.sim_time}" if f.sim_time else ""
    return (f"[live {f.elapsed:4.0f}s] sent {sent:,} tx{sim}; in {f.records_per_s:.0f} events/s, scored "
            f"{f.scored_per_s:.0f}/s ({f.scored:,} total); Kafka->gold p50 {_seconds(f.latency_p50_s)} "
            f"p99 {_seconds(f.latency_p99_s)} (last minute); decisions {_decisions_text(f.decisions)}; "
            f"quarantined {f.quarantined}; model v{f.model_version or '-'}")


def flagged_lines(f: LiveFigures, limit: int = 3) -> list[str]:
    """The latest flagged transactions, one line each."""
    return [f"  {str(r.get('decision', '')).upper():6} score {float(r.get('score') or 0):.3f} tx "
            f"{r.get('transaction_id')} customer {r.get('customer_id')} amount {float(r.get('amount') or 0):.2f}"
            f"  because {reasons_text(r)}" for r in f.flagged[:limit]]


def rich_panel(f: LiveFigures) -> Group:
    """The live display: a figures table and the latest flagged transactions."""
    figures = Table(title="Aegis live", show_header=False, box=None, padding=(0, 2))
    figures.add_column(style="bold")
    figures.add_column()
    figures.add_row("elapsed", f"{f.elapsed:.0f}s" + (f"   simulated clock {f.sim_time}" if f.sim_time else ""))
    figures.add_row("sent", f"{f.sent.get('transaction', 0):,} transactions, {f.sent.get('label', 0):,} labels")
    figures.add_row("events/s (last minute)", f"in {f.records_per_s:.0f}   scored {f.scored_per_s:.0f}")
    figures.add_row("Kafka -> gold (last minute)", f"p50 {_seconds(f.latency_p50_s)}   p99 {_seconds(f.latency_p99_s)}")
    figures.add_row("decisions", _decisions_text(f.decisions))
    figures.add_row("scored / quarantined", f"{f.scored:,} / {f.quarantined:,}")
    figures.add_row("model", f"v{f.model_version or '-'}  ({f.batches} micro-batches)")
    flagged = Table(title="latest flagged", expand=False)
    for name in ("decision", "score", "transaction", "customer", "amount", "because"):
        flagged.add_column(name)
    for r in f.flagged:
        flagged.add_row(str(r.get("decision", "")).upper(), f"{float(r.get('score') or 0):.3f}",
                        str(r.get("transaction_id", ""))[:12], str(r.get("customer_id", "")),
                        f"{float(r.get('amount') or 0):.2f}", reasons_text(r, 2))
    return Group(figures, flagged if f.flagged else Text("no flagged transaction yet"))


class LiveView:
    """Shows :class:`LiveFigures`: in place on a TTY, as plain lines every ``plain_every`` s otherwise."""

    def __init__(self, tty: bool | None = None, plain_every: float = 10.0) -> None:
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.plain_every = plain_every
        self._live: Live | None = None
        self._last_plain = 0.0

    def __enter__(self) -> LiveView:
        if self.tty:
            self._live = Live(Text("waiting for the first micro-batch"), console=Console(), refresh_per_second=2,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def show(self, figures: LiveFigures, force: bool = False) -> None:
        """Display ``figures`` (plain mode prints at most every ``plain_every`` s unless ``force``)."""
        if self._live is not None:
            self._live.update(rich_panel(figures))
            return
        now = time.monotonic()
        if force or now - self._last_plain >= self.plain_every:
            self._last_plain = now
            print(plain_line(figures), flush=True)
            for line in flagged_lines(figures):
                print(line, flush=True)
