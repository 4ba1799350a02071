"""GET /v1/decisions: the review queue."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from api import cursor as cursors
from api.deps import (
    CursorText,
    DecisionsReader,
    Limit,
    QueueDecision,
    Since,
    StoreDep,
    raw_json,
    read_cursor,
    time_window,
)
from api.schemas import ERRORS, ScorePage

router = APIRouter(prefix="/v1/decisions", tags=["decisions"], responses=ERRORS)


@router.get(
    "",
    response_model=ScorePage,
    response_description="One page of the queue.",
    summary="Review queue: review / block decisions, newest first",
    description="Scores whose decision is `review` or `block` (or the one asked for), newest first, "
    "optionally since a time; paginate with `next_cursor`. "
    "Roles: analyst, service, admin.",
)
async def decisions(
    _: DecisionsReader,
    store: StoreDep,
    since: Since = None,
    decision: QueueDecision = None,
    limit: Limit = 50,
    cursor: CursorText = None,
) -> Response:
    window = time_window(since)
    wanted = ["review", "block"] if decision is None else [decision]
    query = cursors.fingerprint(decision, window.since_us)
    after = read_cursor(cursor, "d", query)
    page = await store.decisions(decisions=wanted, since_us=window.since_us, limit=limit, after=after)
    next_cursor = None if page.next_position is None else cursors.encode("d", page.next_position, query)
    return raw_json(page.body(next_cursor))
