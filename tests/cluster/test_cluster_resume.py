"""Resume across two Sluice servers on a real Redis Cluster (3 primaries, 3
replicas): a reader cut at random points and reconnecting to either server
gets every event once, through a primary failover of the stream's shard and
through a migration of its slot to another primary."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.resume.redis_codec import StreamKeys
from app.settings import Settings
from tests.support.client import create_lorem_stream, read_sse, transcript
from tests.support.redis_cluster import RedisClusterServers
from tests.support.server import run_sluice
from tests.support.sse_parser import SSEEvent

pytestmark = pytest.mark.slow
BASE = Settings(sim_tps=0, heartbeat_s=0.2, lease_ttl_s=3.0)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as c:
        yield c


@contextlib.asynccontextmanager
async def two_servers(url: str) -> AsyncIterator[tuple[str, str]]:
    settings = replace(BASE, redis_url=url)
    async with run_sluice(settings) as a, run_sluice(settings) as b:
        yield a.url, b.url


async def hop_until_done(
    client: httpx.AsyncClient, urls: tuple[str, str], sid: str, seed: int
) -> tuple[list[SSEEvent], int]:
    """Read a few events from a random server, cut, resume with the last id on a
    random server; until the terminal event (bounded). Also: how many cuts."""
    rng = random.Random(seed)
    events: list[SSEEvent] = []
    for cuts in range(200):
        headers = {"Last-Event-ID": events[-1].id or ""} if events else {}
        url = f"{rng.choice(urls)}/v1/streams/{sid}"
        part = await read_sse(client, url, headers=headers, stop_after=rng.randint(1, 12))
        assert part.status == 200, part.raw
        events += part.events
        if events and events[-1].event in ("done", "error"):
            return events, cuts
    raise AssertionError("no terminal event after 200 reconnects")


@pytest.mark.parametrize("fault", ["failover", "migration"])
async def test_cut_and_reconnect_across_two_servers_loses_and_repeats_nothing(
    redis_cluster: RedisClusterServers, client: httpx.AsyncClient, fault: str
) -> None:
    """While the stream's shard fails over to its replica, or its slot migrates
    to another primary."""
    async with two_servers(redis_cluster.url) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=150, tps=60)
        reader = asyncio.create_task(hop_until_done(client, (a, b), sid, seed=20))
        await read_sse(client, f"{b}/v1/streams/{sid}", stop_after=20)  # under way
        move = redis_cluster.failover if fault == "failover" else redis_cluster.migrate
        await asyncio.to_thread(move, StreamKeys.of(sid).log)
        events, cuts = await reader
        reference = await read_sse(client, f"{a}/v1/streams/{sid}")
    assert cuts >= 5
    assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 152)]
    assert events[-1].event == "done"
    assert transcript(events) == transcript(reference.events)
