"""Two Sluice processes (hypercorn, `python -m app.serve`) sharing one real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.client import SSEResponse, read_sse, transcript
from tests.support.client import create_lorem_stream as create
from tests.support.processes import SluiceProcess, sluice_process
from tests.support.redis_server import RedisServer
from tests.support.sse_parser import SSEEvent, SSEParser

pytestmark = pytest.mark.slow
LEASE_S = 1.0
GRACEFUL_S = 6.0


def env_for(redis: RedisServer | None, **extra: str) -> dict[str, str]:
    env = {
        "SLUICE_SECRET": "two-processes-test-secret",
        "SLUICE_LEASE_TTL_S": str(LEASE_S),
        "SLUICE_GRACEFUL_TIMEOUT_S": str(GRACEFUL_S),
        "SLUICE_HEARTBEAT_S": "0.5",
        "SLUICE_SIM_TPS": "0",
        **extra,
    }
    if redis is not None:
        env["SLUICE_REDIS_URL"] = redis.url
    return env


@pytest.fixture
async def pair(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[SluiceProcess, SluiceProcess]]:
    async with contextlib.AsyncExitStack() as stack:
        a, b = await both(stack, env_for(redis_server), env_for(redis_server))
        yield a, b


async def both(
    stack: contextlib.AsyncExitStack, env_a: dict[str, str], env_b: dict[str, str]
) -> tuple[SluiceProcess, SluiceProcess]:
    """Two processes started side by side (start-up is mostly imports)."""
    a, b = await asyncio.gather(
        stack.enter_async_context(sluice_process(env_a)),
        stack.enter_async_context(sluice_process(env_b)),
    )
    return a, b


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as c:
        yield c


@contextlib.asynccontextmanager
async def reading(client: httpx.AsyncClient, url: str) -> AsyncIterator[ReadingStream]:
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        yield ReadingStream(response.aiter_raw())


class ReadingStream:
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.parser = SSEParser()

    async def until(self, count: int) -> list[SSEEvent]:
        while len(self.parser.events) < count:
            self.parser.feed(await anext(self._chunks))
        return self.parser.events

    async def to_the_end(self) -> list[SSEEvent]:
        async for chunk in self._chunks:
            self.parser.feed(chunk)
        return self.parser.events


def error_of(event: SSEEvent) -> dict[str, object]:
    assert event.event == "error"
    error: dict[str, object] = json.loads(event.data)["error"]
    return error


async def test_a_stream_cut_on_a_resumes_on_b_with_the_exact_transcript(
    pair: tuple[SluiceProcess, SluiceProcess], client: httpx.AsyncClient
) -> None:
    a, b = pair
    sid = await create(client, a.url, tokens=60, tps=100)
    first = await read_sse(client, f"{a.url}/v1/streams/{sid}", stop_after=10)
    received = first.events[:10]
    rest = await read_sse(
        client, f"{b.url}/v1/streams/{sid}", headers={"Last-Event-ID": received[-1].id or ""}
    )
    events = received + rest.events
    assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 62)]
    assert events[-1].event == "done"
    reference = await read_sse(client, f"{a.url}/v1/streams/{sid}")
    assert transcript(events) == transcript(reference.events)


async def test_a_killed_mid_stream_ends_b_reader_with_interrupted_within_the_lease(
    pair: tuple[SluiceProcess, SluiceProcess], client: httpx.AsyncClient
) -> None:
    a, b = pair
    sid = await create(client, a.url, tokens=1000, tps=20)
    async with reading(client, f"{b.url}/v1/streams/{sid}") as on_b:
        await on_b.until(3)
        a.signal(signal.SIGKILL)
        events = await asyncio.wait_for(on_b.to_the_end(), timeout=4 * LEASE_S + 2)
    error = error_of(events[-1])
    assert error["type"] == "upstream_error"
    assert "interrupted" in str(error["message"])
    assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, len(events) + 1)]
    late = await read_sse(
        client, f"{b.url}/v1/streams/{sid}", headers={"Last-Event-ID": f"{sid}:1"}
    )
    assert [e.data for e in late.events] == [e.data for e in events[1:]]  # one ending for all
    ended = await client.get(
        f"{b.url}/v1/streams/{sid}", headers={"Last-Event-ID": events[-1].id or ""}
    )
    assert ended.status_code == 204


async def test_sigterm_releases_readers_and_finishes_generations_into_redis(
    pair: tuple[SluiceProcess, SluiceProcess], client: httpx.AsyncClient
) -> None:
    a, b = pair
    sid = await create(client, a.url, tokens=40, tps=20)
    url_a, url_b = f"{a.url}/v1/streams/{sid}", f"{b.url}/v1/streams/{sid}"
    b_task = asyncio.create_task(read_sse(client, url_b))
    async with reading(client, url_a) as on_a:
        await on_a.until(3)
        a.signal(signal.SIGTERM)
        released = await asyncio.wait_for(on_a.to_the_end(), timeout=GRACEFUL_S)
    assert released[-1].event == "token"  # let go at an event boundary, without an end
    assert (await client.get(f"{a.url}/readyz")).status_code == 503
    refused = await client.post(
        f"{a.url}/v1/streams",
        json={"model": "sim/lorem", "messages": [{"role": "user", "content": "x"}]},
    )
    assert refused.status_code == 503
    resumed = await read_sse(client, url_b, headers={"Last-Event-ID": released[-1].id or ""})
    whole: SSEResponse = await asyncio.wait_for(b_task, timeout=GRACEFUL_S)
    assert [e.id for e in whole.events] == [f"{sid}:{i}" for i in range(1, 42)]
    assert whole.events[-1].event == "done"
    assert [e.data for e in released + resumed.events] == [e.data for e in whole.events]
    assert await a.exited(within_s=GRACEFUL_S) == 0


async def test_sigterm_ends_what_outlives_the_graceful_timeout_with_shutting_down(
    redis_server: RedisServer, client: httpx.AsyncClient
) -> None:
    short = env_for(redis_server, SLUICE_GRACEFUL_TIMEOUT_S="2")
    async with contextlib.AsyncExitStack() as stack:
        a, b = await both(stack, short, env_for(redis_server))
        sid = await create(client, a.url, tokens=1000, tps=20)
        async with reading(client, f"{b.url}/v1/streams/{sid}") as on_b:
            await on_b.until(2)
            a.signal(signal.SIGTERM)
            events = await asyncio.wait_for(on_b.to_the_end(), timeout=GRACEFUL_S)
        error = error_of(events[-1])
        assert error["type"] == "shutting_down"
        assert "graceful timeout" in str(error["message"])
        assert await a.exited(within_s=2 + 1) == 0


async def test_sigterm_in_memory_mode_keeps_readers_until_their_stream_ends(
    client: httpx.AsyncClient,
) -> None:
    async with sluice_process(env_for(None)) as a:
        sid = await create(client, a.url, tokens=30, tps=20)
        async with reading(client, f"{a.url}/v1/streams/{sid}") as on_a:
            await on_a.until(2)
            a.signal(signal.SIGTERM)
            events = await asyncio.wait_for(on_a.to_the_end(), timeout=GRACEFUL_S)
        assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 32)]
        assert events[-1].event == "done"
        assert await a.exited(within_s=GRACEFUL_S) == 0
