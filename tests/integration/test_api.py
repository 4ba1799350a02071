"""The score lookup API end to end: real Delta tables (deltalake writer) synced by the real resync (Spark) into
the embedded PostgreSQL, a real SQLite MLflow registry, the app in-process (Starlette's test transport under the
typed client) and once behind a real uvicorn server.
"""

from __future__ import annotations

import math
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from fastapi import FastAPI

from api.app import create_app
from api.client import AegisClient, ApiError, Forbidden, InvalidRequest, NotFound, Unauthorized
from api.labels import LabelPublisher
from conf.settings import Settings
from features.catalog import FeatureParams, feature_names
from features.table import features_table
from lakehouse.arrow import arrow_schema
from lakehouse.tables import SCORES
from serving.sync import resync
from tests.support import free_ports, fresh_database, make_settings

with warnings.catch_warnings():  # starlette suggests httpx2 for its test client; httpx is what we pin
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

ANALYST, SERVICE, ADMIN = "aegis-analyst-dev", "aegis-service-dev", "aegis-admin-dev"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
FEATURES = feature_names(FeatureParams())
HEAVY, LIGHT = "c-heavy", "c-light"
MODEL = "aegis-fraud"


# --------------------------------------------------------------------------- data


def _decision(i: int) -> str:
    return "block" if i % 7 == 3 else "review" if i % 5 == 1 else "allow"


def score_row(tx: str, customer: str, minutes: float, decision: str = "allow", score: float = 0.05) -> dict[str, Any]:
    when = T0 + timedelta(minutes=minutes)
    return {
        "transaction_id": tx, "customer_id": customer, "terminal_id": "t-001", "event_time": when,
        "event_date": when.date(), "amount": 10.0 + minutes, "score": score, "decision": decision,
        "model_name": MODEL, "model_version": "1", "feature_version": "fs-test", "policy_version": "p-test",
        "top_reasons": [{"feature": "amount", "value": 10.0 + minutes, "contribution": 0.2},
                        {"feature": "hour_sin", "value": 0.5, "contribution": -0.1}],
        "shap_values": [0.2, -0.1], "shap_expected_value": 0.01, "source": "stream", "run_id": "r1",
        "stream_batch_id": 1, "scored_at": when + timedelta(seconds=2), "latency_ms": 12.0,
    }


def feature_row(tx: str, customer: str, minutes: float, **values: float) -> dict[str, Any]:
    when = T0 + timedelta(minutes=minutes)
    row: dict[str, Any] = {name: float(i) for i, name in enumerate(FEATURES)}
    row.update(amount=10.0 + minutes, **values)
    row.update(transaction_id=tx, customer_id=customer, terminal_id="t-001", event_time=when,
               event_date=when.date(), feature_version="fs-test", source="stream", is_late=False,
               stream_batch_id=1, run_id="r1", computed_at=when + timedelta(seconds=1))
    return row


def write_scores(root: Path, rows: list[dict[str, Any]], mode: str = "append") -> None:
    table = pa.Table.from_pylist(rows, schema=arrow_schema(SCORES))
    write_deltalake(SCORES.path(root), table, partition_by=["event_date"], mode=mode)  # type: ignore[arg-type]


def write_features(root: Path, rows: list[dict[str, Any]], mode: str = "append") -> None:
    contract = features_table()
    table = pa.Table.from_pylist(rows, schema=arrow_schema(contract))
    write_deltalake(contract.path(root), table, partition_by=["event_date"], mode=mode)  # type: ignore[arg-type]


HEAVY_TX = [f"tx-h{i:02d}" for i in range(25)]


def seed_lakehouse(root: Path) -> None:
    """c-heavy: 25 scores (two share an event time), c-light: 3; features for all but tx-l2."""
    heavy = [score_row(tx, HEAVY, i, _decision(i), 0.9 if _decision(i) == "block" else 0.05)
             for i, tx in enumerate(HEAVY_TX)]
    heavy[24]["event_time"] = heavy[23]["event_time"]  # a tie: ordered by transaction id, descending
    light = [score_row(f"tx-l{i}", LIGHT, 100 + i) for i in range(3)]
    write_scores(root, heavy + light, mode="overwrite")
    feats = [feature_row(tx, HEAVY, i) for i, tx in enumerate(HEAVY_TX)]
    feats[24]["event_time"] = feats[23]["event_time"]
    feats += [feature_row("tx-l0", LIGHT, 100, customer_amount_zscore_30d=math.nan), feature_row("tx-l1", LIGHT, 101)]
    write_features(root, feats, mode="overwrite")


def register_champion(tracking_uri: str, artifacts: Path) -> str:
    """A real SQLite registry with ``aegis-fraud`` v1 as @champion (the model artifact is not needed)."""
    from mlflow import MlflowClient

    from models.registry import register, set_alias

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.create_experiment("aegis-api-test", artifact_location=artifacts.as_uri())
    run = client.create_run(experiment)
    version = register(client, MODEL, (artifacts / "model").as_uri(), run_id=run.info.run_id,
                       tags={"feature_version": "fs-test", "policy_version": "p-test"})
    set_alias(client, MODEL, "champion", version.version)
    return run.info.run_id


def wait_for(predicate: Callable[[], bool], timeout: float, every: float = 0.1) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(every)
    return time.monotonic() - started


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def api_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aegis-api")


@pytest.fixture(scope="module")
def registry(api_home: Path) -> dict[str, str]:
    uri = f"sqlite:///{api_home / 'mlflow.db'}"
    run_id = register_champion(uri, api_home / "artifacts")
    return {"uri": uri, "run_id": run_id}


def seeded_store(spark: Any, settings: Settings, home: Path, name: str, registry_uri: str) -> Settings:
    """Settings whose lakehouse holds the seed rows and whose fresh database holds them too (via resync)."""
    root = home / "lakehouse"
    seed_lakehouse(root)
    dsn = fresh_database(settings, name)
    seeded = make_settings(home, paths__lakehouse=str(root), mlflow__tracking_uri=registry_uri, serving__dsn=dsn)
    assert resync(spark, seeded, T0.date(), T0.date(), features=features_table()) == {"scores": 28, "features": 27}
    return seeded


@pytest.fixture(scope="module")
def api_settings(spark: Any, postgres: Any, settings: Settings, api_home: Path, registry: dict[str, str]) -> Settings:
    return seeded_store(spark, settings, api_home, "api_test", registry["uri"])


@pytest.fixture(scope="module")
def app(api_settings: Settings) -> Iterator[FastAPI]:
    application = create_app(api_settings)
    with TestClient(application) as http:  # runs the lifespan: connection pool, MLflow client
        application.state.http = http
        yield application


@pytest.fixture(scope="module")
def http(app: FastAPI) -> TestClient:
    return app.state.http  # type: ignore[no-any-return]


@pytest.fixture
def client(http: TestClient) -> Callable[[str | None], AegisClient]:
    return lambda key: AegisClient(http=http, api_key=key)


# --------------------------------------------------------------------------- reads


def test_transaction_has_score_versions_reasons_and_features(client: Callable[[str | None], AegisClient]) -> None:
    tx = client(SERVICE).transaction("tx-h03")
    assert tx.transaction_id == "tx-h03" and tx.customer_id == HEAVY
    assert tx.decision == "block" and tx.score == pytest.approx(0.9)
    assert (tx.model_name, tx.model_version) == (MODEL, "1")
    assert (tx.policy_version, tx.feature_version) == ("p-test", "fs-test")
    assert [r.feature for r in tx.top_reasons] == ["amount", "hour_sin"]
    assert tx.top_reasons[0].contribution == pytest.approx(0.2)
    assert tx.event_time == T0 + timedelta(minutes=3)
    assert tx.features is not None and tx.features.feature_version == "fs-test"
    assert list(tx.features.values) == FEATURES  # model-input order
    assert tx.features.values["amount"] == pytest.approx(13.0)


def test_transaction_without_features_and_non_finite_values(client: Callable[[str | None], AegisClient]) -> None:
    api = client(ANALYST)
    assert api.transaction("tx-l2").features is None
    features = api.transaction("tx-l0").features
    assert features is not None and features.values["customer_amount_zscore_30d"] is None  # NaN -> null


def test_customer_scores_paginate_newest_first(client: Callable[[str | None], AegisClient]) -> None:
    api = client(ANALYST)
    pages, cursor = [], None
    while True:
        page = api.customer_scores(HEAVY, limit=10, cursor=cursor)
        pages.append([s.transaction_id for s in page.items])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    ids = [tx for p in pages for tx in p]
    assert sorted(ids) == sorted(HEAVY_TX)
    assert ids[:3] == ["tx-h24", "tx-h23", "tx-h22"]  # tie on event time: transaction id descending
    assert ids == [s.transaction_id for s in api.iter_customer_scores(HEAVY, page_size=7)]


def test_customer_scores_filters(client: Callable[[str | None], AegisClient]) -> None:
    api = client(ANALYST)
    blocks = api.customer_scores(HEAVY, decision="block").items
    assert [s.transaction_id for s in blocks] == [tx for i, tx in enumerate(HEAVY_TX) if _decision(i) == "block"][::-1]
    window = api.customer_scores(HEAVY, since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=8)).items
    assert [s.transaction_id for s in window] == ["tx-h07", "tx-h06", "tx-h05"]  # since inclusive, until exclusive
    assert api.customer_scores(HEAVY, since="2030-01-01").items == []


def test_decisions_queue(client: Callable[[str | None], AegisClient]) -> None:
    api = client(SERVICE)
    flagged = [tx for i, tx in enumerate(HEAVY_TX) if _decision(i) != "allow"][::-1]
    first = api.decisions(limit=4)
    assert [s.transaction_id for s in first.items] == flagged[:4] and first.next_cursor
    rest = api.decisions(limit=100, cursor=first.next_cursor)
    assert [s.transaction_id for s in rest.items] == flagged[4:] and rest.next_cursor is None
    assert {s.decision for s in api.decisions(decision="review", limit=100).items} == {"review"}
    assert all(s.event_time >= T0 + timedelta(minutes=10)
               for s in api.decisions(since=T0 + timedelta(minutes=10)).items)


def test_customer_features_latest(client: Callable[[str | None], AegisClient]) -> None:
    latest = client(ANALYST).customer_features(HEAVY)
    assert latest.customer_id == HEAVY and latest.transaction_id in ("tx-h23", "tx-h24")
    assert latest.values["amount"] == pytest.approx(33.0 if latest.transaction_id == "tx-h23" else 34.0)


def test_champion(client: Callable[[str | None], AegisClient], registry: dict[str, str]) -> None:
    champion = client(ADMIN).champion()
    assert (champion.name, champion.version, champion.alias) == (MODEL, "1", "champion")
    assert "champion" in champion.aliases and champion.run_id == registry["run_id"]
    assert (champion.policy_version, champion.feature_version) == ("p-test", "fs-test")


# --------------------------------------------------------------------------- auth, validation, 404


@pytest.mark.parametrize(("key", "path", "error"), [
    (None, "/v1/transactions/tx-h01", Unauthorized),
    ("not-a-key", "/v1/transactions/tx-h01", Unauthorized),
    ("not-a-key", "/v1/transactions/bad id!", Unauthorized),  # auth before validation: nothing leaks
    (SERVICE, "/v1/customers/c-heavy/scores", Forbidden),
    (SERVICE, "/v1/customers/c-heavy/features", Forbidden),
    (SERVICE, "/v1/models/champion", Forbidden),
    (ANALYST, "/v1/models/champion", Forbidden),
    (None, "/metrics", Unauthorized),
])
def test_auth_refusals(client: Callable[[str | None], AegisClient], key: str | None, path: str,
                       error: type[ApiError]) -> None:
    with pytest.raises(error):
        client(key).request(path)


@pytest.mark.parametrize(("key", "path"), [
    (SERVICE, "/v1/transactions/tx-h01"), (SERVICE, "/v1/decisions"), (ANALYST, "/v1/transactions/tx-h01"),
    (ANALYST, "/v1/customers/c-heavy/scores"), (ANALYST, "/v1/customers/c-heavy/features"),
    (ANALYST, "/v1/decisions"), (ADMIN, "/v1/models/champion"), (ADMIN, "/v1/customers/c-heavy/scores"),
    (None, "/health"), (None, "/readyz"),
])
def test_auth_grants(client: Callable[[str | None], AegisClient], key: str | None, path: str) -> None:
    assert client(key).request(path, auth=key is not None).status_code == 200


def test_unauthorized_response_shape(http: TestClient) -> None:
    response = http.get("/v1/decisions", headers={"X-API-Key": "aegis-analyst-dev "})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "X-API-Key"
    assert "aegis-analyst-dev" not in response.text


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/v1/transactions/" + "x" * 65, {}, "transaction_id"),
    ("/v1/transactions/tx%21h01", {}, "transaction_id"),
    ("/v1/transactions/tx%C3%A9", {}, "transaction_id"),
    ("/v1/customers/c%20heavy/scores", {}, "customer_id"),
    ("/v1/customers/c-heavy/scores", {"limit": "0"}, "limit"),
    ("/v1/customers/c-heavy/scores", {"limit": "1001"}, "limit"),
    ("/v1/customers/c-heavy/scores", {"limit": "ten"}, "limit"),
    ("/v1/customers/c-heavy/scores", {"since": "yesterday"}, "since"),
    ("/v1/customers/c-heavy/scores", {"since": "1714550400"}, "since"),
    ("/v1/customers/c-heavy/scores", {"until": "2024-02-30"}, "until"),
    ("/v1/customers/c-heavy/scores", {"since": "2024-05-02", "until": "2024-05-01"}, "until"),
    ("/v1/customers/c-heavy/scores", {"decision": "maybe"}, "decision"),
    ("/v1/customers/c-heavy/scores", {"cursor": "not-a-cursor"}, "cursor"),
    ("/v1/customers/c-heavy/scores", {"cursor": "eyJ2IjoxfQ"}, "cursor"),
    ("/v1/decisions", {"decision": "allow"}, "decision"),
    ("/v1/decisions", {"limit": "-5"}, "limit"),
    ("/v1/decisions", {"since": "9999-12-31T23:59:59-23:59"}, None),  # extreme but valid: 200
])
def test_invalid_parameters_are_422_naming_them(client: Callable[[str | None], AegisClient], path: str,
                                                 params: dict[str, str], param: str | None) -> None:
    if param is None:
        assert client(ADMIN).request(path, params).status_code == 200
        return
    with pytest.raises(InvalidRequest) as info:
        client(ADMIN).request(path, params)
    assert param in info.value.params


def test_cursor_is_bound_to_its_query(client: Callable[[str | None], AegisClient]) -> None:
    api = client(ANALYST)
    cursor = api.customer_scores(HEAVY, limit=2).next_cursor
    with pytest.raises(InvalidRequest) as info:
        api.customer_scores(HEAVY, limit=2, cursor=cursor, decision="block")
    assert info.value.params == ["cursor"]
    with pytest.raises(InvalidRequest):
        api.decisions(cursor=cursor)
    with pytest.raises(InvalidRequest):
        api.customer_scores(LIGHT, cursor=cursor)


def test_unknown_ids_are_404(client: Callable[[str | None], AegisClient]) -> None:
    api = client(ADMIN)
    for call in (lambda: api.transaction("tx-nope"), lambda: api.customer_scores("c-nope"),
                 lambda: api.customer_features("c-nope")):
        with pytest.raises(NotFound):
            call()


# --------------------------------------------------------------------------- operations


def test_readyz_ready_and_metrics(client: Callable[[str | None], AegisClient]) -> None:
    api = client(SERVICE)
    ready = api.ready()
    assert ready.ready and ready.missing == [] and ready.checks["store"].rows == 28
    assert ready.checks["schema"].version == 2
    assert api.health()
    api.transaction("tx-h01")
    text = api.metrics()
    assert 'aegis_api_requests_total{method="GET",route="/v1/transactions/{transaction_id}",status="200"}' in text
    assert 'aegis_api_request_duration_seconds_bucket{method="GET",route="/readyz",le="+Inf"}' in text
    assert 'aegis_api_store_up{check="schema"} 1' in text
    assert 'aegis_api_store_rows{table="scores"} 28' in text
    assert ANALYST not in text and SERVICE not in text


def test_readyz_names_a_store_without_schema_and_a_down_store_never_500(tmp_path: Path, settings: Settings,
                                                                         postgres: Any) -> None:
    empty_registry = f"sqlite:///{tmp_path / 'none.db'}"
    (closed,) = free_ports(1)
    for dsn, missing in ((fresh_database(settings, "api_no_schema", migrate=False), {"schema", "champion"}),
                         (f"postgresql://aegis:x@127.0.0.1:{closed}/aegis", {"store", "schema", "champion"})):
        application = create_app(make_settings(tmp_path, mlflow__tracking_uri=empty_registry, serving__dsn=dsn))
        with TestClient(application) as http:
            api = AegisClient(http=http, api_key=ADMIN)
            ready = api.ready()
            assert not ready.ready and set(ready.missing) == missing
            assert "no MLflow registry" in (ready.checks["champion"].detail or "")
            assert "migrate" in (ready.checks["schema"].detail or "") or "store" in missing
            for path in ("/v1/transactions/tx-h01", "/v1/decisions", f"/v1/customers/{HEAVY}/scores",
                         f"/v1/customers/{HEAVY}/features"):
                response = http.get(path, headers={"X-API-Key": ADMIN})
                assert response.status_code == 503, path
                assert ("no schema" if "store" not in missing else "unreachable") in response.json()["detail"]
            with pytest.raises(NotFound):
                api.champion()


def test_readyz_503_with_tables_but_no_champion(tmp_path: Path, api_settings: Settings) -> None:
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri, registry_uri=uri).create_registered_model(MODEL)  # a model, no alias
    settings = make_settings(tmp_path, mlflow__tracking_uri=uri, serving__dsn=api_settings.serving_dsn)
    application = create_app(settings)
    with TestClient(application) as http:
        response = http.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["missing"] == ["champion"] and "@champion" in body["checks"]["champion"]["detail"]


# --------------------------------------------------------------------------- explanation, verdicts, console


def test_explanation_pairs_every_shap_value_with_its_feature(client: Callable[[str | None], AegisClient]) -> None:
    body = client(ANALYST).request("/v1/transactions/tx-h03/explanation").json()
    assert body["expected_value"] == pytest.approx(0.01) and body["score"] == pytest.approx(0.9)
    assert [c["contribution"] for c in body["contributions"]] == pytest.approx([0.2, -0.1])
    assert [c["feature"] for c in body["contributions"]] == FEATURES[:2]  # the transaction's feature set


@pytest.mark.parametrize(("body", "param"), [
    ({"transaction_id": "tx-h03", "is_fraud": "yes"}, "is_fraud"),
    ({"transaction_id": "tx-h03", "is_fraud": 1}, "is_fraud"),
    ({"transaction_id": "tx-h03"}, "is_fraud"),
    ({"transaction_id": "bad id!", "is_fraud": True}, "transaction_id"),
    ({"is_fraud": True}, "transaction_id"),
    ({"transaction_id": "tx-h03", "is_fraud": True, "note": "x" * 501}, "note"),
    ({"transaction_id": "tx-h03", "is_fraud": True, "analyst": "me"}, "analyst"),
])
def test_bad_verdicts_are_422_naming_the_field(http: TestClient, body: dict[str, Any], param: str) -> None:
    response = http.post("/v1/verdicts", json=body, headers={"X-API-Key": ANALYST})
    assert response.status_code == 422
    assert param in {str(d["loc"][-1]) for d in response.json()["detail"]}


def test_verdict_refusals_and_unpublishable_verdict_is_not_recorded(app: FastAPI, http: TestClient) -> None:
    verdict = {"transaction_id": "tx-h03", "is_fraud": True}
    assert http.post("/v1/verdicts", json=verdict, headers={"X-API-Key": SERVICE}).status_code == 403
    assert http.post("/v1/verdicts", json=verdict).status_code == 401
    unknown = http.post("/v1/verdicts", json={"transaction_id": "tx-nope", "is_fraud": False},
                        headers={"X-API-Key": ANALYST})
    assert unknown.status_code == 404
    (closed,) = free_ports(1)
    app.state.labels = LabelPublisher(f"127.0.0.1:{closed}", "nowhere", timeout=2.0)  # no broker there
    try:
        response = http.post("/v1/verdicts", json=verdict, headers={"X-API-Key": ANALYST})
    finally:
        app.state.labels = LabelPublisher.from_settings(app.state.settings)
    assert response.status_code == 503 and "labels topic unavailable" in response.json()["detail"]
    import psycopg

    with psycopg.connect(app.state.settings.serving_dsn) as conn:  # rolled back with the failed publish
        assert conn.execute("SELECT count(*) FROM verdicts").fetchone() == (0,)


def test_console_page_and_me(http: TestClient) -> None:
    page = http.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/console/static/chart.umd.min.js"' in page.text
    assert http.get("/console/static/chart.umd.min.js").status_code == 200
    assert http.get("/v1/me", headers={"X-API-Key": ANALYST}).json() == {"name": "local-analyst", "role": "analyst"}
    assert http.get("/v1/me", headers={"X-API-Key": SERVICE}).status_code == 403


# --------------------------------------------------------------------------- a real server


def test_real_uvicorn_server(api_settings: Settings) -> None:
    import uvicorn

    (port,) = free_ports(1)
    config = uvicorn.Config(create_app(api_settings), host="127.0.0.1", port=port, lifespan="on",
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30.0)
        with AegisClient(f"http://127.0.0.1:{port}", api_key=ADMIN, timeout=10.0) as api:
            wait_for(lambda: api.ready().ready, 30.0, every=0.2)
            assert api.transaction("tx-h03").decision == "block"
            assert len(api.customer_scores(HEAVY, limit=5).items) == 5
            assert api.champion().version == "1"
            with pytest.raises(InvalidRequest):
                api.customer_scores(HEAVY, limit=0)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # a malformed request line
            raw.sendall(b"GET /v1/transactions/\x00\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert raw.recv(64).startswith(b"HTTP/1.1 4")
    finally:
        server.should_exit = True
        thread.join(15)
    assert not thread.is_alive()
