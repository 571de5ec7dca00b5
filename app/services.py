"""The process-wide objects every endpoint needs, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from app.api.validation import Limits
from app.providers.registry import ProviderRegistry
from app.resume.base import ResumeStore
from app.resume.memory import MemoryStore
from app.security.auth import Auth
from app.security.limits import MemorySlots, RedisSlots, StreamSlots
from app.settings import Settings
from app.streaming.registry import Generations


@dataclass(slots=True)
class Services:
    settings: Settings
    providers: ProviderRegistry
    store: ResumeStore
    generations: Generations
    auth: Auth
    limits: Limits
    slots: StreamSlots
    draining: bool = False

    @classmethod
    def build(cls, settings: Settings, providers: ProviderRegistry | None = None) -> Services:
        """Build inside the serving event loop; `providers` replaces the configured ones."""
        providers = providers or ProviderRegistry.from_settings(settings)
        store = MemoryStore()
        slots = _slots(settings)
        return cls(
            settings=settings,
            providers=providers,
            store=store,
            generations=Generations(settings, providers, store, slots),
            auth=Auth(settings),
            limits=Limits(settings.max_tokens_cap, settings.max_messages, settings.max_total_chars),
            slots=slots,
        )

    async def readiness_problem(self) -> str | None:
        """Why this process cannot serve right now, or None."""
        if self.draining:
            return "draining: the process is shutting down"
        return await self.store.problem()

    async def aclose(self) -> None:
        await self.generations.close()
        await self.slots.aclose()  # after the generations: their ends give slots back
        await self.providers.aclose()
        await self.store.aclose()


def _slots(settings: Settings) -> StreamSlots:
    """Per-key stream slots: shared by every process when Redis is configured."""
    if settings.redis_url:
        return RedisSlots.from_url(settings.redis_url, settings.max_streams_per_key)
    return MemorySlots(settings.max_streams_per_key)
