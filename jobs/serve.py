"""`aegis serve`: the score lookup API and review console (FastAPI on uvicorn, no Spark), over the serving store."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any

from conf.settings import Settings

log = logging.getLogger("aegis.serve")


SETTINGS_ENV = "AEGIS_SERVE_SETTINGS"


def app_from_environment() -> Any:
    """The app of one worker process (``--workers`` > 1): the parent's resolved settings come as JSON."""
    from api.app import create_app

    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))


def run(settings: Settings, host: str | None = None, port: int | None = None, workers: int = 1) -> int:
    """Serve the API until interrupted (``workers`` processes share the port and the store); the exit code."""
    import uvicorn

    from api.app import create_app

    bind_host = host or settings.api.host
    bind_port = port or settings.api.port
    if not settings.api.keys:
        log.warning("serve: api.keys is empty; every /v1 request will be refused (401)")
    _migrate(settings)
    options: dict[str, Any] = {
        "host": bind_host, "port": bind_port, "lifespan": "on", "access_log": False, "server_header": False,
        "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
        "timeout_keep_alive": 30, "backlog": 1024,
    }
    if workers > 1:  # stateless: each process has its own connection pool over the same store
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        log.info("serve: http://%s:%d with %d worker processes", bind_host, bind_port, workers)
        uvicorn.run("jobs.serve:app_from_environment", factory=True, workers=workers, **options)
        return 0
    config = uvicorn.Config(create_app(settings), **options)
    log.info("serve: http://%s:%d (console: /console; store %s)", bind_host, bind_port,
             settings.serving_dsn.rsplit("@", 1)[-1])
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the signal it shut down on
        server.run()
    return 0 if server.started else 1


def _migrate(settings: Settings) -> None:
    """Bring the store's schema up to date when it is reachable (else /readyz reports it)."""
    import psycopg

    from serving.sync import ensure_schema

    try:
        ensure_schema(settings.serving_dsn)
    except psycopg.OperationalError as exc:
        log.warning("serve: serving store unreachable (%s); /readyz will say so", str(exc).strip()[:200])


def _workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"workers must be 1..64, got {value!r}")
    return int(value)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs.serve [--profile P] [--set k=v ...] [--host H] [--port N]``."""
    from conf.settings import ConfigError, load_settings, parse_overrides
    from jobs.base import configure_logging

    parser = argparse.ArgumentParser(prog="python -m jobs.serve", description=__doc__)
    parser.add_argument("--profile", choices=["local", "test", "cluster"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--host")
    parser.add_argument("--port", type=_port)
    parser.add_argument("--workers", type=_workers, default=1)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = load_settings(args.profile, overrides=parse_overrides(args.overrides))
    except ConfigError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    return run(settings, args.host, args.port, args.workers)


if __name__ == "__main__":
    sys.exit(main())
