"""API keys, held only as SHA-256 digests. Pure: no I/O.

A key's *identity* (`key_<first 12 hex of its digest>`) is what the rest of
the gateway sees: it owns streams, names rate-limit counters and may appear
in logs and signed tokens. The key itself is forgotten once hashed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

IDENTITY_PREFIX = "key_"


class KeyConfigError(ValueError):
    """Keys that cannot be told apart by their identities; raised at start-up."""


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def key_identity(key: str) -> str:
    return IDENTITY_PREFIX + _digest(key.encode()).hex()[:12]


class KeyRing:
    def __init__(self, keys: Iterable[str]) -> None:
        entries: dict[bytes, str] = {}
        for key in keys:
            entries[_digest(key.encode())] = key_identity(key)
        if len(set(entries.values())) != len(entries):
            raise KeyConfigError("two API keys share an identity; replace one of them")
        self._entries = tuple(entries.items())

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, presented: bytes) -> str | None:
        """The identity of a presented key, or None.

        Strategy: digests are compared, never keys, each with compare_digest
        and without an early exit, so the time taken says nothing about how
        much of a key matched nor which key did.
        """
        digest = _digest(presented)
        found: str | None = None
        for stored, identity in self._entries:
            if hmac.compare_digest(digest, stored):
                found = identity
        return found
