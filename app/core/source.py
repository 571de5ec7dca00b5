"""What an SSE reader follows: a stream's log, local or in another process,
and where a response starts in it.

A protocol over the core types, so that the log (streaming) and the resume
store (resume) can both be followed without importing each other.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.core.events import Event, StreamMeta
from app.sse import EventId


class StreamSource(Protocol):
    @property
    def meta(self) -> StreamMeta: ...

    async def tail(self) -> tuple[int, bool]:
        """(last seq written, whether the terminal event is among them)."""
        ...

    def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        """Batches after `after` up to and including the terminal event; `()` when idle."""
        ...


class Encoder(Protocol):
    """What `app.streaming.opening` needs of a wire (`app.wire.framing.FramedWire`)."""

    @property
    def opening_parts(self) -> int: ...

    @property
    def replays(self) -> bool: ...

    def opening(self, start: EventId | None) -> bytes: ...

    def skip(self, event: Event) -> None: ...

    def encode(self, events: Sequence[Event]) -> bytes: ...

    def rest_of(self, event: Event, part: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Opening:
    """Where a response starts: its first bytes, and the batches that follow
    them. Whoever receives it must close `batches`."""

    batches: AsyncGenerator[Sequence[Event], None]
    head: bytes  # the wire's opening, then what is already due
    last_seq: int  # the last event `head` completes (the resume point's seq)
    complete: bool  # `head` holds the terminal event: `batches` has nothing more
