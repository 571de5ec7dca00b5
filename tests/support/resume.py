"""A finished log as a `StreamSource`, and what `open_response` and the responder
write from it after a resume point: the real code path, without a server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence

from app.core.events import Event, StreamMeta
from app.core.source import Encoder
from app.sse import EventId
from app.streaming.opening import open_response


class ListSource:
    """A finished log in memory, read one event per batch."""

    def __init__(self, meta: StreamMeta, events: Sequence[Event]) -> None:
        self._meta = meta
        self._events = list(events)

    @property
    def meta(self) -> StreamMeta:
        return self._meta

    async def tail(self) -> tuple[int, bool]:
        return len(self._events), True

    async def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        for event in self._events[after:]:
            yield [event]


async def _written(source: ListSource, wire: Encoder, start: EventId | None) -> bytes | None:
    opening = await open_response(source, wire, start, 1.0)
    if opening is None:
        return None  # 204: nothing left
    body = [opening.head]
    async with contextlib.aclosing(opening.batches) as batches:
        if not opening.complete:
            body += [wire.encode(batch) async for batch in batches]
    return b"".join(body)


def written_after(
    meta: StreamMeta, events: Sequence[Event], wire: Encoder, start: EventId | None
) -> bytes | None:
    """The body of a response that starts after `start` (None: a fresh one) on a
    new `wire`; None for a 204."""
    return asyncio.run(_written(ListSource(meta, events), wire, start))
