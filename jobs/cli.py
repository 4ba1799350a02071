"""The `aegis` command line: validates the merged configuration, then dispatches to a job."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from pydantic import ValidationError

from conf.settings import ConfigError, Settings, format_validation_error, load_settings, parse_overrides
from jobs.base import configure_logging

log = logging.getLogger("aegis")
Handler = Callable[[Settings, argparse.Namespace], int]
# Errors that explain themselves: printed without a traceback.
USER_FACING_ERRORS = {"RollbackError", "NoModelError", "KafkaBrokerError", "PostgresServerError"}


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


def _kafka(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import kafka_admin

    return kafka_admin.run(settings, args.action)


def _tables(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import tables

    return tables.run(settings, as_json=args.json)


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import importer

    return importer.run(settings, importer.ImportConfig(paths=args.paths, label_delay=args.label_delay))


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import simulate

    config = simulate.SimulateConfig(
        rate=args.rate, duration=args.duration, count=args.count, seed=args.seed,
        history_days=args.history, customers=args.customers, terminals=args.terminals,
        label_time_compression=args.label_time_compression, out_of_order_fraction=args.out_of_order,
        max_out_of_order_seconds=args.max_out_of_order_seconds,
    )
    return simulate.run(settings, config)


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import replay

    speed = None if args.speed == "max" else float(args.speed)
    config = replay.ReplayConfig(
        paths=args.paths, speed=speed, label_delay=args.label_delay, date_from=args.date_from,
        date_to=args.date_to, limit=args.limit,
    )
    return replay.run(settings, config)


def _features(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import features_job

    if args.action == "listing":
        return features_job.listing(settings, write=args.write)
    if args.action == "parity":
        return features_job.parity(settings, args.date_from, args.date_to)
    return features_job.build(settings, args.date_from, args.date_to)


def _train(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import train

    config = train.TrainConfig(date_from=args.date_from, date_to=args.date_to, promote=args.promote)
    return train.run(settings, config)


def _models(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import models_admin

    return models_admin.run(settings, args.action, args.version)


def _stream(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import stream

    return stream.run(settings, stream.StreamConfig(max_seconds=args.max_seconds, until_idle=args.until_idle))


def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import backfill

    config = backfill.BackfillConfig(date_from=args.date_from, date_to=args.date_to, model=args.model)
    return backfill.run(settings, config)


def _maintain(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import backfill

    return backfill.run_maintain(settings, args.retention_hours)


def _nightly(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import backfill

    return backfill.run_nightly(settings, args.date, args.retrain)


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import demo

    return demo.run(settings, demo.DemoConfig(seconds=args.seconds, rate=args.rate, customers=args.customers,
                                              terminals=args.terminals, history_days=args.history_days,
                                              api=args.api))


def _mlflow_ui(settings: Settings, args: argparse.Namespace) -> int:
    import subprocess

    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.mlflow_tracking_uri,
           "--host", "127.0.0.1", "--port", str(args.port)]
    return subprocess.call(cmd)


def build_parser() -> argparse.ArgumentParser:
    """The full CLI; `aegis --help` lists every job."""
    parser = argparse.ArgumentParser(prog="aegis", description="Aegis fraud-scoring lakehouse")
    parser.add_argument("--profile", choices=["local", "test", "cluster"], help="config profile (AEGIS_PROFILE)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set kafka.topics.partitions=8 (repeatable)")
    parser.add_argument("--log-level", default="INFO",
                        help="DEBUG shows everything: Spark's JVM logs and the warnings hidden as harmless")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("kafka", help="start, stop or inspect the embedded Kafka broker")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(handler=_kafka)

    p = sub.add_parser("tables", help="every Delta table with its location, version and row count")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_tables)

    p = sub.add_parser("import", help="load historical transactions (Parquet/CSV) into bronze")
    p.add_argument("paths", nargs="+")
    p.add_argument("--label-delay", default="7d", help="labels are reported at event time + this (e.g. 7d, 36h)")
    p.set_defaults(handler=_import)

    p = sub.add_parser("simulate", help="produce realistic simulated traffic to Kafka (or history to bronze)")
    p.add_argument("--rate", type=float, default=200.0, help="events per second (0 = as fast as possible)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, help="seconds to run")
    group.add_argument("--count", type=int, help="number of transactions")
    group.add_argument("--history", type=int, metavar="DAYS", help="write DAYS of history straight to bronze")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--terminals", type=int, default=1000)
    p.add_argument("--label-time-compression", type=float, default=1440.0,
                   help="label delays are divided by this on the live clock (1440: a day in a minute)")
    p.add_argument("--out-of-order", type=float, default=0.0, metavar="FRACTION",
                   help="share of transactions emitted late (out of event-time order)")
    p.add_argument("--max-out-of-order-seconds", type=float, default=30.0,
                   help="how late, at most, an out-of-order transaction is emitted")
    p.set_defaults(handler=_simulate)

    p = sub.add_parser("replay", help="publish a historical file to Kafka in event-time order")
    p.add_argument("paths", nargs="+")
    p.add_argument("--speed", default="max", help="times faster than real time, or 'max'")
    p.add_argument("--label-delay", default="7d")
    p.add_argument("--from", dest="date_from", type=_date)
    p.add_argument("--to", dest="date_to", type=_date)
    p.add_argument("--limit", type=int)
    p.set_defaults(handler=_replay)

    p = sub.add_parser("features", help="feature listing, batch build and stream/batch parity")
    p.add_argument("action", choices=["listing", "build", "parity"])
    p.add_argument("--from", dest="date_from", type=_date)
    p.add_argument("--to", dest="date_to", type=_date)
    p.add_argument("--write", action="store_true", help="(listing) rewrite features/compiled.md")
    p.set_defaults(handler=_features)

    p = sub.add_parser("train", help="train the ensemble, evaluate, register in MLflow")
    p.add_argument("--from", dest="date_from", type=_date)
    p.add_argument("--to", dest="date_to", type=_date)
    p.add_argument("--promote", action="store_true", help="move @champion if the new model is better")
    p.set_defaults(handler=_train)

    p = sub.add_parser("models", help="list registered versions, promote one, roll back")
    p.add_argument("action", choices=["list", "promote", "rollback"])
    p.add_argument("version", nargs="?")
    p.set_defaults(handler=_models)

    p = sub.add_parser("stream", help="the streaming scoring job (Kafka -> bronze/silver/gold)")
    p.add_argument("--max-seconds", type=float, help="stop after this long")
    p.add_argument("--until-idle", action="store_true", help="stop once the topics are drained")
    p.set_defaults(handler=_stream)

    p = sub.add_parser("backfill", help="recompute features and scores for a date range (idempotent)")
    p.add_argument("--from", dest="date_from", type=_date, required=True)
    p.add_argument("--to", dest="date_to", type=_date, required=True)
    p.add_argument("--model", help="alias or version number (default: the serving alias)")
    p.set_defaults(handler=_backfill)

    p = sub.add_parser("maintain", help="OPTIMIZE + Z-ORDER and VACUUM every table, with a size report")
    p.add_argument("--retention-hours", type=int, default=168, help="VACUUM retention (Delta refuses < 168)")
    p.set_defaults(handler=_maintain)

    p = sub.add_parser("nightly", help="backfill yesterday, maintain, optionally retrain")
    p.add_argument("--date", type=_date, help="the day to backfill (default: yesterday, UTC)")
    p.add_argument("--retrain", action="store_true")
    p.set_defaults(handler=_nightly)

    p = sub.add_parser("demo", help="the whole path on embedded defaults, bounded")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of live traffic")
    p.add_argument("--rate", type=float, default=100.0, help="live transactions per second (on average)")
    p.add_argument("--customers", type=int, default=1500, help="simulated customers (first run: history too)")
    p.add_argument("--terminals", type=int, default=800, help="simulated terminals")
    p.add_argument("--history-days", type=int, default=45, help="days of history simulated on the first run")
    p.add_argument("--no-api", dest="api", action="store_false",
                   help="do not start the serving store, the API and the review console beside the stream")
    p.set_defaults(handler=_demo)

    from jobs import serve, serving_job, sql

    serve.register(sub)  # aegis serve: the score lookup API
    serving_job.register(sub)  # aegis postgres up|down|status, aegis serving migrate|sync|resync|retain
    sql.register(sub)  # aegis sql "SELECT ..." and aegis sql-shell

    p = sub.add_parser("mlflow-ui", help="the MLflow UI over the configured tracking store")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(handler=_mlflow_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `aegis` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        overrides = parse_overrides(args.overrides)
        if args.log_level.upper() == "DEBUG":  # everything, Spark's JVM included (unless --set says otherwise)
            overrides = {**overrides, "spark": {"log_level": "DEBUG", **overrides.get("spark", {})}}
        settings = load_settings(args.profile, overrides=overrides)
    except ConfigError as exc:
        print(f"aegis: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(settings, args) or 0)
    except ValidationError as exc:
        print(f"aegis {args.command}: {format_validation_error(exc)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"aegis {args.command}: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if type(exc).__name__ not in USER_FACING_ERRORS:
            raise
        print(f"aegis {args.command}: {exc}", file=sys.stderr)
        return 1


def print_json(payload: dict[str, Any]) -> None:
    """Machine-readable summary on its own line."""
    print(json.dumps(payload, default=str))


if __name__ == "__main__":
    sys.exit(main())
