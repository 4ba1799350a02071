"""Stream metrics: a StreamingQueryListener plus the processor's batch summaries, exposed in
Prometheus text format on ``stream.metrics_port`` and logged once per micro-batch."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

log = logging.getLogger("aegis.metrics")


class StreamMetrics(StreamingQueryListener):
    """Collects query progress (rates, durations) and renders everything as Prometheus text."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.progress: dict[str, float] = {}
        self._lock = threading.Lock()

    def onQueryStarted(self, event: Any) -> None:
        log.info("stream query started: id=%s run=%s", event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        p = event.progress
        durations = p.durationMs or {}
        values = {
            "input_rows_per_second": float(p.inputRowsPerSecond or 0.0),
            "processed_rows_per_second": float(p.processedRowsPerSecond or 0.0),
            "batch_duration_seconds": float(durations.get("triggerExecution", 0)) / 1000.0,
            "last_batch_rows": float(p.numInputRows or 0),
            "batch_id": float(p.batchId),
        }
        with self._lock:
            self.progress = values
        if values["last_batch_rows"]:
            log.info("stream progress: batch %d, %d rows, %.0f rows/s in, %.0f rows/s processed, %.2fs",
                     p.batchId, p.numInputRows, values["input_rows_per_second"],
                     values["processed_rows_per_second"], values["batch_duration_seconds"])

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        log.info("stream query terminated: id=%s exception=%s", event.id, event.exception)

    def render(self) -> str:
        """The Prometheus exposition text."""
        with self._lock:
            progress = dict(self.progress)
        batches = list(self.processor.history)
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP aegis_stream_{name} {help_text}")
            lines.append(f"# TYPE aegis_stream_{name} {kind}")
            lines.extend(f"aegis_stream_{name}{labels} {value}" for labels, value in samples)

        metric("input_rows_per_second", "gauge", "Kafka records per second offered to the last batch.",
               [("", progress.get("input_rows_per_second", 0.0))])
        metric("processed_rows_per_second", "gauge", "Records per second processed by the last batch.",
               [("", progress.get("processed_rows_per_second", 0.0))])
        metric("batch_duration_seconds", "gauge", "Duration of the last micro-batch.",
               [("", progress.get("batch_duration_seconds", 0.0))])
        ingested = sum(b.bronze for b in batches)
        featurized = sum(b.featurized for b in batches)
        metric("state_rows", "gauge", "Ingested transactions held behind the lateness frontier (not yet scored).",
               [("", float(max(ingested - featurized, 0)))])
        metric("ingested_total", "counter", "Valid transactions written to bronze.", [("", float(ingested))])
        metric("quarantined_total", "counter", "Records sent to quarantine.",
               [("", float(sum(b.quarantined for b in batches)))])
        decisions: dict[str, int] = {}
        for b in batches:
            for k, v in b.decisions.items():
                decisions[k] = decisions.get(k, 0) + v
        metric("decisions_total", "counter", "Scores by decision.",
               [(f'{{decision="{k}"}}', float(v)) for k, v in sorted(decisions.items())])
        latest: dict[str, float] = next((b.latency_ms for b in reversed(batches) if b.latency_ms), {})
        quantiles = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}
        metric("score_latency_seconds", "gauge", "Kafka append to score latency of the last scored batch.",
               [(f'{{quantile="{q}"}}', latest[k] / 1000.0) for k, q in quantiles.items() if k in latest])
        return "\n".join(lines) + "\n"


def serve_metrics(metrics: StreamMetrics, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer | None:
    """Serve ``/metrics`` in a daemon thread (port 0 = disabled)."""
    if port == 0:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="aegis-metrics").start()
    log.info("stream metrics on http://%s:%d/metrics", host, port)
    return server
