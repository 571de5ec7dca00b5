"""What an SSE reader follows: a stream's log, local or in another process,
and where a response starts in it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.errors import BadLastEventId, NotFound
from app.sse import EventId
from app.streaming.events import Event, StreamMeta


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
    """What `open_stream` needs of a wire (`app.wire.framing.FramedWire`)."""

    def opening(self, start: EventId | None) -> bytes: ...

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


def _bad(message: str) -> BadLastEventId:
    return BadLastEventId(message, param="Last-Event-ID")


async def open_stream(
    source: StreamSource, wire: Encoder, start: EventId | None, idle_s: float
) -> Opening | None:
    """A response from the beginning (`start` None) or after `start`; None when
    nothing is left to send (204). Raises before any byte is sent, so a bad
    resume point is a 400 naming the header.

    Strategy: a client holding part p of event N is sent the rest of event N,
    so event N is read again (it is written: the client holds part of it) and
    the wire says what of it comes after part p. A client holding a whole
    event is resumed after it the same way: one code path, one extra event read.
    """
    head = wire.opening(start)
    if start is None or start.seq == 0:
        if start is not None and start.part:
            raise _bad(f"Last-Event-ID {start}: the opening of a response has no parts")
        return Opening(source.follow(0, idle_s), head, 0, False)
    last, ended = await source.tail()
    if start.seq > last:
        if ended:
            raise _bad(f"Last-Event-ID names event {start.seq}, but the stream ended at {last}")
        if start.part:
            raise _bad(f"Last-Event-ID {start}: event {start.seq} is not written yet")
        # A live stream behind the client's id (it read another process's memory): wait.
        return Opening(source.follow(start.seq, idle_s), head, start.seq, False)
    batches = source.follow(start.seq - 1, idle_s)
    try:
        batch = await anext(batches, ())
        if not batch or batch[0].seq != start.seq:
            raise NotFound(f"event {start.seq} of the stream is no longer available")
        rest = wire.rest_of(batch[0], start.part) + wire.encode(batch[1:])
    except BaseException:
        await batches.aclose()
        raise
    if not rest and batch[-1].terminal:
        await batches.aclose()
        return None
    return Opening(batches, head + rest, batch[-1].seq, batch[-1].terminal)
