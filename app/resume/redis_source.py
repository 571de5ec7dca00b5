"""A stream run by another process, followed through its log in Redis.

Strategy: replay with XRANGE from the reader's cursor, then follow with
XREAD BLOCK. A block lasts at most `check_s` (a fraction of the lease TTL);
when it ends with nothing new, the reader checks the owner's lease: a
missing lease on a stream without its terminal event means the owner died,
and the reader writes the terminal `upstream_error` itself at the next seq.
Redis accepts that write only if nothing came after the cursor meanwhile,
so a stream that was in fact still ending keeps its own terminal event, and
every reader — here, elsewhere, later — sees the same one. While it follows,
the reader keeps an expiring entry in the stream's readers set, which is
how the owner's detach grace counts readers in every process.

A Redis failure while following ends the response without a terminal event:
the client reconnects with Last-Event-ID (to this or another process).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from app.core.events import Event, Failure, StreamMeta
from app.resume.redis_codec import StreamKeys, decode_entry, encode_batch, entry_id, last_of
from app.resume.redis_sink import Health

BATCH = 512  # entries per XRANGE / XREAD: a reader that is behind catches up in few sends
INTERRUPTED = "the generation was interrupted: the process running it stopped; retry the request"
log = structlog.get_logger("sluice.resume")
_reader_ids = itertools.count(1)

Entries = list[tuple[bytes, dict[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class Timing:
    check_s: float  # longest XREAD BLOCK: how soon a dead owner is noticed after its lease
    presence_s: float  # how long a reader's presence entry lives without a refresh
    ttl_ms: int  # the stream's TTL once ended (set by whoever writes the end)


class RemoteSource:
    """`StreamSource` for a stream whose generation runs in another process."""

    def __init__(
        self,
        redis: Redis,
        blocking: Redis,
        meta: StreamMeta,
        node: str,
        timing: Timing,
        health: Health,
    ) -> None:
        self._redis = redis
        self._blocking = blocking  # XREAD BLOCK only: see the pools in redis_streams.py
        self._meta = meta
        self._keys = StreamKeys.of(meta.stream_id)
        self._reader = f"{node}:{next(_reader_ids)}"
        self._timing = timing
        self._health = health

    @property
    def meta(self) -> StreamMeta:
        return self._meta

    async def tail(self) -> tuple[int, bool]:
        last = cast(Entries, await self._redis.xrevrange(self._keys.log, count=1))
        if not last:
            return 0, False
        return last_of(*last[0])

    async def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        """Batches after `after` up to the terminal event; `()` every `idle_s` idle."""
        loop = asyncio.get_running_loop()
        try:
            await self._present()
            refreshed = idle_since = loop.time()
            cursor = after
            async with contextlib.aclosing(self._batches(after)) as batches:
                async for batch in batches:
                    if batch:
                        yield batch
                        cursor = batch[-1].seq
                        idle_since = loop.time()
                        if batch[-1].terminal:
                            return
                    else:
                        if not await self._owner_alive():
                            await self._declare_interrupted(cursor)
                        if loop.time() - idle_since >= idle_s:
                            yield ()
                            idle_since = loop.time()
                    if loop.time() - refreshed >= self._timing.check_s:
                        await self._present()
                        refreshed = loop.time()
        except (RedisError, OSError) as exc:
            self._health.failed("following a stream", exc)
        finally:
            self._absent()

    async def _batches(self, after: int) -> AsyncGenerator[list[Event], None]:
        """Replay, then follow; an empty list after each block that found nothing."""
        seen = after
        cursor: bytes | str | None = await self._entry_holding(after + 1)
        start = cursor or "-"
        while True:  # replay: bounded by the log's length
            entries = cast(
                Entries, await self._redis.xrange(self._keys.log, min=start, count=BATCH)
            )
            if entries:
                cursor = entries[-1][0]
                start = b"(" + entries[-1][0]  # exclusive: after this entry
                batch = _decode(entries, seen)
                if batch:  # an empty one would mean "nothing came" to follow()
                    seen = batch[-1].seq
                    yield batch
            if len(entries) < BATCH:
                break
        # XREAD returns the entries after this id; with none read yet, every entry (the
        # reader may be ahead of the log: it read the owner's memory in another process).
        cursor = cursor or entry_id(0)
        block_ms = max(1, int(self._timing.check_s * 1000))
        while True:  # follow: ends when the consumer has seen the terminal event
            found = await self._blocking.xread(
                {self._keys.log: cursor}, count=BATCH, block=block_ms
            )
            entries = entries_of(found)
            if entries:
                cursor = entries[-1][0]
            batch = _decode(entries, seen)
            if batch:
                seen = batch[-1].seq
            yield batch

    async def _entry_holding(self, seq: int) -> bytes | None:
        """The id of the entry holding `seq` (or of the last one, if `seq` is not written
        yet): the last entry whose id, its first seq, is at most `seq`."""
        if seq <= 1:
            return None  # the log's first entry, wherever it starts
        found = cast(
            Entries,
            await self._redis.xrevrange(self._keys.log, max=entry_id(seq), min="-", count=1),
        )
        return found[0][0] if found else None

    async def _owner_alive(self) -> bool:
        return bool(await self._redis.exists(self._keys.lease))

    async def _declare_interrupted(self, cursor: int) -> None:
        """Write the terminal event of a stream whose owner died, unless it has one."""
        failure = Failure("upstream_error", INTERRUPTED, True)
        entry, fields = encode_batch([Event(cursor + 1, "error", failure=failure)])
        try:
            await self._redis.xadd(self._keys.log, fields, id=entry)  # type: ignore[arg-type]
        except ResponseError:
            return  # something came after the cursor: the next read shows it
        log.warning("stream.owner_lost", stream_id=self._meta.stream_id, last_seq=cursor)
        pipe = self._redis.pipeline(transaction=False)
        for key in (self._keys.log, self._keys.meta, self._keys.readers):
            pipe.pexpire(key, self._timing.ttl_ms)
        await pipe.execute()

    async def _present(self) -> None:
        presence_ms = int(self._timing.presence_s * 1000)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._keys.readers, {self._reader: _now_ms() + presence_ms})
        pipe.pexpire(self._keys.readers, presence_ms + self._timing.ttl_ms)
        await pipe.execute()

    def _absent(self) -> None:
        """Leave the readers set without waiting (the entry expires anyway)."""
        task = asyncio.get_running_loop().create_task(self._remove())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _remove(self) -> None:
        with contextlib.suppress(RedisError, OSError):  # the entry expires by itself
            await self._redis.zrem(self._keys.readers, self._reader)


_pending: set[asyncio.Task[None]] = set()  # detach clean-ups still running


async def settle_detaches(timeout_s: float) -> None:
    """Let detach clean-ups finish before the client closes (they hold connections)."""
    if _pending:
        await asyncio.wait(set(_pending), timeout=timeout_s)


async def readers_in(redis: Redis, stream_id: str) -> int:
    """Readers whose presence has not expired, over every process but the owner."""
    key = StreamKeys.of(stream_id).readers
    count: int = await redis.zcount(key, _now_ms(), "+inf")
    return count


def _now_ms() -> int:
    return int(time.time() * 1000)


def entries_of(found: object) -> Entries:
    """XREAD's reply (a list of [key, entries], or a dict under RESP3) → entries."""
    if not found:
        return []
    if isinstance(found, dict):
        return next(iter(found.values()))[0]  # type: ignore[no-any-return]
    return found[0][1]  # type: ignore[index,no-any-return]


def _decode(entries: Entries, after: int) -> list[Event]:
    """The events of `entries` above seq `after`: those up to it are a reader's past."""
    if len(entries) == 1:  # the usual XREAD reply of a reader that keeps up
        return decode_entry(entries[0][0], entries[0][1], after)
    events: list[Event] = []
    for entry, fields in entries:
        events += decode_entry(entry, fields, after)
    return events
