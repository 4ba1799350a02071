"""POST /v1/verdicts: an analyst's verdict, recorded in the store and published as a label event."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status
from kafka.errors import KafkaError
from starlette.responses import Response

from api.deps import LabelsDep, StoreDep, VerdictWriter, json_response
from api.schemas import ERRORS, NOT_FOUND, Problem, Verdict, VerdictRequest

log = logging.getLogger("aegis.api.verdicts")
router = APIRouter(prefix="/v1/verdicts", tags=["verdicts"], responses=ERRORS)


@router.post(
    "",
    status_code=201,
    response_model=Verdict,
    response_description="The recorded verdict.",
    responses={**NOT_FOUND,
               400: {"model": Problem, "description": "The body is not valid JSON."},
               503: {"model": Problem, "description": "The store or the labels topic is unavailable; nothing was "
                                                      "recorded."}},
    summary="Record a verdict (confirm fraud / not fraud)",
    description="Records the verdict in the serving store's `verdicts` table and publishes it as a label event "
    "(`conf/contracts/label.v1.json`, key = customer id) on the labels topic, so the stream and training see "
    "it. Both or neither: when the topic does not acknowledge the event, the verdict is rolled back (503). "
    "Roles: analyst, admin.",
)
async def record_verdict(principal: VerdictWriter, verdict: VerdictRequest, store: StoreDep,
                         labels: LabelsDep) -> Response:
    try:
        recorded = await store.record_verdict(verdict.transaction_id, is_fraud=verdict.is_fraud,
                                              analyst=principal.name, note=verdict.note, publish=labels.publish)
    except KafkaError as exc:  # the transaction was rolled back
        log.warning("verdict not published: %s", exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"labels topic unavailable ({type(exc).__name__}); verdict not recorded") from None
    if recorded is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"transaction {verdict.transaction_id!r} not found")
    return json_response(recorded, status_code=201)
