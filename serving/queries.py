"""The API's reads and the console's verdicts: indexed SQL through an async psycopg connection pool.

No table is held in memory: every lookup is one indexed statement (prepared by psycopg after a few
uses), and PostgreSQL builds the response JSON (``serving/migrations/0002_api_json.sql``), so the API
passes text through instead of building objects per row. Times go in and out as UTC; a page is fetched
with ``limit + 1`` rows to know whether it is the last one, and continues strictly after the keyset
position (event time, transaction id).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from serving import schema

#: Keyset position: (event time in microseconds since the epoch, transaction id); rows strictly after it.
Position = tuple[int, str]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

class StoreUnavailable(RuntimeError):
    """The serving store cannot answer (down, or without its schema); the message says which."""


@dataclass(frozen=True)
class Page:
    """One page of scores, newest first, each item a JSON text; ``next_position`` is None on the last page."""

    items: list[str]
    next_position: Position | None

    def body(self, next_cursor: str | None) -> str:
        """The ScorePage JSON."""
        return '{"items":[' + ",".join(self.items) + '],"next_cursor":' + json.dumps(next_cursor) + "}"


def to_micros(value: datetime) -> int:
    """Epoch microseconds of an aware (or naive = UTC) datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_MIN = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_MAX = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def from_micros(micros: int) -> datetime:
    """The UTC datetime of epoch microseconds, clamped to what Python can represent."""
    try:
        return min(max(EPOCH + timedelta(microseconds=micros), _MIN), _MAX)
    except OverflowError:
        return _MIN if micros < 0 else _MAX


def iso(value: datetime | None) -> str | None:
    """``2024-05-01T08:03:00.000000Z`` (the API's time format) of a UTC datetime."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


#: Transaction lookups, many ids in one statement: two primary-key probes per id, JSON built by PostgreSQL.
_TRANSACTIONS_SQL = (
    "SELECT s.transaction_id, api_score(s)::text, CASE WHEN f.transaction_id IS NULL THEN 'null' "
    "ELSE json_build_object('feature_version', f.feature_version, 'computed_at', api_time(f.computed_at), "
    "'values', api_values(fs.names, f.feature_values))::text END "
    "FROM scores s LEFT JOIN transaction_features f ON f.transaction_id = s.transaction_id "
    "LEFT JOIN feature_sets fs ON fs.feature_version = f.feature_version WHERE s.transaction_id = ANY(%s)")


class _Batcher:
    """Coalesces concurrent point lookups into one statement per batch (a per-process "data loader").

    A lookup joins the pending batch; a batch is sent on the next event-loop turn when fewer than
    ``max_in_flight`` batches are in flight, else when one comes back. At low load every lookup is its own
    batch (one loop turn later); under load the statements, round trips and driver work per lookup shrink
    with the batch, which is what lets one process and PostgreSQL on two cores keep up with 32 callers.
    A failed batch fails each of its lookups with the same error.
    """

    def __init__(self, fetch: Any, *, max_batch: int, max_in_flight: int) -> None:
        self._fetch = fetch
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, list[asyncio.Future[str | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def get(self, key: str) -> str | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests run several): nothing of the old one is alive
            self._loop, self._pending, self._tasks, self._scheduled = loop, {}, set(), False
        future: asyncio.Future[str | None] = loop.create_future()
        self._pending.setdefault(key, []).append(future)
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._pending and not self._scheduled and len(self._tasks) < self.max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._launch)

    def _launch(self) -> None:
        self._scheduled = False
        while self._pending and len(self._tasks) < self.max_in_flight:
            keys = list(itertools.islice(self._pending, self.max_batch))
            task = asyncio.ensure_future(self._run({k: self._pending.pop(k) for k in keys}))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._schedule()

    async def _run(self, batch: dict[str, list[asyncio.Future[str | None]]]) -> None:
        try:
            found = await self._fetch(list(batch))
        except (Exception, asyncio.CancelledError) as exc:  # every waiter gets the store's error
            error = exc if isinstance(exc, Exception) else StoreUnavailable("serving store: lookup cancelled")
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        for key, futures in batch.items():
            value = found.get(key)
            for future in futures:
                if not future.done():
                    future.set_result(value)


class ServingStore:
    """Reads of the serving store over an async connection pool (opened by :meth:`open`)."""

    def __init__(self, dsn: str, *, min_size: int = 2, max_size: int = 8, statement_timeout_ms: int = 5000) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self.statement_timeout_ms = statement_timeout_ms
        self._pool: Any = None
        self._transactions = _Batcher(self.transactions, max_batch=64, max_in_flight=2)

    @classmethod
    def from_settings(cls, settings: Any) -> ServingStore:
        s = settings.serving
        return cls(settings.serving_dsn, min_size=s.pool_min_size, max_size=s.pool_max_size,
                   statement_timeout_ms=s.statement_timeout_ms)

    async def open(self) -> None:
        """Create the pool without waiting for the server (the API starts while the store is down)."""
        from psycopg_pool import AsyncConnectionPool

        if self._pool is None:
            self._pool = AsyncConnectionPool(
                self.dsn, min_size=self.min_size, max_size=self.max_size, open=False, timeout=5.0,
                kwargs={"autocommit": True, "connect_timeout": 3,
                        "options": f"-c statement_timeout={self.statement_timeout_ms} -c TimeZone=UTC"},
                reconnect_timeout=0,
            )
            await self._pool.open(wait=False)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        import psycopg
        from psycopg_pool import PoolTimeout

        if self._pool is None:
            raise StoreUnavailable("serving store: connection pool not open")
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(sql, params)
                return list(await cursor.fetchall())
        except psycopg.errors.UndefinedTable:
            raise StoreUnavailable("serving store has no schema (run `aegis serving migrate`)") from None
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(f"serving store unreachable: {type(exc).__name__}") from None

    # ---- health

    async def status(self) -> dict[str, dict[str, Any]]:
        """Checks ``store`` (reachable) and ``schema`` (migrated to the latest version), never raising."""
        latest = schema.latest_version()
        try:
            rows = await self._fetch(
                f"SELECT (SELECT max(version) FROM {schema.VERSION_TABLE}) WHERE to_regclass(%s) IS NOT NULL",
                (schema.VERSION_TABLE,))
        except StoreUnavailable as exc:
            if "no schema" in str(exc):
                rows = []
            else:
                return {"store": {"ok": False, "detail": str(exc)},
                        "schema": {"ok": False, "detail": "store unreachable"}}
        version = rows[0][0] if rows else None
        if version is None:
            check = {"ok": False, "detail": "no schema: run `aegis serving migrate`", "version": None}
        elif version < latest:
            check = {"ok": False, "detail": f"schema version {version}, code needs {latest}: migrate",
                     "version": version}
        else:
            check = {"ok": True, "detail": None, "version": version}
        return {"store": {"ok": True, "detail": None}, "schema": check}

    async def counts(self) -> dict[str, int]:
        """Estimated rows per table (planner statistics: free, never a scan)."""
        rows = await self._fetch(
            "SELECT relname, GREATEST(reltuples, 0)::bigint FROM pg_class WHERE relname = ANY(%s)",
            (["scores", "transaction_features", "customer_features", "verdicts"],))
        return {str(name): int(n) for name, n in rows}

    # ---- lookups

    async def transaction(self, transaction_id: str) -> str | None:
        """The score of one transaction with the feature values it was scored on, as JSON text (or None).

        Lookups that arrive while others are in flight are coalesced into one statement (:class:`_Batcher`).
        """
        return await self._transactions.get(transaction_id)

    async def transactions(self, transaction_ids: Sequence[str]) -> dict[str, str]:
        """Transaction id -> the JSON text of :meth:`transaction`, for the ids found (one statement)."""
        rows = await self._fetch(_TRANSACTIONS_SQL, (list(transaction_ids),))
        return {tx: f'{score[:-1]}, "features" : {features}}}' for tx, score, features in rows}

    async def explanation(self, transaction_id: str) -> dict[str, Any] | None:
        """Every feature's SHAP contribution and the expected value (for the console's chart)."""
        rows = await self._fetch(
            "SELECT s.shap_values, s.shap_expected_value, s.score, fs.names FROM scores s "
            "LEFT JOIN feature_sets fs ON fs.feature_version = s.feature_version WHERE s.transaction_id = %s",
            (transaction_id,))
        if not rows:
            return None
        shap, expected, score, names = rows[0]
        contributions = [] if shap is None else [
            {"feature": names[i] if names and i < len(names) else f"f{i}", "contribution": finite(v)}
            for i, v in enumerate(shap)]
        return {"transaction_id": transaction_id, "expected_value": finite(expected), "score": finite(score),
                "contributions": contributions}

    async def customer_scores(self, customer_id: str, *, since_us: int | None = None, until_us: int | None = None,
                              decision: str | None = None, limit: int = 50,
                              after: Position | None = None) -> Page | None:
        """A customer's scores, newest first; None if the customer has no score at all."""
        where, params = ["customer_id = %s"], [customer_id]
        self._window(where, params, since_us, until_us, after)
        if decision is not None:
            where.append("decision = %s")
            params.append(decision)
        rows = await self._fetch(
            f"SELECT api_score(scores)::text, event_time, transaction_id FROM scores WHERE {' AND '.join(where)} "
            "ORDER BY event_time DESC, transaction_id DESC LIMIT %s", (*params, limit + 1))
        if not rows and not await self._fetch("SELECT 1 FROM scores WHERE customer_id = %s LIMIT 1", (customer_id,)):
            return None
        return self._page(rows, limit)

    async def decisions(self, *, decisions: Sequence[str], since_us: int | None = None, limit: int = 50,
                        after: Position | None = None) -> Page:
        """The review queue: scores whose decision is one of ``decisions`` (never allow), newest first."""
        where: list[str] = ["decision <> 'allow'"]
        params: list[Any] = []
        if len(decisions) == 1:
            where.append("decision = %s")
            params.append(decisions[0])
        else:
            where.append("decision = ANY(%s)")
            params.append(list(decisions))
        self._window(where, params, since_us, None, after)
        rows = await self._fetch(
            f"SELECT api_score(scores)::text, event_time, transaction_id FROM scores WHERE {' AND '.join(where)} "
            "ORDER BY event_time DESC, transaction_id DESC LIMIT %s", (*params, limit + 1))
        return self._page(rows, limit)

    async def customer_features(self, customer_id: str) -> str | None:
        """The customer's latest feature vector (latest event time, then latest computation), as JSON text."""
        rows = await self._fetch(
            "SELECT json_build_object('customer_id', c.customer_id, 'transaction_id', c.transaction_id, "
            "'event_time', api_time(c.event_time), 'feature_version', c.feature_version, "
            "'computed_at', api_time(c.computed_at), 'values', api_values(fs.names, c.feature_values))::text "
            "FROM customer_features c LEFT JOIN feature_sets fs ON fs.feature_version = c.feature_version "
            "WHERE c.customer_id = %s", (customer_id,))
        return rows[0][0] if rows else None

    async def verdicts(self, transaction_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT verdict_id, is_fraud, analyst, note, reported_at, published_at FROM verdicts "
            "WHERE transaction_id = %s ORDER BY reported_at DESC LIMIT 20", (transaction_id,))
        return [{"verdict_id": r[0], "is_fraud": r[1], "analyst": r[2], "note": r[3], "reported_at": iso(r[4]),
                 "published_at": iso(r[5])} for r in rows]

    # ---- verdicts

    async def record_verdict(self, transaction_id: str, *, is_fraud: bool, analyst: str, note: str | None,
                             publish: Any) -> dict[str, Any] | None:
        """Record an analyst's verdict and publish its label event, atomically.

        ``publish(label)`` must deliver the label (raise on failure: the verdict is then rolled back).
        None when the transaction is not in the store.
        """
        import psycopg
        from psycopg_pool import PoolTimeout

        if self._pool is None:
            raise StoreUnavailable("serving store: connection pool not open")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cursor = await conn.execute(
                    "SELECT customer_id, terminal_id FROM scores WHERE transaction_id = %s", (transaction_id,))
                found = await cursor.fetchone()
                if found is None:
                    return None
                customer_id, terminal_id = found
                reported_at = datetime.now(UTC)
                cursor = await conn.execute(
                    "INSERT INTO verdicts (transaction_id, customer_id, terminal_id, is_fraud, analyst, note, "
                    "reported_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING verdict_id",
                    (transaction_id, customer_id, terminal_id or "", is_fraud, analyst, note, reported_at))
                verdict_id = (await cursor.fetchone())[0]  # type: ignore[index]
                label = {"transaction_id": transaction_id, "customer_id": customer_id,
                         "terminal_id": terminal_id or "", "is_fraud": is_fraud, "reported_at": reported_at}
                await publish(label)
                published_at = datetime.now(UTC)
                await conn.execute("UPDATE verdicts SET published_at = %s WHERE verdict_id = %s",
                                   (published_at, verdict_id))
        except psycopg.errors.UndefinedTable:
            raise StoreUnavailable("serving store has no schema (run `aegis serving migrate`)") from None
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(f"serving store unreachable: {type(exc).__name__}") from None
        return {"verdict_id": verdict_id, "transaction_id": transaction_id, "customer_id": customer_id,
                "terminal_id": terminal_id, "is_fraud": is_fraud, "analyst": analyst, "note": note,
                "reported_at": iso(reported_at), "published_at": iso(published_at)}

    # ---- helpers

    @staticmethod
    def _window(where: list[str], params: list[Any], since_us: int | None, until_us: int | None,
                after: Position | None) -> None:
        if since_us is not None:
            where.append("event_time >= %s")
            params.append(from_micros(since_us))
        if until_us is not None:
            where.append("event_time < %s")
            params.append(from_micros(until_us))
        if after is not None:
            where.append("(event_time, transaction_id) < (%s, %s)")
            params += [from_micros(after[0]), after[1]]

    @staticmethod
    def _page(rows: list[tuple[Any, ...]], limit: int) -> Page:
        items = [r[0] for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return Page(items, (to_micros(last[1]), last[2]) if last is not None else None)
