"""Property-based: schemathesis generates requests from the app's own OpenAPI; no input may cause a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from conf.settings import Settings
from tests.integration.test_api import ADMIN, HEAVY, register_champion, seeded_store

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, spark: Any, postgres: Any,
               settings: Settings) -> Iterator[object]:
    home: Path = tmp_path_factory.mktemp("aegis-api-schema")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    register_champion(uri, home / "artifacts")
    app = create_app(seeded_store(spark, settings, home, "api_schema_test", uri))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_input_causes_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, positive and negative data (the pytest plugin's lazy loader is not used: it reads
    a private pytest attribute that pytest 9 no longer has)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/transactions/{transaction_id}", "/v1/decisions",
                                              "/v1/customers/{customer_id}/scores", "/v1/models/champion"}
    known = {"transaction_id": "tx-h03", "customer_id": HEAVY}
    for operation in operations:
        ids = {p.name: known[p.name] for p in operation.path_parameters if p.name in known}
        passes = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if ids:  # also real ids, so that the query parameters meet real rows
            passes.append((GenerationMode.POSITIVE, ids))
        for mode, path_parameters in passes:

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(headers={"X-API-Key": ADMIN}, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:  # no parameter to make invalid (e.g. /health)
                assert mode is GenerationMode.NEGATIVE
