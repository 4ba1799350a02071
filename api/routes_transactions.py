"""GET /v1/transactions/{transaction_id}: a score with its decision, versions, reasons and features."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from starlette.responses import Response

from api.deps import StoreDep, TransactionId, TransactionsReader, json_response, raw_json, transaction_not_found
from api.schemas import ERRORS, NOT_FOUND, Explanation, TransactionScore

router = APIRouter(prefix="/v1/transactions", tags=["transactions"], responses=ERRORS)

#: The lookup's template; ``api.hotpath`` answers it below FastAPI (roles: ``deps.TRANSACTION_READERS``).
HOT_PATH = "/v1/transactions/{transaction_id}"


@router.get(
    HOT_PATH.removeprefix("/v1/transactions"),
    response_model=TransactionScore,
    response_description="The transaction's score and the features it was scored on.",
    responses=NOT_FOUND,
    summary="Score of one transaction",
    description="The score, decision, model name/version, policy and feature versions and top reasons of "
    "a transaction, with the feature values it was scored on (the serving store, synced from gold.scores "
    "and silver.features). "
    "Roles: analyst, service, admin.",
)
async def get_transaction(_: TransactionsReader, transaction_id: TransactionId, store: StoreDep) -> Response:
    record = await store.transaction(transaction_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, transaction_not_found(transaction_id))
    return raw_json(record)


@router.get(
    "/{transaction_id}/explanation",
    response_model=Explanation,
    response_description="Every feature's SHAP contribution.",
    responses=NOT_FOUND,
    summary="SHAP explanation of one transaction's score",
    description="The expected value and every feature's contribution (score units, model-input order); "
    "expected value + Σ contributions = score. Roles: analyst, service, admin.",
)
async def get_explanation(_: TransactionsReader, transaction_id: TransactionId, store: StoreDep) -> Response:
    record = await store.explanation(transaction_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, transaction_not_found(transaction_id))
    return json_response(record)
