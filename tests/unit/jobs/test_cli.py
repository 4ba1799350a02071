"""The `aegis` CLI: argv -> one typed job config through the JobKind union -> that job's run()."""

from __future__ import annotations

import re
import shlex
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from jobs import cli, kinds
from jobs.base import JobConfig

REPO = Path(__file__).resolve().parents[3]


def _readme_commands() -> list[tuple[str, str]]:
    """README's `aegis` command table: (the command, its whole row) for every command it shows."""
    text = (REPO / "README.md").read_text()
    section = text.split("## The `aegis` command line", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `aegis ")]
    return [(m.group(1).split()[0], row) for row in rows for m in re.finditer(r"`aegis ([a-z][^`]*)`", row)]


# Each README row, as concrete command lines (every flag the row documents appears at least once).
DOCUMENTED: list[tuple[str, type[JobConfig], dict[str, Any]]] = [
    ("kafka up", kinds.KafkaJob, {"action": "up"}),
    ("kafka down", kinds.KafkaJob, {"action": "down"}),
    ("kafka status", kinds.KafkaJob, {"action": "status"}),
    ("tables", kinds.TablesJob, {"as_json": False}),
    ("tables --json", kinds.TablesJob, {"as_json": True}),
    ("import a.parquet b.csv", kinds.ImportConfig, {"paths": ["a.parquet", "b.csv"], "label_delay": "7d"}),
    ("import 'odd,name.csv' --label-delay 36h", kinds.ImportConfig, {"paths": ["odd,name.csv"], "label_delay": "36h"}),
    ("simulate --rate 50 --duration 30 --seed 3", kinds.SimulateConfig, {"rate": 50.0, "duration": 30.0, "seed": 3}),
    ("simulate --rate 0 --count 100 --seed 3", kinds.SimulateConfig, {"rate": 0.0, "count": 100, "duration": None}),
    ("simulate --history 60", kinds.SimulateConfig, {"history_days": 60, "count": None}),
    (
        "simulate --count 5 --out-of-order 0.2 --max-out-of-order-seconds 2 --label-time-compression 1e6",
        kinds.SimulateConfig,
        {"out_of_order_fraction": 0.2, "max_out_of_order_seconds": 2.0, "label_time_compression": 1e6},
    ),
    ("replay h.parquet --speed max", kinds.ReplayConfig, {"paths": ["h.parquet"], "speed": None}),
    (
        "replay h.parquet --speed 2.5 --label-delay 1d --from 2024-05-01 --to 2024-05-02 --limit 10",
        kinds.ReplayConfig,
        {"speed": 2.5, "label_delay": "1d", "date_from": date(2024, 5, 1), "date_to": date(2024, 5, 2), "limit": 10},
    ),
    ("features listing", kinds.FeaturesJob, {"action": "listing", "write": False}),
    ("features listing --write", kinds.FeaturesJob, {"action": "listing", "write": True}),
    ("features build --from 2024-05-01 --to 2024-05-03", kinds.FeaturesJob, {"date_from": date(2024, 5, 1)}),
    ("features parity --from 2024-05-01 --to 2024-05-03", kinds.FeaturesJob, {"date_to": date(2024, 5, 3)}),
    ("train", kinds.TrainConfig, {"promote": False, "date_from": None}),
    (
        "train --from 2024-05-01 --to 2024-05-30 --promote",
        kinds.TrainConfig,
        {"promote": True, "date_to": date(2024, 5, 30)},
    ),
    ("models list", kinds.ModelsJob, {"action": "list", "version": None}),
    ("models promote 3", kinds.ModelsJob, {"action": "promote", "version": "3"}),
    ("models rollback", kinds.ModelsJob, {"action": "rollback"}),
    ("stream", kinds.StreamConfig, {"max_seconds": None, "until_idle": False}),
    ("stream --until-idle --max-seconds 300", kinds.StreamConfig, {"max_seconds": 300.0, "until_idle": True}),
    ("backfill --from 2024-05-01 --to 2024-05-02", kinds.BackfillConfig, {"model": None, "score": True}),
    ("backfill --from 2024-05-01 --to 2024-05-02 --model champion", kinds.BackfillConfig, {"model": "champion"}),
    ("backfill --from 2024-05-01 --to 2024-05-02 --model 4", kinds.BackfillConfig, {"model": "4"}),
    ("maintain", kinds.MaintainJob, {"retention_hours": 168}),
    ("maintain --retention-hours 200", kinds.MaintainJob, {"retention_hours": 200}),
    ("nightly", kinds.NightlyJob, {"day": None, "retrain": False}),
    ("nightly --date 2024-05-02 --retrain", kinds.NightlyJob, {"day": date(2024, 5, 2), "retrain": True}),
    ("demo", kinds.DemoConfig, {"seconds": 60.0, "api": True}),
    (
        "demo --seconds 40 --rate 60 --customers 800 --terminals 500 --history-days 40 --api",
        kinds.DemoConfig,
        {"seconds": 40.0, "rate": 60.0, "customers": 800, "terminals": 500, "history_days": 40, "api": True},
    ),
    ("demo --no-api", kinds.DemoConfig, {"api": False}),
    ("serve", kinds.ServeJob, {"host": None, "port": None, "workers": 1}),
    (
        "serve --host 127.0.0.1 --port 9001 --workers 2",
        kinds.ServeJob,
        {"host": "127.0.0.1", "port": 9001, "workers": 2},
    ),
    ("postgres up", kinds.PostgresJob, {"action": "up"}),
    ("postgres down", kinds.PostgresJob, {"action": "down"}),
    ("postgres status", kinds.PostgresJob, {"action": "status"}),
    ("serving migrate", kinds.ServingJob, {"action": "migrate"}),
    (
        "serving sync --until-idle --max-seconds 30",
        kinds.ServingJob,
        {"action": "sync", "until_idle": True, "max_seconds": 30.0},
    ),
    ("serving resync --from 2024-05-01 --to 2024-05-02", kinds.ServingJob, {"date_from": date(2024, 5, 1)}),
    ("serving retain", kinds.ServingJob, {"action": "retain"}),
    (
        'sql "SELECT a, b FROM aegis.daily_summary"',
        kinds.SqlJob,
        {"query": "SELECT a, b FROM aegis.daily_summary", "out": None, "max_rows": 200},
    ),
    (
        'sql "SELECT 1" --out r.parquet --format parquet --max-rows 5',
        kinds.SqlJob,
        {"out": "r.parquet", "fmt": "parquet", "max_rows": 5},
    ),
    ("sql-shell", kinds.SqlShellJob, {"max_rows": 200}),
    ("mlflow-ui", kinds.MlflowUiJob, {"port": 5000}),
    ("mlflow-ui --port 5001", kinds.MlflowUiJob, {"port": 5001}),
]


@pytest.mark.parametrize(("line", "job", "expected"), DOCUMENTED, ids=[row[0] for row in DOCUMENTED])
def test_every_documented_command_parses_into_its_typed_config(
    line: str, job: type[JobConfig], expected: dict[str, Any]
) -> None:
    config = cli.parse(shlex.split(line))
    assert type(config) is job
    assert {name: getattr(config, name) for name in expected} == expected


def test_the_examples_cover_every_command_and_every_documented_flag() -> None:
    rows = _readme_commands()
    assert {command for command, _ in rows} == {cli.kind_of(job) for job in cli.job_classes()}
    examples = [shlex.split(line) for line, _, _ in DOCUMENTED]
    for command, row in rows:
        if command == "sql-shell":  # shares its row with `aegis sql`, whose flags those are
            continue
        used = {token for words in examples if words[0] == command for token in words if token.startswith("--")}
        flags = set(re.findall(r"--[a-z][a-z-]*", row))
        assert flags <= used, f"{row}: no example uses {sorted(flags - used)}"


def test_the_commands_make_and_the_docs_run_parse() -> None:
    makefile = (REPO / "Makefile").read_text()
    lines = re.findall(r"\$\(AEGIS\) (.+)", makefile)
    assert "demo" in lines and "features listing --write" in lines
    for line in [
        *lines,
        "--profile cluster models rollback",
        "--set stream.trigger_seconds=-1 tables",
        "--log-level DEBUG tables",
    ]:
        cli.parse(shlex.split(line))


def test_global_options_come_before_the_command_and_keep_commas(capsys: pytest.CaptureFixture[str]) -> None:
    options, job = cli.Cli().parse(
        [
            "--profile",
            "test",
            "--set",
            "kafka.bootstrap_servers=h1:9092,h2:9092",
            "--set",
            "stream.trigger_seconds=5",
            "--log-level",
            "DEBUG",
            "stream",
        ]
    )
    assert (options.profile, options.log_level) == ("test", "DEBUG")
    assert options.overrides == ["kafka.bootstrap_servers=h1:9092,h2:9092", "stream.trigger_seconds=5"]
    assert type(job) is kinds.StreamConfig


def test_help_lists_every_command_with_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for job in cli.job_classes():
        summary = " ".join((job.__doc__ or "").split("\n")[0].split())
        assert f"{cli.kind_of(job)} {summary}" in out


def test_a_command_help_lists_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["backfill", "--help"])
    out = capsys.readouterr().out
    for flag in ("--from", "--to", "--model", "--no-score"):
        assert flag in out


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("backfill --from 2024-13-01 --to 2024-05-02", "--from: Input should be a valid date"),
        ("backfill --from 2024-05-01", "the following arguments are required: --to"),
        ("serve --port 0", "--port: Input should be greater than or equal to 1 (got '0')"),
        ("serve --port http", "--port: Input should be a valid integer"),
        ("serve --workers 65", "--workers: Input should be less than or equal to 64"),
        ("kafka sideways", "ACTION: Input should be 'up', 'down' or 'status' (got 'sideways')"),
        ("replay h.parquet --speed fast", "--speed: Input should be a valid number"),
        ("simulate --history x", "--history: Input should be a valid integer"),
        ("simulate --count 10 --duration 5", "--duration and --count exclude each other"),
        ("sql 'SELECT 1' --format xml", "--format: Input should be 'table', 'csv' or 'parquet' (got 'xml')"),
        ("serving resync --from 2024-05-01", "serving resync needs --from D and --to D"),
        ("stream --max-seconds -1", "--max-seconds: Input should be greater than 0"),
        ("stream --until-idel", "unrecognized arguments: --until-idel"),
        ("strem", "invalid choice: 'strem'"),
        ("", "a command is required"),
    ],
)
def test_a_bad_argument_is_a_usage_error_naming_the_flag(
    line: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(shlex.split(line))
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


def test_the_union_picks_the_class_its_kind_names() -> None:
    assert len({cli.kind_of(job) for job in cli.job_classes()}) == len(cli.job_classes())
    for job in cli.job_classes():
        assert issubclass(job, JobConfig) and callable(job.run)  # type: ignore[attr-defined]
    config = cli.JOB_ADAPTER.validate_python({"kind": "backfill", "from": "2024-05-01", "to": "2024-05-02"})
    assert type(config) is kinds.BackfillConfig and config.date_from == date(2024, 5, 1)
    assert type(cli.JOB_ADAPTER.validate_python({"kind": "sql-shell"})) is kinds.SqlShellJob
    # Code and tests build the same classes by field name.
    assert kinds.SimulateConfig(history_days=3).history_days == 3


@pytest.mark.parametrize(
    ("argv", "module", "function", "expected"),
    [
        (["kafka", "status"], "jobs.kafka_admin", "run", ("status",)),
        (["postgres", "down"], "jobs.serving_job", "postgres", ("down",)),
        (["serve", "--host", "127.0.0.1", "--port", "9001"], "jobs.serve", "run", ("127.0.0.1", 9001, 1)),
        (["serve"], "jobs.serve", "run", (None, None, 1)),
        (["sql", "SELECT 1", "--max-rows", "3"], "jobs.sql", "run", ("SELECT 1", None, None, 3)),
        (
            ["features", "parity", "--from", "2024-05-01", "--to", "2024-05-02"],
            "jobs.features_job",
            "parity",
            (date(2024, 5, 1), date(2024, 5, 2)),
        ),
    ],
)
def test_main_dispatches_to_the_job_the_command_names(
    argv: list[str], module: str, function: str, expected: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        importlib.import_module(module), function, lambda settings, *args: calls.append((settings.profile, *args)) or 0
    )
    assert cli.main(["--profile", "test", *argv]) == 0
    assert calls == [("test", *expected)]


def test_a_failing_job_reports_its_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from jobs import models_admin

    def refuse(settings: object, action: str, version: str | None) -> int:
        raise ValueError("models promote: give a version number, e.g. `aegis models promote 3`")

    monkeypatch.setattr(models_admin, "run", refuse)
    assert cli.main(["--profile", "test", "models", "promote"]) == 2
    assert "aegis models: models promote: give a version number" in capsys.readouterr().err
