"""deploy/spark/submit.sh against a real Spark standalone cluster: one master, two 1-core workers.

The daemons are the pyspark distribution's own classes (``spark-class ...deploy.master.Master`` /
``...deploy.worker.Worker``; the pip package ships no ``start-master.sh``) on loopback ports.
The jobs run exactly as an operator runs them, ``deploy/spark/submit.sh JOB spark://... test``,
with the session's settings passed as ``AEGIS_*`` environment variables, against a copy of the
bronze tables that the ``trained`` fixture filled (its own lakehouse root, so the other
integration tests never see these rows) and the champion model registered by that fixture.

What it proves:
* the probe: the driver and both executors' Python workers import the Aegis packages from the
  shipped build (the executors from the archive unpacked in their work dirs), not the checkout;
* the backfill: silver and gold rows of one day recomputed with source=backfill, the scoring
  pandas UDF run on the executors from the shipped code (the executors compiled
  ``models/spark_scoring.py`` inside their unpacked archive);
* the stream: events produced to Kafka land in bronze and gold with source=stream; the job runs
  bounded (``--until-idle --max-seconds``) and exits 0 by itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conf.settings import Settings, load_settings
from features.table import features_table
from lakehouse.delta_io import read_table
from lakehouse.tables import RUN_LOG, SCORES, TRANSACTIONS
from tests.support import CUSTOMERS, REPO, TERMINALS, free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUBMIT = REPO / "deploy" / "spark" / "submit.sh"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
LIVE = 60
SCORING_PYC = Path("aegis-pkg") / "models" / "__pycache__" / "spark_scoring.cpython-311.pyc"


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _clean_env() -> dict[str, str]:
    """This process' environment without anything that could point a job at other code or settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "PYSPARK_", "SPARK_"))}
    for name in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHOME"):
        env.pop(name, None)
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


@dataclass
class Cluster:
    master_url: str
    webui: str
    worker_dirs: list[Path]
    logs: Path

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.webui}/json/", timeout=5) as resp:
            return json.load(resp)

    def app_dirs(self, app_id: str) -> list[Path]:
        """The executor folders of one application, over both workers."""
        return sorted(d for w in self.worker_dirs for d in (w / app_id).glob("*") if d.is_dir())

    def tail(self) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# A daemon whose port was taken between free_ports() and its bind fails at once (no port+1 retry),
# and the launch starts over on fresh ports, rather than a client talking to whoever holds the port.
DAEMON_OPTS = "-Dspark.port.maxRetries=0"
LAUNCH_ATTEMPTS = 3
# The master logs its UI address under its host name (localhost); we reach it on loopback by port.
WEBUI_STARTED = re.compile(r"Bound MasterWebUI to \S+, and started at http://[^:/\s]+:(\d+)")


def _launch_cluster(root: Path, procs: list[subprocess.Popen]) -> tuple[Cluster, str]:
    """Start one master and two workers into ``procs`` (the caller stops them, whatever happens here);
    return the cluster and, if it did not come up, why."""
    logs = root / "logs"
    logs.mkdir()
    spark_class = str(_spark_home() / "bin" / "spark-class")
    port, webui, *worker_ports = free_ports(6)
    env = {**_clean_env(), "SPARK_HOME": str(_spark_home()), "SPARK_DAEMON_MEMORY": "384m",
           "SPARK_MASTER_OPTS": f"{DAEMON_OPTS} -Dspark.master.rest.enabled=false",  # no fixed REST port 6066
           "SPARK_WORKER_OPTS": DAEMON_OPTS}

    def launch(name: str, *args: str) -> None:
        with (logs / f"{name}.log").open("wb") as out:
            procs.append(subprocess.Popen([spark_class, *args], cwd=root, env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))

    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{webui}", [], logs)
    launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
           "--webui-port", str(webui))
    for i in range(2):
        work = root / f"worker-{i}"
        work.mkdir()
        cluster.worker_dirs.append(work)
        launch(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
               "--port", str(worker_ports[2 * i]), "--webui-port", str(worker_ports[2 * i + 1]),
               "--cores", "1", "--memory", "1g", "--work-dir", str(work), cluster.master_url)
    deadline = time.monotonic() + 90
    last = "no answer yet"
    while True:
        # Ask the address the master says its UI started at, not the one we asked for.
        started = WEBUI_STARTED.search((logs / "master.log").read_text(errors="replace"))
        if started:
            cluster.webui = f"http://127.0.0.1:{started.group(1)}"
            try:
                alive = cluster.state().get("aliveworkers")
                if alive == 2:
                    return cluster, ""
                last = f"{alive} alive workers"
            except (OSError, ValueError) as exc:  # not listening yet, or not the master's JSON
                last = f"{type(exc).__name__}: {exc}"
        if any(p.poll() is not None for p in procs):
            return cluster, f"a daemon exited ({last})"
        if time.monotonic() > deadline:
            return cluster, f"no 2 alive workers in 90 s ({last})"
        time.sleep(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A standalone master and two workers (1 core, 1 GiB each) on free loopback ports."""
    failures = []
    for attempt in range(1, LAUNCH_ATTEMPTS + 1):
        procs: list[subprocess.Popen] = []
        try:
            cluster, failure = _launch_cluster(tmp_path_factory.mktemp(f"standalone-{attempt}"), procs)
            if not failure:
                yield cluster
                return
            failures.append(f"attempt {attempt}: {failure}\n{cluster.tail()}")
        finally:
            for proc in reversed(procs):  # workers first, then the master
                _stop(proc)
    pytest.fail("standalone cluster did not come up\n" + "\n".join(failures))


@pytest.fixture(scope="module")
def job_env(settings: Settings, kafka_broker, trained, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The session's settings as AEGIS_* variables, on an own lakehouse holding a copy of bronze."""
    lakehouse = tmp_path_factory.mktemp("cluster-lakehouse")
    shutil.copytree(settings.lakehouse_root / "bronze", lakehouse / "bronze")
    topics = {"transactions": "cluster.transactions", "labels": "cluster.labels", "scores": "cluster.scores"}
    kafka_broker.ensure_topics({name: 2 for name in topics.values()})
    env = {
        **_clean_env(),
        "AEGIS_HOME": str(settings.paths.home),
        "AEGIS_PATHS__CACHE": str(settings.cache_dir),
        "AEGIS_PATHS__LAKEHOUSE": str(lakehouse),
        "AEGIS_PATHS__CHECKPOINTS": str(lakehouse / "_checkpoints"),
        "AEGIS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "AEGIS_KAFKA__BROKER__PORT": str(settings.kafka.broker.port),
        "AEGIS_KAFKA__BROKER__CONTROLLER_PORT": str(settings.kafka.broker.controller_port),
        "AEGIS_STREAM__QUERY_NAME": "aegis-stream-cluster",
        **{f"AEGIS_KAFKA__TOPICS__{k.upper()}": v for k, v in topics.items()},
        "AEGIS_SUBMIT_STAGE": str(tmp_path_factory.mktemp("submit-stage")),
        # wait for both executors before the first task, so both run Python
        "AEGIS_SPARK_SUBMIT_OPTS": "--driver-memory 1g --conf spark.scheduler.minRegisteredResourcesRatio=1.0 "
                                   "--conf spark.scheduler.maxRegisteredResourcesWaitingTime=120s",
    }
    # The variables reproduce the session's settings (but for the lakehouse, query and topics).
    job = _job_settings(env)
    assert job.paths.home == settings.paths.home and job.cache_dir == settings.cache_dir
    assert job.mlflow_tracking_uri == settings.mlflow_tracking_uri and job.kafka.broker == settings.kafka.broker
    assert job.lakehouse_root == lakehouse.resolve()
    return env


def _job_settings(env: dict[str, str]) -> Settings:
    return load_settings("test", environ=env)


def _submit(env: dict[str, str], job: str, master: str, *args: str, log: Path) -> subprocess.Popen:
    """Start ``submit.sh JOB MASTER test ARGS`` from a folder where the checkout is not importable."""
    cwd = log.parent / f"{log.stem}-cwd"
    cwd.mkdir(exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(["bash", str(SUBMIT), job, master, "test", *args], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _run(env: dict[str, str], job: str, master: str, *args: str, log: Path, timeout: float) -> str:
    proc = _submit(env, job, master, *args, log=log)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        pytest.fail(f"{job} did not finish in {timeout}s:\n{log.read_text(errors='replace')[-4000:]}")
    output = log.read_text(errors="replace")
    assert code == 0, f"{job} exited {code}:\n{output[-4000:]}"
    return output


def _json_line(output: str, first_key: str) -> dict:
    """The job's JSON summary line (the driver's stdout and stderr are interleaved by spark-submit)."""
    for line in output.splitlines():
        if line.startswith("{" + json.dumps(first_key)):
            return json.loads(line)
    raise AssertionError(f"no JSON line starting with {first_key!r} in:\n{output[-4000:]}")


def _app_id(cluster: Cluster, name: str) -> str:
    apps = [a for a in cluster.state()["completedapps"] + cluster.state()["activeapps"] if a["name"] == name]
    assert apps, f"no application {name} on the master"
    return max(apps, key=lambda a: a["starttime"])["id"]


def test_executors_import_the_shipped_code(cluster: Cluster, job_env: dict[str, str], tmp_path: Path) -> None:
    output = _run(job_env, "probe", cluster.master_url, log=tmp_path / "probe.log", timeout=300)
    report = _json_line(output, "driver")
    stage = Path(job_env["AEGIS_SUBMIT_STAGE"]).resolve()
    assert report["master"] == cluster.master_url
    # The driver runs the build staged by submit.sh, not the checkout.
    for name, file in report["driver"]["modules"].items():
        assert Path(file).is_relative_to(stage), (name, file)
    # Both executors ran the pandas UDF, each importing from the archive unpacked in its work dir.
    executors = report["executors"]
    assert {Path(e["cwd"]).parents[1] for e in executors} == {w.resolve() for w in cluster.worker_dirs}
    for executor in executors:
        assert executor["python"] == str(VENV_PYTHON)
        for name, file in executor["modules"].items():
            assert Path(file).is_relative_to(Path(executor["cwd"]) / "aegis-pkg"), (name, file)
            assert not Path(file).is_relative_to(REPO), (name, file)


def test_backfill_on_the_cluster(cluster: Cluster, job_env: dict[str, str], spark: SparkSession, trained,
                                 tmp_path: Path) -> None:
    job = _job_settings(job_env)
    root = job.lakehouse_root
    bronze = read_table(spark, TRANSACTIONS, root)
    day: date = bronze.agg(F.max("event_date")).first()[0]
    expected = bronze.filter(F.col("event_date") == day).count()
    assert expected > 0

    output = _run(job_env, "backfill", cluster.master_url, "--from", str(day), "--to", str(day),
                  log=tmp_path / "backfill.log", timeout=600)
    summary = _json_line(output, "from")
    run_id = summary["run_id"]
    assert summary["model"]["version"] == trained["version"]

    silver = read_table(spark, features_table(), root).filter(F.col("event_date") == day)
    gold = read_table(spark, SCORES, root).filter(F.col("event_date") == day)
    for name, table in (("silver", silver), ("gold", gold)):
        assert table.count() == expected, name
        assert table.filter((F.col("source") == "backfill") & (F.col("run_id") == run_id)).count() == expected, name
    assert gold.filter(F.col("model_version") != trained["version"]).count() == 0
    assert gold.filter(~F.col("score").between(0.0, 1.0)).count() == 0
    log_row = read_table(spark, RUN_LOG, root).filter(F.col("run_id") == run_id).first()
    assert log_row is not None and log_row["job"] == "backfill" and log_row["status"] == "succeeded"

    # The scoring UDF ran in both executors' Python workers, from the shipped archive.
    executor_dirs = cluster.app_dirs(_app_id(cluster, "aegis-backfill"))
    assert len(executor_dirs) == 2, executor_dirs
    for folder in executor_dirs:
        assert (folder / SCORING_PYC).is_file(), f"no {SCORING_PYC} in {folder}: the executor did not score"


def test_stream_on_the_cluster(cluster: Cluster, job_env: dict[str, str], spark: SparkSession, trained,
                               tmp_path: Path) -> None:
    from jobs import simulate

    job = _job_settings(job_env)
    counts = simulate.produce(job, simulate.SimulateConfig(
        rate=0, count=LIVE, customers=CUSTOMERS, terminals=TERMINALS, seed=23, label_time_compression=1e6))
    # Bounded run: the job stops by itself once the topics are drained (or after --max-seconds).
    # --max-seconds is only a safety net: a micro-batch still running then is interrupted.
    log = tmp_path / "stream.log"
    _run(job_env, "stream", cluster.master_url, "--until-idle", "--max-seconds", "900", log=log, timeout=1080)
    tail = "\n".join(line for line in log.read_text(errors="replace").splitlines()
                     if "Downloading artifacts" not in line)[-4000:]

    root = job.lakehouse_root
    bronze = read_table(spark, TRANSACTIONS, root).filter(F.col("source") == "stream")
    assert bronze.count() == counts["transaction"], tail
    gold = read_table(spark, SCORES, root).filter(F.col("source") == "stream")
    assert gold.count() == gold.select("transaction_id").distinct().count() == counts["transaction"], tail
    assert gold.filter(F.col("model_version") != trained["version"]).count() == 0
    for query in ("hot", "cold"):
        assert (job.checkpoint_root / f"aegis-stream-cluster.{query}" / "commits").is_dir(), query
    executor_dirs = cluster.app_dirs(_app_id(cluster, "aegis-stream"))
    assert any((folder / SCORING_PYC).is_file() for folder in executor_dirs), executor_dirs
