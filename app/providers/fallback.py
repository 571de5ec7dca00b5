"""Ordered fallbacks: one public stream over the targets an alias names.

A retryable failure before the first delta (text, reasoning, a tool call...)
moves on to the next target after a short backoff; once a delta has been
yielded, an error propagates, because a client must never receive parts of
two different answers.
Whatever way the stream ends (done, error, `aclose()`, cancellation), the
current provider iterator is closed, which releases its upstream connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Protocol

from app.errors import UpstreamError, UpstreamRateLimited
from app.providers.base import ChatRequest, Chunk
from app.providers.registry import Target

Sleep = Callable[[float], Awaitable[None]]


class Attempts(Protocol):
    """Told of each target tried and each move on (metrics, upstream TTFT); must not wait."""

    def opening(self, target: Target) -> None: ...

    def falling_back(self, target: Target, error: UpstreamError) -> None: ...


BACKOFF_S = 0.05
MAX_BACKOFF_S = 0.2
# Strategy: a small retry-after is worth waiting for; a long one is the
# failing upstream's own window and says nothing about the next target, which
# should be tried promptly while the first-token deadline still has room.
MAX_HONOURED_RETRY_AFTER_S = 1.0


def backoff(attempt: int, error: UpstreamError) -> float:
    """Seconds to wait after the `attempt`-th (0-based) failed target."""
    delay = min(BACKOFF_S * 2.0**attempt, MAX_BACKOFF_S)
    wait: float | None = error.retry_after if isinstance(error, UpstreamRateLimited) else None
    if wait is not None and wait <= MAX_HONOURED_RETRY_AFTER_S:
        delay = max(delay, wait)
    return delay


async def _close(iterator: AsyncIterator[Chunk]) -> None:
    if isinstance(iterator, AsyncGenerator):
        await iterator.aclose()


def open_stream(
    targets: tuple[Target, ...],
    request: ChatRequest,
    *,
    sleep: Sleep = asyncio.sleep,
    attempts: Attempts | None = None,
) -> AsyncIterator[Chunk]:
    """Chunks from the first target that gets as far as its first token."""
    if not targets:
        raise ValueError("open_stream needs at least one target")
    if len(targets) == 1:
        # Strategy: one target has nothing to fall back to: its own iterator,
        # not wrapped in another generator, which would cost a resume per chunk.
        if attempts is not None:
            attempts.opening(targets[0])
        return targets[0].provider.stream(request, targets[0].model)
    return _fallbacks(targets, request, sleep, attempts)


async def _fallbacks(
    targets: tuple[Target, ...],
    request: ChatRequest,
    sleep: Sleep,
    attempts: Attempts | None,
) -> AsyncIterator[Chunk]:
    last = len(targets) - 1
    for attempt, target in enumerate(targets):
        if attempts is not None:
            attempts.opening(target)
        iterator = target.provider.stream(request, target.model)
        started = False
        try:
            async for chunk in iterator:
                started = started or chunk.is_delta
                yield chunk
            return
        except UpstreamError as exc:
            if started or not exc.retryable or attempt == last:
                raise
            delay = backoff(attempt, exc)
            if attempts is not None:
                attempts.falling_back(target, exc)
        finally:
            await _close(iterator)
        await sleep(delay)
    raise AssertionError("unreachable: the last target returns or raises")
