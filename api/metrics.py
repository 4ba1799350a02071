"""Prometheus metrics (text exposition 0.0.4): requests and latency by route, serving store health, plus the
process's prometheus_client registry (e.g. the sync lag histogram when the sync runs in this process)."""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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

    def render(self, store: dict[str, dict[str, Any]] | None = None, counts: dict[str, int] | None = None) -> str:
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
            lines += self._store(store, counts or {})
        lines += [
            "# HELP aegis_api_start_time_seconds When the process started serving (unix time).",
            "# TYPE aegis_api_start_time_seconds gauge",
            f"aegis_api_start_time_seconds {self.started!r}",
        ]
        from prometheus_client import REGISTRY, generate_latest

        return "\n".join(lines) + "\n" + generate_latest(REGISTRY).decode()

    @staticmethod
    def _store(status: dict[str, dict[str, Any]], counts: dict[str, int]) -> list[str]:
        lines = ["# HELP aegis_api_store_up 1 when the check passes (store reachable, schema migrated).",
                 "# TYPE aegis_api_store_up gauge"]
        for name, check in sorted(status.items()):
            lines.append(f"aegis_api_store_up{_labels(check=name)} {int(bool(check.get('ok')))}")
        lines += ["# HELP aegis_api_store_rows Rows per serving table (planner estimate).",
                  "# TYPE aegis_api_store_rows gauge"]
        for table, n in sorted(counts.items()):
            lines.append(f"aegis_api_store_rows{_labels(table=table)} {int(n)}")
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
