"""Registry helpers against a real sqlite-backed MLflow registry (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from models.registry import (
    CHALLENGER,
    CHAMPION,
    RollbackError,
    get_alias_version,
    list_versions,
    promote_if_better,
    register,
    rollback,
    set_alias,
)


def _register_n(client: MlflowClient, name: str, n: int, tmp_uri: str) -> list[str]:
    return [str(register(client, name, f"{tmp_uri}/model-{i}", tags={"i": i}).version) for i in range(n)]


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    version = get_alias_version(client, name, alias)
    return None if version is None else str(version.version)


def test_promote_challenger_and_rollback(mlflow_env: tuple[MlflowClient, str], tmp_path: Path) -> None:
    client, _ = mlflow_env
    name = "aegis-fraud"
    v1, v2, v3, v4 = _register_n(client, name, 4, tmp_path.as_uri())
    assert [str(v.version) for v in list_versions(client, name)] == [v1, v2, v3, v4]
    assert get_alias_version(client, name, CHAMPION) is None
    assert get_alias_version(client, "no-such-model", CHAMPION) is None

    # no champion yet -> champion
    assert promote_if_better(client, name, v1, 0.30, None, metric_name="cp@100", test_period="2024-W10") == "champion"
    assert _alias(client, name, CHAMPION) == v1

    # worse on the same test period -> challenger, champion unchanged
    assert promote_if_better(client, name, v2, 0.25, 0.30) == "challenger"
    assert _alias(client, name, CHAMPION) == v1
    assert _alias(client, name, CHALLENGER) == v2

    # equal is not better
    assert promote_if_better(client, name, v3, 0.30, 0.30) == "challenger"

    # better -> champion; history recorded on the new version
    assert promote_if_better(client, name, v4, 0.40, 0.30, metric_name="cp@100") == "champion"
    champion = get_alias_version(client, name, CHAMPION)
    assert champion is not None and str(champion.version) == v4
    assert champion.tags["aegis.previous_champion"] == v1
    record = json.loads(champion.tags["aegis.promotion"])
    assert record["metric_new"] == 0.40 and record["champion_version"] == v1

    # a champion exists: its metric is required
    with pytest.raises(ValueError, match="metric_champion"):
        promote_if_better(client, name, v2, 0.9, None)

    # rollback: v4 -> v1, history in tags
    restored = rollback(client, name)
    assert str(restored.version) == v1
    assert _alias(client, name, CHAMPION) == v1
    demoted = client.get_model_version(name, v4)
    assert demoted.tags["aegis.rolled_back_to"] == v1
    assert client.get_model_version(name, v1).tags["aegis.restored_from"] == v4

    # v1 was the first champion: nothing further to roll back to
    with pytest.raises(RollbackError):
        rollback(client, name)


def test_promotion_clears_challenger_alias_and_set_alias(mlflow_env: tuple[MlflowClient, str], tmp_path: Path) -> None:
    client, _ = mlflow_env
    name = "aegis-fraud-2"
    v1, v2 = _register_n(client, name, 2, tmp_path.as_uri())
    promote_if_better(client, name, v1, 0.5, None)
    assert promote_if_better(client, name, v2, 0.4, 0.5) == "challenger"
    # re-evaluated later on a new test period where it wins
    assert promote_if_better(client, name, v2, 0.6, 0.5) == "champion"
    assert get_alias_version(client, name, CHALLENGER) is None
    set_alias(client, name, "shadow", v1)
    assert _alias(client, name, "shadow") == v1
    with pytest.raises(RollbackError):
        rollback(client, "empty-model-without-champion")
