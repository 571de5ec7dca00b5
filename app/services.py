"""The process-wide objects every endpoint needs, built once in the lifespan.

The Redis store and slots are imported only when Redis is configured: redis-py
is ~20 MB of a process's memory and ~0.2 s of its start-up (docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from app.api.messages import Limits
from app.providers.registry import ProviderRegistry
from app.resume.base import ResumeStore
from app.resume.memory import MemoryStore
from app.resume.responses import MemoryRecords, ResponseRecords
from app.security.auth import Auth
from app.security.limits import MemorySlots, StreamSlots
from app.settings import Settings
from app.streaming.registry import Generations
from app.streaming.responder import Release

if TYPE_CHECKING:
    from app.resume.redis_streams import RedisStore


@dataclass(frozen=True, slots=True)
class Readiness:
    status: Literal["ready", "degraded", "unavailable"]
    reason: str | None = None

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unavailable" else 200


@dataclass(slots=True)
class Services:
    settings: Settings
    providers: ProviderRegistry
    store: ResumeStore
    generations: Generations
    auth: Auth
    limits: Limits
    slots: StreamSlots
    responses: ResponseRecords
    draining: bool = False
    release: Release = field(default_factory=Release)  # shutdown: responses let go
    # One per Responses run (not per token): gives the record its TTL when the run ends.
    _kept: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def build(cls, settings: Settings, providers: ProviderRegistry | None = None) -> Services:
        """Build inside the serving event loop; `providers` replaces the configured ones."""
        providers = providers or ProviderRegistry.from_settings(settings)
        slots = _slots(settings)
        store: ResumeStore
        if settings.redis_url:
            redis_store = _redis_store(settings, settings.redis_url)
            generations = Generations(settings, providers, redis_store, slots)
            redis_store.on_cancel = _canceller(generations)
            store = redis_store
        else:
            store = MemoryStore()
            generations = Generations(settings, providers, store, slots)
        return cls(
            settings=settings,
            providers=providers,
            store=store,
            generations=generations,
            auth=Auth(settings),
            limits=Limits(settings.max_tokens_cap, settings.max_messages, settings.max_total_chars),
            slots=slots,
            responses=_records(settings),
        )

    def keep(self, work: Coroutine[object, object, None]) -> None:
        """Run `work` in the background, held until it ends (the loop keeps only weak refs)."""
        task = asyncio.get_running_loop().create_task(work)
        self._kept.add(task)
        task.add_done_callback(self._kept.discard)

    async def start(self) -> None:
        """Start background work in the serving loop; a store that is not ready is
        logged with its reason, and the process serves anyway (/readyz says 503)."""
        await self.store.start()

    async def readiness(self) -> Readiness:
        """Whether this process can serve now: with Redis down and resume not
        required it still serves (streams run without resume), degraded."""
        if self.draining:
            return Readiness("unavailable", "draining: the process is shutting down")
        problem = await self.store.problem()
        if problem is None:
            return Readiness("ready")
        if not self.settings.resume_required:
            without = "new streams run without resume (SLUICE_RESUME_REQUIRED=false)"
            return Readiness("degraded", f"{problem}; {without}")
        return Readiness("unavailable", problem)

    async def aclose(self) -> None:
        await self.generations.close()
        if self._kept:  # the runs have ended: their records get their TTL
            await asyncio.wait(list(self._kept), timeout=2.0)
        await self.responses.aclose()
        await self.slots.aclose()  # after the generations: their ends give slots back
        await self.providers.aclose()
        await self.store.aclose()


def _redis_store(settings: Settings, url: str) -> RedisStore:
    """Stream logs in Redis (resume on any process); without Redis, in memory."""
    from app.resume.redis_streams import RedisStore

    return RedisStore(settings, url)


def _records(settings: Settings) -> ResponseRecords:
    if settings.redis_url:
        from app.resume.redis_records import RedisRecords

        return RedisRecords(settings.redis_url, settings.resume_ttl_s)
    return MemoryRecords(settings.resume_ttl_s)


def _canceller(generations: Generations) -> Callable[[str], None]:
    """What a DELETE handled by another process does here."""

    def cancel(stream_id: str) -> None:
        generation = generations.local(stream_id)
        if generation is not None:
            generation.cancel()

    return cancel


def _slots(settings: Settings) -> StreamSlots:
    """Per-key stream slots: shared by every process when Redis is configured.

    An open server (no keys) has no key to count by: its anonymous clients
    share one limit only when SLUICE_MAX_STREAMS_PER_KEY is set explicitly,
    so that an open dev or load-test server is not capped at 64 streams.
    """
    if not settings.auth_enabled and not settings.limit_anonymous:
        return MemorySlots(limit=None)
    if settings.redis_url:
        from app.security.redis_slots import RedisSlots

        return RedisSlots.from_url(
            settings.redis_url, settings.max_streams_per_key, required=settings.resume_required
        )
    return MemorySlots(settings.max_streams_per_key)
