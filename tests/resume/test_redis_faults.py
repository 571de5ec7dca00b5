"""Faults injected into a real redis-server under Sluice: a freeze, a restart
without persistence, a trimmed log, an outage. Nothing is lost or repeated
without a reader being told, and every Redis error has a clear answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import httpx
import pytest
from redis.asyncio import Redis

from app.core.events import Event
from app.errors import Unavailable
from app.redis_client import bounded_client
from app.resume import redis_streams
from app.resume.redis_codec import StreamKeys, decode_entry
from app.resume.redis_sink import Flusher, Health, RedisSink
from app.resume.redis_source import Entries
from app.resume.redis_streams import RedisStore, restarted_lately
from app.security.redis_slots import RedisSlots
from app.settings import Settings
from tests.support.client import SSEResponse, create_lorem_stream, read_sse, transcript
from tests.support.redis_server import RedisServer, free_port
from tests.support.server import run_sluice
from tests.support.sse_parser import SSEParser

SID = "FaultTestFaultTestFau0"
BASE = Settings(sim_tps=0, heartbeat_s=0.2, lease_ttl_s=1.0)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as c:
        yield c


def tokens(first: int, last: int) -> list[Event]:
    return [Event(seq, "token", text=f"t{seq} ") for seq in range(first, last + 1)]


async def logged(url: str, stream_id: str) -> list[int]:
    redis = Redis.from_url(url)
    try:
        entries = cast(Entries, await redis.xrange(StreamKeys.of(stream_id).log))
    finally:
        await redis.aclose()
    return [e.seq for entry, fields in entries for e in decode_entry(entry, fields)]


async def test_a_write_retried_after_a_freeze_lands_once_and_the_stream_goes_on(
    own_redis: RedisServer,
) -> None:
    client = bounded_client(own_redis.url, size=1, wait_s=2.0, socket_timeout_s=0.3)
    flusher = Flusher(client, Health("test"), maxlen=1024, ttl_s=60)
    sink = RedisSink(SID, flusher)
    flusher.add(sink)
    try:
        for event in tokens(1, 3):
            sink.append(event)
        await flusher.flush()
        own_redis.freeze()
        try:
            for event in tokens(4, 6):
                sink.append(event)
            await flusher.flush()  # times out; its bytes wait in Redis' socket
            assert flusher._health.problem is not None
        finally:
            own_redis.thaw()  # the first copy of 4..6 is applied now
        for event in tokens(7, 8):
            sink.append(event)
        await flusher.flush()  # 4..6 again: refused as already there, with the same content
        assert not sink.broken
        assert await logged(own_redis.url, SID) == list(range(1, 9))
    finally:
        await flusher.aclose()
        await client.aclose()


@contextlib.asynccontextmanager
async def two_servers(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    async with run_sluice(settings) as a, run_sluice(settings) as b:
        yield a.url, b.url


async def test_a_log_trimmed_past_a_readers_cursor_ends_it_with_log_lost_never_a_partial_replay(
    own_redis: RedisServer, client: httpx.AsyncClient
) -> None:
    async with two_servers(replace_url(BASE, own_redis.url)) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=120, tps=2000)
        whole = await read_sse(client, f"{a}/v1/streams/{sid}")
        assert whole.terminal is not None
        assert whole.terminal.event == "done"
        redis = Redis.from_url(own_redis.url)
        try:
            await redis.xtrim(StreamKeys.of(sid).log, minid="0-61", approximate=False)
        finally:
            await redis.aclose()
        fresh = await read_sse(client, f"{b}/v1/streams/{sid}")
        assert fresh.status == 200
        assert [e.event for e in fresh.events] == ["error"]  # not one token of a partial log
        # the reader's own ending has no id: the client keeps the last one it got,
        # here the opening's (`retry:` with `<sid>:0`)
        assert fresh.events[0].id == f"{sid}:0"
        assert b"id:" not in fresh.raw.partition(b"event: error")[2]
        error = json.loads(fresh.events[0].data)["error"]
        assert (error["type"], error["retryable"]) == ("log_lost", False)
        tail = await read_sse(client, f"{b}/v1/streams/{sid}", headers=after(sid, 100))
        assert [e.id for e in tail.events] == [f"{sid}:{i}" for i in range(101, 122)]
        assert transcript(tail.events) == transcript(whole.events[100:])


def replace_url(settings: Settings, url: str) -> Settings:
    return replace(settings, redis_url=url)


def after(sid: str, seq: int) -> dict[str, str]:
    return {"Last-Event-ID": f"{sid}:{seq}"}


async def test_a_redis_restarted_empty_mid_stream_loses_nothing_for_a_reader_elsewhere(
    own_redis: RedisServer, client: httpx.AsyncClient
) -> None:
    async with two_servers(replace_url(BASE, own_redis.url)) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=80, tps=40)
        url_b = f"{b}/v1/streams/{sid}"
        async with client.stream("GET", url_b) as response:
            first = SSEResponseReader(response)
            await first.until(10)
            own_redis.stop()
            own_redis.start()  # empty: no persistence
            await first.to_the_end()
        events = first.parser.events
        last = int((events[-1].id or "").rpartition(":")[2])
        rest: list[SSEResponse] = []
        if events[-1].event != "done":
            assert events[-1].event == "error"  # told, never a silent cut
            assert json.loads(events[-1].data)["error"]["retryable"] is True
            rest = [await read_sse(client, url_b, headers=after(sid, last))]
        got = [e for e in events if e.event != "error"] + [e for r in rest for e in r.events]
        reference = await read_sse(client, f"{a}/v1/streams/{sid}")
        assert [e.id for e in got] == [f"{sid}:{i}" for i in range(1, 82)]
        assert transcript(got) == transcript(reference.events)
        assert await logged(own_redis.url, sid) == list(range(1, 82))  # the owner rewrote it


class SSEResponseReader:
    def __init__(self, response: httpx.Response) -> None:
        self.parser = SSEParser()
        self._chunks = response.aiter_raw()

    async def until(self, count: int) -> None:
        while len(self.parser.events) < count:
            self.parser.feed(await anext(self._chunks))

    async def to_the_end(self) -> None:
        async for chunk in self._chunks:
            self.parser.feed(chunk)


def nowhere() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_without_required_resume_keyed_streams_run_and_ready_is_degraded_while_redis_is_down(
    client: httpx.AsyncClient,
) -> None:
    settings = Settings(
        redis_url=nowhere(), resume_required=False, api_keys=("key-degraded-0001",), sim_tps=0
    )
    async with run_sluice(settings) as server:
        headers = {"Authorization": "Bearer key-degraded-0001"}
        body = {"model": "sim/lorem", "messages": [{"role": "user", "content": "hi"}]}
        created = await client.post(
            f"{server.url}/v1/streams", json={**body, "max_tokens": 3}, headers=headers
        )
        assert created.status_code == 201, created.text
        result = await read_sse(client, f"{server.url}{created.json()['url']}", headers=headers)
        assert [e.event for e in result.events] == ["token", "token", "token", "done"]
        ready = await client.get(f"{server.url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert "without resume" in ready.json()["reason"]


async def test_every_redis_read_answers_unavailable_when_redis_is_gone(
    own_redis: RedisServer, client: httpx.AsyncClient
) -> None:
    store = RedisStore(BASE, own_redis.url)
    slots = RedisSlots.from_url(own_redis.url, limit=4)
    async with two_servers(replace_url(BASE, own_redis.url)) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=5, tps=2000)
        await read_sse(client, f"{a}/v1/streams/{sid}")
        source = await store.open(sid)
        assert source is not None
        own_redis.stop()
        try:
            with pytest.raises(Unavailable):
                await source.tail()
            with pytest.raises(Unavailable):
                await store.readers_elsewhere(sid)
            with pytest.raises(Unavailable):
                await slots.held("someone")
            got = await client.get(f"{b}/v1/streams/{sid}")
            assert got.status_code == 503
            assert got.json()["error"]["type"] == "unavailable"
        finally:
            own_redis.start()
            await store.aclose()
            await slots.aclose()


async def test_a_redis_frozen_mid_stream_gives_readers_here_and_elsewhere_the_same_whole_stream(
    own_redis: RedisServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # reads time out 0.3 s after the longest block (2 s): a 3-s freeze times a flush
    # out and its retry goes to a Redis that applies the first copy when it wakes,
    # while the 6-s lease outlives the freeze (the owner is alive all along)
    monkeypatch.setattr(redis_streams, "READ_SLACK_S", 0.3)
    settings = replace(BASE, redis_url=own_redis.url, lease_ttl_s=6.0)
    async with two_servers(settings) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=60, tps=20)
        elsewhere = asyncio.create_task(read_sse(client, f"{b}/v1/streams/{sid}"))
        async with client.stream("GET", f"{a}/v1/streams/{sid}") as response:
            here = SSEResponseReader(response)
            await here.until(10)
            own_redis.freeze()
            try:
                await asyncio.sleep(3.0)  # the stall itself: no assertion is timed
            finally:
                own_redis.thaw()
            await here.to_the_end()
        there = await elsewhere
        for events in (here.parser.events, there.events):
            assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 62)]
            assert events[-1].event == "done"
        assert transcript(there.events) == transcript(here.parser.events)
        assert await logged(own_redis.url, sid) == list(range(1, 62))


async def test_a_reconnect_into_a_trimmed_log_is_answered_410_at_once_on_every_door(
    own_redis: RedisServer, client: httpx.AsyncClient
) -> None:
    # a lease of a minute: waiting a lease for the gap to fill would outlast the client's
    # timeout; an ended stream's log cannot change, so the gap is final at once
    async with two_servers(replace(BASE, redis_url=own_redis.url, lease_ttl_s=60.0)) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=120, tps=2000)
        await read_sse(client, f"{a}/v1/streams/{sid}")
        redis = Redis.from_url(own_redis.url)
        try:
            await redis.xtrim(StreamKeys.of(sid).log, minid="0-61", approximate=False)
        finally:
            await redis.aclose()
        hi = [{"role": "user", "content": "hi"}]
        native = await client.get(f"{b}/v1/streams/{sid}", headers=after(sid, 30))
        chat = await client.post(
            f"{b}/v1/chat/completions",
            headers=after(sid, 30),
            json={"model": "sim/lorem", "messages": hi, "stream": True},
        )
        messages = await client.post(
            f"{b}/v1/messages",
            headers={**after(sid, 30), "anthropic-version": "2023-06-01"},
            json={"model": "sim/lorem", "messages": hi, "max_tokens": 120, "stream": True},
        )
        beyond = await read_sse(client, f"{b}/v1/streams/{sid}", headers=after(sid, 70))
    for answer in (native, chat):
        assert answer.status_code == 410, answer.text
        assert answer.json()["error"]["type"] == "log_lost"
    assert messages.status_code == 410, messages.text
    assert messages.json()["type"] == "error"
    assert messages.json()["error"]["type"] == "api_error"
    assert [e.id for e in beyond.events] == [f"{sid}:{i}" for i in range(71, 122)]


@pytest.mark.parametrize(
    ("redis_up_s", "process_up_s", "answer"),
    [(0, 5.0, True), (4, 5.5, True), (3, 2.5, False), (6, 60.0, False), (None, 60.0, False)],
)
def test_a_missing_stream_is_doubted_only_after_a_redis_restart_less_than_a_lease_ago(
    redis_up_s: int | None, process_up_s: float, answer: bool
) -> None:
    assert restarted_lately(redis_up_s, process_up_s, lease_s=5.0) is answer


async def test_a_stream_missing_from_a_redis_restarted_empty_moments_ago_is_503_not_404(
    own_redis: RedisServer, client: httpx.AsyncClient
) -> None:
    # a lease of 30 s: the owner writes the stream again within 10 s, long after the GET
    async with two_servers(replace(BASE, redis_url=own_redis.url, lease_ttl_s=30.0)) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=400, tps=20)
        await asyncio.sleep(3.0)  # B has run seconds longer than the restarted Redis will have
        own_redis.stop()
        own_redis.start()  # empty: no persistence
        got = await client.get(f"{b}/v1/streams/{sid}")
    assert got.status_code == 503, got.text
    assert got.json()["error"]["code"] == "resume_store_restarted"
    assert int(got.headers["retry-after"]) >= 1
