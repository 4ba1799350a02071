"""The FastAPI application factory: nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import (
    routes_console,
    routes_customers,
    routes_decisions,
    routes_models,
    routes_ops,
    routes_transactions,
    routes_verdicts,
)
from api.champion import ChampionSource
from api.deps import TRANSACTION_READERS
from api.hotpath import TransactionHotPath
from api.labels import LabelPublisher
from api.metrics import Metrics, MetricsMiddleware
from api.security import KeyRing
from conf.settings import Settings
from serving.queries import ServingStore, StoreUnavailable

log = logging.getLogger("aegis.api")

DESCRIPTION = """
Point lookups of Aegis fraud scores, decisions and the features behind them.

Answers from the PostgreSQL serving store (`serving.dsn`), fed from the Delta tables `gold.scores` and
`silver.features` by the serving sync; every lookup is one indexed query through a connection pool,
nothing is held in this process, so several API processes can serve one store. The model comes from
the MLflow registry alias `mlflow.serving_alias`. The review console for analysts is at `/console`.

**Auth**: header `X-API-Key`. Roles: *analyst* reads everything but `/v1/models`; *service* reads
`/v1/transactions` and `/v1/decisions`; *admin* reads everything. `/health` and `/readyz` are open.
Missing or unknown key: 401; a role that may not read the resource: 403.

**Errors**: invalid parameters give 422 with `detail[].loc` naming the parameter; unknown ids 404;
503 when the serving store is down or has no schema.
Lists are newest first and paginated with an opaque `next_cursor`.
"""


def create_app(settings: Settings, store: ServingStore | None = None,
               champions: ChampionSource | None = None, labels: LabelPublisher | None = None) -> FastAPI:
    """The API over ``settings`` (a given ``store`` / ``champions`` / ``labels`` replaces the default one).

    The connection pool opens at app startup (without waiting for the server) and closes at shutdown;
    the MLflow client is created at startup, the Kafka producer at the first verdict.
    """
    keys = KeyRing.from_settings(settings.api.keys)
    the_store = store or ServingStore.from_settings(settings)
    the_champions = champions or ChampionSource.from_settings(settings)
    the_labels = labels or LabelPublisher.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not len(keys):
            log.warning("api.keys is empty: every /v1 request will get 401")
        the_champions.connect()
        await the_store.open()
        try:
            yield
        finally:
            await the_store.close()
            the_labels.close()

    app = FastAPI(
        title="Aegis score lookup API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "transactions", "description": "One transaction's score and features."},
            {"name": "customers", "description": "A customer's scores and latest features."},
            {"name": "decisions", "description": "The review queue."},
            {"name": "verdicts", "description": "Analysts' verdicts, published as label events."},
            {"name": "models", "description": "The served model (MLflow registry)."},
            {"name": "operations", "description": "Liveness, readiness, metrics."},
        ],
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.store = the_store
    app.state.champions = the_champions
    app.state.labels = the_labels
    app.state.metrics = Metrics()
    for module in (routes_transactions, routes_customers, routes_decisions, routes_verdicts, routes_models,
                   routes_ops, routes_console):
        app.include_router(module.router)
    # the hot route below FastAPI (same checks and bodies; everything else falls through to the route),
    # inside the metrics middleware, which labels it with the route's template as any other request
    app.add_middleware(TransactionHotPath, keys=keys, store=the_store, roles=TRANSACTION_READERS,
                       route=next(r for r in routes_transactions.router.routes
                                  if getattr(r, "path", None) == routes_transactions.HOT_PATH))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    routes_console.mount_static(app)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {"loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
             "msg": str(e.get("msg", "invalid")), "type": str(e.get("type", "value_error"))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": issues}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug, not an input: logged
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

