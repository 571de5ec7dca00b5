"""What an SSE reader follows: a stream's log, local or in another process.

A protocol over the core types, so that the log (streaming) and the resume
store (resume) can both be followed without importing each other.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from app.core.events import Event, StreamMeta
from app.errors import BadLastEventId


class StreamSource(Protocol):
    @property
    def meta(self) -> StreamMeta: ...

    async def tail(self) -> tuple[int, bool]:
        """(last seq written, whether the terminal event is among them)."""
        ...

    def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        """Batches after `after` up to and including the terminal event; `()` when idle."""
        ...


async def resume_point(source: StreamSource, after: int) -> int | None:
    """Validate a reader's resume point; None when nothing is left to send (204)."""
    last, ended = await source.tail()
    if ended and after == last:
        return None
    if ended and after > last:
        raise BadLastEventId(
            f"Last-Event-ID names event {after}, but the stream ended at event {last}",
            param="Last-Event-ID",
        )
    return after
