"""Redis faults under two Sluice OS processes (`python -m app.serve`): the
processes, and a reader that follows a stream through a fault, shared by the
single-Redis and the Redis Cluster tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import httpx

from tests.support.client import read_sse
from tests.support.processes import sluice_process
from tests.support.sse_parser import SSEEvent, SSEParser

# A lease of 6 s: the longest Redis read waits 2 + 2 s, so a freeze of 4.5 s times
# a flush out (it is retried) while every lease is still alive when Redis wakes.
LEASE_S = 6.0


def env_for(redis_url: str) -> dict[str, str]:
    return {
        "SLUICE_SECRET": "redis-faults-processes-secret",
        "SLUICE_LEASE_TTL_S": str(LEASE_S),
        "SLUICE_HEARTBEAT_S": "0.5",
        "SLUICE_SIM_TPS": "0",
        "SLUICE_REDIS_URL": redis_url,
    }


@contextlib.asynccontextmanager
async def two_processes(env: Mapping[str, str]) -> AsyncIterator[tuple[str, str]]:
    """Two Sluice processes on one Redis (or cluster): their URLs."""
    async with contextlib.AsyncExitStack() as stack:
        a, b = await asyncio.gather(
            stack.enter_async_context(sluice_process(env)),
            stack.enter_async_context(sluice_process(env)),
        )
        yield a.url, b.url


async def follow_through(
    client: httpx.AsyncClient, url: str, fault: Callable[[], Awaitable[None]]
) -> list[SSEEvent]:
    """Read 10 events, inject the fault, read to the end; reconnect with the last id
    after a retryable error (bounded: a few reconnects)."""
    parser = SSEParser()
    async with client.stream("GET", url) as response:
        chunks = response.aiter_raw()
        while len(parser.events) < 10:
            parser.feed(await anext(chunks))
        await fault()
        async for chunk in chunks:
            parser.feed(chunk)
    events = parser.events
    for _ in range(5):
        if events[-1].event != "error" or not json.loads(events[-1].data)["error"]["retryable"]:
            break
        headers = {"Last-Event-ID": events[-1].id or ""}
        events = events[:-1] + (await read_sse(client, url, headers=headers)).events
    return events
