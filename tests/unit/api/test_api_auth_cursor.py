"""API keys and cursors."""

from __future__ import annotations

import base64
import json

import pytest

from api import cursor
from api.security import KeyRing, hash_key


def test_keyring_accepts_known_keys_only() -> None:
    ring = KeyRing([("a", hash_key("aegis-analyst-dev"), "analyst"), ("s", hash_key("svc").upper(), "service")])
    assert ring.authenticate("aegis-analyst-dev").role == "analyst"  # type: ignore[union-attr]
    assert ring.authenticate("svc").name == "s"  # type: ignore[union-attr]
    for bad in (None, "", "aegis-analyst-dev ", "x" * 10_000, hash_key("svc")):
        assert ring.authenticate(bad) is None
    with pytest.raises(ValueError):
        KeyRing([("bad", "abcd", "admin")])


def test_dev_keys_in_the_test_profile_match_their_documented_values() -> None:
    from conf.settings import load_settings

    ring = KeyRing.from_settings(load_settings("test", environ={}).api.keys)
    assert {ring.authenticate(f"aegis-{r}-dev").role for r in ("analyst", "service", "admin")} == {  # type: ignore[union-attr]
        "analyst", "service", "admin"}


def test_cursor_round_trip_and_rejections() -> None:
    text = cursor.encode("c", (1_700_000_000_000_000, "tx-1"), "q1")
    assert cursor.decode(text, "c", "q1") == (1_700_000_000_000_000, "tx-1")
    forged = base64.urlsafe_b64encode(json.dumps({"v": 1, "k": "c", "t": 2**70, "id": "x", "f": "q1"}).encode())
    bad = ["", "!!!", "e30", text + "x", forged.decode(), "a" * 600,
           base64.urlsafe_b64encode(b'{"v":1,"k":"c","t":1,"id":"a\\nb","f":"q1"}').decode()]
    for value in bad:
        with pytest.raises(cursor.CursorError):
            cursor.decode(value, "c", "q1")
    with pytest.raises(cursor.CursorError, match="another query"):
        cursor.decode(text, "c", "q2")
    with pytest.raises(cursor.CursorError):
        cursor.decode(text, "d", "q1")
