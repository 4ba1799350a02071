"""The review console: one static page (HTML + JS + a vendored Chart.js) over the JSON API.

The page holds no data and needs no key to load; it asks for an API key in a login form, keeps it in
the tab's sessionStorage and sends it as ``X-API-Key`` on every call, so the console is exactly as
authorised as the key (analyst or admin; a service key is told it may not use the console). Every
value is rendered with ``textContent`` / DOM nodes, never parsed as HTML.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response

from api.deps import CustomersReader, json_response
from api.schemas import ERRORS, Me

STATIC = Path(__file__).resolve().parent / "static"
router = APIRouter(tags=["console"])
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@router.get("/console", include_in_schema=False)
async def console() -> Response:
    """The console page (open: it holds no data)."""
    return FileResponse(STATIC / "console.html", media_type="text/html", headers=_SECURITY_HEADERS)


@router.get("/v1/me", response_model=Me, responses=ERRORS, summary="The caller's key name and role",
            description="The console's login check. Roles: analyst, admin.")
async def me(principal: CustomersReader) -> Response:
    return json_response({"name": principal.name, "role": principal.role})


def mount_static(app: FastAPI) -> None:
    """/console/static: the page's script, styles and the vendored Chart.js (no CDN)."""
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
