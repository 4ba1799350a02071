"""GET /v1/models/champion: the served model version, from the MLflow registry."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from api.deps import ChampionsDep, ModelsReader
from api.schemas import ERRORS, Champion, Problem

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERRORS)


@router.get(
    "/champion",
    response_model=Champion,
    response_description="The champion version.",
    responses={404: {"model": Problem, "description": "No version has the serving alias."},
               503: {"model": Problem, "description": "The registry cannot be read."}},
    summary="The champion model",
    description="Registered model name, version, aliases, run id and the policy / feature versions of "
    "the version behind the serving alias (`mlflow.serving_alias`). Role: admin.",
)
def champion(_: ModelsReader, champions: ChampionsDep) -> Champion:
    found = champions.lookup()
    if found.state == "missing":
        raise HTTPException(status.HTTP_404_NOT_FOUND, found.detail)
    if found.state != "found" or found.info is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, found.detail)
    return Champion.model_validate(found.info)
