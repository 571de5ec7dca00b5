"""A connection cut at any byte of any wire: the client's resume repeats nothing
and skips nothing.

For each wire (the native stream URL, the native one-shot URL, Chat Completions
with and without usage, Anthropic Messages, OpenAI Responses, a stream ending
in an error, a stream cancelled by DELETE) the uncut body is read once. Then,
for EVERY byte offset k, the first k bytes are parsed by the WHATWG rules
(`SSEParser`: an `id:` line takes effect when its block ends), the client
reconnects as it would (with the last id it holds, or without one), and what
it dispatched before the cut joined with what
the reconnect sends must equal the uncut body's events: every token, role
chunk, finish reason, usage chunk and `[DONE]` exactly once, from the same
stream.

Strategy: the client's state after a cut is (the events it dispatched, the id it
holds), and what it sends on reconnecting depends only on the id. So the
reconnect is made once per distinct id held (a few per block, not one per byte)
and its answer joined with the events of every k that holds that id; the
equality is still checked for every k. The reconnect lands on the same server
(memory store) or on another Sluice process reading the log from Redis.

A client that holds no id at all has been cut inside the response's first
block (native: the `retry:`/`id: <sid>:0` opening; Chat Completions: the role
chunk; Messages: `message_start`; Responses: `response.created`). Only there
may a reconnect be fresh: the stream URL names its stream anyway, while the
one-shot URL and a retried POST start a new generation, which must then give
the same answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from app.settings import Settings
from tests.support.redis_server import RedisServer
from tests.support.server import run_sluice
from tests.support.sluice_process import sluice_processes
from tests.support.sse_parser import SSEEvent, SSEParser

TOKENS = 6
PROMPT = "hi"


@dataclass(frozen=True)
class Servers:
    create_url: str  # runs the generation and serves the uncut body
    resume_url: str  # where a reconnect lands


@dataclass(frozen=True)
class Reply:
    status: int
    stream_id: str | None
    body: bytes


@dataclass(frozen=True)
class Wire:
    name: str
    # (client, url, stream id made by `make` or "", Last-Event-ID or None) -> the response
    request: Callable[[httpx.AsyncClient, str, str, str | None], Awaitable[Reply]]
    fresh_is_new_generation: bool  # a reconnect without an id starts another generation
    make: Callable[[httpx.AsyncClient, str], Awaitable[str]] | None = None  # -> stream id


@pytest.fixture(params=["memory", "redis-two-processes"])
async def servers(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[Servers]:
    if request.param == "memory":
        async with run_sluice(Settings(sim_tps=0, heartbeat_s=5)) as server:
            yield Servers(server.url, server.url)
        return
    env = {
        "SLUICE_REDIS_URL": redis_server.url,
        "SLUICE_SIM_TPS": "0",
        "SLUICE_HEARTBEAT_S": "5",
        "SLUICE_SECRET": "every-byte-test-secret",
    }
    async with sluice_processes(tmp_path, env, count=2) as (a, b):
        yield Servers(a.url, b.url)


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    held: str | None,
    body: object = None,
    extra_headers: dict[str, str] | None = None,
) -> Reply:
    headers = {"Last-Event-ID": held} if held is not None else {}
    headers.update(extra_headers or {})
    async with client.stream(method, url, headers=headers, json=body) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        return Reply(response.status_code, response.headers.get("x-stream-id"), raw)


async def create(client: httpx.AsyncClient, url: str, **body: object) -> str:
    payload = {"model": "sim/lorem", "messages": [{"role": "user", "content": PROMPT}], **body}
    response = await client.post(f"{url}/v1/streams", json=payload)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def stream_url(client: httpx.AsyncClient, url: str, sid: str, held: str | None) -> Reply:
    return await fetch(client, "GET", f"{url}/v1/streams/{sid}", held)


def stream_url_wire(name: str, **body: object) -> Wire:
    async def make(client: httpx.AsyncClient, url: str) -> str:
        return await create(client, url, max_tokens=TOKENS, **body)

    return Wire(name, stream_url, fresh_is_new_generation=False, make=make)


def cancelled_wire() -> Wire:
    """A stream cancelled by DELETE while it runs: its log ends in `cancelled`."""

    async def make(client: httpx.AsyncClient, url: str) -> str:
        sid = await create(client, url, max_tokens=10_000, sim={"tps": 50})
        async with client.stream("GET", f"{url}/v1/streams/{sid}") as response:
            parser = SSEParser()
            async for chunk in response.aiter_raw():  # bounded: the first token ends it
                if parser.feed(chunk):
                    break
        assert (await client.delete(f"{url}/v1/streams/{sid}")).status_code == 204
        return sid

    return Wire("native-cancelled", stream_url, fresh_is_new_generation=False, make=make)


def oneshot_wire() -> Wire:
    query = urlencode({"model": "sim/lorem", "prompt": PROMPT, "max_tokens": TOKENS})

    async def request(client: httpx.AsyncClient, url: str, _: str, held: str | None) -> Reply:
        return await fetch(client, "GET", f"{url}/v1/stream?{query}", held)

    return Wire("native-oneshot", request, fresh_is_new_generation=True)


def post_wire(name: str, path: str, body: dict[str, object], **headers: str) -> Wire:
    """A door whose stream is a POST answer: a retry with Last-Event-ID resumes it."""

    async def request(client: httpx.AsyncClient, url: str, _: str, held: str | None) -> Reply:
        return await fetch(client, "POST", f"{url}{path}", held, body, headers)

    return Wire(name, request, fresh_is_new_generation=True)


def chat_wire(name: str, **extra: object) -> Wire:
    body = {"model": "sim/lorem", "messages": [{"role": "user", "content": PROMPT}], **extra}
    return post_wire(name, "/v1/chat/completions", {**body, "stream": True, "max_tokens": TOKENS})


def messages_wire(name: str, **extra: object) -> Wire:
    body = {"model": "sim/lorem", "messages": [{"role": "user", "content": PROMPT}], **extra}
    body.update(stream=True, max_tokens=TOKENS)
    return post_wire(name, "/v1/messages", body, **{"anthropic-version": "2023-06-01"})


def responses_wire(name: str, **extra: object) -> Wire:
    body = {"model": "sim/lorem", "input": PROMPT, "stream": True, "max_output_tokens": TOKENS}
    return post_wire(name, "/v1/responses", {**body, **extra})


def wires() -> list[Wire]:
    return [
        stream_url_wire("native-stream"),
        stream_url_wire("native-error", sim={"fail_after": 3}),
        cancelled_wire(),
        oneshot_wire(),
        chat_wire("chat"),
        chat_wire("chat-usage", stream_options={"include_usage": True}),
        chat_wire("chat-error", sim={"fail_after": 3}),
        messages_wire("messages"),
        messages_wire("messages-error", sim={"fail_after": 3}),
        responses_wire("responses"),
        responses_wire("responses-background", background=True),
        responses_wire("responses-error", sim={"fail_after": 3}),
    ]


def dispatched(body: bytes) -> tuple[list[SSEEvent], str | None]:
    parser = SSEParser()
    parser.feed(body)
    return parser.events, parser.resume_id


def states(body: bytes) -> list[tuple[int, str | None]]:
    """After each k in 0..len(body): (events dispatched, id held), fed byte by byte."""
    parser = SSEParser()
    seen: list[tuple[int, str | None]] = [(0, None)]
    for k in range(len(body)):
        parser.feed(body[k : k + 1])
        seen.append((len(parser.events), parser.resume_id))
    return seen


def first_block_end(body: bytes) -> int:
    return body.index(b"\n\n") + 2


_TIMED = ("ttft_ms", "tokens_per_second", "created", "created_at")


def _untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in _TIMED}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def untimed(events: list[SSEEvent]) -> list[tuple[str, object]]:
    """What two generations of one request share: all but the measured timings
    and the second each was created in."""
    kept: list[tuple[str, object]] = []
    for event in shown(events):
        data = json.loads(event.data) if event.data.startswith("{") else event.data
        kept.append((event.event, _untimed(data)))
    return kept


def shown(events: list[SSEEvent]) -> list[SSEEvent]:
    """The events a client acts on: Anthropic's `ping` is a heartbeat, with no id,
    sent after `message_start` on a fresh response only."""
    return [e for e in events if e.event != "ping"]


def shape(events: list[SSEEvent]) -> list[tuple[str, str]]:
    """What a client keeps of each event: its type and data (ids are checked apart)."""
    return [(e.event, e.data) for e in shown(events)]


async def check_every_cut(client: httpx.AsyncClient, servers: Servers, wire: Wire) -> int:
    """Every k: the joined result equals the uncut one. Returns the number of offsets."""
    made = await wire.make(client, servers.create_url) if wire.make is not None else ""
    uncut = await wire.request(client, servers.create_url, made, None)
    assert uncut.status == 200, (wire.name, uncut.body[:200])
    sid = uncut.stream_id
    assert sid is not None
    assert made in ("", sid)
    assert_no_shared_ids(uncut.body)
    whole, final_id = dispatched(uncut.body)
    assert whole, wire.name
    replies: dict[str | None, Reply] = {}
    for k, (count, held) in enumerate(states(uncut.body)):
        events = whole[:count]
        if held is None:
            # only a cut inside the first block (sent with the headers) leaves no id
            assert k < first_block_end(uncut.body), (wire.name, k)
            assert events == [], (wire.name, k)
        if held not in replies:
            replies[held] = await wire.request(client, servers.resume_url, sid, held)
        reply = replies[held]
        if held is None and wire.fresh_is_new_generation:
            # a new generation: the same answer, under its own stream id
            assert reply.status == 200, (wire.name, k)
            assert reply.stream_id is not None
            assert reply.stream_id != sid, (wire.name, k)
            again, _ = dispatched(reply.body.replace(reply.stream_id.encode(), sid.encode()))
            assert untimed(again) == untimed(whole), (wire.name, k)
            continue
        if reply.status == 204:
            assert held == final_id, (wire.name, k, held)
            assert events == whole, (wire.name, k, held)
            continue
        assert reply.status == 200, (wire.name, k, held, reply.body[:300])
        assert reply.stream_id == sid, (wire.name, k, "resumed the same stream")
        rest, _ = dispatched(reply.body)
        joined = events + rest
        assert shape(joined) == shape(whole), (wire.name, k, held)
        ids = [e.id for e in shown(joined)]
        assert ids == [e.id for e in shown(whole)], (wire.name, k, held)
    return len(uncut.body) + 1


def assert_no_shared_ids(body: bytes) -> None:
    ids = [line for line in body.split(b"\n") if line.startswith(b"id: ")]
    assert len(ids) == len(set(ids))


async def test_a_cut_at_any_byte_of_any_wire_resumes_exactly(servers: Servers) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        offsets = {}
        for wire in wires():
            offsets[wire.name] = await check_every_cut(client, servers, wire)
    assert all(n > 100 for n in offsets.values()), offsets
