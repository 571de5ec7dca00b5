"""The resume store: what a stream's log needs beyond its own process.

Every generation keeps its log in the memory of the process that runs it
(app/streaming/log.py); readers there follow it directly. A store adds what
other processes need: the stream's identity and a mirror of its events
(`LogSink`), a way to follow a stream run elsewhere (`open`), how many
readers it has elsewhere (the detach grace counts them), and a DELETE that
reaches the process that runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from app.core.events import Event, StreamMeta
from app.core.source import StreamSource


class LogSink(Protocol):
    """A mirror of one generation's events. `append` is called by the producer
    for every event and must not wait (buffer and flush in batches);
    `close` flushes the rest, terminal event included, and starts the TTL."""

    def append(self, event: Event) -> None: ...

    def bind(self, history: Callable[[int], list[Event]]) -> None:
        """Give the mirror the generation's own log (events after a seq), which it
        writes again whole if its store lost what it had written."""
        ...

    async def close(self) -> None: ...


class ResumeStore(Protocol):
    async def start(self) -> None:
        """Start the store's background work (in the serving loop); log if not ready."""
        ...

    async def create(self, meta: StreamMeta) -> LogSink | None:
        """Register a new stream run by this process; its mirror, if any.
        Raises Unavailable when the stream cannot be made resumable and must be."""
        ...

    async def open(self, stream_id: str) -> StreamSource | None:
        """A stream that this process does not run (None: unknown here)."""
        ...

    async def readers_elsewhere(self, stream_id: str) -> int:
        """Readers attached to this stream in other processes."""
        ...

    async def cancel_elsewhere(self, stream_id: str) -> bool:
        """Ask the process running `stream_id` to cancel it; False if none does."""
        ...

    async def problem(self) -> str | None:
        """Why the store cannot serve right now (readiness), or None."""
        ...

    async def aclose(self) -> None: ...
