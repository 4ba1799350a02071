"""The stream's cold query in a child process of its own, at lower CPU priority.

On two cores a cold micro-batch (quarantine, bronze, labels, quality results, Delta checkpoints:
seconds of both cores every ``stream.cold_trigger_seconds``) inside the hot query's application
holds the task slots a hot micro-batch waits for: Spark's FAIR pools order task launches, they
never preempt one. In its own process at niceness ``stream.cold_nice``, the kernel hands the
cores to the hot query first and the cold one runs in what is left.

The parent (`aegis stream`) passes its settings on the child's stdin (secrets never reach a
command line or a file), and reads the child's micro-batch summaries from a JSON-lines file
under ``paths.run``. The child dies with its parent (``PR_SET_PDEATHSIG``), stops between
micro-batches on SIGTERM, and with ``--until-idle`` drains and exits on its own.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from conf.settings import Settings, load_settings
from stream.summary import BatchSummary

log = logging.getLogger("aegis.stream")
_PR_SET_PDEATHSIG = 1


class ColdProcess:
    """A running cold-query child: its health, its micro-batch summaries, and a clean stop."""

    def __init__(self, proc: subprocess.Popen[bytes], summaries: Path) -> None:
        self.proc = proc
        self.summaries_path = summaries
        self._read: list[BatchSummary] = []
        self._offset = 0  # bytes of the file already read: each call reads only what was appended

    def check(self) -> None:
        """Raise if the child exited before it was asked to."""
        rc = self.proc.poll()
        if rc is not None:
            raise RuntimeError(f"the cold query's process exited with code {rc} (its log is above)")

    def summaries(self) -> list[BatchSummary]:
        """The child's cold micro-batches so far."""
        if not self.summaries_path.exists():
            return list(self._read)
        with self.summaries_path.open("rb") as source:
            source.seek(self._offset)
            appended = source.read()
        whole = appended[: appended.rfind(b"\n") + 1]  # a line the child is still writing waits
        self._offset += len(whole)
        self._read.extend(BatchSummary(**json.loads(line)) for line in whole.splitlines() if line.strip())
        return list(self._read)

    def wait(self, timeout: float) -> int:
        """Wait for a child that drains by itself (``--until-idle``); stop it if it outlasts ``timeout``."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("stream: the cold query had not drained after %.0f s; stopping it", timeout)
            return self.stop()

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM (the child stops after its current micro-batch), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def split_off_cold(settings: Settings, max_seconds: float | None, until_idle: bool,
                   idle_seconds: float) -> tuple[Settings, ColdProcess]:
    """Start the cold query in a child process with these settings: (the settings of this process,
    now running the hot query only, and the child)."""
    summaries = settings.run_dir / f"{settings.stream.query_name}.cold-batches.jsonl"
    summaries.parent.mkdir(parents=True, exist_ok=True)
    summaries.unlink(missing_ok=True)
    child = settings.model_dump(mode="json")
    child["stream"].update(queries="cold", metrics_port=0)
    request = {"settings": child, "summaries": str(summaries), "max_seconds": max_seconds,
               "until_idle": until_idle, "idle_seconds": idle_seconds,
               "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel())}
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cold_process"], stdin=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": _repo_path()})
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(request).encode())
    proc.stdin.close()
    log.info("stream: cold query in process %d at niceness %d%s", proc.pid, settings.stream.cold_nice,
             " in the idle scheduling class" if settings.stream.cold_idle_class else "")
    hot = settings.model_copy(update={"stream": settings.stream.model_copy(update={"queries": "hot"})})
    return hot, ColdProcess(proc, summaries)


def _repo_path() -> str:
    here = str(Path(__file__).resolve().parents[1])
    rest = os.environ.get("PYTHONPATH")
    return f"{here}{os.pathsep}{rest}" if rest else here


def _tie_to_parent(nice: int, idle_class: bool = False) -> None:
    """Lower this process's priority (inherited by its JVM and Python workers); die with the parent.

    With ``idle_class``, also the kernel's idle scheduling class: a niceness-10 thread still takes
    about a tenth of a core from a runnable hot thread, an idle-class one about 0.3 %.
    """
    os.nice(nice)
    if idle_class:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError) as error:  # not Linux, or refused
            log.warning("stream: the cold process stays at niceness %d (idle class refused: %s)", nice, error)
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("stream: the cold process could not tie itself to its parent (errno %d)", ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(1)


def main() -> int:
    """The child: read the request on stdin, run the cold query until stopped, drained or out of time."""
    from jobs.base import configure_logging
    from jobs.kinds import StreamConfig
    from jobs.stream import execute

    request = json.loads(sys.stdin.read())
    configure_logging(request["log_level"])
    settings = load_settings(request["settings"]["profile"], overrides=request["settings"], environ={})
    _tie_to_parent(settings.stream.cold_nice, settings.stream.cold_idle_class)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sink = Path(request["summaries"])

    def record(summary: BatchSummary) -> None:
        with sink.open("a") as out:
            out.write(json.dumps(dataclasses.asdict(summary)) + "\n")

    config = StreamConfig(max_seconds=request["max_seconds"], until_idle=request["until_idle"],
                          idle_seconds=request["idle_seconds"])
    execute(settings, config, stop=stop, on_batch=record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
