"""`make bench-stream`: handbook traffic through the real broker into the running stream job.

Stages (all against a fresh lakehouse under var/bench/stream; the hot query in this process and the
cold one in its child process at lower CPU priority, as `aegis stream` runs them, started once and
kept running through stages 2 and 3, each stage drained by both before the next):
1. import 2018-04-01..06-30 as history and train a champion on it (the stream's first start
   seeds its feature state from bronze, before any event is published: ``warm_up.startup_seconds``);
2. warm-up: 20k events as fast as possible into a new JVM (reported apart, as ``warm_up``);
   saturation: then the next 120k events of 2018-07 as fast as possible while the stream runs;
   ``sustained_events_per_s`` = scored events / (last gold commit - first Kafka append), wall
   clock, SHAP for every event;
3. latency: the next events at a fixed 1,000 events/s for 120 s; p50/p95/p99 of Kafka append ->
   gold commit (when the micro-batch's gold.scores commit returned) and Kafka append -> score;
4. per hot micro-batch: Spark jobs, Delta commits, seconds, state rows and bytes, and the query
   progress durations (planning, addBatch...);
5. reference without Spark, same events: kafka-python consumer, features from per-key numpy
   arrays (``numpy_state`` over the same bronze history), the same model and SHAP, results
   to a file;
6. the strict contract check's own CPU cost per event (no Spark).
Kafka -> score is measured on the scores topic: the score record's Kafka timestamp minus the
transaction's. JSON on the last line.
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
# Published first, as fast as possible, and reported apart: a new JVM compiles the stream's code
# paths during its first tens of thousands of events (a production stream runs for days).
WARM_UP_EVENTS = 20_000
LATENCY_SECONDS = 120
LATENCY_RATE = 1000.0


def _settings(home: Path, extra: list[str]):
    """The local profile, on free ports under ``home``; ``extra`` are ``--set key=value`` overrides."""
    from conf.settings import load_settings, parse_overrides
    from lakehouse.ports import free_ports

    port, controller = free_ports(2)
    return load_settings("local", environ={}, overrides=parse_overrides(extra, base={
        "paths": {"home": str(home), "cache": str(REPO / ".cache")},
        "kafka": {"bootstrap_servers": f"127.0.0.1:{port}", "broker": {"port": port, "controller_port": controller},
                  "max_offsets_per_trigger": 40000},
        "stream": {"metrics_port": 0, "trigger_seconds": 1.0, "publish_scores": True},
    }))


def main(argv: list[str]) -> int:
    """``make bench-stream [ARGS="--set stream.cold_in_child_process=false ..."]``."""
    import argparse

    from jobs import importer, kafka_admin, train
    from jobs.base import JobContext, configure_logging
    from jobs.scoring import ModelScorer
    from jobs.tables import feature_params
    from lakehouse.session import create_session

    cli = argparse.ArgumentParser(prog="bench_stream.py")
    cli.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    overrides = cli.parse_args(argv).overrides
    configure_logging("WARNING")
    probe_before = _cpu_probe()
    home = REPO / "var" / "bench" / "stream"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings = _settings(home, overrides)
    broker = kafka_admin.up(settings)
    try:
        spark = create_session(settings, "bench-stream")
        files = [str(HANDBOOK / f"transactions-2018-0{m}.parquet") for m in (4, 5, 6, 7)]
        importer.run(settings, importer.ImportConfig(paths=files[:3]), spark)
        trained = train.train(JobContext(settings, spark), train.TrainConfig(promote=True))
        print(f"bench-stream: champion v{trained['version']}", flush=True)
        params = feature_params(settings)
        scorer = ModelScorer(spark, settings, params, "stream")

        stream = _Stream(spark, settings, params, scorer)
        try:
            warm_up = {"startup_seconds": stream.startup_seconds,
                       **_saturation(stream, settings, files[3], 0, WARM_UP_EVENTS)}
            print(f"bench-stream: warm-up (a new JVM) {warm_up}", flush=True)
            saturation = _saturation(stream, settings, files[3], WARM_UP_EVENTS, SATURATION_EVENTS)
            print(f"bench-stream: saturation {saturation}", flush=True)
            batches, per_batch = stream.stage(lambda: _in_own_process(
                _publish, settings, files[3], WARM_UP_EVENTS + SATURATION_EVENTS, int(LATENCY_SECONDS * LATENCY_RATE),
                LATENCY_RATE), int(LATENCY_SECONDS * LATENCY_RATE))
        finally:
            stream.stop()
        kafka, committed, appended = _gold_times(spark, settings, batches)
        to_gold = committed - kafka
        to_score = _score_topic_seconds(settings, appended)
        latency = {
            "events": int(to_gold.size), "rate": LATENCY_RATE, "seconds": LATENCY_SECONDS,
            **{f"kafka_to_gold_p{q}_s": round(float(np.percentile(to_gold, q)), 3) if to_gold.size else None
               for q in (50, 95, 99)},
            **{f"kafka_to_score_p{q}_s": round(float(np.percentile(to_score, q)), 3) if to_score.size else None
               for q in (50, 95, 99)},
            # The same p99 over each third of the window (by Kafka time): whether it is still settling.
            "kafka_to_gold_p99_by_third_s": _p99_by_third(kafka, to_gold),
            **per_batch,
        }
        print(f"bench-stream: latency at {LATENCY_RATE:.0f}/s {latency}", flush=True)
        reference = _reference(settings, SATURATION_EVENTS, scorer.current().path, home / "reference-scores.csv")
        explain = _explain_cost(settings, scorer.current().path)
        print(f"bench-stream: ensemble predict + exact SHAP {explain}", flush=True)
        print(f"bench-stream: reference without Spark {reference}", flush=True)
    finally:
        broker.stop()
    sustained = saturation["sustained_events_per_s"]
    p99 = latency["kafka_to_gold_p99_s"]
    result = {
        "bench": "stream",
        "sustained_events_per_s": sustained,
        "kafka_to_gold_p50_s": latency["kafka_to_gold_p50_s"],
        "kafka_to_gold_p95_s": latency["kafka_to_gold_p95_s"],
        "kafka_to_gold_p99_s": p99,
        "kafka_to_score_p99_s": latency["kafka_to_score_p99_s"],
        "saturation": saturation,
        "warm_up": warm_up,
        "latency_at_fixed_rate": latency,
        "reference_without_spark": reference,
        # The ensemble's own cost (one process, no Spark) and the ceiling it alone puts on 2 cores.
        "explain_cost": explain,
        # The strict contract check's own cost (issue 17): CPU per event on one core, no Spark.
        "contract_check": _contract_check_cost(str(HANDBOOK / "transactions-2018-07.parquet")),
        "stream_to_reference_ratio": round(sustained / reference["events_per_second"], 2)
        if reference["events_per_second"] else None,
        "cpu_probe_seconds": {"before": probe_before, "after": _cpu_probe()},
        "floor": {"sustained_events_per_s": 2000, "kafka_to_gold_p99_s": 3.0},
        "meets_floor": bool(sustained >= 2000 and p99 is not None and p99 <= 3.0),
    }
    print(json.dumps(result))
    return 0


def _saturation(stream: _Stream, settings, path: str, skip: int, count: int) -> dict:
    """Publish ``count`` events at once into the running stream; events per second, wall clock."""
    batches, per_batch = stream.stage(lambda: _in_own_process(_publish, settings, path, skip, count, None), count)
    kafka, committed, _ = _gold_times(stream.spark, settings, batches)
    wall = float(committed.max() - kafka.min()) if kafka.size else 0.0
    return {"events": int(kafka.size), "wall_seconds": round(wall, 1),
            "sustained_events_per_s": round(kafka.size / wall, 1) if wall else 0.0, **per_batch}


def _p99_by_third(kafka: np.ndarray, seconds: np.ndarray) -> list[float | None]:
    """p99 of ``seconds`` among the events of each third of the Kafka-time span."""
    if not kafka.size:
        return [None, None, None]
    edges = np.linspace(kafka.min(), kafka.max(), 4)
    third = np.clip(np.searchsorted(edges, kafka, side="right") - 1, 0, 2)
    return [round(float(np.percentile(seconds[third == i], 99)), 3) if (third == i).any() else None
            for i in range(3)]


def _reference(settings, events: int, model_path: str, out: Path) -> dict[str, float]:
    """Plain Python: consume, parse, features from per-key numpy arrays, score + SHAP, write a file.

    The history is the imported bronze (what the stream's seed holds); each poll's transactions
    are featurized by :func:`numpy_state.compute` against their keys' events.
    """
    import numpy_state as state
    import pandas as pd
    from deltalake import DeltaTable
    from kafka import KafkaConsumer

    from features.catalog import declare_features
    from features.spec import Entity
    from jobs.tables import feature_params
    from models.pyfunc import load_scorer

    params = feature_params(settings)
    feats = declare_features(params)
    names = [f.name for f in feats]
    root = settings.lakehouse_root
    bronze = DeltaTable(str(root / "bronze" / "transactions")).to_pandas(
        columns=["transaction_id", "event_time", "customer_id", "terminal_id", "amount", "source"])
    bronze = bronze[bronze["source"] != "stream"]
    labels = DeltaTable(str(root / "bronze" / "labels")).to_pandas(columns=["transaction_id", "is_fraud",
                                                                             "reported_at"])
    epoch = pd.Timestamp(0, tz="UTC")
    micro = pd.Timedelta(microseconds=1)
    event_time = pd.to_datetime(bronze["event_time"], utc=True)
    keep = event_time > event_time.max() - state.reach(feats)
    bronze, us = bronze[keep], ((event_time[keep] - epoch) // micro).astype("int64")
    reports = labels[labels["is_fraud"]].groupby("transaction_id")["reported_at"].min()
    reported_us = (pd.to_datetime(reports, utc=True) - epoch) // micro
    matched = reported_us.reindex(bronze["transaction_id"])
    routes = {
        Entity.CUSTOMER: pd.DataFrame({"key": bronze["customer_id"].to_numpy(), "us": us.to_numpy(),
                                       "transaction_id": bronze["transaction_id"].to_numpy(),
                                       "amount": bronze["amount"].to_numpy(),
                                       "terminal_id": bronze["terminal_id"].to_numpy()}),
        Entity.TERMINAL: pd.DataFrame({"key": bronze["terminal_id"].to_numpy(), "us": us.to_numpy(),
                                       "transaction_id": bronze["transaction_id"].to_numpy(),
                                       "fraud_reported_us": np.where(
                                           matched.isna(), state.NO_REPORT, matched.fillna(0).astype("int64"))}),
    }
    scorer = load_scorer(model_path)
    consumer = KafkaConsumer(settings.kafka.topics.transactions, bootstrap_servers=settings.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000,
                             max_poll_records=5000)
    started, done = time.monotonic(), 0
    with out.open("w") as sink:
        while done < events:
            polled = consumer.poll(timeout_ms=1000)
            if not polled:
                break
            rows = pd.DataFrame([json.loads(r.value) for batch in polled.values() for r in batch])
            done += len(rows)
            rows = rows.drop_duplicates("transaction_id").reset_index(drop=True)
            time_utc = pd.to_datetime(rows["event_time"], utc=True)
            new_us = ((time_utc - epoch) // micro).astype("int64").to_numpy()
            ids = rows["transaction_id"].astype(str).to_numpy()
            halves = []
            for entity, key in ((Entity.CUSTOMER, "customer_id"), (Entity.TERMINAL, "terminal_id")):
                new = pd.DataFrame({"key": rows[key].astype(str).to_numpy(), "us": new_us, "transaction_id": ids})
                if entity is Entity.CUSTOMER:
                    new["amount"] = rows["amount"].astype(float).to_numpy()
                    new["terminal_id"] = rows["terminal_id"].astype(str).to_numpy()
                else:
                    new["fraud_reported_us"] = state.NO_REPORT
                kept = routes[entity]
                touched = kept[kept["key"].isin(new["key"])]
                target = np.r_[np.zeros(len(touched), dtype=bool), np.ones(len(new), dtype=bool)]
                halves.append(state.compute(pd.concat([touched, new], ignore_index=True), target, feats, entity))
                routes[entity] = pd.concat([kept, new], ignore_index=True)
            frame = pd.concat(halves, axis=1).reindex(ids)
            local = time_utc.dt.tz_convert(params.timezone)
            hour = (local.dt.hour + local.dt.minute / 60 + local.dt.second / 3600).to_numpy()
            dow = local.dt.dayofweek.astype(float).to_numpy()
            calendar = {"amount": rows["amount"].astype(float).to_numpy(),
                        "hour_sin": np.sin(2 * np.pi * hour / 24), "hour_cos": np.cos(2 * np.pi * hour / 24),
                        "dow_sin": np.sin(2 * np.pi * dow / 7), "dow_cos": np.cos(2 * np.pi * dow / 7),
                        "is_weekend": (dow >= 5).astype(float),
                        "is_night": ((local.dt.hour >= params.night_start_hour)
                                     & (local.dt.hour < params.night_end_hour)).astype(float).to_numpy()}
            if {f.name for f in feats if f.entity is Entity.TRANSACTION} != set(calendar):
                raise RuntimeError("the reference's transaction-level features are out of date")
            for name, values in calendar.items():
                frame[name] = values
            scored = scorer.score(frame[names])
            sink.write(scored[["score", "decision"]].to_csv(header=False))
    elapsed = time.monotonic() - started
    consumer.close()
    return {"events": done, "seconds": round(elapsed, 1), "events_per_second": round(done / elapsed, 1)}


class _Stream:
    """The queries as `aegis stream` runs them (the cold one in a child process at lower CPU priority,
    unless ``stream.cold_in_child_process`` is off), started once and kept running through every
    stage, as in production."""

    def __init__(self, spark, settings, params, scorer) -> None:
        from jobs import cold_process
        from stream.query import start

        self.spark = spark
        started = time.monotonic()
        self.child = None
        if settings.stream.cold_in_child_process:
            settings, self.child = cold_process.split_off_cold(settings, None, False, 5.0)
        self.queries = start(spark, settings, params, scorer)
        self.published = 0
        # A new checkpoint seeds the state from bronze in its first micro-batch: a one-off start-up
        # cost, measured apart; events are published once it is done.
        while not self.queries.hot.recentProgress and self.queries.is_active:
            time.sleep(0.2)
        self.startup_seconds = round(time.monotonic() - started, 1)

    def cold_history(self) -> list:
        return self.queries.cold_history + (self.child.summaries() if self.child is not None else [])

    def stage(self, publish, events: int) -> tuple[list, dict]:
        """Publish ``events`` and wait until both queries drained them: (its hot batches, per-batch figures)."""
        hot_history = self.queries.hot_history
        hot_from, cold_from = len(hot_history), len(self.cold_history())
        feeder = threading.Thread(target=publish)
        feeder.start()
        feeder.join()
        self.published += events
        self._drain()
        hot = [b for b in hot_history[hot_from:] if b.scored]
        cold = self.cold_history()[cold_from:]
        ids = {b.batch_id for b in hot}
        progress = [p for p in self.queries.hot.recentProgress if p.get("numInputRows") and p.get("batchId") in ids]
        return hot, _per_batch(hot, cold, progress)

    def _drain(self, idle_seconds: float = 5.0, max_seconds: float = 900.0) -> None:
        """Until the hot query is idle and the cold one has read every event published so far."""
        from stream.query import is_busy

        started, idle_since = time.monotonic(), None
        while time.monotonic() - started < max_seconds:
            error = self.queries.exception()
            if error is not None or not self.queries.is_active:
                raise RuntimeError(f"streaming query failed: {error}")
            if self.child is not None:
                self.child.check()
            if is_busy(self.queries.hot) or sum(b.records for b in self.cold_history()) < self.published:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_seconds:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the stream did not drain within {max_seconds:.0f} s")

    def stop(self) -> None:
        self.queries.stop_between_batches()
        if self.child is not None:
            self.child.stop()


def _per_batch(hot: list, cold: list, progress: list[dict]) -> dict:
    """Means per hot micro-batch of one stage (and the cold query's batches beside them)."""
    durations: dict[str, float] = {}
    for p in progress:
        for k, v in (p.get("durationMs") or {}).items():
            durations[k] = durations.get(k, 0.0) + v / 1000.0 / len(progress)
    operators = (progress[-1].get("stateOperators") or [{}]) if progress else [{}]

    def mean(values: list[float], digits: int = 3) -> float | None:
        return round(float(np.mean(values)), digits) if values else None

    return {
        "hot_batches": len(hot),
        "spark_jobs_per_batch": mean([b.spark_jobs for b in hot], 1),
        "delta_commits_per_batch": mean([b.delta_commits for b in hot], 2),
        "driver_seconds_per_batch": mean([b.seconds for b in hot]),
        "compute_seconds_per_batch": mean([b.compute_seconds for b in hot]),
        "plan_seconds_per_batch": mean([b.plan_seconds for b in hot]),
        "write_seconds_per_batch": mean([b.write_seconds for b in hot]),
        "events_per_batch": mean([b.scored for b in hot], 1),
        "state_rows": int(sum(op.get("numRowsTotal", 0) for op in operators)),
        "state_megabytes": round(sum(op.get("memoryUsedBytes", 0) for op in operators) / 1e6, 1),
        "progress_seconds_per_batch": {k: round(v, 3) for k, v in sorted(durations.items())},
        "cold_batches": len(cold),
        "cold_seconds_per_batch": mean([b.seconds for b in cold], 2),
        "cold_compute_seconds_per_batch": mean([b.compute_seconds for b in cold], 2),
    }


def _gold_times(spark, settings, batches: list) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(Kafka append epoch, gold commit epoch) of the rows this run scored, and their ids' Kafka epochs.

    The gold commit epoch is when the micro-batch's gold.scores commit returned: the row is
    visible to readers from then on (its silver write and scores-topic publish run beside it).
    """
    from pyspark.sql import functions as F

    written = {b.batch_id: b.gold_committed_at for b in batches if b.gold_committed_at}
    gold = spark.read.format("delta").load(str(settings.lakehouse_root / "gold" / "scores"))
    rows = (gold.filter(F.col("stream_batch_id").isin(list(written)) & (F.col("run_id") == settings.stream.query_name))
            .select("stream_batch_id", (F.unix_micros("scored_at") / 1e6 - F.col("latency_ms") / 1e3)
                    .alias("kafka_epoch"), "transaction_id").collect())
    rows = [r for r in rows if r[1] is not None]
    kafka = np.array([r[1] for r in rows])
    committed = np.array([written[r[0]] for r in rows])
    return kafka, committed, {r[2]: r[1] for r in rows}


def _score_topic_seconds(settings, appended: dict[str, float]) -> np.ndarray:
    """Kafka append of each transaction -> Kafka append of its score on the scores topic, seconds."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.kafka.topics.scores, bootstrap_servers=settings.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000)
    seconds = []
    for record in consumer:
        tx_id = record.key.decode() if record.key else None
        if tx_id in appended:
            seconds.append(record.timestamp / 1000.0 - appended.pop(tx_id))
    consumer.close()
    return np.array(seconds)


def _explain_cost(settings, model_path: str, rows: int = 5000) -> dict[str, float]:
    """CPU µs per row of the champion's predict + exact SHAP on silver rows, and the 2-core ceiling."""
    import os

    from deltalake import DeltaTable

    from features.catalog import feature_names
    from jobs.tables import feature_params
    from models.pyfunc import load_scorer

    names = feature_names(feature_params(settings))
    silver = DeltaTable(str(settings.lakehouse_root / "silver" / "features")).to_pandas(columns=names)
    frame = silver.tail(rows).astype("float64").reset_index(drop=True)
    scorer = load_scorer(model_path)
    scorer.score(frame.head(100))
    started = time.process_time()
    scorer.score(frame)
    per_row = (time.process_time() - started) / len(frame)
    cores = os.cpu_count() or 1
    return {"cpu_us_per_row": round(per_row * 1e6, 1), "rows_per_s_per_core": round(1 / per_row, 1),
            "ceiling_events_per_s_on_all_cores": round(cores / per_row, 1), "cores": cores}


def _cpu_probe() -> float:
    """CPU seconds of a fixed pure-Python loop: how fast this machine was during the run (figures of
    runs on days when it differs are not comparable)."""
    started = time.process_time()
    total = 0
    for i in range(5_000_000):
        total += i
    return round(time.process_time() - started, 3)


def _contract_check_cost(path: str, count: int = 20_000) -> dict:
    """CPU microseconds per event of the record check over ``count`` handbook events as the stream gets them."""
    from jobs.importer import load_file, parse_delay
    from quality.bench import record_check_cost
    from sources.contract import frame_to_events, to_json_bytes

    tx, _ = load_file(Path(path), parse_delay("7d"))
    events = list(frame_to_events(tx.iloc[:count], "transaction"))
    return record_check_cost([to_json_bytes(e, "transaction") for e in events],
                             [e["customer_id"].encode() for e in events])


def _in_own_process(target, *args) -> None:
    """Run ``target(*args)`` in a new Python process and wait for it.

    The publisher is kafka-python, pure Python: in the stream's own process it held the GIL the
    hot query's foreachBatch thread needs between its JVM calls (producers are other processes in
    production too).
    """
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=target, args=args, name="bench-publisher")
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the bench's publisher process exited with code {process.exitcode}")


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
    sys.exit(main(sys.argv[1:]))
