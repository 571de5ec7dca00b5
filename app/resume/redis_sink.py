"""The owner's side of the Redis log: sinks that buffer, one flusher that writes.

Strategy: `RedisSink.append` only puts the event in the sink's list and, if
the list was empty, marks the sink dirty — no await, no task, no round-trip
per token. One flusher task per process waits for dirty sinks, lets
`FLUSH_S` of appends gather, and writes every dirty sink's events in one
round-trip: one `XADD ... MAXLEN ~ cap` per sink, whose entry holds all the
events buffered since the last flush (redis_codec.py). An entry per event
would cost a command per token; an entry per flush makes it a command per
batch — but a thousand slow streams still have about one token each per
flush. So the flush is not a redis-py pipeline (some 15 µs of Python per
command): its commands are encoded as RESP bytes into one buffer
(resp.py), written to one pooled connection and answered by one reply each,
read in order (redis_packed.py), a few µs per command. A closing sink is
written at once, with the TTL on every key of the stream and the lease
dropped, and `close()` returns when the write that carried it has been
answered. All writes of one stream go through this one task, one flush
after the other, so they reach Redis in seq order.

A write that fails breaks the sink: it mirrors nothing more and leaves the
lease to expire, so readers elsewhere end with "interrupted" rather than
skip events; readers in this process follow the in-memory log and never
notice. Errors are logged once per outage (`Health`), never per event.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.events import Event
from app.resume.redis_codec import StreamKeys, encode_batch
from app.resume.redis_packed import execute
from app.resume.resp import Commands

FLUSH_S = 0.002  # what a token waits at most before it is written: one round-trip per batch
CLOSE_TIMEOUT_S = 5.0  # bound on `close()` beyond the client's own socket timeouts
log = structlog.get_logger("sluice.resume")


class Health:
    """Whether Redis answered last time; logs each change once, not each failure."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.problem: str | None = None

    def failed(self, doing: str, exc: BaseException) -> str:
        problem = f"redis at {self.where} unreachable while {doing}: {type(exc).__name__}: {exc}"
        if self.problem is None:
            log.error("resume.redis_down", problem=problem)
        self.problem = problem
        return problem

    def ok(self) -> None:
        if self.problem is not None:
            log.info("resume.redis_back", where=self.where)
        self.problem = None


class RedisSink:
    """The mirror of one generation run by this process."""

    __slots__ = ("_closed", "_flusher", "_pending", "broken", "closing", "keys", "stream_id")

    def __init__(self, stream_id: str, flusher: Flusher) -> None:
        self.stream_id = stream_id
        self.keys = StreamKeys.of(stream_id)
        self._flusher = flusher
        self._pending: list[Event] = []
        self._closed: asyncio.Future[None] | None = None
        self.broken = False
        self.closing = False

    def append(self, event: Event) -> None:
        if self.broken:
            return
        self._pending.append(event)
        if len(self._pending) == 1:
            self._flusher.mark(self)

    async def close(self) -> None:
        """Flush everything, terminal event included, and start the TTL."""
        if self.broken or self.closing:
            return
        self.closing = True
        self._closed = asyncio.get_running_loop().create_future()
        self._flusher.mark(self, urgent=True)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.shield(self._closed)
        finally:
            self._flusher.forget(self)

    def take(self) -> list[Event]:
        pending, self._pending = self._pending, []
        return pending

    def settle(self) -> None:
        """The write that carried the terminal event was answered (or failed)."""
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def break_(self) -> None:
        self.broken = True
        self._pending = []
        self.settle()


class Flusher:
    """The one task per process that writes every sink's buffered events."""

    def __init__(self, redis: Redis, health: Health, maxlen: int, ttl_s: float) -> None:
        self._redis = redis
        self._health = health
        self._maxlen = maxlen
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._dirty: dict[RedisSink, None] = {}  # an ordered set
        self._wake = asyncio.Event()
        self._urgent = False
        self.live: dict[str, RedisSink] = {}  # what the lease task keeps alive
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sluice-flusher")

    def add(self, sink: RedisSink) -> None:
        self.live[sink.stream_id] = sink

    def forget(self, sink: RedisSink) -> None:
        self.live.pop(sink.stream_id, None)

    def mark(self, sink: RedisSink, *, urgent: bool = False) -> None:
        self._dirty[sink] = None
        self._urgent = self._urgent or urgent
        self._wake.set()

    async def _run(self) -> None:
        while True:  # lives as long as the store; ends by cancellation in aclose()
            await self._wake.wait()
            if not self._urgent:
                await asyncio.sleep(FLUSH_S)  # let a few milliseconds of appends gather
            await self.flush()

    async def flush(self) -> None:
        self._wake.clear()
        self._urgent = False
        sinks = list(self._dirty)
        self._dirty.clear()
        batches = [(sink, sink.take()) for sink in sinks if not sink.broken]
        if batches:
            await self._write(batches)

    async def _write(self, batches: list[tuple[RedisSink, list[Event]]]) -> None:
        commands = Commands(self._maxlen)
        spans: list[tuple[RedisSink, int]] = []
        for sink, events in batches:
            before = commands.count
            if events:
                entry, fields = encode_batch(events)
                commands.xadd(sink.keys.log, entry, fields)
            if sink.closing and not sink._pending:
                self._finalise(commands, sink)
            spans.append((sink, commands.count - before))
        try:
            results = await execute(self._redis, commands)
        except (RedisError, OSError) as exc:
            self._health.failed("writing stream logs", exc)
            for sink, _ in spans:
                self._break(sink)
            return
        self._health.ok()
        self._settle(spans, results)

    def _finalise(self, commands: Commands, sink: RedisSink) -> None:
        keys = sink.keys
        for key in (keys.log, keys.meta, keys.readers):
            commands.add("PEXPIRE", key, self._ttl_ms)
        commands.add("DEL", keys.lease)

    def _settle(self, spans: list[tuple[RedisSink, int]], results: list[object]) -> None:
        offset = 0
        for sink, count in spans:
            mine = results[offset : offset + count]
            offset += count
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if error is not None:
                # e.g. a reader elsewhere declared the stream interrupted while
                # this process stalled: Redis refused the older entry ids.
                log.warning("resume.mirror_refused", stream_id=sink.stream_id, error=str(error))
                self._break(sink)
            elif sink.closing and not sink._pending:
                sink.settle()

    def _break(self, sink: RedisSink) -> None:
        sink.break_()
        self.forget(sink)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(RedisError, OSError):
            await self.flush()  # what was appended since the last batch
