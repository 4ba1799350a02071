"""The stream's Prometheus metrics, rendered by prometheus_client from batch summaries and progress."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobs.observability import StreamMetrics
from stream.summary import BatchSummary
from tests.unit.test_deploy_manifests import METRICS


def _scrape(metrics: StreamMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry()
    registry.register(metrics)
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_counters_add_up_both_queries_and_gauges_follow_each_query() -> None:
    batches = [
        BatchSummary("hot", 1, scored=10, late=1, decisions={"allow": 9, "block": 1},
                     latency_ms={"p50": 400.0, "p95": 900.0, "p99": 1200.0}),
        BatchSummary("cold", 1, records=12, bronze=10, labels=1, quarantined=1),
        BatchSummary("hot", 2, scored=5, decisions={"allow": 4, "review": 1}, latency_ms={"p99": 800.0}),
    ]
    metrics = StreamMetrics(lambda: batches)
    operator = SimpleNamespace(numRowsTotal=120, memoryUsedBytes=4096)
    progress = SimpleNamespace(name="aegis-stream.hot", durationMs={"triggerExecution": 1500}, numInputRows=15,
                               inputRowsPerSecond=7.5, processedRowsPerSecond=10.0, stateOperators=[operator])
    metrics.onQueryProgress(SimpleNamespace(progress=progress))
    samples = _scrape(metrics)
    assert samples["aegis_stream_scored_total"] == [({}, 15.0)]
    assert samples["aegis_stream_late_total"] == [({}, 1.0)]
    assert samples["aegis_stream_ingested_total"] == [({}, 10.0)]
    assert samples["aegis_stream_quarantined_total"] == [({}, 1.0)]
    assert dict((labels["decision"], v) for labels, v in samples["aegis_stream_decisions_total"]) == {
        "allow": 13.0, "block": 1.0, "review": 1.0}
    assert samples["aegis_stream_state_rows"] == [({"query": "aegis-stream.hot"}, 120.0)]
    assert samples["aegis_stream_state_memory_bytes"] == [({"query": "aegis-stream.hot"}, 4096.0)]
    assert samples["aegis_stream_batch_duration_seconds"] == [({"query": "aegis-stream.hot"}, 1.5)]
    # The newest scored batch's latency (only its p99 is known).
    assert samples["aegis_stream_score_latency_seconds"] == [({"quantile": "0.99"}, 0.8)]
    stream_metrics = {name for name in METRICS if name.startswith("aegis_stream_")}
    assert stream_metrics <= set(samples), stream_metrics - set(samples)
    for name in stream_metrics:
        assert {k for labels, _ in samples[name] for k in labels} == METRICS[name], name
