"""The spark-submit shim: the files in jobs/ call this so they run under spark-submit too."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pyspark.sql import SparkSession

from conf.settings import ConfigError, Settings, load_settings, parse_overrides
from jobs.base import configure_logging


def submit_main(job: str, body: Callable[[Settings, SparkSession], int], argv: list[str] | None = None) -> int:
    """Parse ``--profile`` / ``--set``, validate settings, build the session spark-submit gave us."""
    from lakehouse.session import create_session

    parser = argparse.ArgumentParser(prog=f"jobs/{job}.py")
    parser.add_argument("--profile", choices=["local", "test", "cluster"])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args, _ = parser.parse_known_args(argv)
    configure_logging()
    try:
        settings = load_settings(args.profile, overrides=parse_overrides(args.overrides))
    except ConfigError as exc:
        print(f"{job}: {exc}", file=sys.stderr)
        return 2
    spark = create_session(settings, job, launched_by_spark_submit=True)
    return body(settings, spark)
