"""The default store: nothing beyond this process, so nothing to do."""

from __future__ import annotations

from app.core.events import StreamMeta
from app.core.source import StreamSource
from app.resume.base import LogSink


class MemoryStore:
    async def start(self) -> None:
        return None

    async def create(self, meta: StreamMeta) -> LogSink | None:
        return None

    async def open(self, stream_id: str) -> StreamSource | None:
        return None

    async def readers_elsewhere(self, stream_id: str) -> int:
        return 0

    async def cancel_elsewhere(self, stream_id: str) -> bool:
        return False

    async def problem(self) -> str | None:
        return None

    async def aclose(self) -> None:
        return None
