"""What Sluice does when Redis is missing or goes away (a real redis-server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.events import StreamMeta
from app.errors import Unavailable
from app.resume import redis_streams
from app.resume.redis_streams import RedisStore
from app.settings import Settings
from tests.support.client import read_sse, transcript
from tests.support.redis_server import RedisServer, free_port
from tests.support.server import run_sluice
from tests.support.sse_parser import SSEParser

CHAT = {"model": "sim/lorem", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def nowhere() -> str:
    """A Redis URL on which nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_redis_down_at_start_serves_but_is_not_ready_and_says_why(
    client: httpx.AsyncClient,
) -> None:
    async with run_sluice(Settings(redis_url=nowhere())) as server:
        assert (await client.get(f"{server.url}/healthz")).status_code == 200
        ready = await client.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert "unreachable" in ready.json()["reason"]
        created = await client.post(f"{server.url}/v1/streams", json=CHAT)
        assert created.status_code == 503
        assert created.json()["error"]["type"] == "unavailable"
        assert "Redis" in created.json()["error"]["message"]


@pytest.mark.parametrize("required", [True, False])
async def test_a_stream_created_while_redis_is_down_fails_or_runs_without_resume(
    required: bool,
) -> None:
    store = RedisStore(Settings(resume_required=required), nowhere())
    meta = StreamMeta("AAAAAAAAAAAAAAAAAAAAAA", "sim/lorem", 0, "")
    try:
        if required:
            with pytest.raises(Unavailable, match="Redis"):
                await store.create(meta)
        else:
            assert await store.create(meta) is None  # the generation runs unmirrored
        problem = await store.problem()
        assert problem is not None
        assert "unreachable" in problem
    finally:
        await store.aclose()


async def test_a_stream_whose_creation_waits_too_long_for_a_connection_fails_unavailable(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_streams, "COMMAND_CONNECTIONS", 1)
    monkeypatch.setattr(redis_streams, "POOL_WAIT_S", 0.05)
    store = RedisStore(Settings(), own_redis.url)
    pool = store._redis.connection_pool
    held = await pool.get_connection()  # type: ignore[no-untyped-call]  # every one busy
    try:
        with pytest.raises(Unavailable, match="Redis"):
            await store.create(StreamMeta("AAAAAAAAAAAAAAAAAAAAAA", "sim/lorem", 0, ""))
    finally:
        await pool.release(held)
        await store.aclose()


async def test_redis_lost_mid_stream_the_stream_finishes_and_new_ones_fail_until_it_is_back(
    client: httpx.AsyncClient, own_redis: RedisServer
) -> None:
    async with run_sluice(Settings(redis_url=own_redis.url, sim_tps=0)) as server:
        body = {**CHAT, "max_tokens": 40, "sim": {"tps": 40}}
        sid = (await client.post(f"{server.url}/v1/streams", json=body)).json()["id"]
        url = f"{server.url}/v1/streams/{sid}"
        async with client.stream("GET", url) as response:
            parser = SSEParser()
            chunks = response.aiter_raw()
            while len(parser.events) < 5:
                parser.feed(await anext(chunks))
            own_redis.stop()
            async for chunk in chunks:
                parser.feed(chunk)
        assert [e.id for e in parser.events] == [f"{sid}:{i}" for i in range(1, 42)]
        assert parser.events[-1].event == "done"
        assert len(transcript(parser.events).split()) == 40
        refused = await client.post(f"{server.url}/v1/streams", json=CHAT)
        assert refused.status_code == 503
        assert (await client.get(f"{server.url}/readyz")).status_code == 503
        own_redis.start()
        assert (await client.get(f"{server.url}/readyz")).status_code == 200
        again = await client.post(f"{server.url}/v1/streams", json={**CHAT, "max_tokens": 3})
        assert again.status_code == 201
        result = await read_sse(client, f"{server.url}/v1/streams/{again.json()['id']}")
        assert json.loads(result.events[-1].data)["finish_reason"] == "length"
