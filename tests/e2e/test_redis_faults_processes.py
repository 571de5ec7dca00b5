"""Redis faults under two Sluice OS processes (`python -m app.serve`): a stream
runs in A, a reader follows it from B, and Redis freezes or restarts empty.
Nothing is lost or repeated, and no process declares a false ending."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from tests.support.client import create_lorem_stream, read_sse, transcript
from tests.support.processes import sluice_process
from tests.support.redis_server import RedisServer
from tests.support.sse_parser import SSEEvent, SSEParser

pytestmark = pytest.mark.slow
# A lease of 6 s: the longest Redis read waits 2 + 2 s, so a freeze of 4.5 s times
# a flush out (it is retried) while every lease is still alive when Redis wakes.
LEASE_S = 6.0
FREEZE_S = 4.5


def env_for(redis: RedisServer) -> dict[str, str]:
    return {
        "SLUICE_SECRET": "redis-faults-processes-secret",
        "SLUICE_LEASE_TTL_S": str(LEASE_S),
        "SLUICE_HEARTBEAT_S": "0.5",
        "SLUICE_SIM_TPS": "0",
        "SLUICE_REDIS_URL": redis.url,
    }


@contextlib.asynccontextmanager
async def two_processes(redis: RedisServer) -> AsyncIterator[tuple[str, str]]:
    env = env_for(redis)
    async with contextlib.AsyncExitStack() as stack:
        a, b = await asyncio.gather(
            stack.enter_async_context(sluice_process(env)),
            stack.enter_async_context(sluice_process(env)),
        )
        yield a.url, b.url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


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
    async with two_processes(own_redis) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=120, tps=20)
        inject = freeze if fault == "freeze" else restart_empty
        events = await follow_through(client, f"{b}/v1/streams/{sid}", lambda: inject(own_redis))
        reference = await read_sse(client, f"{a}/v1/streams/{sid}")
    assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 122)]
    assert [e.event for e in events[-1:]] == ["done"]  # never a false "interrupted"
    assert reference.terminal is not None
    assert reference.terminal.event == "done"
    assert transcript(events) == transcript(reference.events)
