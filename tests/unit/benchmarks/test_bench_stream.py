"""bench-stream's own arithmetic (no Spark, no broker)."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_stream import _p99_by_third


def test_p99_by_third_splits_the_window_by_kafka_time() -> None:
    kafka = np.arange(0.0, 120.0, 0.01)
    seconds = np.select([kafka < 40, kafka < 80], [5.0, 2.0], 3.0)
    seconds[(kafka > 50) & (kafka < 50.5)] = 9.0  # 1.25 % of the middle third: its p99
    assert _p99_by_third(kafka, seconds) == [5.0, 9.0, 3.0]
    assert _p99_by_third(np.array([]), np.array([])) == [None, None, None]
