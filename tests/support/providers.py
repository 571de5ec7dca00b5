"""An instrumented simulated provider: counts what was pulled, sees the close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from app.providers.base import ChatRequest, Chunk
from app.providers.registry import ProviderRegistry
from app.providers.simulated import SimulatedProvider


class CountingSim(SimulatedProvider):
    def __init__(self, tps: float = 0.0, ttft_ms: float = 0.0) -> None:
        super().__init__(tps, ttft_ms)
        self.pulled = 0
        self.opened = 0
        self.closed = asyncio.Event()
        self.closed_at: float | None = None

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        self.opened += 1
        try:
            async for chunk in super().stream(request, model):
                self.pulled += 1
                yield chunk
        finally:
            self.closed_at = time.monotonic()
            self.closed.set()


def registry_with(sim: SimulatedProvider) -> Callable[[], ProviderRegistry]:
    return lambda: ProviderRegistry({"sim": sim}, {})
