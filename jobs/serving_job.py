"""`aegis postgres up|down|status` (the embedded server) and `aegis serving migrate|sync|resync|retain`."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from conf.settings import Settings
from lakehouse.postgres_server import PostgresServer
from lakehouse.tables import TableContract

if TYPE_CHECKING:
    from jobs.kinds import ServingJob

log = logging.getLogger("aegis.serving")


def server_for(settings: Settings) -> PostgresServer:
    """The embedded PostgreSQL server described by ``serving.postgres`` (data under ``paths.run``)."""
    pg = settings.serving.postgres
    return PostgresServer(settings.run_dir / "postgres", host=pg.host, port=pg.port, user=pg.user,
                          password=pg.password, database=pg.database)


def postgres(settings: Settings, action: str) -> int:
    """`aegis postgres ACTION`."""
    server = server_for(settings)
    if action == "up":
        server.start()
        from serving.sync import ensure_schema

        applied = ensure_schema(server.dsn)
        print(f"postgres: up at {server.host}:{server.port} (data in {server.data_dir})"
              + (f", migrations applied {applied}" if applied else ", schema current"))
    elif action == "down":
        server.stop()
        print("postgres: stopped")
    else:
        print(json.dumps(server.status(), default=str))
    return 0


def sync(settings: Settings, max_seconds: float | None = None, until_idle: bool = False) -> int:
    """Run the sync queries (gold.scores, silver.features -> the store) until interrupted."""
    from lakehouse.session import create_session
    from serving.sync import start_sync_query

    if settings.serving.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.serving.metrics_port, addr="127.0.0.1")
    spark = create_session(settings, "serving-sync")
    handle = start_sync_query(spark, settings, features=_silver(settings))
    started = time.monotonic()
    try:
        if until_idle:
            handle.process_all_available()
        else:
            while handle.active and (max_seconds is None or time.monotonic() - started < max_seconds):
                time.sleep(1.0)
        error = handle.exception()
        if error is not None:
            raise RuntimeError(f"serving sync failed: {error}")
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
        spark.stop()
    return 0


def _silver(settings: Settings) -> TableContract:
    """silver.features as configured (its columns come from the feature declarations)."""
    from features.table import features_table
    from jobs.tables import feature_params

    return features_table(feature_params(settings))


def resync(settings: Settings, date_from: date, date_to: date) -> int:
    from lakehouse.session import create_session
    from serving.sync import resync as replace_dates

    spark = create_session(settings, "serving-resync")
    try:
        print(json.dumps(replace_dates(spark, settings, date_from, date_to, features=_silver(settings))))
    finally:
        spark.stop()
    return 0


@dataclass
class ServingHandle:
    """PostgreSQL + the sync queries + the API (with the console) running in the background."""

    url: str  #: the review console's address
    api_url: str
    sync: Any
    server: PostgresServer | None  #: the embedded server, when this handle started it
    _uvicorn: Any
    _thread: threading.Thread

    def stop(self) -> None:
        """Stop the API, the sync queries and (if started here) the embedded PostgreSQL."""
        self._uvicorn.should_exit = True
        self._thread.join(15)
        self.sync.stop()
        if self.server is not None:
            self.server.stop()


def start_serving(settings: Settings, spark: Any, port: int | None = None) -> ServingHandle:
    """Start the serving side beside a running stream: the embedded PostgreSQL (unless ``serving.dsn``
    names one), the sync queries on ``spark``, and the API + console on ``api.host:port`` (default
    ``api.port``), all in the background. ``handle.url`` is the console; ``handle.stop()`` ends them."""
    import uvicorn

    from api.app import create_app
    from serving.sync import start_sync_query

    server = None
    if not settings.serving.dsn:
        server = server_for(settings)
        running = server.status()["running"]
        server.start()
        server = None if running else server  # somebody else's server stays up
    sync = start_sync_query(spark, settings, features=_silver(settings))
    host, bind_port = settings.api.host, port or settings.api.port
    api = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=bind_port, lifespan="on",
                                        log_level="warning", access_log=False))
    thread = threading.Thread(target=api.run, name="aegis-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not api.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sync.stop()
            raise RuntimeError(f"the API did not start on {host}:{bind_port}")
        time.sleep(0.1)
    base = f"http://{host}:{bind_port}"
    return ServingHandle(f"{base}/console", base, sync, server, api, thread)


def serving(settings: Settings, args: ServingJob) -> int:
    """`aegis serving ACTION` (resync: the job config holds --from and --to)."""
    from serving.sync import connect, delete_expired, ensure_schema

    if args.action == "migrate":
        print(json.dumps({"applied": ensure_schema(settings.serving_dsn)}))
        return 0
    if args.action == "retain":
        ensure_schema(settings.serving_dsn)
        with connect(settings.serving_dsn) as conn:
            print(json.dumps({"deleted": delete_expired(conn, settings.serving.retention_days)}))
        return 0
    if args.action == "sync":
        return sync(settings, args.max_seconds, args.until_idle)
    if args.date_from is None or args.date_to is None:  # ServingJob refuses this already
        raise ValueError("serving resync needs --from D and --to D")
    return resync(settings, args.date_from, args.date_to)
