"""The flusher against a real Redis: one write per flush, each stream settled on its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis

from app.core.events import Done, Event, Failure, Usage
from app.redis_client import bounded_client
from app.resume.redis_codec import StreamKeys, decode_entry, encode_batch
from app.resume.redis_sink import Flusher, Health, RedisSink
from app.resume.redis_source import Entries
from tests.support.redis_server import RedisServer

A = "SinkTestSinkTestSinkA0"  # of this module only: the Redis server is shared
B = "SinkTestSinkTestSinkB0"


def tokens(first: int, last: int) -> list[Event]:
    return [Event(seq, "token", text=f"t{seq} ") for seq in range(first, last + 1)]


def done(seq: int) -> Event:
    return Event(seq, "done", done=Done("stop", Usage(1, seq - 1), None, None))


async def logged(redis: Redis, stream_id: str) -> list[tuple[int, str]]:
    entries = cast(Entries, await redis.xrange(StreamKeys.of(stream_id).log))
    return [(e.seq, e.kind) for entry, fields in entries for e in decode_entry(entry, fields)]


def one_connection(url: str) -> Redis:
    """A client whose pool has one connection: one not given back fails the next command."""
    return bounded_client(url, size=1, wait_s=0.5, socket_timeout_s=2.0)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    keys = [*StreamKeys.of(A).all, *StreamKeys.of(B).all]
    await client.delete(*keys)
    yield client
    await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def flusher(redis_server: RedisServer) -> AsyncIterator[Flusher]:
    client = one_connection(redis_server.url)
    flusher = Flusher(client, Health("test"), maxlen=1024, ttl_s=60)
    yield flusher
    await flusher.aclose()
    await client.aclose()


def sinks(flusher: Flusher) -> tuple[RedisSink, RedisSink]:
    a, b = RedisSink(A, flusher), RedisSink(B, flusher)
    flusher.add(a)
    flusher.add(b)
    return a, b


async def test_a_refused_entry_breaks_only_its_stream_and_the_next_are_written(
    redis: Redis, flusher: Flusher
) -> None:
    a, b = sinks(flusher)
    interrupted = Event(2, "error", failure=Failure("upstream_error", "gone", True))
    entry, fields = encode_batch([interrupted])  # a follower found the owner dead after 1
    await redis.xadd(StreamKeys.of(A).log, fields, id=entry)  # type: ignore[arg-type]
    for event in tokens(2, 3):
        a.append(event)
    for event in tokens(1, 2):
        b.append(event)
    await flusher.flush()
    assert (a.broken, b.broken) == (True, False)
    assert list(flusher.live) == [B]
    for event in tokens(3, 4):
        b.append(event)
    await flusher.flush()  # on the same connection: its replies stayed in step
    assert await logged(redis, A) == [(2, "error")]
    assert await logged(redis, B) == [(1, "token"), (2, "token"), (3, "token"), (4, "token")]


async def test_close_returns_once_the_end_is_written_with_its_ttl_and_without_a_lease(
    redis: Redis, flusher: Flusher
) -> None:
    _, b = sinks(flusher)
    await redis.set(StreamKeys.of(B).lease, b"node")
    flusher.start()
    for event in [*tokens(1, 2), done(3)]:
        b.append(event)
    await b.close()
    assert await logged(redis, B) == [(1, "token"), (2, "token"), (3, "done")]
    assert 0 < await redis.pttl(StreamKeys.of(B).log) <= 60_000
    assert await redis.exists(StreamKeys.of(B).lease) == 0
    assert list(flusher.live) == [A]


async def test_a_write_that_fails_is_sent_again_unchanged_once_redis_is_back(
    own_redis: RedisServer,
) -> None:
    client = one_connection(own_redis.url)
    flusher = Flusher(client, Health("test"), maxlen=1024, ttl_s=60)
    try:
        a, b = sinks(flusher)
        a.append(tokens(1, 1)[0])
        await flusher.flush()  # the pool's one connection is open now
        own_redis.stop()
        a.append(tokens(2, 2)[0])
        b.append(tokens(1, 1)[0])
        await flusher.flush()
        assert (a.broken, b.broken) == (False, False)
        assert flusher._health.problem is not None
        own_redis.start()  # empty: the first entry of A is gone with the old server
        a.append(tokens(3, 3)[0])
        await flusher.flush()
        assert flusher._health.problem is None
        reader = Redis.from_url(own_redis.url)
        try:
            assert await logged(reader, A) == [(2, "token"), (3, "token")]
            assert await logged(reader, B) == [(1, "token")]
        finally:
            await reader.aclose()
    finally:
        await flusher.aclose()
        await client.aclose()


@pytest.mark.parametrize("steps", range(8))
async def test_a_flush_cancelled_anywhere_leaves_the_connection_fit_for_the_next(
    redis: Redis, flusher: Flusher, steps: int
) -> None:
    a, b = sinks(flusher)
    for event in tokens(1, 50):
        a.append(event)
    task = asyncio.create_task(flusher.flush())
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()  # mid-flush, or after it ended when `steps` outlasts it
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for event in tokens(1, 2):
        b.append(event)
    await flusher.flush()
    assert not b.broken
    assert await logged(redis, B) == [(1, "token"), (2, "token")]


async def test_a_write_refused_for_another_reason_than_its_id_is_sent_again(
    redis: Redis, flusher: Flusher
) -> None:
    sink = RedisSink(A, flusher)
    flusher.add(sink)
    await redis.set(StreamKeys.of(A).log, "not a stream")  # XADD answers WRONGTYPE
    for event in tokens(1, 2):
        sink.append(event)
    await flusher.flush()
    assert not sink.broken  # not taken for another writer's entry
    await redis.delete(StreamKeys.of(A).log)
    sink.append(tokens(3, 3)[0])
    await flusher.flush()
    assert await logged(redis, A) == [(1, "token"), (2, "token"), (3, "token")]
