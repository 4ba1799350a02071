"""The strict check of one raw Kafka record against its event contract (conf/contracts/*.json).

Each record, whatever its bytes, comes out as a :class:`CheckedRecord`: typed values, the reasons
it fails (empty when it is valid) and its key and value with every card number masked. Nothing
raises: values that Python, Arrow or Spark cannot represent (year 0, offsets past 24 h, 1e400,
lone surrogates, nesting past the recursion limit) become reasons where they are parsed.

What "strict" means here, in order:

1. bytes: present, at most ``max_record_bytes``, UTF-8 (RFC 8259);
2. JSON: exactly one value per message, no duplicate keys at any depth, no NaN/Infinity and no
   number that overflows a double;
3. the JSON Schema exactly as written (types without coercion, ``const``, ``required``,
   ``additionalProperties``, lengths, patterns, enums, formats), with jsonschema-rs;
4. times: parseable, representable in UTC and inside the contract's ``x-aegis-time-range``;
5. card numbers: a Luhn-valid number anywhere but a string ``card_number`` (any depth, any key,
   the Kafka key, any encoding) fails the record with ``card number outside card_number``.

Reasons read ``<keyword> <field>: <detail>``, for example ``type amount: "12.5" is not of type
"number"`` or ``additionalProperties pan: not allowed by the contract``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jsonschema_rs

from conf.settings import CONF_DIR
from quality.pan import Pan, decode_any, find_pans, has_pan, mask_bytes, mask_text

EventKind = Literal["transaction", "label"]

CONTRACTS_DIR = CONF_DIR / "contracts"
CONTRACT_FILES: dict[EventKind, str] = {"transaction": "transaction.v1.json", "label": "label.v1.json"}
TIME_RANGE_KEYWORD = "x-aegis-time-range"
#: Times every reader of the lakehouse represents (Arrow's nanosecond timestamps, as deltalake,
#: DuckDB and polars read them, end in 2262; Python's datetime starts in year 1). A contract's
#: time range must lie inside it.
READABLE_FROM = datetime(1900, 1, 1, tzinfo=UTC)
READABLE_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)
DEFAULT_MAX_RECORD_BYTES = 16 * 1024
CARD_FIELD = "card_number"
PAN_OUTSIDE_CARD = "card number outside card_number"
MAX_DETAIL = 120  # characters of an offending value quoted in a reason

_RELATIVE = re.compile(r"^now(?:([+-])(\d+)([dhm]))?$")


class ContractFileError(ValueError):
    """A contract file that cannot serve as a validator (names the file and what is wrong)."""


@dataclass(frozen=True)
class FieldSpec:
    """One property of a contract as the parser types it."""

    name: str
    json_type: str  # "string", "number" or "boolean"
    is_time: bool = False


@dataclass(frozen=True)
class TimeRange:
    """Inclusive bounds of a time field; either may be relative (``now+1d``) and is resolved per batch."""

    minimum: str | None
    maximum: str | None

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """The bounds as UTC datetimes at ``now``."""
        return resolve_time(self.minimum, now), resolve_time(self.maximum, now)


@dataclass(frozen=True)
class Contract:
    """A contract file loaded for checking: its schema, compiled validator, typed fields and time ranges."""

    kind: EventKind
    path: Path
    schema: dict[str, Any]
    validator: Any
    fields: tuple[FieldSpec, ...]
    time_ranges: dict[str, TimeRange]

    @property
    def required(self) -> tuple[str, ...]:
        """The properties every event must have."""
        return tuple(self.schema.get("required", ()))

    def property(self, name: str) -> dict[str, Any]:
        """The JSON Schema of one property."""
        return dict(self.schema["properties"][name])


def resolve_time(value: str | None, now: datetime) -> datetime | None:
    """``'now'``, ``'now+1d'``/``'-2h'``/``'+30m'`` relative to ``now``, or an ISO-8601 time with zone."""
    if value is None:
        return None
    match = _RELATIVE.match(value)
    if match:
        if match.group(1) is None:
            return now
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(3)]
        delta = timedelta(**{unit: int(match.group(2))})
        return now + delta if match.group(1) == "+" else now - delta
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time bound {value!r} has no zone")
    return parsed.astimezone(UTC)


def _field_specs(path: Path, schema: dict[str, Any]) -> tuple[FieldSpec, ...]:
    specs = []
    for name, prop in schema.get("properties", {}).items():
        json_type = prop.get("type")
        if json_type not in ("string", "number", "boolean"):
            raise ContractFileError(f"{path}: property {name!r} has type {json_type!r}; the parser types "
                                    "string, number and boolean properties only")
        specs.append(FieldSpec(name, json_type, prop.get("format") == "date-time"))
    return tuple(specs)


def _time_ranges(path: Path, schema: dict[str, Any]) -> dict[str, TimeRange]:
    ranges: dict[str, TimeRange] = {}
    probe = datetime.now(UTC)
    for name, prop in schema.get("properties", {}).items():
        if prop.get("format") != "date-time":
            continue
        spec = prop.get(TIME_RANGE_KEYWORD)
        if not isinstance(spec, dict) or not {"minimum", "maximum"} <= set(spec):
            raise ContractFileError(f"{path}: time property {name!r} needs {TIME_RANGE_KEYWORD!r} with "
                                    "'minimum' and 'maximum' (ISO-8601 with zone, or now±Nd/h/m)")
        time_range = TimeRange(spec["minimum"], spec["maximum"])
        try:
            low, high = time_range.bounds(probe)
        except ValueError as exc:
            raise ContractFileError(f"{path}: {name}.{TIME_RANGE_KEYWORD}: {exc}") from exc
        if low is None or high is None or low < READABLE_FROM or high > READABLE_UNTIL:
            raise ContractFileError(
                f"{path}: {name}.{TIME_RANGE_KEYWORD} must lie within {READABLE_FROM.date()} .. "
                f"{READABLE_UNTIL.date()} (the times every lakehouse reader represents)")
        ranges[name] = time_range
    return ranges


@functools.cache
def load_contract(kind: EventKind, contracts_dir: Path = CONTRACTS_DIR) -> Contract:
    """Load, check and compile the contract of an event kind (cached)."""
    path = contracts_dir / CONTRACT_FILES[kind]
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    except (OSError, ValueError, jsonschema_rs.ValidationError) as exc:
        raise ContractFileError(f"{path}: {exc}") from exc
    if schema.get("additionalProperties") is not False:
        raise ContractFileError(f"{path}: the contract must set additionalProperties to false")
    return Contract(kind, path, schema, validator, _field_specs(path, schema), _time_ranges(path, schema))


# ----------------------------------------------------------------------------------- checking


class _Reject(Exception):
    """A record that cannot be decoded any further; the message is the reason."""


@dataclass
class CheckedRecord:
    """One record after the check: typed values, reasons (empty = valid), masked key and value."""

    values: dict[str, Any]
    reasons: list[str]
    raw_key: bytes | None
    raw_value: bytes | None
    pans: list[Pan] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """True when the record passed every check."""
        return not self.reasons


def _quote(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "…"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Reject(f"duplicate key {key}: a JSON object may name each key once")
        out[key] = value
    return out


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Reject(f"number out of range: {_quote(text)} does not fit a double")
    return value


def _no_constant(name: str) -> float:
    raise _Reject(f"invalid JSON: {name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_float=_finite, parse_constant=_no_constant)


def parse_one_json_value(text: str) -> Any:
    """The one JSON value of ``text``; :class:`ValueError` naming what else is there."""
    try:
        value, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip()))
    except _Reject as exc:
        raise ValueError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    rest = text[end:].strip()
    if rest:
        what = "a second JSON value" if rest[0] in "{[\"" or rest[0].isdigit() else "trailing data"
        raise ValueError(f"one value per message: {what} after character {end}")
    return value


def _walk(value: Any, path: tuple[str, ...], visit: Callable[[tuple[str, ...], Any], None]) -> None:
    visit(path, value)
    if isinstance(value, dict):
        for key, item in value.items():
            visit((*path, "<key>"), key)
            _walk(item, (*path, str(key)), visit)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, (*path, str(i)), visit)


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else format(value, "f")


def _where(path: tuple[str, ...]) -> str:
    return "/".join(path) or "<root>"


def _string_problem(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate escape (not a Unicode character)"
    return None


def _schema_reason(error: Any) -> str:
    keyword = str(error.schema_path[-1]) if error.schema_path else "schema"
    where = _where(tuple(str(p) for p in error.instance_path))
    kind = error.kind
    if keyword == "required":
        return f"required {kind.property}: missing (the contract requires it)"
    if keyword == "additionalProperties":
        names = ",".join(str(n) for n in kind.unexpected)
        return f"additionalProperties {names}: not allowed by the contract"
    message = error.message if len(error.message) <= 2 * MAX_DETAIL else error.message[: 2 * MAX_DETAIL] + "…"
    return f"{keyword} {where}: {message}"


class RecordChecker:
    """Checks raw records of one event kind; build once per worker and call per record."""

    def __init__(self, kind: EventKind, card_key: str | None = None,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, contracts_dir: Path = CONTRACTS_DIR) -> None:
        self.contract = load_contract(kind, contracts_dir)
        self.card_key = card_key.encode("utf-8") if card_key is not None else None
        self.max_record_bytes = max_record_bytes
        self._bounds_cache: dict[str, tuple[datetime, tuple[datetime | None, datetime | None]]] = {}
        self._card_pattern = re.compile(self.contract.property(CARD_FIELD)["pattern"]) \
            if CARD_FIELD in self.contract.schema["properties"] else None

    def card_token(self, number: str) -> str:
        """HMAC-SHA256 of the card number with the configured key, as hex."""
        if self.card_key is None:
            raise ValueError("no card hash key configured")
        return hmac.new(self.card_key, number.encode("utf-8"), hashlib.sha256).hexdigest()

    def check(self, key: bytes | None, value: bytes | None, now: datetime | None = None) -> CheckedRecord:
        """Check one record; never raises for any ``key``/``value`` bytes."""
        current = now or datetime.now(UTC)
        reasons: list[str] = []
        masked_key, key_pans = mask_bytes(key)
        if key_pans:
            reasons.append(f"{PAN_OUTSIDE_CARD}: Kafka key")
        masked_value, raw_pans = mask_bytes(value)
        values: dict[str, Any] = {}
        event: Any = None
        try:
            event = self._decode(value)
        except _Reject as exc:
            reasons.append(str(exc))
        if event is not None:
            reasons += self._check_event(event, values, current, value)  # type: ignore[arg-type]
            hidden = self._pans_outside_card(event) if _may_hide_pan(event, value, raw_pans) else []  # type: ignore[arg-type]
            if hidden:
                reasons.append(f"{PAN_OUTSIDE_CARD}: " + ",".join(sorted({_where(p) for p, _ in hidden})))
            unmasked = {pan.digits for _, pan in hidden} - {pan.digits for pan in raw_pans}
            if unmasked:
                # Written in a form the byte scan cannot see (an exponent, say): keep a masked re-encoding.
                masked_value = json.dumps(_masked_structure(event), ensure_ascii=False).encode("utf-8")
                reasons.append("raw value re-encoded: a card number was masked in its parsed form")
        elif raw_pans and value is not None:
            text, _ = decode_any(value)
            card_values = {m.group(1) for m in _CARD_TEXT.finditer(text)}
            if any(pan.digits not in card_values for pan in raw_pans):
                reasons.append(f"{PAN_OUTSIDE_CARD}: unparsed record")
        if reasons:
            masked_value = _mask_card_field(masked_value) if masked_value is not None else None
            values = {k: _masked_value(v) for k, v in values.items()}
        return CheckedRecord(values, [mask_text(r)[0] for r in reasons], masked_key, masked_value,
                             key_pans + raw_pans)

    def _decode(self, value: bytes | None) -> Any:
        if value is None:
            raise _Reject("empty record")
        if len(value) > self.max_record_bytes:
            raise _Reject(f"record larger than {self.max_record_bytes} bytes")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Reject(f"invalid UTF-8 at byte {exc.start}: JSON messages are UTF-8") from None
        try:
            event = parse_one_json_value(text)
        except ValueError as exc:
            raise _Reject(str(exc)) from None
        if not isinstance(event, dict):
            raise _Reject(f"not a JSON object: the message is a JSON {type(event).__name__}")
        return event

    def _check_event(self, event: dict[str, Any], values: dict[str, Any], now: datetime, raw: bytes) -> list[str]:
        reasons: list[str] = []
        if _SURROGATE_ESCAPE.search(raw):  # only an escape can make a lone surrogate out of valid UTF-8
            problems: list[str] = []

            def visit(path: tuple[str, ...], item: Any) -> None:
                problem = _string_problem(item) if isinstance(item, str) else None
                if problem:
                    problems.append(f"string {_where(path)}: {problem}")

            _walk(event, (), visit)
            if problems:
                return problems  # neither jsonschema-rs nor Arrow can take such a string
        validator = self.contract.validator
        if not validator.is_valid(event):
            reasons += [_schema_reason(e) for e in validator.iter_errors(event)]
        for spec in self.contract.fields:
            item = event.get(spec.name)
            if spec.name == CARD_FIELD:
                self._card(item, values)
            elif spec.is_time:
                values[spec.name], reason = self._time(spec.name, item, now)
                if reason:
                    reasons.append(reason)
            else:
                values[spec.name] = _typed(spec.json_type, item)
        return reasons

    def _card(self, raw: Any, values: dict[str, Any]) -> None:
        usable = isinstance(raw, str) and self._card_pattern is not None and self._card_pattern.match(raw)
        values["card_token"] = self.card_token(raw) if usable and self.card_key is not None else None
        values["card_last4"] = raw[-4:] if usable else None

    def _time(self, name: str, raw: Any, now: datetime) -> tuple[datetime | None, str | None]:
        if not isinstance(raw, str):
            return None, None  # the schema's type error names it
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError as exc:
            return None, f"format {name}: {_quote(raw)} is not a valid time ({exc})"
        if parsed.tzinfo is None:
            return None, None  # the schema's pattern error names it
        try:
            utc = parsed.astimezone(UTC)
        except OverflowError:
            return None, f"{TIME_RANGE_KEYWORD} {name}: {_quote(raw)} is outside the representable times"
        low, high = self._bounds(name, now)
        if (low is not None and utc < low) or (high is not None and utc > high):
            return utc, (f"{TIME_RANGE_KEYWORD} {name}: {utc.isoformat()} is outside "
                         f"{low.isoformat() if low else '-inf'} .. {high.isoformat() if high else '+inf'}")
        return utc, None

    def _bounds(self, name: str, now: datetime) -> tuple[datetime | None, datetime | None]:
        cached = self._bounds_cache.get(name)
        if cached is None or cached[0] != now:
            cached = (now, self.contract.time_ranges[name].bounds(now))
            self._bounds_cache[name] = cached
        return cached[1]

    def _pans_outside_card(self, event: dict[str, Any]) -> list[tuple[tuple[str, ...], Pan]]:
        found: list[tuple[tuple[str, ...], Pan]] = []

        def visit(path: tuple[str, ...], item: Any) -> None:
            if path == (CARD_FIELD,) and isinstance(item, str):
                return
            if isinstance(item, str):
                found.extend((path, pan) for pan in find_pans(item))
            elif isinstance(item, int | float) and not isinstance(item, bool) and abs(item) >= 1e11:
                found.extend((path, pan) for pan in find_pans(_number_text(item)))

        _walk(event, (), visit)
        return found


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_EXPONENT = re.compile(rb"[0-9][eE][+]?[0-9]")
_CARD_TEXT = re.compile(r'"card_number"\s*:\s*"([0-9]{12,19})"')


def _may_hide_pan(event: dict[str, Any], raw: bytes, raw_pans: list[Pan]) -> bool:
    """False when the byte scan already proves every card number is the string card_number's.

    The scan sees digits and escaped digits; only a number written with an exponent can carry
    a card number it does not see.
    """
    if len(raw_pans) > 1 or _EXPONENT.search(raw):
        return True
    card = event.get(CARD_FIELD)
    return any(not (isinstance(card, str) and pan.digits == card) for pan in raw_pans)


def _typed(json_type: str, raw: Any) -> Any:
    if json_type == "string":
        return raw if isinstance(raw, str) else None
    if json_type == "boolean":
        return raw if isinstance(raw, bool) else None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    try:
        number = float(raw)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _masked_value(value: Any) -> Any:
    """A typed value of a failed record with card numbers masked (a number holding one becomes None)."""
    if isinstance(value, str):
        return mask_text(value)[0]
    if isinstance(value, float) and abs(value) >= 1e11 and has_pan(_number_text(value)):
        return None
    return value


def _masked_structure(value: Any) -> Any:
    if isinstance(value, dict):
        return {mask_text(str(k))[0]: _masked_structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked_structure(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)[0]
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 1e11:
        text, pans = mask_text(_number_text(value))
        return text if pans else value
    return value


_CARD_VALUE = re.compile(rb'("card_number"\s*:\s*)("(?:[^"\\]|\\.)*"|[0-9][0-9.eE+-]*)')


def _mask_card_field(raw: bytes) -> bytes:
    """A quarantined record's ``card_number`` value masked whether or not it is a valid number."""
    return _CARD_VALUE.sub(rb'\1"<masked>"', raw) if b"card_number" in raw else raw
