"""One follower per process for every stream run by another process: the waits
of all its readers share one read per round, so connections grow with shards,
never with readers.

A reader that has caught up asks `Follower.read(key, cursor, wait_s)` for the
log entries after its cursor; it gets them as soon as they are in Redis, or
`[]` after `wait_s` (its cue to check the owner's lease). It never keeps a
connection of its own while it waits.

Strategy (single Redis): one task issues one `XREAD BLOCK` over the log key
of every stream with waiting readers, at each key's lowest cursor, and wakes
every waiter whose cursor the answer moves past. The block is short
(`BLOCK_S`): a reader that joins during a block is included in the next one,
and the entries written meanwhile come then (its cursor still holds them),
so joining costs at most one block of latency and no connection.

Strategy (Redis Cluster): a multi-key command must name keys of one slot,
and each stream has a slot of its own, so one XREAD cannot cover a shard.
The round is one cluster pipeline of non-blocking XREADs, one per stream
(redis-py sends each node its share on one connection, at once, and follows
MOVED/ASK after a failover or a migration); a round that finds nothing waits
`POLL_S` before the next. Connections: one per node.

Bounded: a waiter gets at most `BATCH` entries per round (a reader that is
far behind reads the rest with XRANGE itself, as its catch-up does); there
is no queue, only one future per waiting reader, dropped when it is answered
or gives up. A failed round fails its waiters with the Redis error, which
their readers treat like any failed read (retry from the cursor).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from app.resume.redis_codec import entry_id, seq_of

Entries = list[tuple[bytes, dict[bytes, bytes]]]
BATCH = 512  # entries per key per round; the same as a reader's XRANGE page
BLOCK_S = 0.05  # single Redis: a joining reader waits at most this to be included
POLL_S = 0.02  # cluster: the pause after a round that found nothing
RETRY_S = 0.1  # after a failed round, before the next (waiters retry themselves too)


@dataclass(eq=False, slots=True)
class _Waiter:
    after: int  # the seq of the reader's cursor: the id of the last entry it read
    answer: asyncio.Future[Entries]


class Follower:
    """Shared waits for log entries; `start()` once, `aclose()` at shutdown."""

    def __init__(self, redis: Redis, *, cluster: bool) -> None:
        self._redis = redis
        self._cluster = cluster
        self._waiting: dict[str, list[_Waiter]] = {}
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sluice-follower")

    async def aclose(self) -> None:
        # Strategy: a flag as well as the cancel. A cancel that lands as a read's own
        # timeout fires comes out of redis-py as a TimeoutError (a RedisError): the loop
        # would treat it as a failed round and go on, and this close would wait forever.
        self._closed = True
        self._joined.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def read(self, key: str, cursor: bytes | str, wait_s: float) -> Entries:
        """The entries of `key` after `cursor` (at most BATCH), or [] after `wait_s`."""
        waiter = _Waiter(seq_of(cursor), asyncio.get_running_loop().create_future())
        self._waiting.setdefault(key, []).append(waiter)
        self._joined.set()
        try:
            done, _ = await asyncio.wait({waiter.answer}, timeout=wait_s)
            return waiter.answer.result() if done else []
        finally:
            self._leave(key, waiter)

    def _leave(self, key: str, waiter: _Waiter) -> None:
        waiters = self._waiting.get(key, [])
        if waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiting[key]
        if waiter.answer.done() and not waiter.answer.cancelled():
            waiter.answer.exception()  # seen: a reader that gave up leaves no warning
        waiter.answer.cancel()

    async def _run(self) -> None:
        while not self._closed:  # lives as long as the store; aclose() ends it
            if not self._waiting:
                self._joined.clear()
                await self._joined.wait()
                continue
            cursors = lowest_cursors(self._waiting)
            try:
                found = await (self._polled(cursors) if self._cluster else self._blocked(cursors))
            except (RedisError, OSError) as exc:
                self._fail(exc)
                await asyncio.sleep(RETRY_S)
                continue
            self._deliver(cursors, found)
            if self._cluster and not found:
                await asyncio.sleep(POLL_S)

    async def _blocked(self, cursors: Mapping[str, int]) -> dict[str, Entries]:
        streams: dict[KeyT, StreamIdT] = {k: entry_id(a) for k, a in cursors.items()}
        found = await self._redis.xread(streams, count=BATCH, block=int(BLOCK_S * 1000))
        return by_key(found)

    async def _polled(self, cursors: Mapping[str, int]) -> dict[str, Entries]:
        pipe = self._redis.pipeline(transaction=False)
        for key, after in cursors.items():
            pipe.xread({key: entry_id(after)}, count=BATCH)
        replies = await pipe.execute()
        found: dict[str, Entries] = {}
        for reply in replies:
            found |= by_key(reply)
        return found

    def _deliver(self, cursors: Mapping[str, int], found: Mapping[str, Entries]) -> None:
        for key, entries in found.items():
            for waiter in list(self._waiting.get(key, [])):
                fresh = entries_for(waiter.after, cursors.get(key), entries)
                if fresh and not waiter.answer.done():
                    waiter.answer.set_result(fresh)

    def _fail(self, exc: BaseException) -> None:
        for waiters in self._waiting.values():
            for waiter in waiters:
                if not waiter.answer.done():
                    waiter.answer.set_exception(exc)


# ---- pure decisions -------------------------------------------------------------


def lowest_cursors(waiting: Mapping[str, list[_Waiter]]) -> dict[str, int]:
    """Per key, the lowest cursor of its waiters: one read answers all of them."""
    return {key: min(w.after for w in waiters) for key, waiters in waiting.items() if waiters}


def entries_for(after: int, read_after: int | None, entries: Entries) -> Entries:
    """What a waiter at `after` gets from entries read after `read_after`: those past
    its cursor, and nothing when the read started beyond it (it joined during the
    read with an older cursor: the entries in between are not in this answer)."""
    if read_after is None or after < read_after:
        return []
    return [entry for entry in entries if seq_of(entry[0]) > after]


def by_key(found: object) -> dict[str, Entries]:
    """XREAD's reply (a list of [key, entries], or a dict under RESP3) → entries by key."""
    if not found:
        return {}
    pairs = found.items() if isinstance(found, dict) else found
    answer: dict[str, Entries] = {}
    for key, entries in pairs:  # type: ignore[attr-defined]
        name = key.decode() if isinstance(key, bytes) else str(key)
        answer[name] = entries[0] if isinstance(found, dict) else entries
    return answer
