"""The native stream API over real HTTP under hypercorn (docs/api.md: ids, streams, resume)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from app.settings import Settings
from tests.support.client import read_sse, transcript
from tests.support.providers import CountingSim, registry_with
from tests.support.server import RunningServer, run_sluice

USER_X = b'{"model": "sim/echo", "messages": [{"role": "user", "content": "x"}]}'
ECHO = "the quick brown fox jumps over the lazy dog"


def chat(model: str = "sim/lorem", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": ECHO}], **extra}


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with run_sluice(Settings(sim_tps=0, heartbeat_s=0.2)) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def create(client: httpx.AsyncClient, url: str, **body: object) -> str:
    response = await client.post(f"{url}/v1/streams", json=chat(**body))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "url", "model", "created"}
    assert created["url"] == f"/v1/streams/{created['id']}"
    return str(created["id"])


async def test_full_stream_has_sse_headers_retry_and_ordered_events(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    sid = await create(client, server.url, model="sim/echo")
    result = await read_sse(client, f"{server.url}/v1/streams/{sid}")
    assert result.status == 200
    assert result.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert result.headers["cache-control"] == "no-cache"
    assert result.headers["x-accel-buffering"] == "no"
    assert result.headers["connection"] == "keep-alive"
    assert result.raw.startswith(b"retry: ")
    assert result.parser.retry == 2000
    assert [e.event for e in result.events] == ["token"] * 9 + ["done"]
    assert [e.id for e in result.events] == [f"{sid}:{i}" for i in range(1, 11)]
    assert transcript(result.events) == ECHO
    done = json.loads(result.events[-1].data)
    assert done["finish_reason"] == "stop"
    assert done["usage"] == {"input_tokens": 9, "output_tokens": 9}
    assert set(done) == {"finish_reason", "usage", "ttft_ms", "tokens_per_second"}


async def test_headers_arrive_before_the_first_token(client: httpx.AsyncClient) -> None:
    sim = CountingSim()
    async with run_sluice(Settings(), registry_with(sim)) as server:
        url = f"{server.url}/v1/stream?model=sim/lorem&prompt=hi&max_tokens=3&sim_ttft_ms=1500"
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            sid = response.headers["x-stream-id"]
            generation = server.services.generations.local(sid)
            assert generation is not None
            assert generation.stats.tokens == 0  # the upstream has not answered yet
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        assert body.count(b"event: token") == 3


@pytest.mark.parametrize("k", [0, 1, 17, 49, 50])
async def test_resume_after_k_events_gives_the_exact_transcript(
    server: RunningServer, client: httpx.AsyncClient, k: int
) -> None:
    sid = await create(client, server.url, max_tokens=50, sim={"tps": 200})
    first = await read_sse(client, f"{server.url}/v1/streams/{sid}", stop_after=k)
    received = first.events[:k]  # what the client had when the connection dropped
    headers = {"Last-Event-ID": received[-1].id or ""} if received else {}
    rest = await read_sse(client, f"{server.url}/v1/streams/{sid}", headers=headers)
    assert rest.status == 200
    events = received + rest.events
    ids = [e.id for e in events]
    assert ids == [f"{sid}:{i}" for i in range(1, 52)]  # none lost, none repeated
    reference = await read_sse(client, f"{server.url}/v1/streams/{sid}")
    assert transcript(events) == transcript(reference.events)
    assert events[-1].event == "done"


async def test_resume_after_the_end_replays_then_204_on_the_terminal_id(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    sid = await create(client, server.url, max_tokens=10)
    whole = await read_sse(client, f"{server.url}/v1/streams/{sid}")
    assert whole.terminal is not None
    replay = await read_sse(
        client, f"{server.url}/v1/streams/{sid}", headers={"Last-Event-ID": f"{sid}:4"}
    )
    assert [e.id for e in replay.events] == [f"{sid}:{i}" for i in range(5, 12)]
    by_query = await read_sse(client, f"{server.url}/v1/streams/{sid}?last_event_id={sid}:9")
    assert [e.id for e in by_query.events] == [f"{sid}:10", f"{sid}:11"]
    ended = await client.get(
        f"{server.url}/v1/streams/{sid}", headers={"Last-Event-ID": f"{sid}:11"}
    )
    assert ended.status_code == 204
    assert ended.content == b""


async def test_oneshot_get_resumes_the_same_stream_with_last_event_id(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    url = f"{server.url}/v1/stream?model=sim/lorem&prompt=hi&max_tokens=20&sim_tps=100"
    first = await read_sse(client, url, stop_after=5)
    sid = first.headers["x-stream-id"]
    last = first.events[-1].id
    assert last is not None
    rest = await read_sse(client, url, headers={"Last-Event-ID": last})
    assert rest.headers["x-stream-id"] == sid
    ids = [e.id for e in first.events + rest.events]
    assert ids == [f"{sid}:{i}" for i in range(1, 22)]


async def test_unknown_streams_are_404_and_bad_event_ids_400(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    missing = await client.get(f"{server.url}/v1/streams/AAAAAAAAAAAAAAAAAAAAAA")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    sid = await create(client, server.url, max_tokens=3)
    bad_ids = [
        "nonsense",
        f"{sid}:x",
        f"{sid}:0.1",  # the opening has no parts
        f"{sid}:2.1",  # a native event is one block: it has no part 1
        "AAAAAAAAAAAAAAAAAAAAAA:1",
        f"{sid}:99",
    ]
    for bad in bad_ids:
        await read_sse(client, f"{server.url}/v1/streams/{sid}")  # let it end
        response = await client.get(
            f"{server.url}/v1/streams/{sid}", headers={"Last-Event-ID": bad}
        )
        assert response.status_code == 400, bad
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert "Last-Event-ID" in error["message"]
    oneshot = await client.get(
        f"{server.url}/v1/stream", headers={"Last-Event-ID": "AAAAAAAAAAAAAAAAAAAAAA:3"}
    )
    assert oneshot.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "'model'"),
        (b'{"model": "sim/echo"}', 400, "'messages'"),
        (b'{"model": "sim/echo", "messages": []}', 400, "'messages'"),
        (b'{"model": "sim/echo", "messages": [{"role": "wizard", "content": "x"}]}', 400, "role"),
        (b'{"model": "sim/echo", "messages": [{"role": "user", "content": 5}]}', 400, "content"),
        (
            USER_X[:-1] + b', "max_tokens": -1}',
            400,
            "max_tokens",
        ),
        (
            USER_X[:-1] + b', "max_tokens": 2.5}',
            400,
            "max_tokens",
        ),
        (
            b'{"model": "nope/x", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "unknown model",
        ),
        (
            b'{"model": "sim/gpt", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "unknown model",
        ),
        (
            USER_X[:-1] + b', "sim": {"tps": -1}}',
            400,
            "sim.tps",
        ),
    ],
)
async def test_invalid_requests_get_a_status_and_a_message_naming_the_problem(
    server: RunningServer, client: httpx.AsyncClient, body: bytes, status: int, fragment: str
) -> None:
    response = await client.post(
        f"{server.url}/v1/streams", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


async def test_heartbeats_are_sent_while_no_event_is_due(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    url = f"{server.url}/v1/stream?model=sim/lorem&prompt=hi&max_tokens=2&sim_ttft_ms=700"
    result = await read_sse(client, url)
    assert "ping" in result.parser.comments
    assert [e.event for e in result.events] == ["token", "token", "done"]


async def test_stall_ends_in_upstream_timeout_and_fail_in_upstream_error(
    client: httpx.AsyncClient,
) -> None:
    async with run_sluice(Settings(sim_tps=0, idle_timeout_s=0.3, heartbeat_s=0.1)) as server:
        base = f"{server.url}/v1/stream?model=sim/lorem&prompt=hi&max_tokens=20"
        stalled = await read_sse(client, base + "&sim_stall_after=4")
        assert [e.event for e in stalled.events] == ["token"] * 4 + ["error"]
        error = json.loads(stalled.events[-1].data)["error"]
        assert error["type"] == "upstream_timeout"
        assert error["retryable"] is True
        assert "ping" in stalled.parser.comments  # heartbeats did not count as content
        failed = await read_sse(client, base + "&sim_fail_after=3")
        assert [e.event for e in failed.events] == ["token"] * 3 + ["error"]
        assert json.loads(failed.events[-1].data)["error"]["type"] == "upstream_error"


async def test_no_first_token_in_time_is_an_upstream_timeout(client: httpx.AsyncClient) -> None:
    async with run_sluice(Settings(first_token_timeout_s=0.3, heartbeat_s=0.1)) as server:
        result = await read_sse(
            client, f"{server.url}/v1/stream?model=sim/lorem&prompt=hi&sim_ttft_ms=5000"
        )
        assert [e.event for e in result.events] == ["error"]
        error = json.loads(result.events[0].data)["error"]
        assert error["type"] == "upstream_timeout"
        assert "first token" in error["message"]


async def test_delete_ends_every_reader_with_cancelled(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    sid = await create(client, server.url, max_tokens=1000, sim={"tps": 20})
    readers = [
        asyncio.create_task(read_sse(client, f"{server.url}/v1/streams/{sid}")) for _ in range(2)
    ]
    await asyncio.sleep(0.3)
    deleted = await client.delete(f"{server.url}/v1/streams/{sid}")
    assert deleted.status_code == 204
    for result in await asyncio.gather(*readers):
        assert result.terminal is not None
        assert result.terminal.event == "error"
        assert json.loads(result.terminal.data)["error"]["type"] == "cancelled"
    again = await client.delete(f"{server.url}/v1/streams/{sid}")
    assert again.status_code == 204
    gone = await client.delete(f"{server.url}/v1/streams/AAAAAAAAAAAAAAAAAAAAAA")
    assert gone.status_code == 404


async def test_health_and_readiness(server: RunningServer, client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{server.url}/healthz")).status_code == 200
    assert (await client.get(f"{server.url}/readyz")).status_code == 200


async def test_ids_are_stream_id_and_seq(server: RunningServer, client: httpx.AsyncClient) -> None:
    result = await read_sse(client, f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=3")
    for event in result.events:
        assert event.id is not None
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}:[1-9][0-9]*", event.id)
