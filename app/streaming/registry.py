"""The generations this process runs, and the ended ones it still holds for resume.

A generation is registered when it starts and forgotten `resume_ttl_s` after
it ends; shutdown stops whatever still runs. Resolving a model happens
before anything starts, so an unknown model is a 404, never a stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.core.events import StreamMeta
from app.core.lifecycle import Timeouts
from app.core.source import StreamSource
from app.errors import InvalidRequest, ShuttingDown
from app.observability import report
from app.observability.context import request_arrival
from app.observability.metrics import ModelLabels
from app.providers.base import ChatRequest
from app.providers.fallback import open_stream
from app.providers.registry import ProviderRegistry, Target
from app.resume.base import ResumeStore
from app.resume.memory import MemoryStore
from app.security.limits import MemorySlots, StreamSlots
from app.settings import Settings
from app.sse import new_stream_id
from app.streaming.generation import Generation, Stats
from app.streaming.responder import Delivery


class Generations:
    def __init__(
        self,
        settings: Settings,
        providers: ProviderRegistry,
        store: ResumeStore,
        slots: StreamSlots | None = None,
    ) -> None:
        self._settings = settings
        self._providers = providers
        self._store = store
        self._slots = slots or MemorySlots(settings.max_streams_per_key)
        self._live: dict[str, Generation] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._labels = ModelLabels(providers.model_names())
        self._timeouts = Timeouts(
            first_token_s=settings.first_token_timeout_s,
            idle_s=settings.idle_timeout_s,
            detach_grace_s=settings.detach_grace_s,
            attach_s=max(settings.detach_grace_s, settings.attach_timeout_s),
        )

    async def start(self, request: ChatRequest, owner: str) -> Generation:
        targets = self._providers.resolve(request.model)
        check_request(request, targets)
        meta = StreamMeta(new_stream_id(), request.model, int(time.time()), owner)
        # The slot is taken before anything exists (a refusal is a bare 429) and
        # given back in `_ended`, which every exit passes exactly once.
        await self._slots.acquire(owner, meta.stream_id)
        try:
            sink = await self._store.create(meta)
        except BaseException:
            self._slots.release(owner, meta.stream_id)
            raise
        store = self._store
        stats = Stats(started=request_arrival(), provider=targets[0].provider.name)
        attempts = report.StreamAttempts(stats, meta.stream_id, self._labels(request.model))

        async def wanted_elsewhere() -> bool:
            return await store.readers_elsewhere(meta.stream_id) > 0

        generation = Generation(
            meta,
            request,
            lambda req: open_stream(targets, req, attempts=attempts),
            self._timeouts,
            on_end=self._ended,
            sink=sink,
            wanted_elsewhere=None if isinstance(store, MemoryStore) else wanted_elsewhere,
            stats=stats,
        )
        if sink is not None:  # what the mirror writes again if its store lost the log
            sink.bind(generation.log.after)
        self._live[meta.stream_id] = generation
        report.stream_started(generation, self._settings.log_content)
        return generation

    def local(self, stream_id: str) -> Generation | None:
        return self._live.get(stream_id)

    async def find(self, stream_id: str) -> StreamSource | None:
        """The stream, run here or (with a shared store) by another process."""
        return self._live.get(stream_id) or await self._store.open(stream_id)

    async def cancel(self, stream_id: str) -> None:
        """DELETE: end the stream with `cancelled` (a no-op once it has ended)."""
        generation = self._live.get(stream_id)
        if generation is None:
            await self._store.cancel_elsewhere(stream_id)
            return
        generation.cancel()
        await generation.wait_ended()

    def record(self, source: StreamSource, delivery: Delivery) -> None:
        """Fold one response's delivery figures into its generation's stats; report them."""
        if isinstance(source, Generation):
            source.stats.send_blocked_s += delivery.send_blocked_s
            source.stats.bytes_sent += delivery.bytes_sent
        report.response_ended(source.meta, delivery, self._labels(source.meta.model))

    def running(self) -> list[Generation]:
        return [g for g in self._live.values() if not g.log.ended]

    def _ended(self, generation: Generation) -> None:
        meta = generation.meta
        self._slots.release(meta.owner, meta.stream_id)
        report.stream_ended(generation, self._labels(meta.model), self._settings.log_content)
        loop = asyncio.get_running_loop()
        self._expiry[meta.stream_id] = loop.call_later(
            self._settings.resume_ttl_s, self._forget, meta.stream_id
        )

    def _forget(self, stream_id: str) -> None:
        self._live.pop(stream_id, None)
        self._expiry.pop(stream_id, None)

    async def drain(self, timeout_s: float, release: Callable[[], None] | None = None) -> None:
        """Shutdown: let running generations end by themselves for `timeout_s`,
        then stop the rest with ShuttingDown. `release`: let readers go now (to
        resume elsewhere); the generations are held first, so that their
        readers leaving does not abandon them."""
        running = self.running()
        if release is not None:
            for generation in running:
                generation.hold()
            release()
        waits = [asyncio.ensure_future(g.wait_ended()) for g in running]
        if waits:
            _, late = await asyncio.wait(waits, timeout=timeout_s)
            for wait in late:
                wait.cancel()
        error = ShuttingDown(
            f"the gateway shut down before the stream ended (graceful timeout {timeout_s:g} s)"
        )
        await self.close(error)

    async def close(self, error: ShuttingDown | None = None) -> None:
        """Stop every running generation and wait for their terminal events."""
        running = self.running()
        for generation in running:
            generation.stop(error or ShuttingDown("the gateway is shutting down"))
        if running:
            await asyncio.gather(*(g.wait_ended() for g in running))
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()


_FEATURE_NAMES = {
    "images": "image input",
    "image_urls": "images by URL (send them as data: URLs)",
    "message_name": "participant names",
    "json_object": "response_format json_object",
    "json_schema": "response_format json_schema",
}


def check_request(request: ChatRequest, targets: tuple[Target, ...]) -> None:
    """Refuse, before anything starts, an option or feature some target would drop."""
    for feature, param in request.features():
        for target in targets:
            if feature not in target.provider.accepts:
                what = _FEATURE_NAMES.get(feature)
                because = f" ({what})" if what else ""
                raise InvalidRequest(
                    f"'{param}'{because} is not supported by {target.public_name}",
                    param=param,
                )
    for target in targets:
        check = getattr(target.provider, "check", None)  # what only that provider refuses
        if check is not None:
            check(request)
