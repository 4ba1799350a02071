"""Benchmark: the score lookup API on a 5M-row gold.scores table, 32 concurrent clients.

1. Generates gold.scores (default 5,000,000 rows) and silver.features (the same transactions,
   every declared feature) with the deltalake writer, partitioned by event date like the
   contract, one large file per partition (what `aegis maintain`'s compaction leaves).
   ~50k customers with Zipf-like activity (weight ~ 1/rank^0.9), random 64-bit transaction ids.
2. Starts the API in a separate process (``python -m jobs.serve``: uvicorn, one worker) on a
   free 127.0.0.1 port and waits until both tables are loaded.
3. From another process, an asyncio + httpx load generator with 32 concurrent clients
   (one keep-alive connection each) measures, each phase bounded in count and time:
   ``GET /health`` (the reference: the HTTP stack alone), ``GET /v1/transactions/{id}``
   (random existing ids, score + feature vector) and ``GET /v1/customers/{id}/scores``
   (customers drawn by activity, newest 20 scores).

Prints human-readable lines, then one JSON line:
``{"bench":"api","rows":..,"transaction":{"p50_ms","p99_ms","rps"},"customer":{..},"health":{..}}``.
Floor: transaction p99 <= 50 ms. Both processes share the machine's 2 cores with the server,
so the latencies include the load generator's own CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CONCURRENCY = 32
SERVICE_KEY = "aegis-service-dev"
ANALYST_KEY = "aegis-analyst-dev"
P99_FLOOR_MS = 50.0
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


# --------------------------------------------------------------------------- data


def _fixed_strings(prefix: str, body: np.ndarray) -> pa.Array:
    """Strings ``prefix + row`` from a (n, width) uint8 matrix, built straight from Arrow buffers."""
    n, width = body.shape
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    data = np.empty((n, len(head) + width), dtype=np.uint8)
    data[:, : len(head)] = head
    data[:, len(head) :] = body
    size = len(head) + width
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


def hex_ids(prefix: str, values: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + ``values`` as fixed-width lowercase hex."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = ((values.astype(np.uint64)[:, None] >> shifts) & np.uint64(15)).astype(np.intp)
    return _fixed_strings(prefix, _HEX[nibbles])


def customer_weights(customers: int, exponent: float = 0.9) -> np.ndarray:
    weights = 1.0 / np.arange(1, customers + 1) ** exponent
    return weights / weights.sum()


def _scores_day(rng: np.random.Generator, n: int, day_start_us: int, weights: np.ndarray, names: list[str],
                fv: str) -> pa.Table:
    """One day of gold.scores rows (contract schema)."""
    from api.store import arrow_schema
    from lakehouse.tables import SCORES

    schema = arrow_schema(SCORES)
    event_us = np.sort(day_start_us + rng.integers(0, 86_400_000_000, size=n))
    event_time = pa.array(event_us, pa.timestamp("us", tz="UTC"))
    score = rng.beta(0.4, 12.0, size=n)
    decision = np.where(score >= 0.6, "block", np.where(score >= 0.3, "review", "allow"))
    reasons = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)),
        pa.StructArray.from_arrays(
            [pa.array(names).take(pa.array(rng.integers(0, len(names), size=3 * n))),
             pa.array(rng.normal(size=3 * n)), pa.array(rng.normal(0, 0.1, size=3 * n))],
            names=["feature", "value", "contribution"],
        ),
    )

    def repeat(value: Any, kind: pa.DataType) -> pa.Array:
        return pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int32), pa.array([value], kind)).cast(kind)

    columns = {
        "transaction_id": hex_ids("tx-", rng.integers(0, 2**63, size=n, dtype=np.int64), 16),
        "customer_id": hex_ids("c-", rng.choice(len(weights), size=n, p=weights), 6),
        "terminal_id": hex_ids("t-", rng.integers(0, 20_000, size=n), 5), "event_time": event_time,
        "event_date": event_time.cast(pa.date32()), "amount": pa.array(np.round(rng.gamma(2.0, 35.0, size=n), 2)),
        "score": pa.array(score), "decision": pa.array(decision), "model_name": repeat("aegis-fraud", pa.string()),
        "model_version": repeat("3", pa.string()), "feature_version": repeat(fv, pa.string()),
        "policy_version": repeat("p-0123456789", pa.string()), "top_reasons": reasons,
        "shap_values": pa.nulls(n, schema.field("shap_values").type),
        "shap_expected_value": repeat(0.02, pa.float64()), "source": repeat("backfill", pa.string()),
        "run_id": repeat("bench", pa.string()), "stream_batch_id": pa.nulls(n, pa.int64()),
        "scored_at": event_time, "latency_ms": pa.nulls(n, pa.float64()),
    }
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _features_day(rng: np.random.Generator, scores: pa.Table, names: list[str]) -> pa.Table:
    """silver.features rows for the transactions of ``scores`` (every declared feature)."""
    from api.store import arrow_schema
    from lakehouse.tables import features_table

    schema = arrow_schema(features_table())
    n = scores.num_rows
    columns: dict[str, Any] = {c: scores[c] for c in (
        "transaction_id", "customer_id", "terminal_id", "event_time", "event_date", "feature_version", "source",
        "stream_batch_id", "run_id")}
    columns["computed_at"] = scores["event_time"]
    columns["is_late"] = pa.array(np.zeros(n, dtype=bool))
    for j, name in enumerate(names):
        if name == "amount":
            columns[name] = scores["amount"]
        elif "count" in name:
            columns[name] = pa.array(rng.poisson(1 + j % 7, size=n).astype(np.float64))
        else:
            columns[name] = pa.array(np.round(rng.gamma(2.0, 10.0, size=n), 3))
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def generate(root: Path, rows: int, customers: int, days: int, feature_rows: int, seed: int = 7) -> dict[str, Any]:
    """Write gold.scores and silver.features (for the first ``feature_rows`` transactions) under ``root``.

    One day (= one event-date partition = one file) at a time, so memory stays bounded.
    """
    from deltalake import write_deltalake

    from features.catalog import FeatureParams, feature_names, feature_version
    from lakehouse.tables import SCORES, features_table

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    weights = customer_weights(customers)
    names = feature_names(FeatureParams())
    fv = feature_version(FeatureParams())
    t0 = int(np.datetime64("2026-01-01T00:00:00", "us").astype(np.int64))
    for path in (SCORES.path(root), features_table().path(root)):
        shutil.rmtree(path, ignore_errors=True)
    samples: list[str] = []
    done = featured = 0
    for day in range(days):
        n = rows // days + (1 if day < rows % days else 0)
        scores = _scores_day(rng, n, t0 + day * 86_400_000_000, weights, names, fv)
        write_deltalake(SCORES.path(root), scores, partition_by=["event_date"], mode="append")
        samples += scores["transaction_id"].take(pa.array(rng.integers(0, n, size=20_000 // days + 1))).to_pylist()
        k = min(n, max(0, feature_rows - done))
        if k:
            write_deltalake(features_table().path(root), _features_day(rng, scores.slice(0, k), names),
                            partition_by=["event_date"], mode="append")
            featured += k
        done += n
    hot = rng.choice(customers, size=5_000, p=weights)
    return {
        "rows": done, "feature_rows": featured, "customers": customers, "days": days,
        "total_s": round(time.perf_counter() - started, 1),
        "tx_sample": samples, "customer_sample": hex_ids("c-", hot, 6).to_pylist(),
    }


# --------------------------------------------------------------------------- load generator


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _server_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _phase(base_url: str, paths: list[str], key: str | None, max_requests: int, max_seconds: float,
                 warmup: int, server_pid: int | None = None) -> dict[str, Any]:
    import httpx

    headers = {"X-API-Key": key} if key else {}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    # one client (one keep-alive connection) per simulated caller: a shared 32-connection pool costs
    # the load generator twice the CPU per request, which would be measured as server latency
    clients = [
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0, trust_env=False,
                          limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
        for _ in range(CONCURRENCY)
    ]
    counter = iter(range(10**9))

    async def worker(client: httpx.AsyncClient, budget: int, record: bool, deadline: float) -> None:
        while time.perf_counter() < deadline:
            i = next(counter)
            if i >= budget:
                return
            started = time.perf_counter()
            response = await client.get(paths[i % len(paths)])
            elapsed = time.perf_counter() - started
            if record:
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    try:
        deadline = time.perf_counter() + max_seconds
        await asyncio.gather(*(worker(c, warmup, False, deadline) for c in clients))
        counter = iter(range(10**9))
        server_cpu, client_cpu = _server_cpu(server_pid), time.process_time()
        started = time.perf_counter()
        deadline = started + max_seconds
        await asyncio.gather(*(worker(c, max_requests, True, deadline) for c in clients))
        wall = time.perf_counter() - started
        server_cpu, client_cpu = _server_cpu(server_pid) - server_cpu, time.process_time() - client_cpu
    finally:
        for client in clients:
            await client.aclose()
    ms = [x * 1000 for x in latencies]
    per_request = 1e6 / max(len(ms), 1)
    return {
        "server_cpu_us": round(server_cpu * per_request), "client_cpu_us": round(client_cpu * per_request),
        "requests": len(ms), "p50_ms": round(_percentile(ms, 50), 2), "p99_ms": round(_percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else None, "rps": round(len(ms) / wall, 1) if wall else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def _histogram(base_url: str, route: str) -> dict[float, int]:
    """The API's own latency histogram for ``route`` (cumulative counts by upper bound, seconds)."""
    import httpx

    text = httpx.get(f"{base_url}/metrics", headers={"X-API-Key": SERVICE_KEY}, timeout=30).text
    out: dict[float, int] = {}
    prefix = f'aegis_api_request_duration_seconds_bucket{{method="GET",route="{route}",le="'
    for line in text.splitlines():
        if line.startswith(prefix):
            bound, _, count = line[len(prefix):].partition('"} ')
            out[float("inf") if bound == "+Inf" else float(bound)] = int(count)
    return out


def _server_quantiles(before: dict[float, int], after: dict[float, int]) -> dict[str, float | None]:
    """Upper bounds (ms) of the buckets holding the server-side p50 / p99 of the requests in between."""
    counts = sorted((bound, after[bound] - before.get(bound, 0)) for bound in after)
    total = counts[-1][1] if counts else 0
    found: dict[str, float | None] = {}
    for name, q in (("server_p50_ms_le", 0.5), ("server_p99_ms_le", 0.99)):
        bound = next((b for b, c in counts if total and c >= q * total), None)
        found[name] = None if bound is None or bound == float("inf") else round(bound * 1000, 1)
    return found


def load_main(args: argparse.Namespace) -> int:
    """The load generator process: runs the three phases and prints one JSON line."""
    sample = json.loads(Path(args.sample).read_text())
    base = f"http://127.0.0.1:{args.port}"
    tx_paths = [f"/v1/transactions/{tx}" for tx in sample["tx_sample"]]
    cust_paths = [f"/v1/customers/{c}/scores?limit=20" for c in sample["customer_sample"]]

    async def run() -> dict[str, Any]:
        bounds = (args.requests, args.seconds, args.warmup, args.server_pid)
        out = {}
        for name, route, paths, key in (
            ("health", "/health", ["/health"], None),
            ("transaction", "/v1/transactions/{transaction_id}", tx_paths, SERVICE_KEY),
            ("customer", "/v1/customers/{customer_id}/scores", cust_paths, ANALYST_KEY),
        ):
            before = _histogram(base, route)
            out[name] = await _phase(base, paths, key, *bounds)
            out[name].update(_server_quantiles(before, _histogram(base, route)))
        return out

    print(json.dumps(asyncio.run(run())))
    return 0


# --------------------------------------------------------------------------- orchestration


def _wait_loaded(port: int, server: subprocess.Popen[bytes], timeout: float) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"API server exited with {server.returncode}")
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).json()
            checks = body.get("checks", {})
            if all(checks.get(t, {}).get("ok") for t in ("gold.scores", "silver.features")):
                return time.perf_counter() - started
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError("the API did not load the tables in time")


def _append_visible(root: Path, port: int, rows: int = 1_000, timeout: float = 60.0) -> float:
    """Commit ``rows`` new scores (an append) and time until one of them is served."""
    import httpx
    from deltalake import write_deltalake

    from features.catalog import FeatureParams, feature_names, feature_version
    from lakehouse.tables import SCORES

    rng = np.random.default_rng(int(time.time()))
    t0 = int(np.datetime64("2026-03-01T00:00:00", "us").astype(np.int64))
    table = _scores_day(rng, rows, t0, customer_weights(1_000), feature_names(FeatureParams()),
                        feature_version(FeatureParams()))
    probe = f"/v1/transactions/{table['transaction_id'][rows - 1].as_py()}"
    write_deltalake(SCORES.path(root), table, partition_by=["event_date"], mode="append")
    committed = time.perf_counter()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": SERVICE_KEY}) as client:
        while time.perf_counter() - committed < timeout:
            if client.get(probe).status_code == 200:
                return time.perf_counter() - committed
            time.sleep(0.05)
    raise TimeoutError(f"the appended rows were not served within {timeout}s")


def _rss_mb(pid: int) -> float | None:
    try:
        import psutil

        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=14, help="event-date partitions (one file each)")
    parser.add_argument("--feature-rows", type=int, default=None, help="silver.features rows (default: --rows)")
    parser.add_argument("--requests", type=int, default=20_000, help="measured requests per phase (bound)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound per phase")
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--root", type=Path, help="lakehouse folder to (re)use; default: a temp folder")
    parser.add_argument("--reuse", action="store_true", help="reuse the tables already under --root")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        return load_main(args)

    workdir = Path(tempfile.mkdtemp(prefix="aegis-bench-api-"))
    root = args.root or workdir / "lakehouse"
    sample_file = (args.root or workdir) / "bench-api-sample.json"
    try:
        if args.reuse and sample_file.exists():
            info = json.loads(sample_file.read_text())
            print(f"reusing {info['rows']:,} rows under {root}")
        else:
            print(f"generating {args.rows:,} scores for {args.customers:,} customers under {root} ...", flush=True)
            feature_rows = args.rows if args.feature_rows is None else args.feature_rows
            info = generate(root, args.rows, args.customers, args.days, feature_rows)
            sample_file.write_text(json.dumps(info))
            print(f"generated {info['rows']:,} scores and {info['feature_rows']:,} feature rows in "
                  f"{info['total_s']}s ({args.days} daily partitions, one file each)")
        from lakehouse.ports import free_ports

        (port,) = free_ports(1)
        env = dict(os.environ, PYTHONPATH=str(REPO), AEGIS_HOME=str(workdir))
        cmd = [sys.executable, "-m", "jobs.serve", "--profile", "local", "--host", "127.0.0.1", "--port", str(port),
               "--set", f"paths.lakehouse={root}", "--set", f"mlflow.tracking_uri=sqlite:///{workdir}/mlflow.db",
               "--log-level", "WARNING"]
        server = subprocess.Popen(cmd, cwd=REPO, env=env)
        try:
            load_s = _wait_loaded(port, server, timeout=600)
            load_before = os.getloadavg()[0]
            print(f"API on 127.0.0.1:{port} loaded the tables in {load_s:.1f}s (RSS {_rss_mb(server.pid)} MB)")
            load_cmd = [sys.executable, __file__, "--load", "--sample", str(sample_file), "--port", str(port),
                        "--requests", str(args.requests), "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                        "--server-pid", str(server.pid)]
            out = subprocess.run(load_cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            phases = json.loads(out.stdout.strip().splitlines()[-1])
            load_after = os.getloadavg()[0]
            visible_s = _append_visible(root, port)
            print(f"a committed append of 1,000 rows was served {visible_s:.2f}s after the commit")
            rss = _rss_mb(server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        for name in ("health", "transaction", "customer"):
            p = phases[name]
            print(f"{name:12s} {p['requests']:6d} requests  p50 {p['p50_ms']:6.2f} ms  p99 {p['p99_ms']:6.2f} ms  "
                  f"max {p['max_ms']} ms  {p['rps']:7.1f} req/s  statuses {p['statuses']}")
            print(f"{'':12s} inside the API: p50 <= {p['server_p50_ms_le']} ms, p99 <= {p['server_p99_ms_le']} ms "
                  f"(histogram buckets); CPU per request: server {p['server_cpu_us']} us, "
                  f"load generator {p['client_cpu_us']} us")
        floor_ok = phases["transaction"]["p99_ms"] <= P99_FLOOR_MS
        print(f"machine: {os.cpu_count()} CPUs, 1-minute load average {load_before:.1f} before / {load_after:.1f} "
              "after the load phases (other processes share the CPUs)")
        print(f"floor: transaction p99 {phases['transaction']['p99_ms']} ms <= {P99_FLOOR_MS} ms: "
              f"{'OK' if floor_ok else 'MISSED'}")
        summary = {
            "bench": "api", "rows": info["rows"], "feature_rows": info["feature_rows"],
            "customers": info["customers"], "concurrency": CONCURRENCY, "generate_s": info["total_s"],
            "load_s": round(load_s, 1), "server_rss_mb": rss, "append_visible_s": round(visible_s, 2),
            **{name: {k: phases[name][k] for k in ("p50_ms", "p99_ms", "rps", "requests", "server_p99_ms_le",
                                                    "server_cpu_us")}
               for name in ("transaction", "customer", "health")},
            "loadavg_1m": [round(load_before, 1), round(load_after, 1)], "floor_ok": floor_ok,
        }
        print(json.dumps(summary))
        return 0 if floor_ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the generated lakehouse too, unless --root was given


if __name__ == "__main__":
    sys.exit(main())
