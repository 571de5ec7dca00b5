"""The in-process event log of one stream, and how readers wait on it.

Strategy: readers that are caught up park on a future of their own, listed
here and resolved by the next append (one wake-up per reader per append, no
task per token). A reader never awaits a shared future directly: cancelling
a disconnected reader would cancel that future for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib

from app.streaming.events import Event


def _wake(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class EventLog:
    """Events in order; `events[i].seq == i + 1`; ends with one terminal event."""

    __slots__ = ("_waiters", "events")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._waiters: list[asyncio.Future[bool]] = []

    @property
    def last_seq(self) -> int:
        return len(self.events)

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].terminal

    def append(self, event: Event) -> None:
        assert event.seq == len(self.events) + 1, "events are appended in seq order"
        assert not self.ended, "nothing follows the terminal event"
        self.events.append(event)
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                _wake(fut, True)

    def after(self, seq: int) -> list[Event]:
        return self.events[seq:]

    async def wait(self, idle_s: float) -> bool:
        """Wait for the next append; False if `idle_s` seconds pass first."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(idle_s, _wake, fut, False)
        try:
            return await fut
        finally:
            timer.cancel()
            if fut.cancelled() or fut.result() is False:  # still listed: not woken by append
                self._discard(fut)

    def _discard(self, fut: asyncio.Future[bool]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)
