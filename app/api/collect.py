"""Following a stream to its end for a non-streaming answer, while watching the client.

Strategy: as in the SSE responder, a watcher task cancels the collecting task on
`http.disconnect`; closing the follow iterator detaches the reader, so a client that
gave up does not keep the upstream busy past the detach grace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from starlette.types import Receive

from app.core.events import Event
from app.core.source import StreamSource
from app.errors import SluiceError

# No heartbeat to send: idle wake-ups would only be ignored, so they are rare.
_IDLE_S = 3600.0


async def _collect(source: StreamSource, feed: Callable[[Sequence[Event]], None]) -> Event:
    # Closing the iterator on every exit is what detaches this reader.
    async with contextlib.aclosing(source.follow(0, _IDLE_S)) as batches:
        async for batch in batches:
            if batch and batch[-1].terminal:
                feed(batch[:-1])
                return batch[-1]
            feed(batch)
    raise SluiceError("the stream's log ended without a terminal event")


async def follow_to_end(
    receive: Receive, source: StreamSource, feed: Callable[[Sequence[Event]], None]
) -> Event | None:
    """Feed every delta event to `feed`; the terminal event, or None if the client left."""
    task = asyncio.current_task()
    assert task is not None
    finished = gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        if not finished:
            gone = True
            task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        terminal = await _collect(source, feed)
        finished = True
        return terminal
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        return None
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
