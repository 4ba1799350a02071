"""The API's in-memory read model over real (tmp) Delta tables: indexes, pagination, refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from api import store as store_module
from api.store import LakehouseStore, arrow_schema, hash_string, hash_strings, iso_time, to_micros
from lakehouse.tables import SCORES

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def row(tx: str, customer: str, minutes: int, decision: str = "allow", scored: int = 0) -> dict[str, Any]:
    when = T0 + timedelta(minutes=minutes)
    return {
        "transaction_id": tx, "customer_id": customer, "terminal_id": "t", "event_time": when,
        "event_date": when.date(), "amount": 1.0, "score": 0.5, "decision": decision, "model_name": "m",
        "model_version": "1", "feature_version": "f", "policy_version": "p",
        "top_reasons": [{"feature": "amount", "value": 1.0, "contribution": float("nan")}],
        "source": "stream", "scored_at": when + timedelta(seconds=scored),
    }


def append(root: Path, rows: list[dict[str, Any]], mode: str = "append") -> None:
    table = pa.Table.from_pylist(rows, schema=arrow_schema(SCORES))
    write_deltalake(SCORES.path(root), table, partition_by=["event_date"], mode=mode)  # type: ignore[arg-type]


def ids(page: Any) -> list[str]:
    return [item["transaction_id"] for item in page.items]


def test_hashes_agree_between_the_vectorised_and_the_scalar_form() -> None:
    values = ["", "a", "tx-0001", "héllo-wörld", "x" * 80, "日本"]
    arr = pa.array(values)
    expected = [hash_string(v) for v in values]
    assert hash_strings(arr).tolist() == expected
    assert hash_strings(arr.slice(2, 3)).tolist() == expected[2:5]
    assert hash_strings(arr.cast(pa.large_string())).tolist() == expected
    assert hash_strings(pa.chunked_array([arr.slice(0, 2), arr.slice(2)])).tolist() == expected


def test_time_helpers() -> None:
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000  # naive = UTC
    assert iso_time(to_micros(T0)) == "2024-05-01T00:00:00.000000Z"
    assert iso_time(store_module.NULL_TIME) is None


def test_missing_table_then_created(tmp_path: Path) -> None:
    st = LakehouseStore.for_lakehouse(tmp_path)
    st.refresh()
    assert st.scores.state == "missing" and st.transaction("tx-1") is None
    assert st.decisions(decisions=["review", "block"]).items == []
    append(tmp_path, [row("tx-1", "c1", 0)])
    st.refresh()
    assert st.scores.state == "ready" and st.transaction("tx-1")["customer_id"] == "c1"
    assert st.transaction("tx-1")["top_reasons"] == [{"feature": "amount", "value": 1.0, "contribution": None}]


def test_pagination_ties_and_filters(tmp_path: Path) -> None:
    rows = [row(f"tx-{i:02d}", "c1", i, "review" if i % 3 == 0 else "allow") for i in range(10)]
    rows += [row("tx-10", "c1", 9), row("tx-0b", "c1", 9)]  # three rows at minute 9
    append(tmp_path, [*rows, row("tx-x", "c2", 5, "block")], mode="overwrite")
    st = LakehouseStore.for_lakehouse(tmp_path)
    st.refresh()
    seen, after = [], None
    while True:
        page = st.customer_scores("c1", limit=4, after=after)
        seen += ids(page)
        if page.next_position is None:
            break
        after = page.next_position
    assert seen[:3] == ["tx-10", "tx-0b", "tx-09"] and len(seen) == len(set(seen)) == 12
    assert ids(st.customer_scores("c1", decision="review")) == ["tx-09", "tx-06", "tx-03", "tx-00"]
    window = st.customer_scores("c1", since_us=to_micros(T0 + timedelta(minutes=2)),
                                until_us=to_micros(T0 + timedelta(minutes=4)))
    assert ids(window) == ["tx-03", "tx-02"]
    assert st.customer_scores("nobody") is None
    assert ids(st.decisions(decisions=["review", "block"])) == ["tx-09", "tx-06", "tx-x", "tx-03", "tx-00"]
    assert ids(st.decisions(decisions=["block"])) == ["tx-x"]


def test_appends_are_incremental_latest_write_wins_and_deltas_merge(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_DELTAS", 3)
    append(tmp_path, [row(f"tx-{i}", "c1", i) for i in range(5)], mode="overwrite")
    st = LakehouseStore.for_lakehouse(tmp_path)
    st.refresh()
    append(tmp_path, [row("tx-2", "c1", 2, "block", scored=60)])  # a re-score of tx-2
    st.refresh()
    status = st.scores.status()
    assert status.incremental_loads == 1 and status.segments == 2 and status.rows == 5
    assert st.transaction("tx-2")["decision"] == "block"
    assert ids(st.customer_scores("c1")) == ["tx-4", "tx-3", "tx-2", "tx-1", "tx-0"]
    assert [i["decision"] for i in st.customer_scores("c1").items][2] == "block"
    for k in range(4):
        append(tmp_path, [row(f"tx-n{k}", "c1", 10 + k)])
        st.refresh()
    status = st.scores.status()
    assert status.segments <= 1 + 3 and status.rows == 9 and status.lag == 0
    assert ids(st.customer_scores("c1", limit=3)) == ["tx-n3", "tx-n2", "tx-n1"]
    assert st.transaction("tx-2")["decision"] == "block"


def test_removed_files_trigger_a_full_reload(tmp_path: Path) -> None:
    append(tmp_path, [row("tx-1", "c1", 0), row("tx-2", "c2", 1)], mode="overwrite")
    st = LakehouseStore.for_lakehouse(tmp_path)
    st.refresh()
    DeltaTable(SCORES.path(tmp_path)).delete("transaction_id = 'tx-1'")
    st.refresh()
    assert st.transaction("tx-1") is None and st.transaction("tx-2") is not None
    assert st.scores.status().loads == 2 and st.scores.status().incremental_loads == 0


def test_segment_index_has_no_collision_blind_spots() -> None:
    table = pa.Table.from_pylist([row(f"t{i}", f"c{i % 7}", i) for i in range(500)], schema=arrow_schema(SCORES))
    seg = store_module.Segment("scores", table)
    for i in range(500):
        assert seg.find(f"t{i}", hash_string(f"t{i}")) == i
    assert seg.find("t500", hash_string("t500")) == -1
    assert sum(e - s for s, e in seg.cust_index.values()) == 500
    assert np.all(np.diff(seg.cust_nt[slice(*seg.cust_index["c0"])]) >= 0)


def test_rows_without_event_time_sort_last_and_paginate(tmp_path: Path) -> None:
    schema = arrow_schema(SCORES)
    schema = schema.set(schema.get_field_index("event_time"), pa.field("event_time", pa.timestamp("us", tz="UTC")))
    rows = [row("tx-a", "c1", 1), row("tx-b", "c1", 2), {**row("tx-c", "c1", 3), "event_time": None},
            {**row("tx-d", "c1", 3, "review"), "event_time": None}]
    write_deltalake(SCORES.path(tmp_path), pa.Table.from_pylist(rows, schema=schema), mode="overwrite")
    st = LakehouseStore.for_lakehouse(tmp_path)
    st.refresh()
    seen, after = [], None
    while True:
        page = st.customer_scores("c1", limit=1, after=after)
        seen += ids(page)
        if page.next_position is None:
            break
        after = page.next_position
    assert seen == ["tx-b", "tx-a", "tx-d", "tx-c"]
    assert st.transaction("tx-c")["event_time"] is None
    assert ids(st.customer_scores("c1", since_us=0)) == ["tx-b", "tx-a"]
    assert ids(st.decisions(decisions=["review"])) == ["tx-d"]
