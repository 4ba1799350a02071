"""Card numbers found and masked in text and bytes: published test numbers, placements, encodings."""

from __future__ import annotations

import pytest

from quality.pan import decode_any, find_pans, has_pan, luhn_valid, mask_bytes, mask_text

# Test card numbers the card networks publish for integration testing (all Luhn-valid).
PUBLISHED = {
    "visa": "4111111111111111",
    "visa-13": "4222222222222",
    "mastercard": "5500005555555559",
    "amex": "378282246310005",
    "discover": "6011111111111117",
    "diners-14": "30569309025904",
    "jcb": "3530111333300000",
    "visa-19": "4000000000000000006",
}


@pytest.mark.parametrize("number", PUBLISHED.values(), ids=PUBLISHED.keys())
def test_published_test_numbers_pass_luhn_and_are_found(number: str) -> None:
    assert luhn_valid(number)
    found = list(find_pans(f"before {number} after"))
    assert [p.digits for p in found] == [number]
    assert found[0].masked == "*" * (len(number) - 4) + number[-4:]


def test_luhn_rejects_a_changed_digit() -> None:
    assert not luhn_valid("4111111111111112")
    assert not has_pan("card 4111111111111112 here")


@pytest.mark.parametrize("text", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005", "x-4111111111111111.y",
    "\\u0034111111111111111", "4111\\u00201111\\u00201111\\u00201111", "４１１１１１１１１１１１１１１１",
])
def test_separators_escapes_and_unicode_digits(text: str) -> None:
    assert [p.digits for p in find_pans(text)] in (["4111111111111111"], ["378282246310005"])


@pytest.mark.parametrize("text", [
    "12345678901234567890123",       # a long id: 23 digits, not a card number
    "2026-12-01T10:00:00.123+00:00",  # a timestamp
    "41 11 11 11 11 11 11 11",        # pairs are no card grouping
    "550e8400-e29b-41d4-a716-446655440001",  # a UUID whose digit groups are no card grouping
    "amount 12.5 lat 48.137154",
    "24ae4111111111111111dc0012fc",  # digits inside a hex id are part of a word
])
def test_things_that_are_not_card_numbers(text: str) -> None:
    assert not has_pan(text)


def test_mask_text_keeps_the_rest() -> None:
    masked, pans = mask_text('{"device_id": "4111-1111-1111-1111", "n": 5500005555555559}')
    assert masked == '{"device_id": "************1111", "n": ************5559}'
    assert [p.digits for p in pans] == ["4111111111111111", "5500005555555559"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_payloads_are_masked_in_their_encoding(encoding: str) -> None:
    raw = '{"device_id": "4111111111111111"}'.encode(encoding)
    masked, pans = mask_bytes(raw)
    assert [p.digits for p in pans] == ["4111111111111111"]
    assert masked is not None and b"4\x001\x001\x001" not in masked and b"\x004\x001\x001" not in masked
    text, _ = decode_any(masked)
    assert "************1111" in text


def test_binary_garbage_around_a_number() -> None:
    raw = b"\xff\xfe\x00garbage 4111111111111111 \x80\x81"
    masked, pans = mask_bytes(raw)
    assert pans and masked is not None and b"4111111111111111" not in masked and masked.endswith(b" \x80\x81")
    assert mask_bytes(None) == (None, [])
