"""A stream's log in a real Redis: batches read back from any seq, and one end only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.core.events import Done, Event, Failure, StreamMeta, Usage
from app.resume.redis_codec import StreamKeys, decode_entry, encode_batch
from app.resume.redis_source import Entries
from app.resume.redis_streams import RedisStore
from app.settings import Settings
from tests.support.redis_server import RedisServer

SID = "LogTestLogTestLogTest0"  # of this module only: the Redis server is shared
LOG = StreamKeys.of(SID).log


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.delete(*StreamKeys.of(SID).all)
    yield client
    await client.delete(*StreamKeys.of(SID).all)
    await client.aclose()


def tokens(first: int, last: int) -> list[Event]:
    return [Event(seq, "token", text=f"t{seq} ") for seq in range(first, last + 1)]


def interrupted(seq: int) -> list[Event]:
    return [Event(seq, "error", failure=Failure("upstream_error", "gone", True))]


async def write(redis: Redis, events: list[Event]) -> None:
    entry, fields = encode_batch(events)
    await redis.xadd(LOG, fields, id=entry)  # type: ignore[arg-type]


async def logged(redis: Redis) -> list[Event]:
    entries = cast(Entries, await redis.xrange(LOG))
    return [e for entry, fields in entries for e in decode_entry(entry, fields)]


async def test_after_a_follower_ends_the_stream_the_owners_next_batch_is_refused(
    redis: Redis,
) -> None:
    await write(redis, tokens(1, 3))
    await write(redis, interrupted(4))  # the owner looked dead after event 3
    with pytest.raises(ResponseError):
        await write(redis, tokens(4, 9))  # the owner was only stalled
    events = await logged(redis)
    assert [(e.seq, e.kind) for e in events][-2:] == [(3, "token"), (4, "error")]


async def test_a_follower_cannot_end_a_stream_whose_owner_wrote_past_its_cursor(
    redis: Redis,
) -> None:
    await write(redis, tokens(1, 3))
    await write(redis, tokens(4, 9))
    with pytest.raises(ResponseError):
        await write(redis, interrupted(4))
    assert [e.seq for e in await logged(redis)] == list(range(1, 10))


@pytest.mark.parametrize("after", [0, 1, 2, 3, 4, 5])
async def test_a_reader_elsewhere_gets_every_event_after_any_seq_of_a_batched_log(
    redis: Redis, redis_server: RedisServer, after: int
) -> None:
    store = RedisStore(Settings(redis_url=redis_server.url), redis_server.url)
    try:
        assert await store.create(StreamMeta(SID, "sim/lorem", 0, "")) is not None
        done = Done("stop", Usage(1, 5), None, None)
        await write(redis, tokens(1, 2))
        await write(redis, [*tokens(3, 5), Event(6, "done", done=done)])
        source = await store.open(SID)
        assert source is not None
        assert await source.tail() == (6, True)
        seqs = [e.seq async for batch in source.follow(after, 10.0) for e in batch]
        assert seqs == list(range(after + 1, 7))
    finally:
        await store.aclose()
