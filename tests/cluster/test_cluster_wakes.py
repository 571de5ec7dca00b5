"""The follower on a Redis Cluster sleeps until the owner's flush wakes it over
sharded pub/sub: it sends no reads while nothing is written (only its re-check),
and a wake that is lost costs a reader one re-check, never its stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.core.events import Done, Event, StreamMeta, Usage
from app.redis_client import cluster_client
from app.resume import redis_follow
from app.resume.redis_codec import StreamKeys, entry_id
from app.resume.redis_follow import Follower
from app.resume.redis_sink import Flusher, Health, RedisSink
from app.resume.redis_streams import RedisStore
from app.settings import Settings
from app.sse import new_stream_id
from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def follower_on(cluster: RedisClusterServers) -> AsyncIterator[Follower]:
    client = cluster_client(cluster.url, size=4, socket_timeout_s=3.0)
    follower = Follower(client, cluster=True)
    follower.start()
    try:
        yield follower
    finally:
        await follower.aclose()
        await client.aclose()


@contextlib.asynccontextmanager
async def owner_on(cluster: RedisClusterServers) -> AsyncIterator[Flusher]:
    client = cluster_client(cluster.url, size=4, socket_timeout_s=3.0)
    flusher = Flusher(client, Health("test"), maxlen=1024, ttl_s=60, cluster=True)
    try:
        yield flusher
    finally:
        await flusher.aclose()
        await client.aclose()


def tokens(first: int, last: int) -> list[Event]:
    return [Event(seq, "token", text=f"t{seq} ") for seq in range(first, last + 1)]


async def test_a_follower_is_woken_by_the_owners_flush_and_not_by_a_silent_write(
    redis_cluster: RedisClusterServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_follow, "RECHECK_S", 600.0)  # only a wake can deliver
    sid = new_stream_id()
    log = StreamKeys.of(sid).log
    async with follower_on(redis_cluster) as follower, owner_on(redis_cluster) as owner:
        sink = RedisSink(sid, owner)
        sink.followed = True  # a reader elsewhere said so: the flush publishes wakes
        owner.add(sink)
        waiting = asyncio.create_task(follower.read(log, entry_id(0), 20.0))
        await asyncio.sleep(0.5)  # subscribed and read once: now it sleeps
        for event in tokens(1, 3):
            sink.append(event)
        await owner.flush()  # XADD, then SPUBLISH on the stream's shard
        woken = await waiting
        silent = Redis(port=redis_cluster.primary_of(log))  # a write nobody announces
        async with contextlib.aclosing(silent):
            await silent.xadd(log, {b"v": b'["t4 "]'}, id=entry_id(4))
        unheard = await follower.read(log, woken[-1][0], 1.5)
    assert [entry for entry, _ in woken] == [b"0-1"]
    assert unheard == []


async def test_a_lost_wake_reaches_the_reader_at_the_next_recheck(
    redis_cluster: RedisClusterServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_follow, "RECHECK_S", 0.5)
    log = StreamKeys.of(new_stream_id()).log
    async with follower_on(redis_cluster) as follower:
        waiting = asyncio.create_task(follower.read(log, entry_id(0), 20.0))
        await asyncio.sleep(0.2)  # subscribed and read once: now it sleeps
        silent = Redis(port=redis_cluster.primary_of(log))  # the publish is suppressed
        async with contextlib.aclosing(silent):
            await silent.xadd(log, {b"v": b'["t1 "]'}, id=entry_id(1))
        found = await waiting
    assert [entry for entry, _ in found] == [b"0-1"]


async def test_an_idle_follower_reads_each_log_only_at_its_recheck(
    redis_cluster: RedisClusterServers,
) -> None:
    logs = [StreamKeys.of(new_stream_id()).log for _ in range(6)]  # over the three shards
    idle_s = 3.0
    async with follower_on(redis_cluster) as follower:
        before = redis_cluster.calls("xread", "xrange", "xrevrange")
        answers = await asyncio.gather(*(follower.read(log, entry_id(0), idle_s) for log in logs))
        reads = redis_cluster.calls("xread", "xrange", "xrevrange") - before
    assert answers == [[]] * len(logs)
    # one read per log on joining, then one per re-check (polling every 20 ms, as the
    # follower did before it was woken over pub/sub, would be some 150 per log)
    assert reads <= len(logs) * (1 + idle_s / redis_follow.RECHECK_S + 1)


async def test_a_reader_elsewhere_has_the_owner_wake_it_for_its_stream(
    redis_cluster: RedisClusterServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner publishes only for streams followed elsewhere: the reader's process
    tells it at once (on the owner's channel), long before its lease renewal counts
    the readers (a 30-s lease here: every 10 s)."""
    monkeypatch.setattr(redis_follow, "RECHECK_S", 600.0)  # only a wake can deliver
    settings = Settings(lease_ttl_s=30.0)
    owner, elsewhere = (
        RedisStore(settings, redis_cluster.url),
        RedisStore(settings, redis_cluster.url),
    )
    await owner.start()
    await elsewhere.start()
    got: list[Event] = []
    try:
        sid = new_stream_id()
        sink = await owner.create(StreamMeta(sid, "sim/lorem", 0, "anonymous"))
        assert isinstance(sink, RedisSink)
        events = [*tokens(1, 5), Event(6, "done", done=Done("stop", Usage(1, 5), None, None))]
        sink.bind(lambda after: events[after:])
        source = await elsewhere.open(sid)
        assert source is not None

        async def follow() -> None:
            async with contextlib.aclosing(source.follow(0, idle_s=60.0)) as batches:
                async for batch in batches:
                    got.extend(batch)
                    if batch and batch[-1].terminal:
                        return

        following = asyncio.create_task(follow())
        await asyncio.sleep(0.5)  # following, announced, asleep
        for event in events[:-1]:
            sink.append(event)
            await asyncio.sleep(0.01)
        sink.append(events[-1])
        await sink.close()
        await asyncio.wait_for(following, 8.0)  # a reader's wait without a wake: 10 s
    finally:
        await elsewhere.aclose()
        await owner.aclose()
    assert [event.seq for event in got] == [1, 2, 3, 4, 5, 6]
