"""Every job of the `aegis` CLI as one typed config with a ``run(settings)``, and :data:`JobKind`, their union.

One class per command: its fields are the command's arguments (the CLI is generated from them by
pydantic-settings in :mod:`jobs.cli`; ``date_from`` is ``--from``, positional fields are marked
:data:`~pydantic_settings.CliPositionalArg`), its ``kind`` names the command, its docstring's first
line is the command's help. ``run`` imports the job's module when it runs, so ``aegis --help`` and
``aegis serve`` load neither Spark nor MLflow. The same classes are what code and tests pass to the
jobs (``BackfillConfig(date_from=..., date_to=...)``): field names work as well as the CLI spellings.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import CliPositionalArg, CliSuppress

from conf.settings import Settings
from jobs.base import JobConfig
from jobs.sql import DEFAULT_MAX_ROWS

DateFrom = Annotated[date | None, Field(None, alias="from", description="first event date (YYYY-MM-DD)")]
DateTo = Annotated[date | None, Field(None, alias="to", description="last event date (YYYY-MM-DD)")]


class KafkaJob(JobConfig):
    """start, stop or inspect the embedded Kafka broker"""

    kind: CliSuppress[Literal["kafka"]] = "kafka"
    action: CliPositionalArg[Literal["up", "down", "status"]]

    def run(self, settings: Settings) -> int:
        from jobs import kafka_admin

        return kafka_admin.run(settings, self.action)


class TablesJob(JobConfig):
    """every Delta table with its location, version and row count"""

    kind: CliSuppress[Literal["tables"]] = "tables"
    as_json: bool = Field(False, alias="json", description="one JSON document instead of the table")

    def run(self, settings: Settings) -> int:
        from jobs import tables

        return tables.run(settings, as_json=self.as_json)


class ImportConfig(JobConfig):
    """load historical transactions (Parquet/CSV) into bronze"""

    kind: CliSuppress[Literal["import"]] = "import"
    paths: CliPositionalArg[list[str]] = Field(min_length=1, description="Parquet or CSV files")
    label_delay: str = Field("7d", description="labels are reported at event time + this (e.g. 7d, 36h)")

    def run(self, settings: Settings) -> int:
        from jobs import importer

        return importer.run(settings, self)


class SimulateConfig(JobConfig):
    """produce realistic simulated traffic to Kafka (or history to bronze)"""

    kind: CliSuppress[Literal["simulate"]] = "simulate"
    rate: float = Field(200.0, description="events per second (0 = as fast as possible)")
    duration: float | None = Field(None, description="seconds to run")
    count: int | None = Field(None, description="number of transactions")
    seed: int = 7
    history_days: int | None = Field(
        None, alias="history", description="write this many DAYS of history straight to bronze"
    )
    customers: int = 2000
    terminals: int = 1000
    label_time_compression: float = Field(
        1440.0, description="label delays are divided by this on the live clock (1440: a day in a minute)"
    )
    out_of_order_fraction: float = Field(
        0.0, alias="out_of_order", description="share of transactions emitted late (out of event-time order)"
    )
    max_out_of_order_seconds: float = Field(
        30.0, description="how late, at most, an out-of-order transaction is emitted"
    )

    @model_validator(mode="after")
    def _one_bound(self) -> SimulateConfig:
        given = [
            flag
            for flag, value in (
                ("--duration", self.duration),
                ("--count", self.count),
                ("--history", self.history_days),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} exclude each other: give one of --duration, --count, --history")
        return self

    def run(self, settings: Settings) -> int:
        from jobs import simulate

        return simulate.run(settings, self)


class ReplayConfig(JobConfig):
    """publish a historical file to Kafka in event-time order"""

    kind: CliSuppress[Literal["replay"]] = "replay"
    paths: CliPositionalArg[list[str]] = Field(min_length=1, description="Parquet or CSV files")
    speed: float | None = Field(None, gt=0, description="times faster than real time, or 'max' (as fast as possible)")
    label_delay: str = "7d"
    date_from: DateFrom
    date_to: DateTo
    limit: int | None = Field(None, ge=0, description="publish at most this many transactions")

    @field_validator("speed", mode="before")
    @classmethod
    def _max_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() == "max" else value

    def run(self, settings: Settings) -> int:
        from jobs import replay

        return replay.run(settings, self)


class FeaturesJob(JobConfig):
    """feature listing, batch build and stream/batch parity"""

    kind: CliSuppress[Literal["features"]] = "features"
    action: CliPositionalArg[Literal["listing", "build", "parity"]]
    date_from: DateFrom
    date_to: DateTo
    write: bool = Field(False, description="(listing) rewrite features/compiled.md")

    def run(self, settings: Settings) -> int:
        from jobs import features_job

        if self.action == "listing":
            return features_job.listing(settings, write=self.write)
        if self.action == "parity":
            return features_job.parity(settings, self.date_from, self.date_to)
        return features_job.build(settings, self.date_from, self.date_to)


class TrainConfig(JobConfig):
    """train the ensemble, evaluate, register in MLflow"""

    kind: CliSuppress[Literal["train"]] = "train"
    date_from: date | None = Field(
        None, alias="from", description="first day of the training window (default: all matured history)"
    )
    date_to: date | None = Field(None, alias="to", description="last day of the training window")
    promote: bool = Field(False, description="move @champion if the new model is better")
    promotion_metric: str = "test_average_precision"

    def run(self, settings: Settings) -> int:
        from jobs import train

        return train.run(settings, self)


class ModelsJob(JobConfig):
    """list registered versions, promote one, roll back"""

    kind: CliSuppress[Literal["models"]] = "models"
    action: CliPositionalArg[Literal["list", "promote", "rollback"]]
    version: CliPositionalArg[str | None] = Field(None, description="(promote) the version number")

    def run(self, settings: Settings) -> int:
        from jobs import models_admin

        return models_admin.run(settings, self.action, self.version)


class StreamConfig(JobConfig):
    """the streaming scoring job (Kafka -> bronze/silver/gold)"""

    kind: CliSuppress[Literal["stream"]] = "stream"
    max_seconds: float | None = Field(None, gt=0, description="stop after this long")
    until_idle: bool = Field(False, description="stop once the topics are drained")
    idle_seconds: float = Field(6.0, gt=0, description="(until-idle) drained means no new offsets for this long")

    def run(self, settings: Settings) -> int:
        from jobs import stream

        return stream.run(settings, self)


class BackfillConfig(JobConfig):
    """recompute features and scores for a date range (idempotent)"""

    kind: CliSuppress[Literal["backfill"]] = "backfill"
    date_from: date = Field(alias="from", description="first event date (YYYY-MM-DD)")
    date_to: date = Field(alias="to", description="last event date (YYYY-MM-DD)")
    model: str | None = Field(None, description="alias or version number (default: the serving alias)")
    score: bool = Field(True, description="score the range too (gold.scores), not only silver")
    resync_serving: bool = Field(True, description="replace the range in the PostgreSQL serving store too")

    def run(self, settings: Settings) -> int:
        from jobs import backfill

        return backfill.run(settings, self)


class MaintainJob(JobConfig):
    """OPTIMIZE + Z-ORDER and VACUUM every table, with a size report"""

    kind: CliSuppress[Literal["maintain"]] = "maintain"
    retention_hours: int = Field(168, ge=0, description="VACUUM retention (Delta refuses < 168)")

    def run(self, settings: Settings) -> int:
        from jobs import backfill

        return backfill.run_maintain(settings, self.retention_hours)


class NightlyJob(JobConfig):
    """backfill yesterday, maintain, optionally retrain"""

    kind: CliSuppress[Literal["nightly"]] = "nightly"
    day: date | None = Field(None, alias="date", description="the day to backfill (default: yesterday, UTC)")
    retrain: bool = Field(False, description="train a new model afterwards (promoted if better)")

    def run(self, settings: Settings) -> int:
        from jobs import backfill

        return backfill.run_nightly(settings, self.day, self.retrain)


class DemoConfig(JobConfig):
    """the whole path on embedded defaults, bounded"""

    kind: CliSuppress[Literal["demo"]] = "demo"
    seconds: float = Field(60.0, gt=0, description="seconds of live traffic")
    rate: float = Field(100.0, gt=0, description="live transactions per second (on average)")
    history_days: int = Field(45, gt=0, description="days of history simulated on the first run")
    customers: int = Field(1500, gt=0, description="simulated customers (first run: history too)")
    terminals: int = Field(800, gt=0, description="simulated terminals")
    seed: int = 7
    drain_seconds: float = Field(300.0, description="how long, at most, the stream may take to score what was sent")
    clock_lead_days: float = Field(10.0, description="the first run's history ends this many days before now")
    refresh_seconds: float = Field(1.0, gt=0, description="live view refresh interval")
    api: bool = Field(
        True, description="also start the serving store, the API and the review console beside the stream"
    )

    def run(self, settings: Settings) -> int:
        from jobs import demo

        return demo.run(settings, self)


class ServeJob(JobConfig):
    """the score lookup API and review console (FastAPI + uvicorn, serving store)"""

    kind: CliSuppress[Literal["serve"]] = "serve"
    host: str | None = Field(None, description="bind address (default: api.host)")
    port: int | None = Field(None, ge=1, le=65535, description="bind port (default: api.port)")
    workers: int = Field(1, ge=1, le=64, description="API processes sharing the port")

    def run(self, settings: Settings) -> int:
        from jobs import serve

        return serve.run(settings, self.host, self.port, self.workers)


class PostgresJob(JobConfig):
    """start, stop or inspect the embedded PostgreSQL serving store"""

    kind: CliSuppress[Literal["postgres"]] = "postgres"
    action: CliPositionalArg[Literal["up", "down", "status"]]

    def run(self, settings: Settings) -> int:
        from jobs import serving_job

        return serving_job.postgres(settings, self.action)


class ServingJob(JobConfig):
    """the serving store: migrate, sync from gold/silver, resync dates, retention"""

    kind: CliSuppress[Literal["serving"]] = "serving"
    action: CliPositionalArg[Literal["migrate", "sync", "resync", "retain"]]
    date_from: date | None = Field(None, alias="from", description="(resync) first event date")
    date_to: date | None = Field(None, alias="to", description="(resync) last event date")
    max_seconds: float | None = Field(None, gt=0, description="(sync) stop after this long")
    until_idle: bool = Field(False, description="(sync) stop once gold and silver are synced")

    @model_validator(mode="after")
    def _resync_range(self) -> ServingJob:
        if self.action == "resync" and (self.date_from is None or self.date_to is None):
            raise ValueError("serving resync needs --from D and --to D")
        return self

    def run(self, settings: Settings) -> int:
        from jobs import serving_job

        return serving_job.serving(settings, self)


class SqlJob(JobConfig):
    """run Spark SQL over the aegis catalog (tables, views, time travel)"""

    kind: CliSuppress[Literal["sql"]] = "sql"
    query: CliPositionalArg[str] = Field(
        description="SQL, e.g. \"SELECT * FROM aegis.daily_summary\" (';' separates statements)"
    )
    out: str | None = Field(None, description="write the result to this path (.csv or .parquet) instead of printing")
    fmt: Literal["table", "csv", "parquet"] | None = Field(
        None, alias="format", description="output format (default: from --out's suffix)"
    )
    max_rows: int = Field(DEFAULT_MAX_ROWS, ge=1, description="rows printed at most")

    def run(self, settings: Settings) -> int:
        from jobs import sql

        return sql.run(settings, self.query, self.out, self.fmt, self.max_rows)


class SqlShellJob(JobConfig):
    """interactive Spark SQL over the aegis catalog (make sql)"""

    kind: CliSuppress[Literal["sql-shell"]] = "sql-shell"
    max_rows: int = Field(DEFAULT_MAX_ROWS, ge=1, description="rows printed at most per statement")

    def run(self, settings: Settings) -> int:
        from jobs import sql

        return sql.shell(settings, max_rows=self.max_rows)


class MlflowUiJob(JobConfig):
    """the MLflow UI over the configured tracking store"""

    kind: CliSuppress[Literal["mlflow-ui"]] = "mlflow-ui"
    port: int = Field(5000, ge=1, le=65535, description="bind port (on 127.0.0.1)")

    def run(self, settings: Settings) -> int:
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            settings.mlflow_tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        return subprocess.call(cmd)


# The order is the order of `aegis --help`.
JobKind = Annotated[
    KafkaJob
    | TablesJob
    | ImportConfig
    | SimulateConfig
    | ReplayConfig
    | FeaturesJob
    | TrainConfig
    | ModelsJob
    | StreamConfig
    | BackfillConfig
    | MaintainJob
    | NightlyJob
    | DemoConfig
    | ServeJob
    | PostgresJob
    | ServingJob
    | SqlJob
    | SqlShellJob
    | MlflowUiJob,
    Field(discriminator="kind"),
]
