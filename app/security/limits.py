"""Concurrent streams per key: a slot per running stream, in memory or in Redis.

A slot is taken before a generation is created (so a refusal is a 429 and
nothing else) and given back when the generation's terminal event is in its
log — the one place every exit (done, error, timeout, cancel, abandon,
shutdown) passes exactly once. Slots are sets of stream ids, not counters:
giving one back twice cannot free a slot someone else holds.

This module holds the interface and the in-process slots; the Redis ones,
shared by every process, are in app/security/redis_slots.py, imported only
when Redis is configured (so a process without it never loads redis-py).
"""

from __future__ import annotations

from typing import Protocol

from app.errors import RateLimited

RETRY_AFTER_S = 1.0


def refusal(limit: int) -> RateLimited:
    return RateLimited(
        f"this key already has {limit} streams running, the limit "
        "(SLUICE_MAX_STREAMS_PER_KEY); retry when one has ended",
        retry_after=RETRY_AFTER_S,
        code="too_many_streams",
    )


class StreamSlots(Protocol):
    async def acquire(self, identity: str, stream_id: str) -> None:
        """Take a slot for `stream_id`, or raise RateLimited."""
        ...

    def release(self, identity: str, stream_id: str) -> None:
        """Give the slot back; must not wait (called from a generation's end)."""
        ...

    async def held(self, identity: str) -> int:
        """Slots `identity` holds now, over every process."""
        ...

    async def aclose(self) -> None: ...


class MemorySlots:
    """Slots in this process; `limit=None` counts without refusing."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._held: dict[str, set[str]] = {}

    async def acquire(self, identity: str, stream_id: str) -> None:
        held = self._held.setdefault(identity, set())
        if self._limit is not None and len(held) >= self._limit:
            raise refusal(self._limit)
        held.add(stream_id)

    def release(self, identity: str, stream_id: str) -> None:
        held = self._held.get(identity)
        if held is not None:
            held.discard(stream_id)
            if not held:
                del self._held[identity]

    async def held(self, identity: str) -> int:
        return len(self._held.get(identity, ()))

    async def aclose(self) -> None:
        self._held.clear()
