"""The KRaft cluster id the project generates for its local broker."""

from __future__ import annotations

import base64
import itertools

from lakehouse.kafka_broker import _new_cluster_id


def test_cluster_id_is_22_url_safe_characters() -> None:
    cluster_id = _new_cluster_id()
    assert len(cluster_id) == 22
    assert base64.urlsafe_b64decode(cluster_id + "==") != b""


def test_an_id_starting_with_a_dash_is_drawn_again() -> None:
    # 0xF8 encodes to "-" as the first URL-safe base64 character: kafka-storage would read it as an option.
    draws = itertools.chain([b"\xf8" + bytes(15)], itertools.repeat(bytes(range(16))))
    cluster_id = _new_cluster_id(lambda: next(draws))
    assert not cluster_id.startswith("-")
    assert cluster_id == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")
