"""The cold query's child process, without Spark: settings hand-over, summaries, lifetime, priority."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conf.settings import PROFILES, load_settings
from jobs.cold_process import ColdProcess
from stream.summary import BatchSummary
from tests.support import REPO


@pytest.mark.parametrize("profile", PROFILES)
def test_the_child_rebuilds_exactly_the_parents_settings(profile: str) -> None:
    env = {"AEGIS_SECURITY__CARD_HASH_KEY": "k" * 32, "AEGIS_STREAM__TRIGGER_SECONDS": "0.5"}
    parent = load_settings(profile, environ=env, overrides={"kafka": {"max_offsets_per_trigger": 7}})
    handed = parent.model_dump(mode="json")
    child = load_settings(handed["profile"], overrides=handed, environ={})
    assert child == parent
    assert child.security.card_hash_key == "k" * 32 and child.stream.trigger_seconds == 0.5


def _sleeper(code: str = "", stdout: int | None = None) -> subprocess.Popen[bytes]:
    body = f"import signal, sys, time\n{code}\ntime.sleep(60)\n"
    return subprocess.Popen([sys.executable, "-c", body], stdout=stdout)


def test_summaries_come_back_as_written(tmp_path: Path) -> None:
    sink = tmp_path / "cold.jsonl"
    written = [BatchSummary("cold", 3, records=10, bronze=9, quarantined=1, seconds=1.5, written_at=1.0),
               BatchSummary("cold", 4, records=2, labels=2, decisions={"allow": 2})]
    sink.write_text("".join(json.dumps(dataclasses.asdict(s)) + "\n" for s in written))
    child = ColdProcess(_sleeper(), sink)
    try:
        assert child.summaries() == written
        more = BatchSummary("cold", 5, records=1)
        with sink.open("a") as out:
            line = json.dumps(dataclasses.asdict(more)) + "\n"
            out.write(line[:10])  # half a line: not read yet
            out.flush()
            assert child.summaries() == written
            out.write(line[10:])
        assert child.summaries() == [*written, more]
        assert ColdProcess(child.proc, tmp_path / "none.jsonl").summaries() == []
    finally:
        child.proc.kill()
        child.proc.wait()


def test_stop_asks_politely_and_check_reports_an_early_exit(tmp_path: Path) -> None:
    ready = "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\nprint('ready', flush=True)"
    polite = ColdProcess(_sleeper(ready, stdout=subprocess.PIPE), tmp_path / "s")
    assert polite.proc.stdout is not None and polite.proc.stdout.readline() == b"ready\n"  # its handler is set
    polite.check()  # running: nothing to report
    assert polite.stop(timeout=10) == 0
    crashed = ColdProcess(subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]), tmp_path / "s")
    crashed.proc.wait()
    with pytest.raises(RuntimeError, match="exited with code 3"):
        crashed.check()


def test_the_child_runs_at_lower_priority_and_dies_with_its_parent() -> None:
    grandchild = (
        "import os, time\n"
        "from jobs.cold_process import _tie_to_parent\n"
        "_tie_to_parent(4, idle_class=True)\n"
        "print(os.getpid(), os.nice(0), os.sched_getscheduler(0), flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]).wait()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    pid, nice, policy = (int(v) for v in proc.stdout.readline().split())
    assert nice == os.nice(0) + 4
    assert policy == os.SCHED_IDLE
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "the child outlived its parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
