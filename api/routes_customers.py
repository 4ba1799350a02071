"""GET /v1/customers/{customer_id}/scores and /features."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from starlette.responses import Response

from api import cursor as cursors
from api.deps import (
    CursorText,
    CustomerDecision,
    CustomerId,
    CustomersReader,
    Limit,
    Since,
    StoreDep,
    Until,
    raw_json,
    read_cursor,
    time_window,
)
from api.schemas import ERRORS, NOT_FOUND, CustomerFeatures, ScorePage

router = APIRouter(prefix="/v1/customers", tags=["customers"], responses=ERRORS)


@router.get(
    "/{customer_id}/scores",
    response_model=ScorePage,
    response_description="One page of the customer's scores.",
    responses=NOT_FOUND,
    summary="A customer's scores, newest first",
    description="Scores of one customer ordered by event time then transaction id, descending, filtered by "
    "time window and decision. Paginate with the opaque `next_cursor` (keyset: stable while new rows "
    "arrive). 404 when the customer has no score at all. Roles: analyst, admin.",
)
async def customer_scores(
    _: CustomersReader,
    customer_id: CustomerId,
    store: StoreDep,
    since: Since = None,
    until: Until = None,
    decision: CustomerDecision = None,
    limit: Limit = 50,
    cursor: CursorText = None,
) -> Response:
    window = time_window(since, until)
    query = cursors.fingerprint(customer_id, decision, *window.key)
    after = read_cursor(cursor, "c", query)
    page = await store.customer_scores(customer_id, since_us=window.since_us, until_us=window.until_us,
                                 decision=decision, limit=limit, after=after)
    if page is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"customer {customer_id!r} not found")
    next_cursor = None if page.next_position is None else cursors.encode("c", page.next_position, query)
    return raw_json(page.body(next_cursor))


@router.get(
    "/{customer_id}/features",
    response_model=CustomerFeatures,
    response_description="The latest feature vector.",
    responses=NOT_FOUND,
    summary="A customer's latest feature vector",
    description="The features of the customer's latest transaction (latest event time, then "
    "latest computation). Roles: analyst, admin.",
)
async def customer_features(_: CustomersReader, customer_id: CustomerId, store: StoreDep) -> Response:
    record = await store.customer_features(customer_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no features for customer {customer_id!r}")
    return raw_json(record)
