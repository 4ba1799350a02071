"""The hot route, answered below FastAPI: ``GET /v1/transactions/{transaction_id}``.

A transaction lookup is the call the scoring clients make at volume, and FastAPI's per-request machinery
(routing over every route, dependency solving, parameter validation, the Request object) cost more CPU
than the lookup itself. This pure ASGI layer answers the common cases of that one route directly, with
the same checks, in the same order, as the FastAPI route it shadows:

- the id must match :data:`api.deps.ID_REGEX` (else the FastAPI route answers: its 422 names the parameter);
- the ``X-API-Key`` must be known (else FastAPI: 401) and its role one that reads transactions (else 403);
- the store's JSON text (built by PostgreSQL) is the body, as the route returns it; an unknown id is the
  route's 404 body; a store that cannot answer goes to FastAPI (503 from its exception handler).

Anything else (another method, a trailing slash, a bad id, a missing key) is passed on untouched, so the
FastAPI route stays the contract: it is documented in the OpenAPI schema and answers every case the hot
path does not. The metrics middleware sees the matched route template as for any other request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from api.cursor import ID_PATTERN
from api.deps import transaction_not_found
from api.metrics import ASGIApp, Receive, Scope, Send
from api.security import KeyRing, Principal
from serving.queries import ServingStore, StoreUnavailable

PREFIX = "/v1/transactions/"
_KEY_HEADER = b"x-api-key"
_JSON_HEADERS = [(b"content-type", b"application/json")]


class TransactionHotPath:
    """ASGI middleware answering ``GET /v1/transactions/{id}`` for keys whose role is in ``roles``."""

    def __init__(self, app: ASGIApp, *, keys: KeyRing, store: ServingStore, roles: Iterable[str],
                 route: Any = None) -> None:
        self.app = app
        self.keys = keys
        self.store = store
        self.roles = frozenset(roles)
        self.route = route  # the FastAPI route shadowed (for the metrics label); set by create_app
        self._principals: dict[str, Principal | None] = {}

    def _principal(self, presented: str) -> Principal | None:
        """``KeyRing.authenticate``, remembered per presented key (the ring is fixed for the process)."""
        try:
            return self._principals[presented]
        except KeyError:
            pass
        principal = self.keys.authenticate(presented)
        if len(self._principals) < 1024:  # bounded: unknown keys a caller invents do not grow it without end
            self._principals[presented] = principal
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if (path.startswith(PREFIX) and ID_PATTERN.fullmatch(path, len(PREFIX)) is not None
                    and await self._answer(path[len(PREFIX):], scope, send)):
                return
        await self.app(scope, receive, send)

    async def _answer(self, transaction_id: str, scope: Scope, send: Send) -> bool:
        """Send the answer and return True, or return False (nothing sent) to let FastAPI answer."""
        presented = None
        for name, value in scope["headers"]:
            if name == _KEY_HEADER:
                presented = value.decode("latin-1")
                break
        if not presented:
            return False
        principal = self._principal(presented)
        if principal is None or principal.role not in self.roles:
            return False
        try:
            record = await self.store.transaction(transaction_id)
        except StoreUnavailable:
            return False
        if self.route is not None:
            scope["route"] = self.route
        if record is None:
            status = 404
            body = json.dumps({"detail": transaction_not_found(transaction_id)}, ensure_ascii=False,
                              separators=(",", ":")).encode()
        else:
            status = 200
            body = record.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(body)).encode()), *_JSON_HEADERS]})
        await send({"type": "http.response.body", "body": body})
        return True
