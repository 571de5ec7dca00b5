"""The process's shared follower: which entries each waiting reader gets, and
readers on many streams served by one read per round on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from app.redis_client import bounded_client
from app.resume.redis_codec import entry_id
from app.resume.redis_follow import (
    BATCH,
    Entries,
    Follower,
    by_key,
    due_cursors,
    entries_for,
    learned,
)
from tests.support.redis_server import RedisServer


def entries(*seqs: int) -> Entries:
    return [(entry_id(seq).encode(), {b"v": b"[]"}) for seq in seqs]


def test_a_waiter_gets_only_the_entries_past_its_cursor() -> None:
    assert entries_for(5, 3, entries(4, 6, 9)) == entries(6, 9)


def test_a_waiter_that_joined_with_an_older_cursor_than_the_read_gets_nothing() -> None:
    # entries between its cursor and the read's are not in the answer: it waits for the next
    assert entries_for(2, 3, entries(4, 6)) == []
    assert entries_for(2, None, entries(4, 6)) == []


def test_on_a_cluster_a_log_is_read_when_new_or_when_a_reader_is_behind_what_was_seen() -> None:
    cursors = {"new": 0, "caught-up": 7, "behind": 3}
    assert due_cursors(cursors, {"caught-up": 7, "behind": 7}) == {"new": 0, "behind": 3}


def test_what_a_read_teaches_excludes_logs_woken_meanwhile_and_full_batches() -> None:
    read = {"grew": 3, "quiet": 5, "woken": 1, "full": 0}
    found = {"grew": entries(4, 6), "woken": entries(2), "full": entries(*range(1, BATCH + 1))}
    assert learned(read, found, woken={"woken"}) == {"grew": 6, "quiet": 5}


def test_both_xread_reply_shapes_give_entries_by_key() -> None:
    assert by_key([[b"a", entries(1)], [b"b", entries(2)]]) == {"a": entries(1), "b": entries(2)}
    assert by_key({b"a": [entries(1)]}) == {"a": entries(1)}
    assert by_key(None) == {}


async def test_readers_of_many_streams_get_their_entries_through_one_connection(
    own_redis: RedisServer,
) -> None:
    blocking = bounded_client(own_redis.url, size=1, wait_s=2.0, socket_timeout_s=2.0)
    follower = Follower(blocking, cluster=False)
    writer = Redis.from_url(own_redis.url)
    follower.start()
    keys = [f"log:{i}" for i in range(50)]
    async with contextlib.aclosing(writer), contextlib.aclosing(blocking):
        try:
            waits = [asyncio.create_task(follower.read(k, entry_id(0), 10.0)) for k in keys]
            await asyncio.sleep(0)  # all waiting before anything is written
            for key in keys:
                await writer.xadd(key, {b"v": b"[]"}, id=entry_id(1))
            answers = await asyncio.gather(*waits)
            late = await follower.read(keys[0], entry_id(1), 0.2)  # nothing new: []
        finally:
            await follower.aclose()
    assert [[seq for seq, _ in a] for a in answers] == [[b"0-1"]] * len(keys)
    assert late == []
