"""Concurrent transaction lookups are coalesced into batches (no PostgreSQL needed)."""

from __future__ import annotations

import asyncio

import pytest

from serving.queries import StoreUnavailable, _Batcher


class Fetch:
    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self.in_flight = self.most_in_flight = 0

    async def __call__(self, keys: list[str]) -> dict[str, str]:
        self.batches.append(keys)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if self.fail is not None:
            raise self.fail
        return {k: f"body-{k}" for k in keys if not k.startswith("missing")}


def test_concurrent_lookups_share_statements_and_get_their_own_rows() -> None:
    fetch = Fetch()
    batcher = _Batcher(fetch, max_batch=8, max_in_flight=2)

    async def main() -> list[str | None]:
        keys = [f"tx-{i}" for i in range(30)] + ["missing-1", "tx-3"]
        return await asyncio.gather(*(batcher.get(k) for k in keys))

    results = asyncio.run(main())
    assert results[:30] == [f"body-tx-{i}" for i in range(30)]
    assert results[30:] == [None, "body-tx-3"]
    assert fetch.most_in_flight <= 2
    assert all(len(b) <= 8 for b in fetch.batches)
    assert len(fetch.batches) == 4  # 31 distinct ids in batches of 8
    assert sorted(k for b in fetch.batches for k in b) == sorted({*(f"tx-{i}" for i in range(30)), "missing-1"})


def test_a_lone_lookup_is_sent_at_once_and_errors_reach_every_waiter() -> None:
    fetch = Fetch()
    batcher = _Batcher(fetch, max_batch=8, max_in_flight=2)
    assert asyncio.run(batcher.get("tx-1")) == "body-tx-1"  # a new event loop each run: state is reset
    assert asyncio.run(batcher.get("tx-2")) == "body-tx-2"
    assert fetch.batches == [["tx-1"], ["tx-2"]]

    failing = _Batcher(Fetch(StoreUnavailable("serving store unreachable: OperationalError")), max_batch=8,
                       max_in_flight=1)

    async def main() -> list[object]:
        return await asyncio.gather(*(failing.get(f"tx-{i}") for i in range(5)), return_exceptions=True)

    errors = asyncio.run(main())
    assert all(isinstance(e, StoreUnavailable) for e in errors)


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    fetch = Fetch()
    batcher = _Batcher(fetch, max_batch=8, max_in_flight=1)

    async def main() -> str | None:
        first = asyncio.ensure_future(batcher.get("tx-1"))
        second = asyncio.ensure_future(batcher.get("tx-1"))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert asyncio.run(main()) == "body-tx-1"
