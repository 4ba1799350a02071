"""Stream metrics with prometheus_client: query progress (a StreamingQueryListener), the state
store's rows and memory, and the micro-batch summaries of both queries, collected at scrape time
and served on ``stream.metrics_port``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pyspark.sql.streaming import StreamingQueryListener

from stream.summary import BatchSummary

log = logging.getLogger("aegis.metrics")


class StreamMetrics(StreamingQueryListener, Collector):
    """Keeps the newest progress of each query; renders everything when Prometheus scrapes."""

    def __init__(self, summaries: Callable[[], Sequence[BatchSummary]]) -> None:
        self.summaries = summaries
        self.progress: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def onQueryStarted(self, event: Any) -> None:
        log.info("stream query started: %s id=%s run=%s", event.name, event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        p = event.progress
        durations = p.durationMs or {}
        operators = list(p.stateOperators or [])
        values = {
            "input_rows_per_second": float(p.inputRowsPerSecond or 0.0),
            "processed_rows_per_second": float(p.processedRowsPerSecond or 0.0),
            "batch_duration_seconds": float(durations.get("triggerExecution", 0)) / 1000.0,
            "last_batch_rows": float(p.numInputRows or 0),
            "state_rows": float(sum(op.numRowsTotal for op in operators)),
            "state_memory_bytes": float(sum(op.memoryUsedBytes for op in operators)),
        }
        with self._lock:
            self.progress[str(p.name or "stream")] = values

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        log.info("stream query terminated: id=%s exception=%s", event.id, event.exception)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            progress = {name: dict(values) for name, values in self.progress.items()}
        gauges = {
            "input_rows_per_second": "Kafka records per second offered to the last micro-batch.",
            "processed_rows_per_second": "Records per second processed by the last micro-batch.",
            "batch_duration_seconds": "Duration of the last micro-batch.",
            "state_rows": "Rows in the query's state store (keys' feature state, timers, duplicate ids).",
            "state_memory_bytes": "Memory the query's state store uses.",
        }
        for key, help_text in gauges.items():
            family = GaugeMetricFamily(f"aegis_stream_{key}", help_text, labels=["query"])
            for query, values in sorted(progress.items()):
                family.add_metric([query], values.get(key, 0.0))
            yield family
        batches = list(self.summaries())
        totals = {
            "scored": ("Transactions scored (gold.scores rows).", sum(b.scored for b in batches if b.query == "hot")),
            "late": ("Transactions featurized behind the lateness frontier.", sum(b.late for b in batches)),
            "ingested": ("Valid transactions written to bronze.", sum(b.bronze for b in batches)),
            "labels": ("Labels written to bronze.labels.", sum(b.labels for b in batches)),
            "quarantined": ("Records sent to quarantine.", sum(b.quarantined for b in batches)),
        }
        for key, (help_text, value) in totals.items():
            yield CounterMetricFamily(f"aegis_stream_{key}", help_text, value=float(value))
        decisions: dict[str, int] = {}
        for b in batches:
            for k, v in b.decisions.items():
                decisions[k] = decisions.get(k, 0) + v
        by_decision = CounterMetricFamily("aegis_stream_decisions", "Scores by decision.", labels=["decision"])
        for k, v in sorted(decisions.items()):
            by_decision.add_metric([k], float(v))
        yield by_decision
        latest = next((b.latency_ms for b in reversed(batches) if b.latency_ms), {})
        family = GaugeMetricFamily("aegis_stream_score_latency_seconds",
                                   "Kafka append to score latency of the last scored micro-batch.",
                                   labels=["quantile"])
        for k, q in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99")):
            if k in latest:
                family.add_metric([q], latest[k] / 1000.0)
        yield family


def serve_metrics(metrics: StreamMetrics, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` from a daemon thread (port 0 = disabled); returns the server (``shutdown()``)."""
    if port == 0:
        return None
    registry = CollectorRegistry(auto_describe=True)
    registry.register(metrics)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("stream metrics on http://%s:%d/metrics", host, port)
    return server
