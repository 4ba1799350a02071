"""Card numbers (PANs) in arbitrary text and bytes: find them, mask them to their last four digits.

A PAN here is a Luhn-valid run of 12-19 digits, bounded by non-digits and standing on its own:
a run glued to a letter or underscore is part of a word, such as a hex id (which would otherwise
quarantine about one random 32-hex id in 300). It may be written
contiguously or in the usual card groupings with a space or dash between groups (4-4-4-4[-3],
4-6-5, 4-6-4), and each digit or separator may appear as a JSON escape (``\\u0034``), since a
hostile producer can hide a number that way. Unicode decimal digits (full-width and the like)
count as digits. Masking keeps the last four digits and replaces the others with ``*``.

Plain functions, no Spark: the stream's parsing step, the importer and the tests all use them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

_DIGIT = r"(?:\d|\\u003[0-9])"
_SEP = r"(?:[ \-]|\\u0020|\\u002[dD])"
# Twelve to nineteen digit tokens with at most one separator between two digits; the lookarounds
# make the run maximal (no digit token directly before or after it).
_RUN = re.compile(rf"(?<!\d)(?<!\\u003[0-9]){_DIGIT}(?:{_SEP}?{_DIGIT}){{11,18}}(?!{_DIGIT})")
_TOKEN = re.compile(rf"{_DIGIT}|{_SEP}")
# Cheap first pass for text without escapes: maximal stretches of digits and separators.
_STRETCH = re.compile(r"\d[\d \-]{10,}\d")
_GROUPINGS = ((4, 4, 4), (4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 4))
MASK = "*"


@dataclass(frozen=True)
class Pan:
    """One card number found in a text: where it is (character span) and its digits."""

    start: int
    end: int
    digits: str

    @property
    def masked(self) -> str:
        """The number with every digit but the last four replaced by ``*``."""
        return MASK * (len(self.digits) - 4) + self.digits[-4:]


def luhn_valid(digits: str) -> bool:
    """True when the ASCII digit string passes the Luhn check."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _token_digit(token: str) -> str | None:
    if token.startswith("\\u"):
        code = int(token[2:], 16)
        return chr(code) if 0x30 <= code <= 0x39 else None
    if token.isdigit():
        return str(unicodedata.decimal(token))
    return None


def _digits_and_groups(run: str) -> tuple[str, list[int]]:
    digits: list[str] = []
    groups = [0]
    for token in _TOKEN.findall(run):
        digit = _token_digit(token)
        if digit is None:
            groups.append(0)
        else:
            digits.append(digit)
            groups[-1] += 1
    return "".join(digits), groups


def _plausible_grouping(groups: list[int]) -> bool:
    if len(groups) == 1:
        return True
    return tuple(groups) in _GROUPINGS


def find_pans(text: str) -> Iterator[Pan]:
    """Every card number in ``text`` (see the module docstring for what counts)."""
    if len(text) < 12:
        return
    if "\\u" in text:
        yield from _pans_in(text, 0, len(text))
        return
    for stretch in _STRETCH.finditer(text):
        yield from _pans_in(text, stretch.start(), stretch.end())


def _word_char(char: str) -> bool:
    return char.isalpha() or char == "_"


def _standalone(text: str, start: int, end: int) -> bool:
    """No letter or underscore right before or after: digits inside a word (a hex id) are no card number."""
    return not ((start > 0 and _word_char(text[start - 1])) or (end < len(text) and _word_char(text[end])))


def _pans_in(text: str, start: int, end: int) -> Iterator[Pan]:
    part = text[start:end]
    if part.isascii() and part.isdigit():  # the common case: one contiguous ASCII run
        if 12 <= len(part) <= 19 and luhn_valid(part) and _standalone(text, start, end):
            yield Pan(start, end, part)
        return
    for match in _RUN.finditer(part):
        digits, groups = _digits_and_groups(match.group())
        first, last = start + match.start(), start + match.end()
        if (12 <= len(digits) <= 19 and _plausible_grouping(groups) and luhn_valid(digits)
                and _standalone(text, first, last)):
            yield Pan(first, last, digits)


def has_pan(text: str) -> bool:
    """True when ``text`` holds at least one card number."""
    return next(find_pans(text), None) is not None


def mask_text(text: str) -> tuple[str, list[Pan]]:
    """``text`` with every card number masked, and the numbers found."""
    pans = list(find_pans(text))
    if not pans:
        return text, pans
    out: list[str] = []
    cursor = 0
    for pan in pans:
        out.append(text[cursor:pan.start])
        out.append(pan.masked)
        cursor = pan.end
    out.append(text[cursor:])
    return "".join(out), pans


def decode_any(raw: bytes) -> tuple[str, str]:
    """(text, encoding) of raw bytes: UTF-16 when it has a BOM or NUL bytes that decode as UTF-16, else
    UTF-8 when valid, else latin-1.

    latin-1 maps every byte to one character, so ASCII digits hidden in binary data stay visible.
    """
    if b"\x00" not in raw:  # NUL-free: no UTF-16 text of ASCII characters (which is also valid UTF-8)
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    candidates: list[str] = []
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        candidates.append("utf-16")
    elif len(raw) >= 2 and b"\x00" in raw:
        # ASCII text in UTF-16: every other byte is NUL, at odd offsets (LE) or even ones (BE).
        odd_nuls = raw[1::2].count(0)
        even_nuls = raw[0::2].count(0)
        candidates.append("utf-16-le" if odd_nuls >= even_nuls else "utf-16-be")
    for encoding in [*candidates, "utf-8"]:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def mask_bytes(raw: bytes | None) -> tuple[bytes | None, list[Pan]]:
    """Raw bytes with every card number masked (in whichever encoding they hide), and the numbers.

    Scans the bytes as decoded by :func:`decode_any` and, for non-UTF-8 data, also as latin-1, so
    a number is found whether the payload is UTF-8, UTF-16 or arbitrary binary.
    """
    if raw is None:
        return None, []
    text, encoding = decode_any(raw)
    masked, pans = mask_text(text)
    out = masked.encode(encoding, errors="surrogatepass") if pans else raw
    if encoding not in ("utf-8", "latin-1"):  # UTF-8 digits are the ASCII bytes latin-1 would see
        again, more = mask_text(out.decode("latin-1"))
        if more:
            out = again.encode("latin-1")
            pans = pans + more
    return out, pans
