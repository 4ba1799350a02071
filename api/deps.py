"""Dependencies, as ``Annotated`` aliases: the store, the registry, the caller's role, validated parameters."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Path, Query, Request, Security, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import BeforeValidator
from starlette.responses import Response

from api import cursor as cursors
from api.champion import ChampionSource
from api.labels import LabelPublisher
from api.metrics import Metrics
from api.security import HEADER, KeyRing, Principal, Role
from serving.queries import Position, ServingStore, to_micros

ID_REGEX = r"^[A-Za-z0-9._:-]{1,64}$"


def transaction_not_found(transaction_id: str) -> str:
    """The 404 detail of a transaction lookup (the FastAPI route and the hot path send the same)."""
    return f"transaction {transaction_id!r} not found"
MAX_LIMIT = 1000

api_key_header = APIKeyHeader(
    name=HEADER, auto_error=False, scheme_name="ApiKey",
    description="API key; its role decides what it reads: analyst (all but /v1/models), "
                "service (/v1/transactions, /v1/decisions), admin (everything).",
)


# --------------------------------------------------------------------------- app state


async def _store(request: Request) -> ServingStore:
    return request.app.state.store  # type: ignore[no-any-return]


async def _champions(request: Request) -> ChampionSource:
    return request.app.state.champions  # type: ignore[no-any-return]


async def _labels(request: Request) -> LabelPublisher:
    return request.app.state.labels  # type: ignore[no-any-return]


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


StoreDep = Annotated[ServingStore, Depends(_store)]
LabelsDep = Annotated[LabelPublisher, Depends(_labels)]
ChampionsDep = Annotated[ChampionSource, Depends(_champions)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


# --------------------------------------------------------------------------- auth


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys whose role is one of ``roles`` (401 unknown key, 403 wrong role)."""

    async def dependency(request: Request, api_key: Annotated[str | None, Security(api_key_header)]) -> Principal:
        keys: KeyRing = request.app.state.keys
        principal = keys.authenticate(api_key)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown API key",
                                headers={"WWW-Authenticate": HEADER})
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role!r} may not read this resource")
        request.state.principal = principal
        return principal

    return dependency


#: Roles that read transactions (also the check of ``api.hotpath``, which answers the lookup below FastAPI).
TRANSACTION_READERS: tuple[Role, ...] = ("analyst", "service", "admin")
TransactionsReader = Annotated[Principal, Depends(require(*TRANSACTION_READERS))]
DecisionsReader = Annotated[Principal, Depends(require("analyst", "service", "admin"))]
CustomersReader = Annotated[Principal, Depends(require("analyst", "admin"))]
ModelsReader = Annotated[Principal, Depends(require("admin"))]
MetricsReader = Annotated[Principal, Depends(require("analyst", "service", "admin"))]
VerdictWriter = Annotated[Principal, Depends(require("analyst", "admin"))]


# --------------------------------------------------------------------------- parameters


def _iso_datetime(value: Any) -> Any:
    """Only ISO-8601 text is a date here (pydantic would also take unix seconds)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise ValueError("expected an ISO-8601 date or date-time, e.g. 2024-05-01T12:00:00Z") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed
    if isinstance(value, datetime):
        return value
    raise ValueError("expected an ISO-8601 date or date-time, e.g. 2024-05-01T12:00:00Z")


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]

TransactionId = Annotated[str, Path(
    pattern=ID_REGEX, description="Transaction id: 1-64 of `A-Z a-z 0-9 . _ : -`.",
    openapi_examples={"transaction": {"summary": "A transaction id", "value": "tx-7f3a9c2e51b04d88"}},
)]
CustomerId = Annotated[str, Path(
    pattern=ID_REGEX, description="Customer id: 1-64 of `A-Z a-z 0-9 . _ : -`.",
    openapi_examples={"customer": {"summary": "A customer id", "value": "c-0001f4"}},
)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT}.",
                             openapi_examples={"default": {"summary": "50 per page", "value": 50}})]
Since = Annotated[IsoDateTime | None, Query(
    description="Only transactions at or after this time (ISO-8601; no zone = UTC).",
    openapi_examples={"day": {"summary": "Since a date", "value": "2024-05-01T00:00:00Z"}},
)]
Until = Annotated[IsoDateTime | None, Query(
    description="Only transactions before this time (ISO-8601, exclusive; no zone = UTC).",
    openapi_examples={"day": {"summary": "Until a date", "value": "2024-06-01T00:00:00Z"}},
)]
CursorText = Annotated[str | None, Query(
    max_length=cursors.MAX_CURSOR_LENGTH,
    description="Opaque `next_cursor` of the previous page (same other parameters).",
)]
CustomerDecision = Annotated[Literal["allow", "review", "block"] | None, Query(
    description="Only scores with this decision.",
    openapi_examples={"block": {"summary": "Blocked only", "value": "block"}},
)]
QueueDecision = Annotated[Literal["review", "block"] | None, Query(
    description="review or block (default: both).",
    openapi_examples={"review": {"summary": "The review queue", "value": "review"}},
)]


def invalid(location: str, name: str, message: str, kind: str = "value_error") -> RequestValidationError:
    """A 422 naming ``location``/``name``, shaped like FastAPI's own validation errors."""
    return RequestValidationError([{"loc": (location, name), "msg": message, "type": kind}])


@dataclass(frozen=True)
class TimeWindow:
    """since (inclusive) .. until (exclusive) as epoch microseconds (None = open)."""

    since_us: int | None
    until_us: int | None

    @property
    def key(self) -> tuple[int | None, int | None]:
        return (self.since_us, self.until_us)


def time_window(since: datetime | None, until: datetime | None = None) -> TimeWindow:
    """The window as epoch microseconds; 422 naming ``until`` when it is not after ``since``."""
    since_us = None if since is None else to_micros(since)
    until_us = None if until is None else to_micros(until)
    if since_us is not None and until_us is not None and until_us <= since_us:
        raise invalid("query", "until", "until must be later than since")
    return TimeWindow(since_us, until_us)


def read_cursor(text: str | None, kind: str, query: str) -> Position | None:
    """Decode ``cursor`` for this query or raise a 422 naming it."""
    if text is None:
        return None
    try:
        return cursors.decode(text, kind, query)
    except cursors.CursorError as exc:
        raise invalid("query", "cursor", str(exc)) from None


# --------------------------------------------------------------------------- responses


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def raw_json(text: str, status_code: int = 200) -> Response:
    """A JSON body built by the store (PostgreSQL), passed through as is."""
    return Response(text, status_code=status_code, media_type="application/json")


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON without re-validation (the queries already return the documented shape); NaN/inf -> null."""
    try:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:
        body = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False)
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)
