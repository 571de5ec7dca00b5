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
and each stream has a slot of its own, so one XREAD cannot cover a shard,
and nothing blocks. The follower sleeps instead, and is woken over sharded
pub/sub (redis_wakes.py): the owner publishes on the log's wake channel
after each flush that wrote to it, and the follower, subscribed to the wake
channel of every log it follows (one connection per shard), reads the woken
logs in one cluster pipeline of non-blocking XREADs (redis-py sends each
node its share at once, and follows MOVED/ASK after a failover or a
migration). It subscribes before it reads, so an entry written after a read
wakes it. It remembers, per log, the last entry it has seen (`known`): a
reader that comes back with that cursor waits for a wake without a read,
and a reader that is behind it, or new, is read for at once. Every
`RECHECK_S` it reads every followed log whatever it heard, so a lost
message delays a reader by at most that: that is the only polling, one
XREAD per followed log per `RECHECK_S`.

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
from app.resume.redis_wakes import Wakes

Entries = list[tuple[bytes, dict[bytes, bytes]]]
BATCH = 512  # entries per key per round; the same as a reader's XRANGE page
BLOCK_S = 0.05  # single Redis: a joining reader waits at most this to be included
RECHECK_S = 1.0  # cluster: every followed log is read this often, woken or not
RETRY_S = 0.1  # after a failed round, before the next (waiters retry themselves too)


@dataclass(eq=False, slots=True)
class _Waiter:
    after: int  # the seq of the reader's cursor: the id of the last entry it read
    answer: asyncio.Future[Entries]


class Follower:
    """Shared waits for log entries; `start()` once, `aclose()` at shutdown."""

    def __init__(self, redis: Redis, *, cluster: bool) -> None:
        self._redis = redis
        self._waiting: dict[str, list[_Waiter]] = {}
        self._joined = asyncio.Event()  # a reader joined (or, on a cluster, a log was woken)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # cluster only: the wake subscriptions, and per log the seq of the last entry
        # seen since the subscription (entries after it will wake the follower)
        self._wakes = Wakes(redis, self._joined) if cluster else None
        self._known: dict[str, int] = {}
        self._recheck_at = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sluice-follower")
        if self._wakes is not None:
            self._wakes.start()

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
        if self._wakes is not None:
            await self._wakes.aclose()

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
            if self._wakes is not None:
                await self._woken_round(self._wakes)
                continue
            cursors = lowest_cursors(self._waiting)
            try:
                found = await self._blocked(cursors)
            except (RedisError, OSError) as exc:
                self._fail(exc)
                await asyncio.sleep(RETRY_S)
                continue
            self._deliver(cursors, found)

    async def _woken_round(self, wakes: Wakes) -> None:
        """Cluster: read the logs that need it, then sleep until a reader joins, a
        log is woken, or the re-check is due."""
        loop = asyncio.get_running_loop()
        self._joined.clear()
        now = loop.time()
        for key in wakes.take():
            self._known.pop(key, None)
        if now >= self._recheck_at:
            self._known.clear()
            self._recheck_at = now + RECHECK_S
        cursors = lowest_cursors(self._waiting)
        try:
            await wakes.track(cursors, now)  # subscribed first: a later entry wakes us
            self._known = {k: v for k, v in self._known.items() if k in wakes.subscribed}
            due = due_cursors(cursors, self._known)
            found = await self._polled(due) if due else {}
        except (RedisError, OSError) as exc:
            self._fail(exc)
            self._known.clear()
            await asyncio.sleep(RETRY_S)
            return
        self._known |= learned(due, found, wakes.woken)
        self._deliver(due, found)
        if due_cursors(lowest_cursors(self._waiting), self._known):
            return  # a reader behind what was read (it joined meanwhile): again at once
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, self._recheck_at - loop.time())):
                await self._joined.wait()

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


def due_cursors(cursors: Mapping[str, int], known: Mapping[str, int]) -> dict[str, int]:
    """The logs to read now: those with no entry seen since their subscription, and
    those with a reader behind the last entry seen (new entries after it wake us)."""
    return {key: after for key, after in cursors.items() if after < known.get(key, after + 1)}


def learned(
    read: Mapping[str, int], found: Mapping[str, Entries], woken: set[str]
) -> dict[str, int]:
    """Per log read, the last entry now seen: the last one found, or the cursor read
    after when nothing came. Not for a log woken during the read (what woke it may
    not be in the answer), nor after a full batch (more may be there already)."""
    known: dict[str, int] = {}
    for key, after in read.items():
        entries = found.get(key, [])
        if key in woken or len(entries) >= BATCH:
            continue
        known[key] = seq_of(entries[-1][0]) if entries else after
    return known


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
