"""Redis faults on a real Redis Cluster under two Sluice OS processes: a stream
runs in A, a reader follows it from B, and the stream's shard misbehaves. No
false ending, no silent partial replay: every event once, or a typed error."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import cast

import httpx
import pytest
from redis.asyncio import Redis

from app.core.events import Done, Event, Usage
from app.redis_client import cluster_client
from app.resume.redis_codec import StreamKeys, decode_entry
from app.resume.redis_sink import Flusher, Health, RedisSink
from app.resume.redis_source import Entries
from app.sse import new_stream_id
from tests.support.client import create_lorem_stream, read_sse, transcript
from tests.support.redis_cluster import RedisClusterServers
from tests.support.redis_faults import env_for, follow_through, two_processes
from tests.support.sse_parser import SSEEvent

pytestmark = pytest.mark.slow
# Longer than the cluster's node timeout (2 s: the replica takes over meanwhile) and
# than a flush's timeout (2 + 2 s), shorter than the lease (6 s).
FREEZE_S = 5.0


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


def after(sid: str, seq: int) -> dict[str, str]:
    return {"Last-Event-ID": f"{sid}:{seq}"}


def error_of(event: SSEEvent) -> tuple[str, bool]:
    error = json.loads(event.data)["error"]
    return error["type"], error["retryable"]


async def test_a_frozen_primary_of_the_streams_shard_ends_in_no_false_ending(
    redis_cluster: RedisClusterServers, client: httpx.AsyncClient
) -> None:
    async with two_processes(env_for(redis_cluster.url)) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=120, tps=20)
        primary = redis_cluster.primary_of(StreamKeys.of(sid).log)

        async def freeze() -> None:
            redis_cluster.freeze(primary)
            try:
                await asyncio.sleep(FREEZE_S)  # the stall itself: no assertion is timed
            finally:
                redis_cluster.thaw(primary)

        events = await follow_through(client, f"{b}/v1/streams/{sid}", freeze)
        reference = await read_sse(client, f"{a}/v1/streams/{sid}")
    await asyncio.to_thread(redis_cluster.wait_ok)
    assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 122)]
    assert events[-1].event == "done"  # never a false "interrupted"
    assert transcript(events) == transcript(reference.events)


async def test_a_log_trimmed_or_deleted_past_a_readers_cursor_gives_a_typed_error(
    redis_cluster: RedisClusterServers, client: httpx.AsyncClient
) -> None:
    # a short lease: a log that lost a reader's events while the stream has no end in
    # it is given up after a lease (its owner might still have been writing it again)
    env = {**env_for(redis_cluster.url), "SLUICE_LEASE_TTL_S": "1.5"}
    async with two_processes(env) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=120, tps=2000)
        await read_sse(client, f"{a}/v1/streams/{sid}")  # ended
        log = StreamKeys.of(sid).log
        shard = Redis(port=redis_cluster.primary_of(log))
        async with contextlib.aclosing(shard):
            await shard.xtrim(log, minid="0-61", approximate=False)
            refused = await client.get(f"{b}/v1/streams/{sid}", headers=after(sid, 30))
            replayed = await read_sse(client, f"{b}/v1/streams/{sid}")
            await shard.delete(log)
            deleted = await read_sse(client, f"{b}/v1/streams/{sid}", headers=after(sid, 30))
    assert refused.status_code == 410  # before any byte
    assert refused.json()["error"]["type"] == "log_lost"
    for answer in (replayed, deleted):  # headers already sent: the typed ending, no id
        assert answer.status == 200
        assert [error_of(e) for e in answer.events if e.event != "retry"] == [
            ("log_lost", False)
        ], answer.raw
        assert b"id:" not in answer.raw.partition(b"event: error")[2]


async def test_a_primary_restarted_empty_gives_the_owners_rewrite_never_a_partial_replay(
    redis_cluster: RedisClusterServers, client: httpx.AsyncClient
) -> None:
    async with two_processes(env_for(redis_cluster.url)) as (a, b):
        sid = await create_lorem_stream(client, a, tokens=120, tps=20)
        primary = redis_cluster.primary_of(StreamKeys.of(sid).log)
        restart = asyncio.to_thread(redis_cluster.restart_empty, primary)
        events = await follow_through(client, f"{b}/v1/streams/{sid}", lambda: restart)
        later = await read_sse(client, f"{b}/v1/streams/{sid}")  # from the rewritten log
        reference = await read_sse(client, f"{a}/v1/streams/{sid}")
    await asyncio.to_thread(redis_cluster.wait_ok)
    for got in (events, later.events):
        assert [e.id for e in got] == [f"{sid}:{i}" for i in range(1, 122)]
        assert got[-1].event == "done"
        assert transcript(got) == transcript(reference.events)


async def test_an_end_finds_confirmed_entries_the_cluster_lost_and_writes_the_whole_log(
    redis_cluster: RedisClusterServers,
) -> None:
    """As after a failover to a replica the last entries had not reached."""
    sid = new_stream_id()
    log = StreamKeys.of(sid).log
    events = [
        *[Event(seq, "token", text=f"t{seq} ") for seq in range(1, 5)],
        Event(5, "done", done=Done("stop", Usage(1, 4), None, None)),
    ]
    client = cluster_client(redis_cluster.url, size=4, socket_timeout_s=3.0)
    flusher = Flusher(client, Health("test"), maxlen=1024, ttl_s=60, cluster=True)
    sink = RedisSink(sid, flusher)
    sink.bind(lambda after: events[after:])
    flusher.add(sink)
    try:
        for batch in (events[:2], events[2:4]):
            for event in batch:
                sink.append(event)
            await flusher.flush()
        await client.xdel(log, "0-3")  # confirmed, then lost
        sink.append(events[4])
        closing = asyncio.create_task(sink.close())
        await asyncio.sleep(0)
        await flusher.flush()  # checks the last confirmed entry first: gone
        await closing
        entries = cast(Entries, await client.xrange(log))
    finally:
        await flusher.aclose()
        await client.aclose()
    assert [e.seq for entry, fields in entries for e in decode_entry(entry, fields)] == [
        1,
        2,
        3,
        4,
        5,
    ]
