"""What each id a client can hold resumes to, on the native and the OpenAI wire:
the opening (`:0`), the parts of an event written as several blocks, the end,
and the ids that name nothing the stream wrote."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from app.settings import Settings
from tests.support.client import read_sse
from tests.support.server import RunningServer, run_sluice
from tests.support.sse_parser import SSEParser

PROMPT = [{"role": "user", "content": "alpha beta gamma delta"}]


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with run_sluice(Settings(sim_tps=0, heartbeat_s=5, retry_ms=1500)) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def chat(**extra: object) -> dict[str, object]:
    return {"model": "sim/echo", "messages": PROMPT, "stream": True, **extra}


async def first_bytes(client: httpx.AsyncClient, method: str, url: str, **kw: object) -> bytes:
    """The first body bytes of a response whose first token is seconds away."""
    async with client.stream(method, url, **kw) as response:  # type: ignore[arg-type]
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            return chunk
    raise AssertionError("no body")


async def test_the_native_opening_names_the_stream_before_the_first_token(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    query = urlencode({"model": "sim/echo", "prompt": "one two", "sim_ttft_ms": 60_000})
    head = await first_bytes(client, "GET", f"{server.url}/v1/stream?{query}")
    parser = SSEParser()
    parser.feed(head)
    assert head.startswith(b"retry: 1500\nid: ")
    assert parser.resume_id is not None
    assert parser.resume_id.endswith(":0")
    assert parser.events == []


async def test_a_oneshot_cut_before_its_first_token_reconnects_to_the_same_generation(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    query = urlencode({"model": "sim/echo", "prompt": "one two", "sim_ttft_ms": 300})
    url = f"{server.url}/v1/stream?{query}"
    parser = SSEParser()
    parser.feed(await first_bytes(client, "GET", url))  # then the connection is cut
    held = parser.resume_id
    assert held is not None
    again = await read_sse(client, url, headers={"Last-Event-ID": held})
    sid = held.rpartition(":")[0]
    assert again.headers["x-stream-id"] == sid
    assert [json.loads(e.data)["text"] for e in again.tokens] == ["one", " two"]
    generation = server.services.generations.local(sid)
    assert generation is not None
    assert generation.stats.attaches == 2  # the same generation, read twice
    assert len(server.services.generations.running()) <= 1


async def test_last_event_id_zero_replays_from_the_first_event(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        f"{server.url}/v1/streams", json={"model": "sim/echo", "messages": PROMPT}
    )
    sid = created.json()["id"]
    url = f"{server.url}/v1/streams/{sid}"
    whole = await read_sse(client, url)
    again = await read_sse(client, url, headers={"Last-Event-ID": f"{sid}:0"})
    assert [e.data for e in again.events] == [e.data for e in whole.events]
    assert again.raw.startswith(f"retry: 1500\nid: {sid}:0\n\n".encode())
    resumed = await read_sse(client, url, headers={"Last-Event-ID": f"{sid}:3"})
    # a resumed response restates the id it resumes after, so the client's id is unchanged
    assert resumed.raw.startswith(f"retry: 1500\nid: {sid}:3\n\n".encode())
    assert [e.id for e in resumed.events] == [f"{sid}:4", f"{sid}:5"]


async def chat_ids_and_data(
    client: httpx.AsyncClient, url: str, body: dict[str, object], held: str | None = None
) -> tuple[int, list[tuple[str | None, str]]]:
    headers = {"Last-Event-ID": held} if held else {}
    result = await read_sse(client, url, method="POST", json=body, headers=headers)
    return result.status, [(e.id, e.data) for e in result.events]


async def test_openai_resume_inside_the_end_sends_usage_and_done_exactly_once(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    url = f"{server.url}/v1/chat/completions"
    body = chat(stream_options={"include_usage": True})
    _, whole = await chat_ids_and_data(client, url, body)
    ids = [i for i, _ in whole]
    sid = str(ids[0]).rpartition(":")[0]
    assert ids == [f"{sid}:{n}" for n in range(6)] + [f"{sid}:5.1", f"{sid}:5.2"]
    status, rest = await chat_ids_and_data(client, url, body, f"{sid}:5")
    assert status == 200
    assert rest == whole[-2:]  # usage, then [DONE]
    assert json.loads(rest[0][1])["usage"]["completion_tokens"] == 4
    status, rest = await chat_ids_and_data(client, url, body, f"{sid}:5.1")
    assert (status, rest) == (200, whole[-1:])
    status, _ = await chat_ids_and_data(client, url, body, f"{sid}:5.2")
    assert status == 204
    status, rest = await chat_ids_and_data(client, url, body, f"{sid}:0")
    assert (status, rest) == (200, whole[1:]), "after the role chunk: no role chunk again"
    status, rest = await chat_ids_and_data(client, url, body, f"{sid}:1")
    assert (status, rest) == (200, whole[2:]), "the first token is sent once, not skipped"


async def test_openai_without_usage_ends_with_done_as_the_second_part(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    url = f"{server.url}/v1/chat/completions"
    _, whole = await chat_ids_and_data(client, url, chat())
    sid = str(whole[0][0]).rpartition(":")[0]
    assert whole[-1] == (f"{sid}:5.1", "[DONE]")
    status, rest = await chat_ids_and_data(client, url, chat(), f"{sid}:5")
    assert (status, rest) == (200, whole[-1:])
    status, _ = await chat_ids_and_data(client, url, chat(), f"{sid}:5.1")
    assert status == 204
    # a request that asks for usage has a part 2; this one has none
    refused = await client.post(url, json=chat(), headers={"Last-Event-ID": f"{sid}:5.2"})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "Last-Event-ID"


@pytest.mark.parametrize(
    "held",
    ["{sid}:2.1", "{sid}:0.1", "{sid}:9", "AAAAAAAAAAAAAAAAAAAAAA:1"],
)
async def test_ids_naming_no_block_the_stream_wrote_are_refused_or_unknown(
    server: RunningServer, client: httpx.AsyncClient, held: str
) -> None:
    url = f"{server.url}/v1/chat/completions"
    _, whole = await chat_ids_and_data(client, url, chat())
    sid = str(whole[0][0]).rpartition(":")[0]
    response = await client.post(url, json=chat(), headers={"Last-Event-ID": held.format(sid=sid)})
    if held.startswith("AAAA"):
        assert response.status_code == 404  # another (unknown) stream
        return
    assert response.status_code == 400
    error = response.json()["error"]
    assert "Last-Event-ID" in error["message"]
    assert error["param"] == "Last-Event-ID"
