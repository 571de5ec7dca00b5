"""Graceful shutdown: what Sluice does between SIGTERM and its exit.

1. At once: `draining` — /readyz answers 503 and new streams are refused (503).
2. With Redis reachable, attached EventSource readers are released at once,
   at an event boundary (a complete event, no terminal one): their browsers
   reconnect with Last-Event-ID, and another process follows the stream
   from Redis. Without Redis nobody else could serve them, so they stay
   until their stream ends.
3. Running generations go on writing into the event log until they end, or
   until `graceful_timeout_s` minus a margin; the rest then end with a
   terminal `shutting_down` error that says so (never silently).
4. Whatever response is still open is released, and the caller (app/serve.py)
   lets hypercorn close its sockets within the margin.
"""

from __future__ import annotations

import structlog

from app.services import Services

log = structlog.get_logger("sluice")


def margin_s(graceful_timeout_s: float) -> float:
    """Time kept back from the graceful timeout for responses and sockets to close."""
    return min(1.0, graceful_timeout_s / 4)


async def drain(services: Services) -> None:
    if services.draining:
        return
    services.draining = True
    timeout_s = services.settings.graceful_timeout_s
    shared = services.settings.redis_url is not None and await services.store.problem() is None
    running = len(services.generations.running())
    log.info("sluice.draining", running=running, release_readers_now=shared, timeout_s=timeout_s)
    release = services.release.set if shared else None
    await services.generations.drain(timeout_s - margin_s(timeout_s), release)
    services.release.set()
    log.info("sluice.drained")
