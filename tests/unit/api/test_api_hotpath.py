"""The hot transaction lookup below FastAPI answers exactly as the FastAPI route does (fake store, no server)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from api.app import create_app
from api.champion import ChampionSource
from api.hotpath import TransactionHotPath
from conf.settings import load_settings
from serving.queries import ServingStore, StoreUnavailable

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

BODY = '{"transaction_id" : "tx-1", "score" : 0.5, "features" : null}'


class FakeStore(ServingStore):
    """Answers ``transaction`` from a dict; counts calls; can be made unavailable."""

    def __init__(self) -> None:
        super().__init__("postgresql://unused")
        self.calls: list[str] = []
        self.down = False

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def transaction(self, transaction_id: str) -> str | None:
        self.calls.append(transaction_id)
        if self.down:
            raise StoreUnavailable("serving store unreachable: OperationalError")
        return BODY if transaction_id == "tx-1" else None


class NoChampion(ChampionSource):
    def __init__(self) -> None:
        pass

    def connect(self) -> None:
        pass


@pytest.fixture()
def setup() -> tuple[TestClient, FakeStore, Any]:
    store = FakeStore()
    app = create_app(load_settings("test", environ={}), store=store, champions=NoChampion())
    return TestClient(app), store, app


def _hot_path(app: Any) -> TransactionHotPath:
    return next(m for m in app.user_middleware if m.cls is TransactionHotPath).kwargs  # type: ignore[no-any-return]


def test_hot_path_is_installed_for_the_route_template_and_roles(setup: tuple[TestClient, FakeStore, Any]) -> None:
    _, _, app = setup
    kwargs = _hot_path(app)
    assert kwargs["route"].path == "/v1/transactions/{transaction_id}"
    assert set(kwargs["roles"]) == {"analyst", "service", "admin"}


def test_found_and_unknown_are_answered_with_the_route_bodies(setup: tuple[TestClient, FakeStore, Any]) -> None:
    http, store, _ = setup
    found = http.get("/v1/transactions/tx-1", headers={"X-API-Key": "aegis-service-dev"})
    assert (found.status_code, found.text, found.headers["content-type"]) == (200, BODY, "application/json")
    assert found.headers["content-length"] == str(len(BODY))
    missing = http.get("/v1/transactions/tx-none", headers={"X-API-Key": "aegis-analyst-dev"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "transaction 'tx-none' not found"})
    assert store.calls == ["tx-1", "tx-none"]
    metrics = http.get("/metrics", headers={"X-API-Key": "aegis-service-dev"}).text
    assert 'aegis_api_requests_total{method="GET",route="/v1/transactions/{transaction_id}",status="200"} 1' in metrics
    assert 'route="/v1/transactions/{transaction_id}",status="404"} 1' in metrics


@pytest.mark.parametrize(("key", "path", "status"), [
    (None, "/v1/transactions/tx-1", 401),
    ("wrong-key", "/v1/transactions/tx-1", 401),
    ("aegis-service-dev", "/v1/transactions/" + "x" * 65, 422),
    ("aegis-service-dev", "/v1/transactions/bad%20id", 422),
])
def test_refusals_fall_through_to_fastapi(setup: tuple[TestClient, FakeStore, Any], key: str | None, path: str,
                                          status: int) -> None:
    http, store, _ = setup
    response = http.get(path, headers={"X-API-Key": key} if key else {})
    assert response.status_code == status
    if status == 422:
        assert response.json()["detail"][0]["loc"] == ["path", "transaction_id"]
    else:
        assert response.headers["www-authenticate"] == "X-API-Key"
    assert store.calls == []


def test_other_methods_and_a_down_store_are_fastapi_answers(setup: tuple[TestClient, FakeStore, Any]) -> None:
    http, store, _ = setup
    assert http.post("/v1/transactions/tx-1", headers={"X-API-Key": "aegis-service-dev"}).status_code == 405
    store.down = True
    down = http.get("/v1/transactions/tx-1", headers={"X-API-Key": "aegis-service-dev"})
    assert (down.status_code, down.json()) == (503, {"detail": "serving store unreachable: OperationalError"})


def test_principals_are_remembered_per_key_with_a_bound() -> None:
    from api.security import KeyRing, hash_key

    ring = KeyRing([("s", hash_key("svc"), "service")])
    hot = TransactionHotPath(lambda *a: None, keys=ring, store=FakeStore(), roles=("service",))  # type: ignore[arg-type]
    assert hot._principal("svc") is hot._principal("svc") is not None
    for i in range(3000):
        assert hot._principal(f"guess-{i}") is None
    assert len(hot._principals) <= 1024
