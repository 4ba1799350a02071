"""Prometheus metrics, hand-written text exposition (format 0.0.4): requests, latency, table freshness."""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from api.store import LakehouseStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


class Metrics:
    """Request counters and latency histograms, keyed by route template (bounded label set)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # bucket counts..., sum, count

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get((method, route))
        if hist is None:
            hist = self.latency[(method, route)] = [0.0] * (len(BUCKETS) + 2)
        hist[bisect.bisect_left(BUCKETS, seconds)] += 1  # cumulated at render time
        hist[-2] += seconds
        hist[-1] += 1

    def render(self, store: LakehouseStore | None = None) -> str:
        """The exposition text."""
        lines = [
            "# HELP aegis_api_requests_total HTTP requests by route template, method and status.",
            "# TYPE aegis_api_requests_total counter",
        ]
        for (method, route, status), count in sorted(self.requests.items()):
            lines.append(f"aegis_api_requests_total{_labels(method=method, route=route, status=status)} {count}")
        lines += [
            "# HELP aegis_api_request_duration_seconds Time from request to the end of the response.",
            "# TYPE aegis_api_request_duration_seconds histogram",
        ]
        for (method, route), hist in sorted(self.latency.items()):
            cumulative = 0.0
            bounds: tuple[float, ...] = (*BUCKETS, float("inf"))
            for bound, in_bucket in zip(bounds, hist[: len(BUCKETS) + 1], strict=True):
                cumulative += in_bucket
                labels = _labels(method=method, route=route, le=_number(bound) if bound != float("inf") else "+Inf")
                lines.append(f"aegis_api_request_duration_seconds_bucket{labels} {int(cumulative)}")
            labels = _labels(method=method, route=route)
            lines.append(f"aegis_api_request_duration_seconds_sum{labels} {hist[-2]!r}")
            lines.append(f"aegis_api_request_duration_seconds_count{labels} {int(hist[-1])}")
        if store is not None:
            lines += self._tables(store)
        lines += [
            "# HELP aegis_api_start_time_seconds When the process started serving (unix time).",
            "# TYPE aegis_api_start_time_seconds gauge",
            f"aegis_api_start_time_seconds {self.started!r}",
        ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _tables(store: LakehouseStore) -> list[str]:
        statuses = store.status()
        gauges: list[tuple[str, str, Callable[[Any], float]]] = [
            ("aegis_api_table_up", "1 when the table is loaded and served.", lambda s: float(s.state == "ready")),
            ("aegis_api_table_version", "Delta version served (-1: none).",
             lambda s: float(-1 if s.version is None else s.version)),
            ("aegis_api_table_latest_version", "Latest committed Delta version seen (-1: none).",
             lambda s: float(-1 if s.latest_version is None else s.latest_version)),
            ("aegis_api_table_version_lag", "Committed versions not served yet.", lambda s: float(s.lag)),
            ("aegis_api_table_rows", "Rows served.", lambda s: float(s.rows)),
            ("aegis_api_table_segments", "In-memory segments (base + appended deltas).",
             lambda s: float(s.segments)),
            ("aegis_api_table_last_check_timestamp_seconds", "Last poll of the Delta log (unix time).",
             lambda s: s.last_check),
            ("aegis_api_table_last_load_seconds", "Duration of the last load.", lambda s: s.last_load_seconds),
        ]
        lines = []
        for name, help_text, value in gauges:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for s in statuses:
                lines.append(f"{name}{_labels(table=s.name)} {_number(value(s))}")
        lines += ["# HELP aegis_api_table_loads_total Snapshots loaded, by kind.",
                  "# TYPE aegis_api_table_loads_total counter"]
        for s in statuses:
            lines.append(f"aegis_api_table_loads_total{_labels(table=s.name, kind='incremental')} "
                         f"{s.incremental_loads}")
            lines.append(f"aegis_api_table_loads_total{_labels(table=s.name, kind='full')} "
                         f"{s.loads - s.incremental_loads}")
        return lines


class MetricsMiddleware:
    """Pure ASGI middleware: one observation per HTTP request, labelled with the matched route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe(scope.get("method", "GET"), template, status, time.perf_counter() - started)
