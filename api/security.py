"""API keys: SHA-256 hashes from settings, compared in constant time; roles decide what a key reads."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Role = Literal["analyst", "service", "admin"]
HEADER = "X-API-Key"
#: Longest key accepted (longer values are rejected before hashing).
MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (for logs, never the key) and its role."""

    name: str
    role: Role


class KeyRing:
    """The accepted keys, as SHA-256 digests."""

    def __init__(self, keys: Iterable[tuple[str, str, Role]]) -> None:
        entries = []
        for name, sha256, role in keys:
            digest = bytes.fromhex(sha256.strip())
            if len(digest) != 32:
                raise ValueError(f"api.keys[{name}].sha256: expected 64 hex characters")
            entries.append((digest, Principal(name, role)))
        self._entries = tuple(entries)

    @classmethod
    def from_settings(cls, keys: Iterable[object]) -> KeyRing:
        """From ``settings.api.keys`` (objects with name, sha256 and role)."""
        return cls((k.name, k.sha256, k.role) for k in keys)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of ``presented``, or None. Every configured key is compared (constant time)."""
        if not presented or len(presented) > MAX_KEY_LENGTH:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        return found


def hash_key(key: str) -> str:
    """The hex SHA-256 to put in ``api.keys[].sha256`` for a clear-text key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
