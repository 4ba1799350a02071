"""Operations: /health (liveness), /readyz (readiness), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import Response

from api.deps import ChampionsDep, MetricsDep, MetricsReader, StoreDep, json_response
from api.metrics import CONTENT_TYPE
from api.schemas import ERRORS, Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="Liveness", description="200 while the process serves. Open.")
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; `missing` says what."}},
    summary="Readiness",
    description="200 when the serving store answers, its schema is migrated and a champion is registered, "
    "else 503 with the failing checks (`store`, `schema`, `champion`). Open.",
)
async def readyz(store: StoreDep, champions: ChampionsDep) -> Response:
    checks: dict[str, dict[str, object]] = {
        name: {"ok": c["ok"], "detail": c.get("detail"), "version": c.get("version"), "rows": None}
        for name, c in (await store.status()).items()
    }
    if checks["schema"]["ok"]:
        checks["store"]["rows"] = (await store.counts()).get("scores")
    found = await asyncio.to_thread(champions.lookup)
    detail: str | None
    if found.state == "found" and found.info is not None:
        detail = f"{found.info['name']}@{found.info['alias']} is version {found.info['version']}"
    else:
        detail = found.detail
    checks["champion"] = {"ok": found.state == "found", "detail": detail, "version": None, "rows": None}
    missing = [name for name, check in checks.items() if not check["ok"]]
    body = {"ready": not missing, "missing": missing, "checks": checks}
    return json_response(body, status_code=503 if missing else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Request counts by route and status, latency histograms, serving store health and rows, "
    "and the process's prometheus_client registry (text exposition 0.0.4). Any valid API key.",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}, **ERRORS},
    response_class=Response,
)
async def metrics(_: MetricsReader, registry: MetricsDep, store: StoreDep) -> Response:
    status = await store.status()
    counts = await store.counts() if status["schema"]["ok"] else {}
    return Response(registry.render(status, counts), media_type=CONTENT_TYPE)
