"""Two Sluice servers sharing a real Redis: what each sees of the other's streams."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import cast

import httpx
import pytest
from redis.asyncio import Redis

from app.resume.redis_codec import decode_entry
from app.resume.redis_source import Entries
from app.settings import Settings
from tests.support.client import create_lorem_stream as create
from tests.support.client import read_sse
from tests.support.redis_server import RedisServer
from tests.support.server import RunningServer, run_sluice


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


@contextlib.asynccontextmanager
async def two(settings: Settings) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    async with run_sluice(settings) as a, run_sluice(settings) as b:
        yield a, b


async def test_a_reader_on_another_process_keeps_the_stream_past_the_detach_grace(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    # The first grace (attach, 1 s) leaves a loaded machine time to open B's reader;
    # the 3-s stream then outlives it and several detach graces of 0.2 s.
    settings = Settings(
        redis_url=redis_server.url, detach_grace_s=0.2, attach_timeout_s=1.0, lease_ttl_s=1.0
    )
    async with two(settings) as (a, b):
        sid = await create(client, a.url, tokens=60, tps=20)
        result = await read_sse(client, f"{b.url}/v1/streams/{sid}")
        assert result.terminal is not None
        assert result.terminal.event == "done"  # not `abandoned`: B's reader counted
        generation = a.services.generations.local(sid)
        assert generation is not None
        assert generation.readers == 0  # nobody ever read it on A


async def test_with_no_reader_anywhere_the_grace_still_abandons(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    settings = Settings(
        redis_url=redis_server.url, detach_grace_s=0.2, attach_timeout_s=0.2, lease_ttl_s=1.0
    )
    async with two(settings) as (a, b):
        sid = await create(client, a.url, tokens=1000, tps=20)
        generation = a.services.generations.local(sid)
        assert generation is not None
        await generation.wait_ended()
        result = await read_sse(client, f"{b.url}/v1/streams/{sid}")
        assert result.terminal is not None
        assert json.loads(result.terminal.data)["error"]["type"] == "abandoned"


async def test_an_ended_stream_keeps_every_key_for_the_resume_ttl_only(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    settings = Settings(redis_url=redis_server.url, sim_tps=0, resume_ttl_s=120)
    async with run_sluice(settings) as a:
        sid = await create(client, a.url, tokens=5, tps=0)
        await read_sse(client, f"{a.url}/v1/streams/{sid}")
    redis = Redis.from_url(redis_server.url)
    try:
        assert await redis.exists(f"sluice:{{{sid}}}:lease") == 0  # dropped at the end
        entries = cast(Entries, await redis.xrange(f"sluice:{{{sid}}}:log"))
        events = [e for entry, fields in entries for e in decode_entry(entry, fields)]
        assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]  # five tokens and done
        assert events[-1].kind == "done"
        for key in ("log", "meta"):
            ttl_ms = await redis.pttl(f"sluice:{{{sid}}}:{key}")
            assert 0 < ttl_ms <= 120_000
        meta = await redis.hgetall(f"sluice:{{{sid}}}:meta")
        assert set(meta) == {b"model", b"created", b"owner", b"node"}
    finally:
        await redis.aclose()
