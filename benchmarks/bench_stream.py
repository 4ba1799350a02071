"""`make bench-stream`: handbook traffic through the real broker into the running stream job.

Stages (all against a fresh lakehouse under var/bench/stream):
1. import 2018-04-01..06-30 as history and train a champion on it;
2. saturation: replay 2018-07-01.. (120k events) at max speed, then run the stream until drained
   (at most 40k records per micro-batch, ``kafka.max_offsets_per_trigger``);
   sustained events/s = events / busy time of the micro-batches, with SHAP for every event;
   the feature stage's rows/s alone comes from the per-batch stage timings; then two equal
   10,000-event slices, with and without ``stream.batch_checks``, price the data-quality step;
3. latency: replay the next events at a fixed 1,000 events/s while the stream runs; Kafka-to-gold
   p50/p95/p99 from gold.scores.latency_ms (Kafka append -> score time);
4. reference: a plain Python consumer loop (kafka-python + pandas + the same model, features
   read from silver instead of computed) over the same events.
JSON on the last line.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = REPO.parent / "shared" / "data" / "handbook"
SATURATION_EVENTS = 120_000
CHECK_EVENTS = 10_000
LATENCY_SECONDS = 60
LATENCY_RATE = 1000.0


def _settings(home: Path):
    from conf.settings import load_settings
    from lakehouse.ports import free_ports

    port, controller = free_ports(2)
    return load_settings("local", environ={}, overrides={
        "paths": {"home": str(home), "cache": str(REPO / ".cache")},
        "kafka": {"bootstrap_servers": f"127.0.0.1:{port}", "broker": {"port": port, "controller_port": controller},
                  "max_offsets_per_trigger": 40000},
        "stream": {"metrics_port": 0, "trigger_seconds": 1.0, "publish_scores": True},
    })


def _reference(settings, events: int, model_path: str) -> dict[str, float]:
    """Plain Python: consume, parse, look the features up, score + SHAP with the same model."""
    import pandas as pd
    from deltalake import DeltaTable
    from kafka import KafkaConsumer

    from features.catalog import feature_names
    from jobs.tables import feature_params
    from models.pyfunc import load_scorer

    names = feature_names(feature_params(settings))
    silver = DeltaTable(str(settings.lakehouse_root / "silver" / "features")).to_pandas(
        columns=["transaction_id", *names]).set_index("transaction_id")
    scorer = load_scorer(model_path)
    consumer = KafkaConsumer(settings.kafka.topics.transactions, bootstrap_servers=settings.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000,
                             max_poll_records=5000)
    started, done = time.monotonic(), 0
    while done < events:
        polled = consumer.poll(timeout_ms=1000)
        if not polled:
            break
        ids = [json.loads(r.value)["transaction_id"] for batch in polled.values() for r in batch]
        frame = silver.reindex(pd.Index(ids)).dropna()
        if len(frame):
            scorer.score(frame[names])
        done += len(ids)
    elapsed = time.monotonic() - started
    consumer.close()
    return {"events": done, "seconds": round(elapsed, 1), "events_per_second": round(done / elapsed, 1)}


def main() -> int:
    from jobs import importer, kafka_admin, replay, stream, train
    from jobs.base import JobContext, configure_logging
    from jobs.scoring import ModelScorer
    from jobs.tables import feature_params
    from lakehouse.session import create_session

    configure_logging("WARNING")
    home = REPO / "var" / "bench" / "stream"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings = _settings(home)
    broker = kafka_admin.up(settings)
    try:
        spark = create_session(settings, "bench-stream")
        files = [str(HANDBOOK / f"transactions-2018-0{m}.parquet") for m in (4, 5, 6, 7)]
        importer.run(settings, importer.ImportConfig(paths=files[:3]), spark)
        trained = train.train(JobContext(settings, spark), train.TrainConfig(promote=True))
        print(f"bench-stream: champion v{trained['version']}", flush=True)

        replay.run(settings, replay.ReplayConfig(paths=[files[3]], limit=SATURATION_EVENTS))
        params = feature_params(settings)
        scorer = ModelScorer(spark, settings, params, "stream")
        saturation = _saturate(spark, settings, params, scorer)
        print(f"bench-stream: saturation {saturation}", flush=True)

        # The price of the per-batch data-quality aggregation: two equal slices of transactions
        # (no labels), one batch each, with and without it.
        unchecked = settings.model_copy(update={"stream": settings.stream.model_copy(update={"batch_checks": False})})
        checks: dict[str, dict] = {}
        for i, (name, run_settings) in enumerate((("with", settings), ("without", unchecked))):
            _publish(settings, files[3], SATURATION_EVENTS + i * CHECK_EVENTS, CHECK_EVENTS, rate=None)
            checks[name] = _saturate(spark, run_settings, params, scorer)
            print(f"bench-stream: {CHECK_EVENTS:,} events {name} batch checks {checks[name]}", flush=True)

        # Fixed-rate latency: the stream runs while the replay publishes at 1,000 events/s.
        processor = stream.MicroBatchProcessor(settings, params, scorer)
        query = stream.start_query(spark, settings, processor)
        time.sleep(5)
        from pyspark.sql import functions as F

        mark = spark.sql("SELECT current_timestamp()").first()[0]
        # Publish the events after the saturation slice at a fixed rate (wall clock).
        feeder = threading.Thread(target=_publish, args=(settings, files[3], SATURATION_EVENTS + 2 * CHECK_EVENTS,
                                                         int(LATENCY_SECONDS * LATENCY_RATE), LATENCY_RATE))
        feeder.start()
        feeder.join()
        stream.await_query(query, stream.StreamConfig(until_idle=True, max_seconds=300, idle_seconds=4))
        gold = spark.read.format("delta").load(str(settings.lakehouse_root / "gold" / "scores"))
        # Kafka append time -> the end of the micro-batch that committed the row to gold (and
        # published it): the score's own timestamp would leave the Delta commit out.
        written = {b.batch_id: b.written_at for b in processor.history if b.written_at}
        rows = (gold.filter(F.col("scored_at") >= F.lit(mark))
                .select("stream_batch_id", (F.unix_micros("scored_at") / 1e6 - F.col("latency_ms") / 1e3)
                        .alias("kafka_epoch"), "latency_ms").collect())
        lat = np.array([written[r[0]] - r[1] for r in rows if r[0] in written and r[1] is not None])
        to_score = np.array([r[2] / 1000 for r in rows if r[2] is not None])
        latency = {
            "events": int(lat.size), "rate": LATENCY_RATE,
            **{f"p{q}_s": round(float(np.percentile(lat, q)), 3) if lat.size else None for q in (50, 95, 99)},
            "kafka_to_score_p99_s": round(float(np.percentile(to_score, 99)), 3) if to_score.size else None,
            "batches": len(processor.history),
            "mean_batch_seconds": round(float(np.mean([b.seconds for b in processor.history])), 2)
            if processor.history else None,
        }
        print(f"bench-stream: latency at {LATENCY_RATE:.0f}/s {latency}", flush=True)
        reference = _reference(settings, SATURATION_EVENTS, scorer.current().path)
        print(f"bench-stream: reference python loop {reference}", flush=True)
    finally:
        broker.stop()
    result = {
        "bench": "stream",
        "saturation": saturation,
        "batch_checks": {
            "with": checks["with"], "without": checks["without"],
            "overhead_seconds_per_batch": round(checks["with"]["busy_seconds"] - checks["without"]["busy_seconds"], 2),
            "ingest_stage_overhead_seconds": round(checks["with"]["stage_seconds"]["ingest"]
                                                   - checks["without"]["stage_seconds"]["ingest"], 2),
        },
        "latency_at_fixed_rate": latency,
        # The strict contract check's own cost (issue 17): CPU per event on one core, no Spark.
        "contract_check": _contract_check_cost(str(HANDBOOK / "transactions-2018-07.parquet")),
        "reference_python_loop": reference,
        "floor": {"events_per_second": 2000, "p99_s_at_1000_per_s": 3.0},
        "meets_floor": bool(saturation["events_per_second"] >= 2000
                            and latency["p99_s"] is not None and latency["p99_s"] <= 3.0),
    }
    print(json.dumps(result))
    return 0


def _saturate(spark, settings, params, scorer) -> dict:
    """Run the stream over what is waiting in the topic until drained; throughput of the busy time."""
    from jobs import stream

    processor = stream.MicroBatchProcessor(settings, params, scorer)
    query = stream.start_query(spark, settings, processor)
    stream.await_query(query, stream.StreamConfig(until_idle=True, max_seconds=900, idle_seconds=4))
    batches = [b for b in processor.history if b.scored]
    busy = sum(b.seconds for b in batches)
    scored = sum(b.scored for b in batches)
    feature_seconds = sum(b.feature_seconds for b in batches)
    return {
        "events": scored, "batches": len(batches), "busy_seconds": round(busy, 1),
        "events_per_second": round(scored / busy, 1) if busy else 0.0,
        "feature_stage_rows_per_second": round(scored / feature_seconds, 1) if feature_seconds else 0.0,
        "score_stage_rows_per_second": round(scored / max(sum(b.score_seconds for b in batches), 1e-9), 1),
        "stage_seconds": {stage: round(sum(getattr(b, f"{stage}_seconds") for b in batches), 1)
                          for stage in ("ingest", "feature", "score", "write")},
    }


def _contract_check_cost(path: str, count: int = 20_000) -> dict:
    """CPU microseconds per event of the record check over ``count`` handbook events as the stream gets them."""
    from jobs.importer import load_file, parse_delay
    from quality.bench import record_check_cost
    from sources.contract import frame_to_events, to_json_bytes

    tx, _ = load_file(Path(path), parse_delay("7d"))
    events = list(frame_to_events(tx.iloc[:count], "transaction"))
    return record_check_cost([to_json_bytes(e, "transaction") for e in events],
                             [e["customer_id"].encode() for e in events])


def _publish(settings, path: str, skip: int, count: int, rate: float | None) -> None:
    """Publish transactions [skip, skip+count) of a handbook file at ``rate`` per second (None: at once)."""
    from jobs.importer import load_file, parse_delay
    from lakehouse.kafka_io import make_producer
    from sources.contract import frame_to_events, to_json_bytes

    tx, _ = load_file(Path(path), parse_delay("7d"))
    tx = tx.sort_values("event_time", kind="stable").iloc[skip:skip + count]
    payloads = [(e["customer_id"].encode(), to_json_bytes(e, "transaction"))
                for e in frame_to_events(tx, "transaction")]
    producer = make_producer(settings)
    started = time.monotonic()
    for i, (key, value) in enumerate(payloads):
        wait = started + i / rate - time.monotonic() if rate else 0.0
        if wait > 0:
            time.sleep(wait)
        producer.send(settings.kafka.topics.transactions, key=key, value=value)
    producer.flush()
    producer.close()


if __name__ == "__main__":
    sys.exit(main())
