"""The process-wide objects every endpoint needs, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from app.api.validation import Limits
from app.providers.registry import ProviderRegistry
from app.resume.base import ResumeStore
from app.resume.memory import MemoryStore
from app.security.auth import Auth
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
    draining: bool = False

    @classmethod
    def build(cls, settings: Settings, providers: ProviderRegistry | None = None) -> Services:
        """Build inside the serving event loop; `providers` replaces the configured ones."""
        providers = providers or ProviderRegistry.from_settings(settings)
        store = MemoryStore()
        return cls(
            settings=settings,
            providers=providers,
            store=store,
            generations=Generations(settings, providers, store),
            auth=Auth(settings),
            limits=Limits(settings.max_tokens_cap, settings.max_messages, settings.max_total_chars),
        )

    async def readiness_problem(self) -> str | None:
        """Why this process cannot serve right now, or None."""
        if self.draining:
            return "draining: the process is shutting down"
        return await self.store.problem()

    async def aclose(self) -> None:
        await self.generations.close()
        await self.providers.aclose()
        await self.store.aclose()
