"""A stream run by another process, followed through its log in Redis.

Strategy: replay with XRANGE from the reader's cursor, then follow through
the process's shared follower (redis_follow.py: one read for every waiting
reader, no connection of its own). A wait lasts at most `check_s` (a
fraction of the lease TTL); when it ends with nothing new, the reader checks the owner's lease: a
missing lease on a stream without its terminal event means the owner died,
and the reader writes the terminal `upstream_error` itself at the next seq.
Redis accepts that write only if nothing came after the cursor meanwhile,
so a stream that was in fact still ending keeps its own terminal event, and
every reader — here, elsewhere, later — sees the same one. While it follows,
the reader keeps an expiring entry in the stream's readers set, which is
how the owner's detach grace counts readers in every process.

Strategy (never a silent gap): the first event a reader delivers after its
cursor must be the cursor's next seq. Events can be missing from the log (a
key evicted or trimmed, a Redis restarted without persistence). When a read
finds a gap, the reader replays once more from its cursor (a log the owner
rewrote holds the missing seqs in an older entry than the cursor) and, if
the gap is still there, ends with a terminal `log_lost` error. A gap in a
log that can no longer change (it holds the stream's terminal event) ends
the reader at once, so a reconnect into a trimmed log of an ended stream is
refused before its first byte (410) without waiting. Otherwise a read that
fails, or finds a gap, starts again from the cursor (a replay) until the
trouble has lasted a lease: a Redis restarting, a failover, or an owner
rewriting a log Redis lost all or part of, is over by then, and the reader
goes on without the client noticing. A reader whose cursor is past the end
of a log whose owner is gone declares nothing either: the log lost its
events, and that is a gap. A gap that stays ends the reader with a terminal `log_lost`
error; a Redis that stays unreachable, with a terminal `unavailable` one
(retryable). A lease gone together with the stream's meta hash means Redis
lost the stream, not that the owner died: nothing is declared interrupted;
after a lease without the owner writing it again, `log_lost`. Both are the
reader's own, in no log, so they carry no SSE id: two blocks never share
one, and the client keeps the id of the last event it really got, with
which a reconnect resumes exactly, or is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.events import Event, Failure, StreamMeta
from app.errors import Unavailable
from app.resume.redis_codec import StreamKeys, decode_entry, encode_batch, entry_id, last_of
from app.resume.redis_follow import Entries as Entries  # re-exported: the log's shape
from app.resume.redis_follow import Follower
from app.resume.redis_sink import Health

BATCH = 512  # entries per XRANGE / XREAD: a reader that is behind catches up in few sends
INTERRUPTED = "the generation was interrupted: the process running it stopped; retry the request"
GAP = (
    "events {first}..{last} of this stream are missing from the resume store (evicted or "
    "trimmed; Redis needs maxmemory-policy noeviction), so it cannot be resumed exactly"
)
LOST = (
    "the resume store lost this stream (Redis restarted without persistence, or evicted its "
    "keys) and no process wrote it again; retry the request"
)
UNREACHABLE = (
    "the resume store (Redis) became unreachable while following this stream; "
    "reconnect with Last-Event-ID to resume"
)
# KEYS: log, meta, readers. ARGV: entry id, fields, ttl ms, the reader's cursor.
# 1 written, -1 refused (something came after the cursor), 0 the meta is gone too:
# Redis lost the stream, {-2, last seq} the log ends before the cursor: it lost the reader's
# events (trimmed, deleted), and an ending after them would be a false one.
_DECLARE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local top = 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  top = tonumber(string.match(last[1][1], '-(%d+)$')) + #cjson.decode(last[1][2][2]) - 1
end
if top < tonumber(ARGV[4]) then return {-2, top} end
local written = redis.pcall('XADD', KEYS[1], ARGV[1], 'v', ARGV[2])
if type(written) == 'table' and written.err then return -1 end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
"""
log = structlog.get_logger("sluice.resume")
_reader_ids = itertools.count(1)


class LogGap(Exception):
    """The log does not hold the event after a reader's cursor."""

    def __init__(self, first: int, last: int) -> None:
        super().__init__(GAP.format(first=first, last=last))


@dataclass(frozen=True, slots=True)
class Timing:
    check_s: float  # longest wait for entries: how soon a dead owner is noticed after its lease
    presence_s: float  # how long a reader's presence entry lives without a refresh
    ttl_ms: int  # the stream's TTL once ended (set by whoever writes the end)


class RemoteSource:
    """`StreamSource` for a stream whose generation runs in another process."""

    def __init__(
        self,
        redis: Redis,
        follower: Follower,
        meta: StreamMeta,
        node: str,
        timing: Timing,
        health: Health,
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._redis = redis
        self._announce = announce  # cluster: tells the owner to publish wakes for us
        self._follower = follower
        self._meta = meta
        self._keys = StreamKeys.of(meta.stream_id)
        self._reader = f"{node}:{next(_reader_ids)}"
        self._timing = timing
        self._health = health

    @property
    def meta(self) -> StreamMeta:
        return self._meta

    async def tail(self) -> tuple[int, bool]:
        try:
            last = cast(Entries, await self._redis.xrevrange(self._keys.log, count=1))
        except (RedisError, OSError) as exc:
            problem = self._health.failed("reading a stream's end", exc)
            raise Unavailable(f"the resume store is unreachable ({problem})") from exc
        if not last:
            return 0, False
        return last_of(*last[0])

    async def follow(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        """Batches after `after` up to the terminal event; `()` every `idle_s` idle."""
        cursor = after
        try:
            async with contextlib.aclosing(self._followed(after, idle_s)) as batches:
                async for batch in batches:
                    yield batch
                    if batch:
                        cursor = batch[-1].seq
        except LogGap as gap:
            log.warning("stream.log_gap", stream_id=self._meta.stream_id, problem=str(gap))
            yield [_ending(cursor, "log_lost", str(gap), retryable=False)]
        except _Lost:
            yield [_ending(cursor, "log_lost", LOST, retryable=False)]
        except (RedisError, OSError) as exc:
            self._health.failed("following a stream", exc)
            yield [_ending(cursor, "unavailable", UNREACHABLE, retryable=True)]
        finally:
            self._absent()

    async def _followed(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        """`_rounds` again from the cursor after a Redis failure or a gap, until the
        trouble has lasted a lease: Redis restarting, or the owner rewriting a log
        Redis lost, is over by then."""
        loop = asyncio.get_running_loop()
        cursor = after
        trouble_since: float | None = None
        while True:  # bounded: each round delivers, or the trouble outlasts a lease
            try:
                async with contextlib.aclosing(self._round(cursor, idle_s)) as batches:
                    async for batch in batches:
                        trouble_since = None
                        yield batch
                        if batch:
                            cursor = batch[-1].seq
                            if batch[-1].terminal:
                                return
                return
            except (RedisError, OSError, LogGap) as exc:
                if isinstance(exc, LogGap) and await self._settled():
                    raise  # nobody will write the missing events again: say so at once
                now = loop.time()
                trouble_since = now if trouble_since is None else trouble_since
                if now - trouble_since >= self._timing.presence_s:
                    raise
                if not isinstance(exc, LogGap):
                    self._health.failed("following a stream", exc)
                await asyncio.sleep(self._timing.check_s / 2)

    async def _round(self, after: int, idle_s: float) -> AsyncGenerator[Sequence[Event], None]:
        loop = asyncio.get_running_loop()
        await self._present()
        if self._announce is not None:  # after the presence entry the owner also counts
            await self._announce()
        refreshed = idle_since = loop.time()
        lost_since: float | None = None
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
                    if await self._owner_alive():
                        lost_since = None
                    elif not await self._declare_interrupted(cursor):
                        lost_since = loop.time() if lost_since is None else lost_since
                        if loop.time() - lost_since >= self._timing.presence_s:
                            raise _Lost
                    if loop.time() - idle_since >= idle_s:
                        yield ()
                        idle_since = loop.time()
                if loop.time() - refreshed >= self._timing.check_s:
                    await self._present()
                    refreshed = loop.time()

    async def _batches(self, after: int) -> AsyncGenerator[list[Event], None]:
        """Replay, then follow; an empty list after each block that found nothing.
        A batch that does not start right after the cursor raises `LogGap`."""
        seen = after
        cursor: bytes | str = entry_id(0)
        async for entries in self._replay(seen):
            cursor = entries[-1][0]
            batch = _decode(entries, seen)
            if batch:  # an empty one would mean "nothing came" to follow()
                _check(batch, seen)
                seen = batch[-1].seq
                yield batch
        # XREAD returns the entries after this id; with none read yet, every entry
        # (the reader may be ahead of the log: it read the owner's memory elsewhere).
        while True:  # follow: ends when the consumer has seen the terminal event
            entries = await self._follower.read(self._keys.log, cursor, self._timing.check_s)
            if entries:
                cursor = entries[-1][0]
            batch = _decode(entries, seen)
            if batch:
                _check(batch, seen)
                seen = batch[-1].seq
            yield batch

    async def _replay(self, seen: int) -> AsyncGenerator[Entries, None]:
        """The log's entries from the one holding `seen + 1`, BATCH at a time."""
        start: bytes | str = await self._entry_holding(seen + 1) or "-"
        while True:  # bounded by the log's length
            entries = cast(
                Entries, await self._redis.xrange(self._keys.log, min=start, count=BATCH)
            )
            if entries:
                start = b"(" + entries[-1][0]  # exclusive: after this entry
                yield entries
            if len(entries) < BATCH:
                return

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

    async def _settled(self) -> bool:
        """Whether the log can no longer change: its meta is there (Redis did not lose
        the stream, so no owner is about to write it again) and its lease is not (the
        stream ended, or its owner died). A gap in such a log is for good."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.exists(self._keys.meta)
        pipe.exists(self._keys.lease)
        meta, lease = await pipe.execute()
        return bool(meta) and not lease

    async def _owner_alive(self) -> bool:
        return bool(await self._redis.exists(self._keys.lease))

    async def _declare_interrupted(self, cursor: int) -> bool:
        """Write the terminal event of a stream whose owner died, unless it has one.
        False when the stream's meta is gone too: Redis lost it, nobody died."""
        failure = Failure("upstream_error", INTERRUPTED, True)
        entry, fields = encode_batch([Event(cursor + 1, "error", failure=failure)])
        keys = [self._keys.log, self._keys.meta, self._keys.readers]
        outcome = await self._redis.eval(
            _DECLARE, 3, *keys, entry, fields[b"v"], self._timing.ttl_ms, cursor
        )
        if isinstance(outcome, list):  # the log lost what the reader has: no ending fits
            raise LogGap(int(outcome[1]) + 1, cursor)
        if outcome == 1:
            log.warning("stream.owner_lost", stream_id=self._meta.stream_id, last_seq=cursor)
        return bool(outcome)

    async def _present(self) -> None:
        presence_ms = int(self._timing.presence_s * 1000)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._keys.readers, {self._reader: now_ms() + presence_ms})
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


def now_ms() -> int:
    return int(time.time() * 1000)


class _Lost(Exception):
    """Redis lost the stream and its owner did not write it again within a lease."""


def _check(batch: Sequence[Event], seen: int) -> None:
    if batch[0].seq != seen + 1:
        raise LogGap(seen + 1, batch[0].seq - 1)


def _ending(cursor: int, type_: str, message: str, *, retryable: bool) -> Event:
    """A reader's own terminal event, sent without an id (the cursor's event has it):
    the client keeps the id of the last event it got, resumes exactly from it (or is
    refused), and skips nothing."""
    return Event(cursor, "error", failure=Failure(type_, message, retryable), unlogged=True)


def _decode(entries: Entries, after: int) -> list[Event]:
    """The events of `entries` above seq `after`: those up to it are a reader's past."""
    if len(entries) == 1:  # the usual XREAD reply of a reader that keeps up
        return decode_entry(entries[0][0], entries[0][1], after)
    events: list[Event] = []
    for entry, fields in entries:
        events += decode_entry(entry, fields, after)
    return events
