"""Connections to Redis grow with a process's pools, never with its readers:
hundreds of readers following streams run by another process share the
follower's one read."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import httpx
import pytest
from redis.asyncio import Redis

from app.resume.redis_streams import BLOCKING_CONNECTIONS, COMMAND_CONNECTIONS
from app.settings import Settings
from tests.support.client import SSEResponse, create_lorem_stream, read_sse
from tests.support.redis_server import RedisServer
from tests.support.server import run_sluice

pytestmark = pytest.mark.slow
STREAMS = 300
BASE = Settings(sim_tps=0, heartbeat_s=0.5, lease_ttl_s=3.0, max_streams_per_key=STREAMS)


async def connected_clients(redis: Redis) -> int:
    info = await redis.info("clients")
    return int(info["connected_clients"])


async def peak_while(redis: Redis, readers: asyncio.Future[list[SSEResponse]]) -> int:
    """The most clients Redis counted while the readers ran (sampled)."""
    peak = 0
    while not readers.done():  # bounded by the readers, each bounded by its stream
        peak = max(peak, await connected_clients(redis))
        await asyncio.wait({readers}, timeout=0.05)
    return peak


async def reader(client: httpx.AsyncClient, url: str) -> asyncio.Task[SSEResponse]:
    """A reader started after a pause: a burst of hundreds of opens at once in this
    one event loop (both servers and every client) would measure the loop, not Redis."""
    await asyncio.sleep(0.02)
    return asyncio.create_task(read_sse(client, url))


async def test_followers_of_many_streams_elsewhere_share_a_few_connections(
    own_redis: RedisServer,
) -> None:
    settings = replace(BASE, redis_url=own_redis.url)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    redis = Redis.from_url(own_redis.url)
    async with (
        httpx.AsyncClient(timeout=60, limits=limits) as client,
        run_sluice(settings) as a,
        run_sluice(settings) as b,
        contextlib.aclosing(redis),
    ):
        sids = [await create_lorem_stream(client, a.url, tokens=60, tps=5) for _ in range(STREAMS)]
        readers = asyncio.gather(*[await reader(client, f"{b.url}/v1/streams/{s}") for s in sids])
        peak = await peak_while(redis, readers)
        answers = await readers
    assert [r.status for r in answers] == [200] * STREAMS, [
        r.raw for r in answers if r.status != 200
    ][:2]
    assert [len(r.tokens) for r in answers] == [60] * STREAMS
    assert {r.terminal.event if r.terminal else None for r in answers} == {"done"}
    # both processes' pools and this test's client; never one per reader
    assert peak <= 2 * (COMMAND_CONNECTIONS + BLOCKING_CONNECTIONS) + 1 < STREAMS
    print(f"peak Redis clients with {STREAMS} followers elsewhere: {peak}")
