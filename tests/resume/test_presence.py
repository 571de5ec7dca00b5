"""Readers elsewhere, counted for many streams at once (app/resume/presence.py),
on a real Redis: a burst of questions is one buffer on one connection, and
every question gets its own stream's count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.redis_client import client_for
from app.resume.presence import ReaderCounts
from app.resume.redis_codec import StreamKeys
from app.sse import new_stream_id
from tests.support.redis_server import RedisServer


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = client_for(redis_server.url, size=8, wait_s=2.0, socket_timeout_s=2.0)
    try:
        yield client
    finally:
        await client.aclose()


async def with_readers(redis: Redis, live: int, expired: int) -> str:
    """A stream with `live` readers present and `expired` whose presence ran out."""
    sid = new_stream_id()
    now_ms = int(time.time() * 1000)
    scores = {f"live-{i}": now_ms + 60_000 for i in range(live)}
    scores |= {f"gone-{i}": now_ms - 1_000 for i in range(expired)}
    if scores:
        await redis.zadd(StreamKeys.of(sid).readers, scores)
    return sid


class CountingPool:
    """Counts the connections taken from a real pool: one per buffer sent."""

    def __init__(self, redis: Redis) -> None:
        self.taken = 0
        pool = redis.connection_pool
        take = pool.get_connection

        async def get_connection(*args: Any, **kwargs: Any) -> Any:
            self.taken += 1
            return await take(*args, **kwargs)  # type: ignore[no-untyped-call]

        pool.get_connection = get_connection  # type: ignore[method-assign]


async def test_each_stream_gets_the_count_of_its_own_live_readers(redis: Redis) -> None:
    counts = ReaderCounts(redis)
    shapes = [(0, 0), (1, 0), (3, 2), (0, 4), (2, 1)]
    sids = [await with_readers(redis, live, expired) for live, expired in shapes]
    got = await asyncio.gather(*(counts.count(sid) for sid in sids))
    assert got == [live for live, _ in shapes]
    await counts.aclose()


async def test_a_burst_of_questions_is_sent_as_one_buffer(redis: Redis) -> None:
    sids = [await with_readers(redis, i % 3, 1) for i in range(100)]
    counts = ReaderCounts(redis)
    pool = CountingPool(redis)
    got = await asyncio.gather(*(counts.count(sid) for sid in sids))
    assert got == [i % 3 for i in range(100)]
    assert pool.taken == 1
    await counts.aclose()


async def test_questions_of_a_later_turn_go_in_a_buffer_of_their_own(redis: Redis) -> None:
    sids = [await with_readers(redis, 1, 0) for _ in range(20)]
    counts = ReaderCounts(redis)
    pool = CountingPool(redis)
    first = [asyncio.ensure_future(counts.count(sid)) for sid in sids[:10]]
    await asyncio.sleep(0)  # the first buffer is on its way: it does not wait for more
    later = [asyncio.ensure_future(counts.count(sid)) for sid in sids[10:]]
    assert await asyncio.gather(*first, *later) == [1] * 20
    assert pool.taken == 2
    await counts.aclose()


async def test_a_question_given_up_leaves_the_others_answered(redis: Redis) -> None:
    sids = [await with_readers(redis, 2, 0) for _ in range(5)]
    counts = ReaderCounts(redis)
    asked = [asyncio.ensure_future(counts.count(sid)) for sid in sids]
    asked[2].cancel()
    done = await asyncio.gather(*asked, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    assert [d for i, d in enumerate(done) if i != 2] == [2, 2, 2, 2]
    await counts.aclose()


async def test_a_failed_buffer_fails_every_question_in_it(own_redis: RedisServer) -> None:
    redis = client_for(own_redis.url, size=2, wait_s=1.0, socket_timeout_s=1.0)
    counts = ReaderCounts(redis)
    try:
        sids = [await with_readers(redis, 1, 0) for _ in range(3)]
        own_redis.stop()
        done = await asyncio.gather(*(counts.count(s) for s in sids), return_exceptions=True)
        assert all(isinstance(d, RedisError | OSError) for d in done), done
    finally:
        own_redis.start()
        await counts.aclose()
        await redis.aclose()


async def test_closing_gives_up_the_questions_not_yet_sent(redis: Redis) -> None:
    sid = await with_readers(redis, 1, 0)
    counts = ReaderCounts(redis)
    asked = asyncio.ensure_future(counts.count(sid))
    await asyncio.sleep(0)  # asked; its sender has not run yet
    await counts.aclose()
    with pytest.raises(asyncio.CancelledError):
        await asked
