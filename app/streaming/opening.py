"""Where a response starts in a stream's log: from its beginning, after the
event `Last-Event-ID` names, or inside it.

Async (it reads the source), so it lives here and not among the core's pure
types (`app/core/source.py`) it works on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence

from app.core.events import Event
from app.core.source import Encoder, Opening, StreamSource
from app.errors import BadLastEventId, LogLost, NotFound, SluiceError, Unavailable
from app.sse import EventId


def _bad(message: str) -> BadLastEventId:
    return BadLastEventId(message, param="Last-Event-ID")


async def open_response(
    source: StreamSource, wire: Encoder, start: EventId | None, idle_s: float
) -> Opening | None:
    """A response from the beginning (`start` None) or after `start`; None when
    nothing is left to send (204). Raises before any byte is sent, so a bad
    resume point is a 400 naming the header.

    Strategy: a client holding part p of event N is sent the rest of event N,
    so event N is read again (it is written: the client holds part of it) and
    the wire says what of it comes after part p. A client holding a whole
    event is resumed after it the same way: one code path, one extra event read.
    A wire whose blocks depend on the events before them (`replays`) reads the
    log from its start, and is shown the events before N without writing them.
    """
    if start is not None and start.seq == 0 and start.part >= wire.opening_parts:
        raise _bad(f"Last-Event-ID {start}: the opening of a response has no such part")
    head = wire.opening(start)
    if start is None or start.seq == 0:
        return Opening(source.follow(0, idle_s), head, 0, False)
    last, ended = await source.tail()
    if start.seq > last:
        if ended:
            raise _bad(f"Last-Event-ID names event {start.seq}, but the stream ended at {last}")
        if start.part:
            raise _bad(f"Last-Event-ID {start}: event {start.seq} is not written yet")
        # A live stream behind the client's id (it read another process's memory): wait.
        if wire.replays:
            return Opening(_skipping(source.follow(0, idle_s), wire, start.seq), head, 0, False)
        return Opening(source.follow(start.seq, idle_s), head, start.seq, False)
    batches = source.follow(0 if wire.replays else start.seq - 1, idle_s)
    try:
        batch = await _up_to(batches, wire, start.seq)
        rest = wire.rest_of(batch[0], start.part) + wire.encode(batch[1:])
    except BaseException:
        await batches.aclose()
        raise
    if not rest and batch[-1].terminal:
        await batches.aclose()
        return None
    return Opening(batches, head + rest, batch[-1].seq, batch[-1].terminal)


async def _up_to(
    batches: AsyncGenerator[Sequence[Event], None], wire: Encoder, seq: int
) -> Sequence[Event]:
    """The first batch that holds event `seq`, from it on; the events before it
    are shown to the wire (`skip`)."""
    while True:
        batch = await anext(batches, None)
        if batch is None or (batch and batch[0].seq > seq):
            raise NotFound(f"event {seq} of the stream is no longer available")
        for i, event in enumerate(batch):
            if event.unlogged:  # the reader's store failed it before event `seq`
                raise reader_failure(event)
            if event.seq == seq:
                return batch[i:]
            wire.skip(event)


async def _skipping(
    batches: AsyncGenerator[Sequence[Event], None], wire: Encoder, seq: int
) -> AsyncGenerator[Sequence[Event], None]:
    """`batches` after event `seq`; the events up to it are shown to the wire."""
    async with contextlib.aclosing(batches):
        async for batch in batches:
            # A reader's own ending (`Event.unlogged`) carries the seq it got to,
            # not a new one: it is never the client's, so it always goes out.
            ahead = [e for e in batch if e.seq > seq or e.unlogged]
            for event in batch[: len(batch) - len(ahead)]:
                wire.skip(event)
            if ahead or not batch:
                yield ahead


def reader_failure(ending: Event) -> SluiceError:
    """The error a reader's own ending (`Event.unlogged`) stands for, for a
    response that has sent nothing yet and can still answer with a status."""
    assert ending.failure is not None
    if ending.failure.type == "unavailable":
        return Unavailable(ending.failure.message)
    return LogLost(ending.failure.message)
