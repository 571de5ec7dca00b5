"""Redis faults under two Sluice OS processes (`python -m app.serve`): a stream
runs in A, a reader follows it from B, and Redis freezes or restarts empty.
Nothing is lost or repeated, and no process declares a false ending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.client import create_lorem_stream, read_sse, transcript
from tests.support.redis_faults import env_for, follow_through, two_processes
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow
FREEZE_S = 4.5  # longer than a flush's timeout, shorter than the lease (LEASE_S)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


async def freeze(redis: RedisServer) -> None:
    redis.freeze()
    try:
        await asyncio.sleep(FREEZE_S)
    finally:
        redis.thaw()


async def restart_empty(redis: RedisServer) -> None:
    redis.stop()
    redis.start()  # no persistence: empty


@pytest.mark.parametrize("fault", ["freeze", "empty restart"])
async def test_a_reader_in_another_process_gets_every_event_once_through_a_redis_fault(
    own_redis: RedisServer, client: httpx.AsyncClient, fault: str
) -> None:
    async with two_processes(env_for(own_redis.url)) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=120, tps=20)
        inject = freeze if fault == "freeze" else restart_empty
        events = await follow_through(client, f"{b}/v1/streams/{sid}", lambda: inject(own_redis))
        reference = await read_sse(client, f"{a}/v1/streams/{sid}")
    assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 122)]
    assert [e.event for e in events[-1:]] == ["done"]  # never a false "interrupted"
    assert reference.terminal is not None
    assert reference.terminal.event == "done"
    assert transcript(events) == transcript(reference.events)
