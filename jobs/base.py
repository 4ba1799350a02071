"""What every job shares: a typed config, a context with the session and clients, progress."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from conf.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("aegis")


class JobConfig(BaseModel):
    """Base of every job's parameters (jobs/kinds.py): frozen, no unknown fields; a field validates from its
    name (code, tests) and from its CLI alias (``date_from`` from ``--from``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)


@dataclass
class JobContext:
    """The edges a job runs against, created by the entry point and passed in."""

    settings: Settings
    spark: SparkSession | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


# Warnings known to be harmless on a healthy run, each filtered where it is raised: (category,
# message regex, module regex of the code the warning is attributed to).
KNOWN_HARMLESS_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    # PySpark 4.2 checks pandas < 3 on every Arrow conversion (a version check, not a detected fault); Aegis
    # pins pandas 3 and tests its paths exact (tests/integration/test_pandas_paths.py).
    (FutureWarning, r"PySpark does not yet fully support pandas >= 3", r"pyspark(\.|$)"),
)


# Library log records known to be harmless on a healthy run: (logger, message prefix).
KNOWN_HARMLESS_LOGS: tuple[tuple[str, str], ...] = (
    # kafka-python's first metadata request of a new client, before its connection is up.
    ("kafka.cluster", "No node available for metadata refresh"),
    # kafka-python's event-loop timing note ("Task ... ran for 0.1s"): a busy CPU, not a fault.
    ("kafka.net.selector", "Task <"),
    # MLflow's note on pickled python_model objects: Aegis logs its own pyfunc class on purpose.
    ("mlflow.pyfunc", "Passing a Python object as `python_model`"),
)


class _DropPrefix(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def quiet_known_warnings() -> None:
    """Hide :data:`KNOWN_HARMLESS_WARNINGS` and :data:`KNOWN_HARMLESS_LOGS` (every other warning shows)."""
    for category, message, module in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, prefix in KNOWN_HARMLESS_LOGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefix) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropPrefix(prefix))


def configure_logging(level: str = "INFO") -> None:
    """Console logging for CLI runs (spark-submit keeps log4j for the JVM); DEBUG shows everything."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if str(level).upper() == "DEBUG":
        return
    for noisy in ("py4j", "kafka", "urllib3", "mlflow", "alembic", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    quiet_known_warnings()


class Progress:
    """Stage, rows done and an estimate, to the console and the log, at most every ``every`` s."""

    def __init__(self, stage: str, total: int | None = None, every: float = 2.0) -> None:
        self.stage = stage
        self.total = total
        self.every = every
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self._last >= self.every or (self.total is not None and self.done >= self.total):
            self._last = now
            self._report(now)

    def _report(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            log.info(
                "%s: %s/%s rows (%.0f%%), %.0f rows/s, ~%.0fs left",
                self.stage, f"{self.done:,}", f"{self.total:,}", 100 * self.done / self.total, rate, left,
            )
        else:
            log.info("%s: %s rows, %.0f rows/s", self.stage, f"{self.done:,}", rate)

    def finish(self) -> float:
        elapsed = time.monotonic() - self.started
        log.info("%s: done, %s rows in %.1fs", self.stage, f"{self.done:,}", elapsed)
        return elapsed


class SparkProgress:
    """While a long Spark action runs: elapsed time, the rows it covers and its running stages'
    tasks, every ``every`` s.

    A Spark action gives no row counts until it ends, so progress is read off the scheduler
    (``statusTracker``); a stage's remaining time is estimated only from its own finished tasks.
    """

    def __init__(self, spark: SparkSession, stage: str, rows: int | None = None, every: float = 10.0) -> None:
        self.tracker = spark.sparkContext.statusTracker()
        self.stage = stage
        self.rows = rows
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"progress-{stage}", daemon=True)
        self.started = time.monotonic()
        self._stage_seen: dict[int, float] = {}  # when each running stage was first seen

    def __enter__(self) -> SparkProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        log.info("%s: done in %.1fs", self.stage, time.monotonic() - self.started)

    def running_stages(self, now: float | None = None) -> list[str]:
        """What is known of the running Spark stages: tasks done of tasks, and, once a stage has
        finished some tasks, the time its remaining tasks need at the rate measured so far.

        Stages not submitted yet are not counted: their size is unknown, so no whole-job
        estimate is given (it would be a guess).
        """
        now = time.monotonic() if now is None else now
        out: list[str] = []
        for job_id in self.tracker.getActiveJobsIds():
            job = self.tracker.getJobInfo(job_id)
            if job is None:
                continue
            for stage_id in job.stageIds:
                info = self.tracker.getStageInfo(stage_id)
                if info is None or info.numTasks == 0 or info.numCompletedTasks >= info.numTasks:
                    continue
                if info.numActiveTasks == 0 and info.numCompletedTasks == 0:
                    continue  # submitted but waiting for its parents
                seen = self._stage_seen.setdefault(stage_id, now)
                text = f"stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} tasks"
                if info.numCompletedTasks > 0 and now > seen:
                    per_task = (now - seen) / info.numCompletedTasks
                    text += f", ~{per_task * (info.numTasks - info.numCompletedTasks):.0f}s left in it"
                out.append(text)
        return out

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            elapsed = time.monotonic() - self.started
            rows = f", {self.rows:,} rows" if self.rows is not None else ""
            stages = self.running_stages()
            log.info("%s: %.0fs elapsed%s; %s", self.stage, elapsed, rows,
                     "; ".join(stages) if stages else "no stage running")
