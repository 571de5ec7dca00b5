"""The same resume scenarios against every backend, so that they cannot drift.

`memory`: one process, logs in memory. `redis`: logs mirrored to a real
redis-server, read back by the same process. `redis-elsewhere`: a second
Sluice server sharing that Redis serves the resumes, reading the log from
Redis while the first one runs the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import pytest

from app.settings import Settings
from tests.support.client import read_sse, transcript
from tests.support.redis_server import RedisServer
from tests.support.server import run_sluice

BASE = Settings(sim_tps=0, heartbeat_s=0.2, lease_ttl_s=1.0)


@dataclass
class Topology:
    name: str
    create_url: str  # the server that runs the generation
    read_url: str  # the server a reconnect lands on


@pytest.fixture(params=["memory", "redis", "redis-elsewhere"])
async def topology(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[Topology]:
    name: str = request.param
    settings = BASE if name == "memory" else replace(BASE, redis_url=redis_server.url)
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(run_sluice(settings))
        b = await stack.enter_async_context(run_sluice(settings)) if name.endswith("ere") else a
        yield Topology(name, a.url, b.url)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def create(client: httpx.AsyncClient, url: str, **body: object) -> str:
    payload = {"model": "sim/lorem", "messages": [{"role": "user", "content": "hi"}], **body}
    response = await client.post(f"{url}/v1/streams", json=payload)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize("k", [0, 1, 17, 50])
async def test_a_cut_after_k_events_resumes_with_the_exact_transcript(
    topology: Topology, client: httpx.AsyncClient, k: int
) -> None:
    sid = await create(client, topology.create_url, max_tokens=50, sim={"tps": 200})
    first = await read_sse(client, f"{topology.create_url}/v1/streams/{sid}", stop_after=k)
    received = first.events[:k]
    headers = {"Last-Event-ID": received[-1].id or ""} if received else {}
    rest = await read_sse(client, f"{topology.read_url}/v1/streams/{sid}", headers=headers)
    assert rest.status == 200
    events = received + rest.events
    assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 52)]
    assert events[-1].event == "done"
    reference = await read_sse(client, f"{topology.create_url}/v1/streams/{sid}")
    assert transcript(events) == transcript(reference.events)
    assert len(transcript(events).split()) == 50


async def test_a_resume_after_the_end_replays_and_the_terminal_id_gets_204(
    topology: Topology, client: httpx.AsyncClient
) -> None:
    sid = await create(client, topology.create_url, max_tokens=10)
    whole = await read_sse(client, f"{topology.create_url}/v1/streams/{sid}")
    assert whole.terminal is not None
    url = f"{topology.read_url}/v1/streams/{sid}"
    replay = await read_sse(client, url, headers={"Last-Event-ID": f"{sid}:4"})
    assert [e.id for e in replay.events] == [f"{sid}:{i}" for i in range(5, 12)]
    assert [e.data for e in replay.events] == [e.data for e in whole.events[4:]]
    ended = await client.get(url, headers={"Last-Event-ID": f"{sid}:11"})
    assert ended.status_code == 204
    beyond = await client.get(url, headers={"Last-Event-ID": f"{sid}:12"})
    assert beyond.status_code == 400


async def test_delete_from_the_reconnect_side_ends_every_reader_with_cancelled(
    topology: Topology, client: httpx.AsyncClient
) -> None:
    sid = await create(client, topology.create_url, max_tokens=1000, sim={"tps": 20})
    urls = [f"{topology.create_url}/v1/streams/{sid}", f"{topology.read_url}/v1/streams/{sid}"]
    readers = [asyncio.create_task(read_sse(client, url)) for url in urls]
    started = await read_sse(client, urls[1], stop_after=1)  # the stream is under way
    assert started.events[0].event == "token"
    deleted = await client.delete(urls[1])
    assert deleted.status_code == 204
    for result in await asyncio.gather(*readers):
        assert result.terminal is not None
        assert json.loads(result.terminal.data)["error"]["type"] == "cancelled"
    again = await client.delete(urls[1])
    assert again.status_code == 204


async def test_a_reader_anywhere_gets_heartbeats_while_no_event_is_due(
    topology: Topology, client: httpx.AsyncClient
) -> None:
    sid = await create(client, topology.create_url, max_tokens=2, sim={"ttft_ms": 1200})
    result = await read_sse(client, f"{topology.read_url}/v1/streams/{sid}")
    assert "ping" in result.parser.comments
    assert [e.event for e in result.events] == ["token", "token", "done"]


async def test_unknown_streams_are_404_on_every_backend(
    topology: Topology, client: httpx.AsyncClient
) -> None:
    missing = await client.get(f"{topology.read_url}/v1/streams/AAAAAAAAAAAAAAAAAAAAAA")
    assert missing.status_code == 404
    gone = await client.delete(f"{topology.read_url}/v1/streams/AAAAAAAAAAAAAAAAAAAAAA")
    assert gone.status_code == 404


TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.mark.parametrize("k", [2, 5, 9, 13])
async def test_a_cut_inside_a_tool_calls_arguments_resumes_exactly(
    topology: Topology, client: httpx.AsyncClient, k: int
) -> None:
    """Reasoning (events 1-3), then two calls whose arguments come in 3-character
    fragments: every k lands inside the typed events, most inside arguments."""
    sim = {"tps": 200, "reasoning": 3, "tool_calls": 2, "fragment": 3}
    sid = await create(client, topology.create_url, model="sim/echo", tools=[TOOL], sim=sim)
    first = await read_sse(client, f"{topology.create_url}/v1/streams/{sid}", stop_after=k)
    received = first.events[:k]
    headers = {"Last-Event-ID": received[-1].id or ""}
    rest = await read_sse(client, f"{topology.read_url}/v1/streams/{sid}", headers=headers)
    events = received + rest.events
    reference = await read_sse(client, f"{topology.create_url}/v1/streams/{sid}")
    assert [(e.id, e.event, e.data) for e in events] == [
        (e.id, e.event, e.data) for e in reference.events
    ]
    kinds = [e.event for e in events]
    assert kinds[:4] == ["reasoning", "reasoning", "reasoning", "tool_call"]
    assert kinds.count("tool_call") == 2
    assert kinds[-1] == "done"
    arguments = "".join(
        json.loads(e.data)["arguments"]
        for e in events
        if e.event == "tool_call_delta" and json.loads(e.data)["index"] == 1
    )
    assert json.loads(arguments) == {"input": "hi", "call": 1}
