"""Opaque keyset cursors: base64url JSON of the last item's (event time, transaction id) and the query."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from serving.queries import Position

ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_CURSOR_LENGTH = 512
_INT64 = (-(2**63), 2**63 - 1)


class CursorError(ValueError):
    """The cursor is not one this API issued for this query."""


def fingerprint(*parts: Any) -> str:
    """A short digest of the query a cursor belongs to."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def encode(kind: str, position: Position, query: str) -> str:
    """Cursor text for ``position`` in the query identified by ``kind`` + ``query`` fingerprint."""
    payload = {"v": 1, "k": kind, "t": position[0], "id": position[1], "f": query}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str, kind: str, query: str) -> Position:
    """The position in ``text``; raises CursorError when it is malformed or from another query."""
    if not text or len(text) > MAX_CURSOR_LENGTH:
        raise CursorError("malformed cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("malformed cursor") from None
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise CursorError("malformed cursor")
    t, tx = payload.get("t"), payload.get("id")
    if type(t) is not int or not (_INT64[0] <= t <= _INT64[1]):
        raise CursorError("malformed cursor")
    if not isinstance(tx, str) or not ID_PATTERN.fullmatch(tx):
        raise CursorError("malformed cursor")
    if payload.get("k") != kind or payload.get("f") != query:
        raise CursorError("cursor belongs to another query (parameters changed)")
    return (t, tx)
