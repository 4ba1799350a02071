"""A small typed client for the score lookup API (httpx, synchronous).

>>> with AegisClient("http://127.0.0.1:8080", api_key="aegis-analyst-dev") as api:  # doctest: +SKIP
...     api.transaction("tx-7f3a9c2e51b04d88").score
...     for score in api.iter_customer_scores("c-0001f4", decision="block"):
...         print(score.transaction_id, score.score)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from api.schemas import Champion, CustomerFeatures, Readiness, Score, ScorePage, TransactionScore

M = TypeVar("M", bound=BaseModel)
CustomerDecision = Literal["allow", "review", "block"]


class ApiError(Exception):
    """A non-2xx answer: ``status_code`` and the body's ``detail``."""

    def __init__(self, status_code: int, detail: Any, response: httpx.Response | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.response = response

    @property
    def params(self) -> list[str]:
        """Names of the invalid parameters of a 422 (e.g. ``["limit"]``)."""
        if not isinstance(self.detail, list):
            return []
        return [str(issue["loc"][-1]) for issue in self.detail if isinstance(issue, dict) and issue.get("loc")]


class Unauthorized(ApiError):
    """401: missing or unknown API key."""


class Forbidden(ApiError):
    """403: the key's role may not read the resource."""


class NotFound(ApiError):
    """404: unknown id."""


class InvalidRequest(ApiError):
    """422: invalid parameter(s); see :attr:`ApiError.params`."""


_ERRORS: dict[int, type[ApiError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 422: InvalidRequest}


def _time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class AegisClient:
    """Client for one API base URL and key; pass ``http`` to use an existing httpx.Client (e.g. a TestClient)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8080", api_key: str | None = None, *,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None,
                 http: httpx.Client | None = None) -> None:
        self._owned = http is None
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self.api_key = api_key

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def __enter__(self) -> AegisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing

    def request(self, path: str, params: dict[str, Any] | None = None, *, auth: bool = True) -> httpx.Response:
        """GET ``path``; raises :class:`ApiError` (or a subclass) on a non-2xx status."""
        headers = {"X-API-Key": self.api_key} if auth and self.api_key is not None else {}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self.http.get(path, params=query, headers=headers)
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise _ERRORS.get(response.status_code, ApiError)(response.status_code, detail, response)

    def _get(self, model: type[M], path: str, params: dict[str, Any] | None = None) -> M:
        return model.model_validate(self.request(path, params).json())

    # ---- endpoints

    def health(self) -> bool:
        """True when ``/health`` answers ok."""
        return bool(self.request("/health", auth=False).json().get("status") == "ok")

    def ready(self) -> Readiness:
        """``/readyz`` (both 200 and 503 are returned as a :class:`Readiness`)."""
        response = self.http.get("/readyz")
        if response.status_code not in (200, 503):
            raise ApiError(response.status_code, response.text, response)
        return Readiness.model_validate(response.json())

    def transaction(self, transaction_id: str) -> TransactionScore:
        """Score, decision, versions, reasons and features of one transaction."""
        return self._get(TransactionScore, f"/v1/transactions/{quote(transaction_id, safe='')}")

    def customer_scores(self, customer_id: str, *, since: datetime | str | None = None,
                        until: datetime | str | None = None, decision: CustomerDecision | None = None,
                        limit: int | None = None, cursor: str | None = None) -> ScorePage:
        """One page of a customer's scores, newest first."""
        params = {"since": _time(since), "until": _time(until), "decision": decision, "limit": limit,
                  "cursor": cursor}
        return self._get(ScorePage, f"/v1/customers/{quote(customer_id, safe='')}/scores", params)

    def iter_customer_scores(self, customer_id: str, *, page_size: int = 100, **filters: Any) -> Iterator[Score]:
        """Every score of a customer (following the cursors), newest first."""
        cursor = None
        while True:
            page = self.customer_scores(customer_id, limit=page_size, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def customer_features(self, customer_id: str) -> CustomerFeatures:
        """The customer's latest feature vector."""
        return self._get(CustomerFeatures, f"/v1/customers/{quote(customer_id, safe='')}/features")

    def decisions(self, *, decision: Literal["review", "block"] | None = None, since: datetime | str | None = None,
                  limit: int | None = None, cursor: str | None = None) -> ScorePage:
        """One page of the review queue, newest first."""
        return self._get(ScorePage, "/v1/decisions",
                         {"decision": decision, "since": _time(since), "limit": limit, "cursor": cursor})

    def champion(self) -> Champion:
        """The champion model (admin keys)."""
        return self._get(Champion, "/v1/models/champion")

    def metrics(self) -> str:
        """The Prometheus exposition text."""
        return self.request("/metrics").text
