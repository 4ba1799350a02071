"""A hostile producer's records: every class of bad input, each with the one reason it must get.

Shared by the unit tests of the record check (no Spark) and the end-to-end test that sends the
same records through the real broker into the stream. Each case is (kind, key, value, reason):
``reason`` is a substring the record's quarantine reason must contain, or None for a record
that must be admitted. Card numbers are the networks' published test numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

CARD = "4111111111111111"
OTHER_CARDS = ("5500005555555559", "378282246310005", "6011111111111117", "3530111333300000")
PAN_OUTSIDE = "card number outside card_number"


@dataclass(frozen=True)
class Case:
    """One record of the corpus."""

    name: str
    kind: Literal["transaction", "label"]
    key: bytes | None
    value: bytes | None
    reason: str | None  # None: the record is valid


def transaction(tx_id: str, now: datetime, **overrides: object) -> dict[str, object]:
    """A valid transaction event (``overrides`` replace fields; a value of ``...`` drops the field)."""
    event: dict[str, object] = {
        "schema_version": "1", "transaction_id": tx_id, "event_time": (now - timedelta(minutes=5)).isoformat(),
        "customer_id": "C0000001", "terminal_id": "T0000001", "amount": 12.5, "currency": "EUR",
        "card_number": CARD, "channel": "pos", "merchant_category": "5411", "latitude": 48.1, "longitude": 11.6,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def label(tx_id: str, now: datetime, **overrides: object) -> dict[str, object]:
    """A valid label event."""
    event: dict[str, object] = {"schema_version": "1", "transaction_id": tx_id, "customer_id": "C0000001",
                                "terminal_id": "T0000001", "is_fraud": True,
                                "reported_at": (now - timedelta(minutes=1)).isoformat()}
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def _j(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


def corpus(prefix: str = "h", now: datetime | None = None) -> list[Case]:
    """The hostile corpus; transaction ids start with ``prefix`` so runs do not collide."""
    now = now or datetime.now(UTC)
    cases: list[Case] = []

    def tx(name: str, reason: str | None, key: bytes | None = b"C0000001", **overrides: object) -> None:
        cases.append(Case(name, "transaction", key, _j(transaction(f"{prefix}-{name}", now, **overrides)), reason))

    def raw_tx(name: str, value: bytes | None, reason: str | None, key: bytes | None = b"C0000001") -> None:
        cases.append(Case(name, "transaction", key, value, reason))

    def lb(name: str, reason: str | None, **overrides: object) -> None:
        cases.append(Case(name, "label", b"C0000001", _j(label(f"{prefix}-{name}", now, **overrides)), reason))

    base = transaction(f"{prefix}-base", now)
    text = json.dumps(base)
    # valid ones, with the contract's edges
    tx("valid", None)
    tx("valid-minimal", None, card_number=..., channel=..., merchant_category=..., latitude=..., longitude=...)
    tx("valid-thb", None, currency="THB")
    tx("valid-isk", None, currency="ISK")
    tx("valid-aed", None, currency="AED")
    tx("valid-zero-amount", None, amount=0)
    tx("valid-int-amount", None, amount=12)
    tx("valid-max-amount", None, amount=1_000_000)
    tx("valid-nanos", None, event_time=(now - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z"))
    tx("valid-offset", None, event_time=(now - timedelta(minutes=3)).astimezone(timezone(timedelta(hours=-5)))
       .isoformat())
    tx("valid-device-64", None, device_id="d" * 64)
    lb("valid-label", None)
    lb("valid-label-false", None, is_fraud=False)
    # poison values: what Python, Arrow or Spark cannot represent
    tx("year-0", "format event_time", event_time="0000-01-01T00:00:00Z")
    tx("year-1-offset", "x-aegis-time-range event_time", event_time="0001-01-01T00:30:00+01:00")
    tx("year-9999", "x-aegis-time-range event_time", event_time="9999-12-31T23:59:59Z")
    tx("year-10000", "pattern event_time", event_time="10000-01-01T00:00:00Z")
    tx("offset-25h", "format event_time", event_time="2026-01-01T00:00:00+25:00")
    tx("second-60", "format event_time", event_time="2026-01-01T00:00:60Z")
    tx("month-13", "format event_time", event_time="2026-13-01T00:00:00Z")
    tx("before-2000", "x-aegis-time-range event_time", event_time="1999-12-31T23:59:59Z")
    tx("far-future", "x-aegis-time-range event_time", event_time=(now + timedelta(days=3)).isoformat())
    raw_tx("nan-token", text.replace("12.5", "NaN").encode(), "invalid JSON: NaN is not a JSON number")
    raw_tx("infinity-token", text.replace("12.5", "-Infinity").encode(), "invalid JSON: -Infinity")
    raw_tx("1e400", text.replace("12.5", "1e400").encode(), "number out of range")
    tx("1e308", "maximum amount", amount=1e308)
    raw_tx("huge-int", text.replace("12.5", "9" * 400).encode(), "maximum amount")
    raw_tx("lone-surrogate", text.replace('"T0000001"', '"\\ud800"').encode(), "string terminal_id")
    raw_tx("deep-nesting", b'{"transaction_id": ' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid JSON")
    lb("label-year-0", "format reported_at", reported_at="0000-01-01T00:00:00Z")
    lb("label-year-9999", "x-aegis-time-range reported_at", reported_at="9999-12-31T23:59:59Z")
    # the contract, keyword by keyword
    tx("type-amount-string", "type amount", amount="12.5")
    tx("type-id-int", "type transaction_id", transaction_id=123)
    tx("type-id-bool", "type transaction_id", transaction_id=True)
    tx("type-id-object", "type transaction_id", transaction_id={"id": 1})
    tx("type-null", "type channel", channel=None)
    tx("type-latitude-bool", "type latitude", latitude=True)
    tx("required-customer", "required customer_id", customer_id=...)
    tx("required-schema-version", "required schema_version", schema_version=...)
    tx("const-schema-version", "const schema_version", schema_version="2")
    tx("const-schema-version-int", "type schema_version", schema_version=1)
    tx("additional-property", "additionalProperties colour", colour="red")
    tx("min-length-id", "minLength transaction_id", transaction_id="")
    tx("max-length-id", "maxLength transaction_id", transaction_id="x" * 65)
    tx("min-length-device", "minLength device_id", device_id="")
    tx("max-length-device", "maxLength device_id", device_id="x" * 10_000)
    tx("pattern-currency", "pattern currency", currency="eur")
    tx("enum-currency", "enum currency", currency="XXX")
    tx("enum-channel", "enum channel", channel="bitcoin")
    tx("pattern-mcc", "pattern merchant_category", merchant_category="54a1")
    tx("pattern-card", "pattern card_number", card_number="4111-1111")
    tx("minimum-amount", "minimum amount", amount=-5)
    tx("maximum-amount", "maximum amount", amount=2_000_000)
    tx("maximum-latitude", "maximum latitude", latitude=91)
    tx("minimum-longitude", "minimum longitude", longitude=-181)
    tx("time-space", "pattern event_time", event_time="2026-12-01 10:00:00Z")
    tx("time-no-colon", "pattern event_time", event_time="2026-12-01T10:00:00+0100")
    tx("time-no-zone", "pattern event_time", event_time="2026-12-01T10:00:00")
    tx("time-words", "pattern event_time", event_time="yesterday")
    lb("label-fraud-yes", "type is_fraud", is_fraud="yes")
    lb("label-fraud-1", "type is_fraud", is_fraud=1)
    lb("label-fraud-true-string", "type is_fraud", is_fraud="true")
    lb("label-empty-id", "minLength transaction_id", transaction_id="")
    lb("label-extra", "additionalProperties amount", amount=1.0)
    lb("label-space-time", "pattern reported_at", reported_at="2026-12-01 10:00:00Z")
    # one JSON value per message
    raw_tx("single-quotes", text.replace('"', "'").encode(), "invalid JSON")
    raw_tx("trailing-garbage", text.encode() + b" xyz", "one value per message: trailing data")
    raw_tx("two-objects", text.encode() + _j(transaction(f"{prefix}-second", now)), "one value per message")
    raw_tx("duplicate-key", text[:-1].encode() + f', "transaction_id": "{prefix}-other"}}'.encode(),
           "duplicate key transaction_id")
    raw_tx("nested-duplicate", text[:-1].encode() + b', "x": {"a": 1, "a": 2}}', "duplicate key a")
    raw_tx("json-array", b"[1, 2, 3]", "not a JSON object")
    raw_tx("json-string", b'"just a string"', "not a JSON object")
    raw_tx("not-json", b"this is not json", "invalid JSON")
    raw_tx("empty-bytes", b"", "invalid JSON")
    raw_tx("null-value", None, "empty record")
    raw_tx("oversized", _j(transaction(f"{prefix}-big", now, device_id="x" * 20_000)), "record larger than")
    # encodings
    raw_tx("utf16-bom", text.encode("utf-16"), "invalid UTF-8")
    raw_tx("latin1", text.replace("T0000001", "T000000é").encode("latin-1"), "invalid UTF-8")
    raw_tx("utf8-bom", b"\xef\xbb\xbf" + text.encode(), "invalid JSON")
    # card numbers where they do not belong (each must end masked, with this reason)
    tx("pan-customer", f"{PAN_OUTSIDE}: customer_id", customer_id=OTHER_CARDS[0])
    tx("pan-device", f"{PAN_OUTSIDE}: device_id", device_id=OTHER_CARDS[1])
    tx("pan-device-spaced", f"{PAN_OUTSIDE}: device_id", device_id="6011 1111 1111 1117")
    tx("pan-device-dashed", f"{PAN_OUTSIDE}: device_id", device_id="3530-1113-3330-0000")
    tx("pan-terminal-embedded", f"{PAN_OUTSIDE}: terminal_id", terminal_id=f"T-{OTHER_CARDS[0]}.1")
    tx("pan-other-key", f"{PAN_OUTSIDE}: pan", pan=OTHER_CARDS[2])
    tx("pan-camel-key", f"{PAN_OUTSIDE}: cardNumber", cardNumber=OTHER_CARDS[3])
    tx("pan-array", f"{PAN_OUTSIDE}: card_number/0", card_number=[OTHER_CARDS[0]])
    tx("pan-object", f"{PAN_OUTSIDE}: card_number/number", card_number={"number": OTHER_CARDS[1]})
    tx("pan-as-number", f"{PAN_OUTSIDE}: card_number", card_number=int(OTHER_CARDS[2]))
    tx("pan-as-key-name", f"{PAN_OUTSIDE}: <key>", **{OTHER_CARDS[3]: 1})
    tx("pan-in-kafka-key", f"{PAN_OUTSIDE}: Kafka key", key=OTHER_CARDS[0].encode())
    raw_tx("pan-escaped-digits", text.replace('"pos"', '"pos", "device_id": "\\u0035500005555555559"').encode(),
           f"{PAN_OUTSIDE}: device_id")
    raw_tx("pan-escaped-key", text.replace('"card_number"', '"card\\u005fnumber"').replace(
        '"pos"', '"pos", "device_id": "' + OTHER_CARDS[1] + '"').encode(), f"{PAN_OUTSIDE}: device_id")
    raw_tx("pan-exponent", text.replace("48.1", "5.500005555555559e15").encode(), f"{PAN_OUTSIDE}: latitude")
    raw_tx("pan-utf16", json.dumps(transaction(f"{prefix}-u16", now, device_id=OTHER_CARDS[2])).encode("utf-16-le"),
           f"{PAN_OUTSIDE}: unparsed record")
    raw_tx("pan-garbage", b"\xff\xfe garbage " + OTHER_CARDS[3].encode(), f"{PAN_OUTSIDE}: unparsed record")
    lb("pan-label-customer", f"{PAN_OUTSIDE}: customer_id", customer_id=OTHER_CARDS[0])
    return cases


def all_card_numbers() -> tuple[str, ...]:
    """Every card number the corpus holds in clear, in the forms a grep should look for."""
    spaced = ("6011 1111 1111 1117", "3530-1113-3330-0000")
    return (CARD, *OTHER_CARDS, *spaced)
