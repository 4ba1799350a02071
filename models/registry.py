"""MLflow Model Registry helpers (aliases only, no stages). The client is passed in.

Promotion history is kept in model-version tags:

* ``aegis.previous_champion`` on a version that became champion: the version it replaced
  (empty string if there was none) - this is what :func:`rollback` follows;
* ``aegis.promoted_at`` / ``aegis.promotion`` (JSON with metric name, values, test period);
* ``aegis.rolled_back_at`` / ``aegis.rolled_back_to`` on a version removed by a rollback,
  ``aegis.restored_at`` / ``aegis.restored_from`` on the version it was rolled back to.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "RollbackError",
    "get_alias_version",
    "list_versions",
    "promote_if_better",
    "register",
    "rollback",
    "set_alias",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_PREVIOUS = "aegis.previous_champion"
TAG_PROMOTED_AT = "aegis.promoted_at"
TAG_PROMOTION = "aegis.promotion"
TAG_CHALLENGER_EVAL = "aegis.challenger_evaluation"
TAG_ROLLED_BACK_AT = "aegis.rolled_back_at"
TAG_ROLLED_BACK_TO = "aegis.rolled_back_to"
TAG_RESTORED_AT = "aegis.restored_at"
TAG_RESTORED_FROM = "aegis.restored_from"

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


class RollbackError(RuntimeError):
    """Raised when there is no champion or no previous champion to roll back to."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_not_found(exc: MlflowException) -> bool:
    # a missing alias is reported as INVALID_PARAMETER_VALUE "... alias ... not found."
    if exc.error_code == "INVALID_PARAMETER_VALUE":
        return "not found" in exc.message.lower()
    return exc.error_code in _NOT_FOUND_CODES


def register(
    client: MlflowClient,
    name: str,
    model_uri: str,
    *,
    run_id: str | None = None,
    model_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
) -> ModelVersion:
    """Create the registered model if needed and add ``model_uri`` as a new version.

    For MLflow 3 logged models pass ``ModelInfo.model_uri`` (``models:/m-...``); the model
    id is then derived from it when ``model_id`` is not given.
    """
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if not _is_not_found(exc):
            raise
        client.create_registered_model(name)
    if model_id is None and model_uri.startswith("models:/m-"):
        model_id = model_uri.removeprefix("models:/").split("/", 1)[0]
    return client.create_model_version(
        name=name,
        source=model_uri,
        run_id=run_id,
        tags={k: str(v) for k, v in (tags or {}).items()},
        description=description,
        model_id=model_id,
    )


def get_alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``name@alias``, or None if the alias (or model) does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _is_not_found(exc):
            return None
        raise


def set_alias(client: MlflowClient, name: str, alias: str, version: str | int) -> None:
    """Point ``name@alias`` at ``version``."""
    client.set_registered_model_alias(name, alias, str(version))


def list_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """All versions of ``name``, oldest first."""
    escaped = name.replace("'", "\\'")
    versions = client.search_model_versions(f"name='{escaped}'")
    return sorted(versions, key=lambda v: int(v.version))


def _beats(new: float, old: float, higher_is_better: bool) -> bool:
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    return new > old if higher_is_better else new < old


def promote_if_better(
    client: MlflowClient,
    name: str,
    new_version: str | int,
    metric_new: float,
    metric_champion: float | None,
    *,
    metric_name: str = "metric",
    test_period: str | None = None,
    higher_is_better: bool = True,
) -> Literal["champion", "challenger"]:
    """Make ``new_version`` champion if there is none or it strictly beats the champion.

    ``metric_champion`` must be the current champion's metric on the *same* test period
    (None only when no champion exists). Otherwise the new version becomes challenger.
    """
    new_version = str(new_version)
    current = get_alias_version(client, name, CHAMPION)
    if current is not None and str(current.version) == new_version:
        return "champion"
    if current is not None and metric_champion is None:
        raise ValueError(f"{name}@{CHAMPION} exists (v{current.version}): metric_champion is required")
    record = json.dumps(
        {
            "metric_name": metric_name,
            "metric_new": float(metric_new),
            "metric_champion": None if metric_champion is None else float(metric_champion),
            "champion_version": None if current is None else str(current.version),
            "test_period": test_period,
        }
    )
    wins = current is None or (
        metric_champion is not None and _beats(float(metric_new), float(metric_champion), higher_is_better)
    )
    if wins:
        client.set_model_version_tag(name, new_version, TAG_PREVIOUS, "" if current is None else str(current.version))
        client.set_model_version_tag(name, new_version, TAG_PROMOTED_AT, _now())
        client.set_model_version_tag(name, new_version, TAG_PROMOTION, record)
        set_alias(client, name, CHAMPION, new_version)
        challenger = get_alias_version(client, name, CHALLENGER)
        if challenger is not None and str(challenger.version) == new_version:
            client.delete_registered_model_alias(name, CHALLENGER)
        return "champion"
    client.set_model_version_tag(name, new_version, TAG_CHALLENGER_EVAL, record)
    set_alias(client, name, CHALLENGER, new_version)
    return "challenger"


def rollback(client: MlflowClient, name: str) -> ModelVersion:
    """Move ``champion`` back to the version it replaced; returns the restored version.

    Repeated rollbacks walk further back through the ``aegis.previous_champion`` chain.
    """
    current = get_alias_version(client, name, CHAMPION)
    if current is None:
        raise RollbackError(f"{name} has no {CHAMPION} alias")
    previous = (current.tags or {}).get(TAG_PREVIOUS, "")
    if not previous:
        raise RollbackError(f"{name}@{CHAMPION} (v{current.version}) has no previous champion")
    now = _now()
    set_alias(client, name, CHAMPION, previous)
    client.set_model_version_tag(name, str(current.version), TAG_ROLLED_BACK_AT, now)
    client.set_model_version_tag(name, str(current.version), TAG_ROLLED_BACK_TO, previous)
    client.set_model_version_tag(name, previous, TAG_RESTORED_AT, now)
    client.set_model_version_tag(name, previous, TAG_RESTORED_FROM, str(current.version))
    return client.get_model_version(name, previous)
