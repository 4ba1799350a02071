"""The API's read model: gold.scores and silver.features held in memory, indexed, kept current.

Reads go through delta-rs (``deltalake``), never Spark. Each table is polled every
``api.table_refresh_seconds``; a new committed version is loaded and swapped in atomically,
so a request always sees one committed snapshot (never a half-written version) and never
waits for a load.

* **Append-only change** (every file of the loaded snapshot is still in the new version,
  the schema is unchanged - what the stream's micro-batches do): only the new files are read
  and indexed as a small *delta segment*; rows they supersede (same transaction id) in older
  segments are hidden. More than :data:`MAX_DELTAS` delta segments are merged into one, from
  memory; when the deltas grow past a fraction of the base segment the table is reloaded.
* **Any other change** (backfill ``replaceWhere``, OPTIMIZE, VACUUM-then-rewrite, a
  recreated table, schema change): the whole table is reloaded in the background while
  the previous snapshot keeps serving.

A segment keeps only the served columns, with low-cardinality strings dictionary-encoded,
plus numpy indexes:

* transaction id: sorted 64-bit FNV-1a hashes (vectorised with numpy) -> row, verified against the
  stored id on lookup (so hash collisions cannot return a wrong row);
* customer id: rows grouped by customer, newest first (event time desc, transaction id desc),
  with a dict customer -> range; keyset pagination seeks inside a range with ``searchsorted``;
* (scores) the review queue: rows whose decision is not ``allow``, newest first.

Lookups are O(log n) plus the rows returned, independent of table size.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

log = logging.getLogger("aegis.api.store")

HASH_SEED = 0x0AE915
#: Delta segments kept before they are merged into one.
MAX_DELTAS = 8
#: Reload the whole table once the delta rows exceed this fraction of the base segment.
DELTA_RELOAD_FRACTION = 0.25
#: ... and this many rows (small tables are cheap to reload anyway).
DELTA_RELOAD_MIN_ROWS = 200_000
NULL_TIME = int(np.iinfo(np.int64).min)
_INT64_MAX = int(np.iinfo(np.int64).max)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)

SCORE_COLUMNS = (
    "transaction_id", "customer_id", "terminal_id", "event_time", "amount", "score", "decision",
    "model_name", "model_version", "feature_version", "policy_version", "top_reasons", "source", "scored_at",
)
FEATURE_META_COLUMNS = (
    "transaction_id", "customer_id", "terminal_id", "event_time", "event_date", "feature_version", "source",
    "is_late", "stream_batch_id", "run_id", "computed_at",
)
_DICT_COLUMNS = ("decision", "model_name", "model_version", "feature_version", "policy_version", "source")
ALLOW = "allow"

TableKind = Literal["scores", "features"]
#: Keyset position: (event time in microseconds since the epoch, transaction id); rows strictly after it.
Position = tuple[int, str]


# --------------------------------------------------------------------------- helpers


_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1


def hash_strings(values: pa.Array) -> np.ndarray:
    """64-bit FNV-1a hashes of a string column's UTF-8 bytes, vectorised (one numpy pass per byte position)."""
    values = _strings(_plain(values))
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    offset_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    offsets: np.ndarray = np.frombuffer(values.buffers()[1], dtype=offset_type)[values.offset : values.offset + n + 1]
    data_buffer = values.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    starts = offsets[:-1].astype(np.int64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.int64)
    hashes = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    prime = np.uint64(_FNV_PRIME)
    shortest, longest = int(lengths.min()), int(lengths.max())
    with np.errstate(over="ignore"):
        for j in range(longest):
            if j < shortest:
                hashes ^= data[starts + j]
                hashes *= prime
            else:
                idx = np.flatnonzero(lengths > j)
                hashes[idx] = (hashes[idx] ^ data[starts[idx] + j]) * prime
    return hashes


def hash_string(value: str) -> int:
    """The hash :func:`hash_strings` gives ``value`` (FNV-1a 64 of its UTF-8 bytes)."""
    h = _FNV_OFFSET
    for byte in value.encode("utf-8", "surrogatepass"):
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


def iso_time(micros: int) -> str | None:
    """ISO-8601 UTC text of epoch microseconds, e.g. ``2024-05-01T08:03:00.000000Z``; None for a null time."""
    if micros == NULL_TIME:
        return None
    try:
        return (_EPOCH_NAIVE + timedelta(microseconds=int(micros))).isoformat(timespec="microseconds") + "Z"
    except OverflowError:
        return None


def iso_times(micros: np.ndarray) -> list[str | None]:
    """Vectorised :func:`iso_time` (always microsecond precision, e.g. ``2024-05-01T08:03:00.000000Z``)."""
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us", timezone="UTC").tolist()
    return [None if t == "NaT" else t for t in text]


def finite_list(values: np.ndarray) -> list[float | None]:
    """Floats as a list, NaN / inf as None (JSON has neither)."""
    return [v if math.isfinite(v) else None for v in values.tolist()]


def to_micros(value: datetime) -> int:
    """Epoch microseconds of an aware (or naive = UTC) datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous, non-dictionary array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def _times(column: pa.Array) -> np.ndarray:
    """Timestamps (any unit / zone, or null) as int64 epoch microseconds (nulls: NULL_TIME)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz=column.type.tz), safe=False)
    elif pa.types.is_date(column.type):
        column = column.cast(pa.timestamp("us"))
    values = column.cast(pa.int64(), safe=False).fill_null(NULL_TIME)
    return values.to_numpy(zero_copy_only=False)


def _floats(column: pa.Array) -> np.ndarray:
    values = column.cast(pa.float64(), safe=False) if not pa.types.is_floating(column.type) else column
    return values.fill_null(math.nan).to_numpy(zero_copy_only=False)


def _strings(column: pa.Array) -> pa.Array:
    return column if pa.types.is_string(column.type) else column.cast(pa.string())


@dataclass(frozen=True)
class _Dict:
    """A dictionary-encoded string column: codes (int32, -1 = null) and the values."""

    codes: np.ndarray
    values: tuple[str | None, ...]

    @classmethod
    def encode(cls, column: pa.Array) -> _Dict:
        encoded = _strings(column).dictionary_encode()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        return cls(codes, tuple(encoded.dictionary.to_pylist()))

    def get(self, row: int) -> str | None:
        code = self.codes[row]
        return None if code < 0 else self.values[code]

    def take(self, rows: np.ndarray) -> list[str | None]:
        values = self.values
        return [values[c] if c >= 0 else None for c in self.codes[rows].tolist()]

    def code_of(self, value: str) -> int:
        return self.values.index(value) if value in self.values else -2


class _Reasons:
    """top_reasons (list<struct<feature, value, contribution>>) as flat numpy arrays plus offsets."""

    def __init__(self, column: pa.Array) -> None:
        self.fallback: pa.Array | None = None
        try:
            struct_type = column.type.value_type
            names = {struct_type.field(i).name for i in range(struct_type.num_fields)}
            if not {"feature", "value", "contribution"} <= names:
                raise TypeError("unexpected top_reasons struct")
            flat = column.flatten()  # the values of the non-null lists, in order
            lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            self.offsets = np.concatenate(([0], np.cumsum(lengths)))
            self.feature = _Dict.encode(pc.struct_field(flat, "feature"))
            self.value = _floats(pc.struct_field(flat, "value"))
            self.contribution = _floats(pc.struct_field(flat, "contribution"))
        except (AttributeError, TypeError, KeyError, pa.ArrowException):
            self.fallback = column  # an unexpected layout: decoded row by row

    def one(self, row: int) -> list[dict[str, Any]]:
        """The reasons of one row."""
        if self.fallback is not None:
            return _reasons(self.fallback[row].as_py())
        names, values, contributions = self.feature, self.value, self.contribution
        return [
            {"feature": names.get(i), "value": _finite(values[i]), "contribution": _finite(contributions[i])}
            for i in range(int(self.offsets[row]), int(self.offsets[row + 1]))
        ]

    def take(self, rows: np.ndarray) -> list[list[dict[str, Any]]]:
        """The reasons of each of ``rows``."""
        if self.fallback is not None:
            return [_reasons(self.fallback[int(r)].as_py()) for r in rows]
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        before = np.cumsum(lengths) - lengths
        items = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - before, lengths)
        names = self.feature.take(items)
        values, contributions = finite_list(self.value[items]), finite_list(self.contribution[items])
        out, pos = [], 0
        for n in lengths.tolist():
            out.append([{"feature": names[j], "value": values[j], "contribution": contributions[j]}
                        for j in range(pos, pos + n)])
            pos += n
        return out


def _reasons(value: Any) -> list[dict[str, Any]]:
    out = []
    for item in value if isinstance(value, list) else ():
        if isinstance(item, dict):
            out.append({
                "feature": None if item.get("feature") is None else str(item.get("feature")),
                "value": _finite(item.get("value")),
                "contribution": _finite(item.get("contribution")),
            })
    return out


def _fix_ties(order: np.ndarray, same_key: np.ndarray, ids: pa.Array) -> None:
    """Within runs of equal sort key (``same_key[i]``: row i-1 and i tie), order by id descending."""
    tie = np.flatnonzero(same_key) + 1
    k = 0
    positions = tie.tolist()
    while k < len(positions):
        start, end = positions[k] - 1, positions[k] + 1
        k += 1
        while k < len(positions) and positions[k] == end:
            end += 1
            k += 1
        rows = order[start:end].tolist()
        rows.sort(key=lambda r: ids[r].as_py() or "", reverse=True)
        order[start:end] = rows


def _sort_rows(hashes: np.ndarray, neg_time: np.ndarray) -> np.ndarray:
    """Row order by (hash, neg_time) - polars' multi-threaded sort."""
    frame = pl.DataFrame({"h": hashes, "t": neg_time}).with_row_index("r")
    return frame.sort(["h", "t"])["r"].to_numpy().astype(np.int64)


# --------------------------------------------------------------------------- segments


class Segment:
    """An immutable, indexed slice of one table (the rows of some of its files)."""

    def __init__(self, kind: TableKind, table: pa.Table, feature_names: Sequence[str] = (),
                 keep_raw: bool = False, matrix: np.ndarray | None = None) -> None:
        self.kind = kind
        self.n = table.num_rows
        self.raw = table if keep_raw else None
        self.ids = _strings(_plain(table["transaction_id"]))
        self.customers = _strings(_plain(table["customer_id"]))
        self.event_us = _times(_plain(table["event_time"]))
        priority = "scored_at" if kind == "scores" else "computed_at"
        self.priority_us = _times(_plain(table[priority]))
        self.neg_us = -self.event_us  # newest first = ascending; rows without a time sort last
        self.neg_us[self.event_us == NULL_TIME] = _INT64_MAX
        self.alive = np.ones(self.n, dtype=bool)
        self.feature_names = tuple(feature_names)
        if kind == "scores":
            self._init_scores(table)
        else:
            self._init_features(table, matrix)
        self._index_transactions()
        self._index_customers()
        if kind == "scores":
            self._index_queue()
        del self.neg_us  # only needed to build the indexes

    # ---- columns

    def _init_scores(self, table: pa.Table) -> None:
        self.terminals = _strings(_plain(table["terminal_id"]))
        self.amount = _floats(_plain(table["amount"]))
        self.score = _floats(_plain(table["score"]))
        self.dicts = {name: _Dict.encode(_plain(table[name])) for name in _DICT_COLUMNS}
        self.reasons = _Reasons(_plain(table["top_reasons"]))

    def _init_features(self, table: pa.Table, matrix: np.ndarray | None) -> None:
        self.dicts = {name: _Dict.encode(_plain(table[name])) for name in ("feature_version",)}
        if matrix is None:  # row-major: one row is one contiguous vector
            matrix = np.empty((self.n, len(self.feature_names)), dtype=np.float64)
            for j, name in enumerate(self.feature_names):
                matrix[:, j] = _floats(_plain(table[name]))
        self.matrix = matrix

    # ---- indexes

    def _index_transactions(self) -> None:
        hashes = hash_strings(self.ids)
        order = np.argsort(hashes, kind="stable").astype(np.int64)
        sorted_hashes = hashes[order]
        dup = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1]) + 1
        positions = dup.tolist()
        k = 0
        while k < len(positions):  # rare: duplicate ids (or a hash collision)
            start, end = positions[k] - 1, positions[k] + 1
            k += 1
            while k < len(positions) and positions[k] == end:
                end += 1
                k += 1
            groups: dict[str, list[int]] = {}
            for row in order[start:end].tolist():
                groups.setdefault(self.ids[row].as_py(), []).append(row)
            ordered: list[int] = []
            for rows in groups.values():
                rows.sort(key=lambda r: (int(self.priority_us[r]), r), reverse=True)
                self.alive[rows[1:]] = False  # the latest write of an id wins
                ordered.extend(rows)
            order[start:end] = ordered
        self.tx_hash = sorted_hashes
        self.tx_rows = order

    def _index_customers(self) -> None:
        neg_time = self.neg_us
        hashes = pl.Series(self.customers).hash(HASH_SEED).to_numpy()
        order = _sort_rows(hashes, neg_time)
        sorted_hashes = hashes[order]
        sorted_keys = self.customers.take(pa.array(order))
        n = self.n
        if n > 1:
            key_change = pc.not_equal(sorted_keys.slice(1), sorted_keys.slice(0, n - 1))
            key_change_np = key_change.fill_null(True).to_numpy(zero_copy_only=False)
            hash_change = sorted_hashes[1:] != sorted_hashes[:-1]
            if int(key_change_np.sum()) != int(hash_change.sum()):  # a 64-bit collision: sort by the key itself
                frame = pl.DataFrame({"k": pl.Series(self.customers), "t": neg_time}).with_row_index("r")
                order = frame.sort(["k", "t"])["r"].to_numpy().astype(np.int64)
                sorted_keys = self.customers.take(pa.array(order))
                key_change_np = pc.not_equal(sorted_keys.slice(1), sorted_keys.slice(0, n - 1)).fill_null(
                    True).to_numpy(zero_copy_only=False)
            sorted_nt = neg_time[order]
            _fix_ties(order, (~key_change_np) & (sorted_nt[1:] == sorted_nt[:-1]), self.ids)
            starts = np.concatenate(([0], np.flatnonzero(key_change_np) + 1))
        else:
            starts = np.zeros(n, dtype=np.int64)
        ends = np.concatenate((starts[1:], [n])) if n else starts
        names = sorted_keys.take(pa.array(starts)).to_pylist() if n else []
        self.cust_index: dict[str, tuple[int, int]] = dict(
            zip(names, zip(starts.tolist(), ends.tolist(), strict=True), strict=True)
        )
        self.cust_rows = order
        self.cust_nt = neg_time[order]

    def _index_queue(self) -> None:
        allow = self.dicts["decision"].code_of(ALLOW)
        rows = np.flatnonzero(self.dicts["decision"].codes != allow).astype(np.int64)
        order = rows[np.argsort(self.neg_us[rows], kind="stable")]
        sorted_nt = self.neg_us[order]
        if len(order) > 1:
            _fix_ties(order, sorted_nt[1:] == sorted_nt[:-1], self.ids)
        self.queue_rows = order
        self.queue_nt = sorted_nt

    # ---- lookups

    def find(self, transaction_id: str, hashed: int) -> int:
        """Row of the live version of ``transaction_id`` in this segment, or -1."""
        i = int(np.searchsorted(self.tx_hash, np.uint64(hashed)))
        while i < self.n and int(self.tx_hash[i]) == hashed:
            row = int(self.tx_rows[i])
            if self.alive[row] and self.ids[row].as_py() == transaction_id:
                return row
            i += 1
        return -1

    def superseded_by(self, newer: Segment) -> np.ndarray:
        """Rows of this segment whose transaction id appears in ``newer``."""
        hashes = newer.tx_hash
        pos = np.searchsorted(self.tx_hash, hashes)
        pos = np.minimum(pos, max(self.n - 1, 0))
        if self.n == 0:
            return np.empty(0, dtype=np.int64)
        candidates = np.flatnonzero(self.tx_hash[pos] == hashes)
        dead: list[int] = []
        for j in candidates.tolist():
            wanted = newer.ids[int(newer.tx_rows[j])].as_py()
            i = int(pos[j])
            while i < self.n and self.tx_hash[i] == hashes[j]:
                row = int(self.tx_rows[i])
                if self.alive[row] and self.ids[row].as_py() == wanted:
                    dead.append(row)
                i += 1
        return np.array(dead, dtype=np.int64)

    def with_dead(self, rows: np.ndarray) -> Segment:
        """A copy (sharing the data) with ``rows`` hidden."""
        clone = object.__new__(Segment)
        clone.__dict__.update(self.__dict__)
        clone.alive = self.alive.copy()
        clone.alive[rows] = False
        return clone

    def live_rows(self) -> int:
        return int(self.alive.sum())

    def scan(self, rows: np.ndarray, neg_times: np.ndarray, lo: int, hi: int, *, since_us: int | None,
             until_us: int | None, after: Position | None, codes: Sequence[int] | None,
             limit: int) -> list[tuple[int, str, int]]:
        """Up to ``limit`` live rows of ``rows[lo:hi]`` (newest first) inside the window and after ``after``.

        Returns ``(event_us, transaction_id, row)`` tuples.
        """
        if until_us is not None:  # event_time < until  <=>  neg_time > -until
            lo = max(lo, lo + int(np.searchsorted(neg_times[lo:hi], -until_us, side="right")))
        if since_us is not None:  # event_time >= since  <=>  neg_time <= -since
            hi = min(hi, lo + int(np.searchsorted(neg_times[lo:hi], -since_us, side="right")))
        if after is not None and lo < hi:
            t, tx = after
            key = _INT64_MAX if t == NULL_TIME else -t
            lo = lo + int(np.searchsorted(neg_times[lo:hi], key, side="left"))
            while lo < hi and int(neg_times[lo]) == key and (self.ids[int(rows[lo])].as_py() or "") >= tx:
                lo += 1
        out: list[tuple[int, str, int]] = []
        chunk = max(64, 2 * limit)
        while lo < hi and len(out) < limit:
            end = min(hi, lo + chunk)
            window = rows[lo:end]
            keep = self.alive[window]
            if codes is not None:
                keep &= np.isin(self.dicts["decision"].codes[window], codes)
            for row in window[keep][: limit - len(out)].tolist():
                out.append((int(self.event_us[row]), self.ids[row].as_py() or "", row))
            lo = end
            chunk *= 4
        return out

    # ---- rows

    def score_record(self, row: int) -> dict[str, Any]:
        """The served fields of one row (scalar access: cheaper than the vectorised path for one row)."""
        d = self.dicts
        return {
            "transaction_id": self.ids[row].as_py(),
            "customer_id": self.customers[row].as_py(),
            "terminal_id": self.terminals[row].as_py(),
            "event_time": iso_time(int(self.event_us[row])),
            "amount": _finite(self.amount[row]),
            "score": _finite(self.score[row]),
            "decision": d["decision"].get(row),
            "model_name": d["model_name"].get(row),
            "model_version": d["model_version"].get(row),
            "policy_version": d["policy_version"].get(row),
            "feature_version": d["feature_version"].get(row),
            "top_reasons": self.reasons.one(row),
            "source": d["source"].get(row),
            "scored_at": iso_time(int(self.priority_us[row])),
        }

    def score_records(self, rows: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        """The served fields of ``rows`` (vectorised per column)."""
        rows = np.asarray(rows, dtype=np.int64)
        taken = pa.array(rows)
        d = self.dicts
        columns = {
            "transaction_id": self.ids.take(taken).to_pylist(),
            "customer_id": self.customers.take(taken).to_pylist(),
            "terminal_id": self.terminals.take(taken).to_pylist(),
            "event_time": iso_times(self.event_us[rows]),
            "amount": finite_list(self.amount[rows]),
            "score": finite_list(self.score[rows]),
            "decision": d["decision"].take(rows),
            "model_name": d["model_name"].take(rows),
            "model_version": d["model_version"].take(rows),
            "policy_version": d["policy_version"].take(rows),
            "feature_version": d["feature_version"].take(rows),
            "top_reasons": self.reasons.take(rows),
            "source": d["source"].take(rows),
            "scored_at": iso_times(self.priority_us[rows]),
        }
        names = list(columns)
        return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]

    def feature_record(self, row: int) -> dict[str, Any]:
        values = self.matrix[row].tolist()
        return {
            "transaction_id": self.ids[row].as_py(),
            "customer_id": self.customers[row].as_py(),
            "event_time": iso_time(int(self.event_us[row])),
            "feature_version": self.dicts["feature_version"].get(row),
            "computed_at": iso_time(int(self.priority_us[row])),
            "values": {
                name: (v if math.isfinite(v) else None) for name, v in zip(self.feature_names, values, strict=True)
            },
        }


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Snapshot:
    """One committed version of a table as served: its segments, oldest first."""

    version: int = -1
    files: frozenset[str] | None = None
    schema: pa.Schema | None = None
    segments: tuple[Segment, ...] = ()
    loaded_at: float = 0.0

    @property
    def rows(self) -> int:
        return sum(s.live_rows() for s in self.segments)


@dataclass
class TableStatus:
    """What /readyz and /metrics report for one table."""

    name: str
    path: str
    state: Literal["loading", "ready", "missing", "error"]
    detail: str | None
    version: int | None
    latest_version: int | None
    rows: int
    segments: int
    last_check: float
    last_load_seconds: float
    loads: int
    incremental_loads: int

    @property
    def lag(self) -> int:
        if self.latest_version is None:
            return 0
        return max(0, self.latest_version - (self.version if self.version is not None else -1))


@dataclass
class _Counters:
    loads: int = 0
    incremental: int = 0
    last_load_seconds: float = 0.0
    last_check: float = 0.0


class DeltaSource:
    """One Delta table, polled with delta-rs and turned into :class:`Snapshot` s."""

    def __init__(self, name: str, path: str, kind: TableKind) -> None:
        self.name = name
        self.path = path
        self.kind = kind
        self.snapshot = Snapshot()
        self.state: Literal["loading", "ready", "missing", "error"] = "loading"
        self.detail: str | None = "not loaded yet"
        self.latest_version: int | None = None
        self.counters = _Counters()
        self._table: Any = None
        self._lock = threading.Lock()

    def status(self) -> TableStatus:
        snap = self.snapshot
        return TableStatus(
            name=self.name, path=self.path, state=self.state, detail=self.detail,
            version=None if snap.version < 0 else snap.version, latest_version=self.latest_version,
            rows=snap.rows, segments=len(snap.segments), last_check=self.counters.last_check,
            last_load_seconds=self.counters.last_load_seconds, loads=self.counters.loads,
            incremental_loads=self.counters.incremental,
        )

    def poll(self) -> bool:
        """Load the latest committed version if it changed; True when a new snapshot was swapped in."""
        with self._lock:
            try:
                return self._poll()
            except Exception as exc:  # a broken table must not stop the API; keep serving the last snapshot
                log.warning("%s: refresh failed: %s", self.name, exc)
                self._table = None
                self.state = "error" if self.snapshot.version < 0 else self.state
                self.detail = f"refresh failed: {type(exc).__name__}: {exc}"
                return False
            finally:
                self.counters.last_check = time.time()

    def _poll(self) -> bool:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        if self._table is None:
            if not _is_delta_table(self.path):
                self._set_missing()
                return False
            try:
                self._table = DeltaTable(self.path)
            except TableNotFoundError:
                self._set_missing()
                return False
        else:
            try:
                self._table.update_incremental()
            except TableNotFoundError:
                self._table = None
                self._set_missing()
                return False
        version = int(self._table.version())
        self.latest_version = version
        if version == self.snapshot.version:
            self.state, self.detail = "ready", None
            return False
        started = time.perf_counter()
        try:
            snapshot, incremental = self._load(self._table, version)
        finally:
            pa.default_memory_pool().release_unused()  # hand the load's transient buffers back to the OS
        self.snapshot = snapshot
        self.state, self.detail = "ready", None
        self.counters.loads += 1
        self.counters.incremental += int(incremental)
        self.counters.last_load_seconds = time.perf_counter() - started
        log.info("%s: version %d served (%d rows, %d segments, %s, %.2fs)", self.name, version, snapshot.rows,
                 len(snapshot.segments), "incremental" if incremental else "full", self.counters.last_load_seconds)
        return True

    def _set_missing(self) -> None:
        if self.snapshot.version >= 0 or self.snapshot.segments:
            self.snapshot = Snapshot()
        self.latest_version = None
        self.state, self.detail = "missing", f"no Delta table at {self.path}"

    # ---- loading

    def _columns(self, schema: pa.Schema) -> tuple[list[str], tuple[str, ...]]:
        names = set(schema.names)
        if self.kind == "scores":
            return [c for c in SCORE_COLUMNS if c in names], ()
        features = tuple(
            f.name for f in schema
            if f.name not in FEATURE_META_COLUMNS
            and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type) or pa.types.is_boolean(f.type))
        )
        meta = ["transaction_id", "customer_id", "event_time", "feature_version", "computed_at"]
        return [c for c in meta if c in names] + list(features), features

    def _conform(self, table: pa.Table, feature_names: Sequence[str]) -> pa.Table:
        """Add any served column the table lacks, as nulls."""
        wanted = SCORE_COLUMNS if self.kind == "scores" else (
            "transaction_id", "customer_id", "event_time", "feature_version", "computed_at", *feature_names)
        for name in wanted:
            if name not in table.column_names:
                kind = pa.timestamp("us", tz="UTC") if name in ("event_time", "scored_at", "computed_at") else (
                    pa.float64() if name in ("amount", "score") or name in feature_names else
                    pa.list_(pa.struct([("feature", pa.string()), ("value", pa.float64()),
                                        ("contribution", pa.float64())])) if name == "top_reasons" else pa.string())
                table = table.append_column(name, pa.nulls(table.num_rows, kind))
        return table

    def _load(self, dt: Any, version: int) -> tuple[Snapshot, bool]:
        from deltalake.exceptions import DeltaProtocolError

        try:
            dataset = dt.to_pyarrow_dataset()
        except DeltaProtocolError:  # deletion vectors / column mapping: DataFusion reads, always in full
            return self._load_with_datafusion(dt, version), False
        fragments = list(dataset.get_fragments())
        files = frozenset(f.path for f in fragments)
        schema = dataset.schema
        columns, feature_names = self._columns(schema)
        old = self.snapshot
        known = old.files
        appended = (
            known is not None and old.version >= 0 and version > old.version and known <= files
            and old.schema is not None and old.schema.equals(schema)
        )
        if appended and known is not None:
            new = [f for f in fragments if f.path not in known]
            if not new:  # e.g. a commit that only changed metadata
                return Snapshot(version, files, schema, old.segments, time.time()), True
            table = pads.FileSystemDataset(new, schema, dataset.format, dataset.filesystem).to_table(columns=columns)
            segments = self._append(old.segments, self._segment(table, feature_names, keep_raw=True))
            if segments is not None:
                return Snapshot(version, files, schema, segments, time.time()), True
        segment = self._read_full(dataset, columns, feature_names)
        return Snapshot(version, files, schema, (segment,), time.time()), False

    def _read_full(self, dataset: pads.Dataset, columns: list[str], feature_names: Sequence[str]) -> Segment:
        """The whole table as one segment; feature values go batch by batch into the matrix (bounded peak)."""
        if self.kind == "scores" or not feature_names:
            return self._segment(dataset.to_table(columns=columns), feature_names)
        meta = [c for c in columns if c not in set(feature_names)]
        capacity = dataset.count_rows()
        matrix = np.empty((capacity, len(feature_names)), dtype=np.float64)
        batches, pos = [], 0
        for batch in dataset.to_batches(columns=columns):
            k = batch.num_rows
            if pos + k > capacity:
                raise RuntimeError("the table grew while being read")
            for j, name in enumerate(feature_names):
                matrix[pos : pos + k, j] = _floats(batch.column(name))
            batches.append(batch.select(meta))
            pos += k
        table = pa.Table.from_batches(batches, schema=pa.schema([dataset.schema.field(c) for c in meta]))
        return self._segment(table, feature_names, matrix=matrix[:pos])

    def _load_with_datafusion(self, dt: Any, version: int) -> Snapshot:
        from deltalake import QueryBuilder

        schema = pa.schema(dt.schema().to_arrow())
        columns, feature_names = self._columns(schema)
        sql = "SELECT " + ", ".join('"' + c.replace('"', '""') + '"' for c in columns) + " FROM t"
        table = pa.table(QueryBuilder().register("t", dt).execute(sql).read_all())
        return Snapshot(version, None, schema, (self._segment(table, feature_names),), time.time())

    def _segment(self, table: pa.Table, feature_names: Sequence[str], keep_raw: bool = False,
                 matrix: np.ndarray | None = None) -> Segment:
        if matrix is not None:  # the feature columns are in the matrix already
            return Segment(self.kind, self._conform(table, ()), feature_names, matrix=matrix)
        return Segment(self.kind, self._conform(table, feature_names), feature_names, keep_raw=keep_raw)

    def _append(self, segments: tuple[Segment, ...], delta: Segment) -> tuple[Segment, ...] | None:
        """Segments with ``delta`` added (rows it supersedes hidden, deltas merged); None = reload instead."""
        updated = []
        for seg in segments:
            dead = seg.superseded_by(delta)
            updated.append(seg.with_dead(dead) if len(dead) else seg)
        base, deltas = updated[0], [*updated[1:], delta]
        if len(deltas) > MAX_DELTAS:
            raws = [s.raw.filter(pa.array(s.alive)) for s in deltas if s.raw is not None]
            if len(raws) != len(deltas):
                return None
            merged = pa.concat_tables(raws, promote_options="default")
            deltas = [Segment(self.kind, merged, delta.feature_names, keep_raw=True)]
        delta_rows = sum(s.n for s in deltas)
        if delta_rows > max(DELTA_RELOAD_MIN_ROWS, DELTA_RELOAD_FRACTION * base.n):
            return None
        return (base, *deltas)


def _is_delta_table(path: str) -> bool:
    if "://" not in path:
        return (Path(path) / "_delta_log").is_dir()
    from deltalake import DeltaTable

    return bool(DeltaTable.is_deltatable(path))


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class Page:
    """One page of scores, newest first; ``next_position`` is None on the last page."""

    items: list[dict[str, Any]]
    next_position: Position | None


@dataclass
class LakehouseStore:
    """gold.scores and silver.features, in memory, refreshed in a background thread."""

    scores: DeltaSource
    features: DeltaSource
    refresh_seconds: float = 2.0
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _refreshed: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    @classmethod
    def for_lakehouse(cls, root: Path | str, refresh_seconds: float = 2.0) -> LakehouseStore:
        """The store over the contract locations of ``root``."""
        from lakehouse.tables import SCORES, features_table

        features = features_table()
        return cls(
            scores=DeltaSource(SCORES.name, SCORES.path(root), "scores"),
            features=DeltaSource(features.name, features.path(root), "features"),
            refresh_seconds=refresh_seconds,
        )

    @classmethod
    def from_settings(cls, settings: Any) -> LakehouseStore:
        return cls.for_lakehouse(settings.lakehouse_root, settings.api.table_refresh_seconds)

    @property
    def sources(self) -> tuple[DeltaSource, DeltaSource]:
        return (self.scores, self.features)

    # ---- lifecycle

    def refresh(self) -> bool:
        """Poll both tables once; True if any snapshot changed."""
        changed = False
        for source in self.sources:
            changed = source.poll() or changed
        with self._refreshed:
            self._refreshed.notify_all()
        return changed

    def start(self) -> None:
        """Start the polling thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aegis-api-store", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.refresh()
            except Exception:  # never let the poller die
                log.exception("store refresh failed")
            self._stop.wait(max(0.05, self.refresh_seconds - (time.monotonic() - started)))

    def wait_loaded(self, timeout: float) -> bool:
        """Block until both tables have been checked at least once (ready or missing)."""
        deadline = time.monotonic() + timeout
        with self._refreshed:
            while any(s.state == "loading" for s in self.sources):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._refreshed.wait(remaining)
        return True

    def status(self) -> list[TableStatus]:
        return [s.status() for s in self.sources]

    # ---- queries

    def transaction(self, transaction_id: str) -> dict[str, Any] | None:
        """The score of one transaction with the feature values it was scored on (or None)."""
        hashed = hash_string(transaction_id)
        record = None
        for seg in reversed(self.scores.snapshot.segments):
            row = seg.find(transaction_id, hashed)
            if row >= 0:
                record = seg.score_record(row)
                break
        if record is None:
            return None
        record["features"] = self._features_of(transaction_id, hashed)
        return record

    def _features_of(self, transaction_id: str, hashed: int) -> dict[str, Any] | None:
        for seg in reversed(self.features.snapshot.segments):
            row = seg.find(transaction_id, hashed)
            if row >= 0:
                found = seg.feature_record(row)
                return {k: found[k] for k in ("feature_version", "computed_at", "values")}
        return None

    def has_customer(self, customer_id: str) -> bool:
        return any(customer_id in seg.cust_index for seg in self.scores.snapshot.segments)

    def customer_scores(self, customer_id: str, *, since_us: int | None = None, until_us: int | None = None,
                        decision: str | None = None, limit: int = 50, after: Position | None = None) -> Page | None:
        """A customer's scores, newest first; None if the customer has no score at all."""
        segments = self.scores.snapshot.segments
        candidates: list[tuple[int, str, int, int]] = []
        known = False
        for i, seg in enumerate(segments):
            bounds = seg.cust_index.get(customer_id)
            if bounds is None:
                continue
            known = True
            codes = None if decision is None else [seg.dicts["decision"].code_of(decision)]
            for t, tx, row in seg.scan(seg.cust_rows, seg.cust_nt, bounds[0], bounds[1], since_us=since_us,
                                       until_us=until_us, after=after, codes=codes, limit=limit + 1):
                candidates.append((t, tx, i, row))
        if not known:
            return None
        return self._page(segments, candidates, limit)

    def decisions(self, *, decisions: Sequence[str], since_us: int | None = None, limit: int = 50,
                  after: Position | None = None) -> Page:
        """The review queue: scores whose decision is one of ``decisions``, newest first."""
        segments = self.scores.snapshot.segments
        candidates: list[tuple[int, str, int, int]] = []
        for i, seg in enumerate(segments):
            codes = [seg.dicts["decision"].code_of(d) for d in decisions]
            for t, tx, row in seg.scan(seg.queue_rows, seg.queue_nt, 0, len(seg.queue_rows), since_us=since_us,
                                       until_us=None, after=after, codes=codes, limit=limit + 1):
                candidates.append((t, tx, i, row))
        return self._page(segments, candidates, limit)

    @staticmethod
    def _page(segments: Sequence[Segment], candidates: list[tuple[int, str, int, int]], limit: int) -> Page:
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        chosen = candidates[:limit]
        by_segment: dict[int, list[int]] = {}
        for _, _, i, row in chosen:
            by_segment.setdefault(i, []).append(row)
        records = {i: iter(segments[i].score_records(rows)) for i, rows in by_segment.items()}
        items = [next(records[i]) for _, _, i, _ in chosen]
        more = len(candidates) > limit
        return Page(items, (chosen[-1][0], chosen[-1][1]) if more and chosen else None)

    def customer_features(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's latest feature vector (latest event time, then latest computation)."""
        best: tuple[int, int, int] | None = None
        best_seg: Segment | None = None
        best_row = -1
        for i, seg in enumerate(self.features.snapshot.segments):
            bounds = seg.cust_index.get(customer_id)
            if bounds is None:
                continue
            found = seg.scan(seg.cust_rows, seg.cust_nt, bounds[0], bounds[1], since_us=None, until_us=None,
                             after=None, codes=None, limit=1)
            if not found:
                continue
            row = found[0][2]
            key = (int(seg.event_us[row]), int(seg.priority_us[row]), i)
            if best is None or key > best:
                best, best_seg, best_row = key, seg, row
        return None if best_seg is None else best_seg.feature_record(best_row)


def arrow_schema(contract: Any) -> pa.Schema:
    """The Arrow schema of a table contract (Spark types mapped to Arrow; timestamps in UTC microseconds)."""
    return pa.schema([pa.field(c.name, _arrow_type(c.dtype), c.nullable) for c in contract.columns])


def _arrow_type(dtype: Any) -> pa.DataType:
    from pyspark.sql import types as T

    simple: dict[type, Callable[[], pa.DataType]] = {
        T.StringType: pa.string, T.DoubleType: pa.float64, T.FloatType: pa.float32, T.LongType: pa.int64,
        T.IntegerType: pa.int32, T.BooleanType: pa.bool_, T.DateType: pa.date32, T.BinaryType: pa.binary,
    }
    for spark_type, factory in simple.items():
        if isinstance(dtype, spark_type):
            return factory()
    if isinstance(dtype, T.TimestampType):
        return pa.timestamp("us", tz="UTC")
    if isinstance(dtype, T.TimestampNTZType):
        return pa.timestamp("us")
    if isinstance(dtype, T.ArrayType):
        return pa.list_(_arrow_type(dtype.elementType))
    if isinstance(dtype, T.StructType):
        return pa.struct([pa.field(f.name, _arrow_type(f.dataType), f.nullable) for f in dtype.fields])
    raise TypeError(f"no Arrow mapping for {dtype!r}")
