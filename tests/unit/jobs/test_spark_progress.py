"""The backfill's Spark progress reports what is measured, never a guess for unsubmitted stages."""

from __future__ import annotations

from types import SimpleNamespace

from jobs.base import SparkProgress


class FakeTracker:
    def __init__(self) -> None:
        self.stages: dict[int, SimpleNamespace] = {}

    def getActiveJobsIds(self) -> list[int]:
        return [7]

    def getJobInfo(self, job_id: int) -> SimpleNamespace:
        return SimpleNamespace(stageIds=sorted(self.stages))

    def getStageInfo(self, stage_id: int) -> SimpleNamespace:
        return self.stages[stage_id]


def _progress(tracker: FakeTracker) -> SparkProgress:
    spark = SimpleNamespace(sparkContext=SimpleNamespace(statusTracker=lambda: tracker))
    return SparkProgress(spark, "backfill")  # type: ignore[arg-type]


def test_a_stage_is_estimated_from_its_own_finished_tasks_only() -> None:
    tracker = FakeTracker()
    tracker.stages = {
        1: SimpleNamespace(numTasks=4, numActiveTasks=2, numCompletedTasks=0),
        2: SimpleNamespace(numTasks=200, numActiveTasks=0, numCompletedTasks=0),  # waits for stage 1
    }
    progress = _progress(tracker)
    assert progress.running_stages(now=100.0) == ["stage 1: 0/4 tasks"]
    tracker.stages[1].numCompletedTasks = 2
    assert progress.running_stages(now=110.0) == ["stage 1: 2/4 tasks, ~10s left in it"]
    tracker.stages[1].numCompletedTasks = 4
    tracker.stages[2].numActiveTasks = 2
    assert progress.running_stages(now=111.0) == ["stage 2: 0/200 tasks"]
    tracker.stages[2].numCompletedTasks = 50
    assert progress.running_stages(now=116.0) == ["stage 2: 50/200 tasks, ~15s left in it"]
