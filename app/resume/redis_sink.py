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

Strategy (idempotent by seq): an entry's id is the seq of its first event,
so a write is idempotent if it is sent again exactly as it was: same id,
same events. A write that fails (an outage, a timeout while Redis is
frozen) keeps its entries, unconfirmed, and the next flush sends them again
unchanged, before any new entry, after a short pause. Redis refuses an
entry whose id is not above the last one: that is either the first copy of
this very write, which landed before the timeout (the reply was lost), or
another writer's entry (a reader elsewhere that found the lease gone wrote
the terminal "interrupted"). One XRANGE of the refused ids tells them
apart: the same content is a success; other content breaks the sink, which
then mirrors nothing more (readers elsewhere already have the other end).

Strategy (Redis lost the keys): a Redis restarted without persistence, or
one that evicted the stream, answers the next XADD as if nothing happened,
and the log then starts in the middle. The lease keeper notices (the meta
hash is gone) and marks the sink `lost`; the next flush rewrites the
stream's meta, lease and whole log from the generation's in-memory log in
one MULTI/EXEC (the keys share a slot), so readers elsewhere find it whole
again. Errors are logged once per outage (`Health`), never per event.

Strategy (Redis lost confirmed entries, on a cluster): a Redis Cluster replicates
asynchronously, so a replica that takes over from a primary frozen or
killed just after a write may lack entries the primary confirmed; the next
XADD lands after the hole as if nothing happened. The sink remembers the
id of its last confirmed entry (`acknowledged`). After a write that failed
or took `SLOW_S` or more (redis-py's cluster client follows a failover by
itself, so a stall is often all the flusher sees), before a stream's end,
and at each lease renewal (redis_streams.py), that entry is looked up; if
it is gone the sink is `lost` and its whole log is written again, as above.
An error reply that is not XADD's id refusal (CLUSTERDOWN from a node still
joining, LOADING, ...) settles nothing: the write is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from app.core.events import Event
from app.resume.redis_codec import Fields, StreamKeys, encode_batch
from app.resume.redis_packed import execute, execute_grouped
from app.resume.resp import Commands

SLOW_S = 1.0  # a write this slow went through a stall or a failover: check what it confirmed
FLUSH_S = 0.002  # what a token waits at most before it is written: one round-trip per batch
CLOSE_TIMEOUT_S = 5.0  # bound on `close()` beyond the client's own socket timeouts
RETRY_S = 0.2  # pause after a failed write before its entries are sent again
REWRITE_BATCH = 256  # events per entry when a lost log is rewritten
Entry = tuple[str, Fields]
History = Callable[[int], list[Event]]  # the owner's events after a seq (its in-memory log)
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

    __slots__ = (
        "_closed",
        "_flusher",
        "_pending",
        "_unconfirmed",
        "acknowledged",
        "broken",
        "closing",
        "followed",
        "history",
        "keys",
        "lost",
        "meta_fields",
        "rewrites",
        "stream_id",
    )

    def __init__(
        self, stream_id: str, flusher: Flusher, meta_fields: Mapping[str, str] | None = None
    ) -> None:
        self.stream_id = stream_id
        self.keys = StreamKeys.of(stream_id)
        self._flusher = flusher
        self._pending: list[Event] = []
        self._unconfirmed: list[Entry] = []  # sent, not yet answered: sent again as they are
        self.acknowledged: str | None = None  # the id of the last entry Redis confirmed
        self.rewrites = 0  # each rewrite batches the log anew: other entry ids
        self.followed = False  # cluster: a reader elsewhere waits for this stream's wakes
        self._closed: asyncio.Future[None] | None = None
        self.broken = False
        self.closing = False
        self.lost = False  # Redis lost the stream's keys: rewrite them before the next entry
        self.history: History | None = None  # set by the owner: what a rewrite writes
        self.meta_fields = dict(meta_fields or {})

    def append(self, event: Event) -> None:
        if self.broken:
            return
        self._pending.append(event)
        if len(self._pending) == 1:
            self._flusher.mark(self)

    def bind(self, history: History) -> None:
        self.history = history

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
        except TimeoutError:
            self.break_()  # Redis stayed away: readers elsewhere get "interrupted"
            raise
        finally:
            self._flusher.forget(self)

    def take(self) -> list[Event]:
        pending, self._pending = self._pending, []
        return pending

    def entries(self) -> list[Entry]:
        """What the next write carries: the unconfirmed entries again, exactly as
        first sent (so a copy already in Redis compares equal), then one new
        entry with the events buffered since."""
        pending = self.take()
        if pending:
            self._unconfirmed.append(encode_batch(pending))
        return list(self._unconfirmed)

    def rewritten(self) -> list[Event]:
        """Everything the owner has: it replaces what is pending and unconfirmed."""
        assert self.history is not None
        self._pending = []
        self._unconfirmed = []
        self.lost = False
        self.acknowledged = None
        self.rewrites += 1
        return self.history(0)

    def confirmed(self) -> None:
        if self._unconfirmed:
            self.acknowledged = self._unconfirmed[-1][0]
        self._unconfirmed = []

    @property
    def settled(self) -> bool:
        """Nothing left to write: its terminal write can be answered to `close()`."""
        return not self._pending and not self._unconfirmed

    def settle(self) -> None:
        """The write that carried the terminal event was answered (or failed)."""
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def break_(self) -> None:
        self.broken = True
        self._pending = []
        self._unconfirmed = []
        self.settle()


class Flusher:
    """The one task per process that writes every sink's buffered events."""

    def __init__(
        self,
        redis: Redis,
        health: Health,
        maxlen: int,
        ttl_s: float,
        lease_ms: int = 5000,
        *,
        cluster: bool = False,
    ) -> None:
        self._redis = redis
        self._cluster = cluster  # one buffer per shard, by the cluster client's pipeline
        self._health = health
        self._maxlen = maxlen
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._lease_ms = lease_ms
        self._dirty: dict[RedisSink, None] = {}  # an ordered set
        self._wake = asyncio.Event()
        self._urgent = False
        self._failing = False
        self.live: dict[str, RedisSink] = {}  # what the lease task keeps alive
        self._suspects: set[RedisSink] = set()  # Redis may have lost their `acknowledged`
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sluice-flusher")

    def add(self, sink: RedisSink) -> None:
        self.live[sink.stream_id] = sink

    def forget(self, sink: RedisSink) -> None:
        self.live.pop(sink.stream_id, None)
        self._suspects.discard(sink)

    def mark(self, sink: RedisSink, *, urgent: bool = False) -> None:
        self._dirty[sink] = None
        self._urgent = self._urgent or urgent
        self._wake.set()

    async def _run(self) -> None:
        while True:  # lives as long as the store; ends by cancellation in aclose()
            await self._wake.wait()
            if self._failing:
                await asyncio.sleep(RETRY_S)  # Redis failed last time: do not spin on it
            elif not self._urgent:
                await asyncio.sleep(FLUSH_S)  # let a few milliseconds of appends gather
            await self.flush()

    async def flush(self) -> None:
        self._wake.clear()
        self._urgent = False
        sinks = [sink for sink in self._dirty if not sink.broken]
        self._dirty.clear()
        if sinks:
            await self._write(sinks)

    async def _write(self, sinks: list[RedisSink]) -> None:
        doubtful = [s for s in self._suspects if not s.broken]
        if self._cluster:  # and before a stream's end: the log it leaves must be whole
            doubtful += [s for s in sinks if s.closing and s not in self._suspects]
        if not await self._check_acknowledged(doubtful):
            for sink in sinks:
                self.mark(sink, urgent=sink.closing)
            return
        commands = Commands(self._maxlen, keep_args=self._cluster)
        plans: list[tuple[RedisSink, list[Entry], int, int]] = []
        for sink in sinks:
            before = commands.count
            rewritten = sink.lost and sink.history is not None
            if rewritten:
                self._rewrite(commands, sink)
            entries = sink.entries()
            first_xadd = commands.count
            for entry, fields in entries:
                commands.xadd(sink.keys.log, entry, fields)
            if sink.closing and not sink._pending:
                self._finalise(commands, sink)
            if self._cluster and sink.followed and (entries or rewritten):
                # followers elsewhere sleep until told (redis_wakes.py): one message
                # per followed stream per flush, on the stream's shard, after its
                # entries; a stream nobody follows elsewhere costs no message
                commands.add("SPUBLISH", sink.keys.wake, b"")
            plans.append((sink, entries, first_xadd - before, commands.count - before))
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            write = execute_grouped if self._cluster else execute
            results = await write(self._redis, commands)
        except (RedisError, OSError) as exc:
            self._health.failed("writing stream logs", exc)
            self._failing = True
            self._suspect_all()
            for sink in sinks:  # their entries stay unconfirmed: sent again, unchanged
                self.mark(sink, urgent=sink.closing)
            return
        self._failing = False
        if loop.time() - started >= SLOW_S:  # a cluster client retries a failover silently
            self._suspect_all()
        refused = self._settle(plans, results)
        if not self._failing:
            self._health.ok()
        if refused:
            await self._verify(refused)

    def _suspect_all(self) -> None:
        """After a failed or stalled write: Redis may answer again without entries it
        had confirmed (a failover to a replica they had not reached yet: replication
        is asynchronous). Each stream's last confirmed entry is checked before its
        next write."""
        if self._cluster:  # a single Redis loses entries only with the whole stream
            self._suspects |= {s for s in self.live.values() if s.acknowledged is not None}

    async def _check_acknowledged(self, sinks: list[RedisSink]) -> bool:
        """Whether Redis answered. A stream whose last confirmed entry is gone is
        `lost`: this write rewrites its whole log, so readers find no hole."""
        checkable = [s for s in sinks if s.acknowledged is not None and s.history is not None]
        self._suspects.difference_update(set(sinks) - set(checkable))  # nothing to check
        sinks = checkable
        if not sinks:
            return True
        pipe = self._redis.pipeline(transaction=False)
        for sink in sinks:
            pipe.xrange(sink.keys.log, min=sink.acknowledged or "-", count=1)
        try:
            found = cast(list[list[tuple[bytes, Fields]]], await pipe.execute())
        except (RedisError, OSError) as exc:
            self._health.failed("checking stream logs", exc)
            self._failing = True
            return False
        for sink, there in zip(sinks, found, strict=True):
            self._suspects.discard(sink)
            if not (there and there[0][0].decode() == sink.acknowledged):
                log.warning("resume.entries_lost", stream_id=sink.stream_id)
                sink.lost = True
                self.mark(sink, urgent=True)
        return True

    def _rewrite(self, commands: Commands, sink: RedisSink) -> None:
        """Meta, lease and the whole log again, at once (after Redis lost them)."""
        events = sink.rewritten()
        keys = sink.keys
        log.warning("resume.log_rewritten", stream_id=sink.stream_id, events=len(events))
        atomic = not self._cluster  # a cluster pipeline has no MULTI: readers resync on a gap
        if atomic:
            commands.add("MULTI")
        commands.add("DEL", keys.log)
        for start in range(0, len(events), REWRITE_BATCH):
            entry, fields = encode_batch(events[start : start + REWRITE_BATCH])
            commands.xadd(keys.log, entry, fields)
        if sink.meta_fields:
            commands.add("HSET", keys.meta, *[x for kv in sink.meta_fields.items() for x in kv])
            commands.add("PEXPIRE", keys.meta, self._ttl_ms + self._lease_ms)
            node = sink.meta_fields.get("node", "")
            commands.add("SET", keys.lease, node, "PX", self._lease_ms)
        if atomic:
            commands.add("EXEC")

    def _finalise(self, commands: Commands, sink: RedisSink) -> None:
        keys = sink.keys
        for key in (keys.log, keys.meta, keys.readers):
            commands.add("PEXPIRE", key, self._ttl_ms)
        commands.add("DEL", keys.lease)

    def _settle(
        self, plans: list[tuple[RedisSink, list[Entry], int, int]], results: list[object]
    ) -> list[tuple[RedisSink, Entry]]:
        """Settle what was answered; the refused entries, to be checked."""
        offset = 0
        refused: list[tuple[RedisSink, Entry]] = []
        for sink, entries, skip, count in plans:
            mine = results[offset + skip : offset + skip + len(entries)]
            failed = [r for r in results[offset : offset + count] if _failure(r)]
            offset += count
            if failed:
                # refused for another reason than its id (a cluster node still joining:
                # CLUSTERDOWN, LOADING, ...): nothing is settled, all is sent again
                self._health.failed("writing stream logs", cast(ResponseError, failed[0]))
                self._failing = True
                sink.lost = sink.lost or skip > 0  # a rewrite in it: rewrite again
                self.mark(sink, urgent=sink.closing)
                continue
            doubtful = [e for e, r in zip(entries, mine, strict=True) if _refusal(r)]
            if doubtful:
                refused += [(sink, entry) for entry in doubtful]
                continue
            sink.confirmed()
            if sink.closing and sink.settled:
                sink.settle()
        return refused

    async def _verify(self, refused: list[tuple[RedisSink, Entry]]) -> None:
        """A refused entry already in Redis with the same content was written."""
        pipe = self._redis.pipeline(transaction=False)
        for sink, (entry, _) in refused:
            pipe.xrange(sink.keys.log, min=entry, max=entry)
        try:
            found = cast(list[list[tuple[bytes, Fields]]], await pipe.execute())
        except (RedisError, OSError) as exc:
            self._health.failed("checking refused writes", exc)
            self._failing = True
            self._suspect_all()
            for sink, _ in refused:
                self.mark(sink)
            return
        others = {
            s
            for (s, (_, fields)), got in zip(refused, found, strict=True)
            if not _same(got, fields)
        }
        for sink in {s for s, _ in refused}:
            if sink in others:
                # another writer ended the stream first (a reader elsewhere
                # declared it interrupted while this process stalled)
                log.warning("resume.mirror_refused", stream_id=sink.stream_id)
                self._break(sink)
            else:
                sink.confirmed()
                if sink.closing and sink.settled:
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


def _refusal(reply: object) -> bool:
    """XADD's answer to an id that is not above the stream's last one."""
    return isinstance(reply, ResponseError) and "equal or smaller" in str(reply)


def _failure(reply: object) -> bool:
    """An error reply that says nothing about the log: the command was not run."""
    return isinstance(reply, ResponseError) and not _refusal(reply)


def _same(found: list[tuple[bytes, Fields]], fields: Fields) -> bool:
    return len(found) == 1 and found[0][1] == fields
