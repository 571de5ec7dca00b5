"""The Redis resume store: stream logs in Redis streams, shared by every process.

Two clients per process, each with a bounded pool (app/redis_client.py).
Besides the per-stream sinks (redis_sink.py) and remote sources
(redis_source.py), the store runs two process-wide tasks: the lease keeper,
which refreshes the lease of every stream this process runs (and the
running TTL of its keys) every third of the lease TTL, and the cancel
listener, subscribed to this process's cancel channel so that a DELETE
handled elsewhere reaches the generation.

Strategy (pools): commands — the flusher's writes, leases, creations,
replays, presence — share at most `COMMAND_CONNECTIONS`; the calls that
park a connection on the server have a pool of their own, at most
`BLOCKING_CONNECTIONS`, so that they can never starve the flusher and the
lease keeper (a writer starved past the lease TTL loses its streams to
"interrupted"). Those calls are few by construction: the cancel
subscription, and the process's one follower (redis_follow.py), which
waits for the entries of every stream its readers follow elsewhere — and
for a DELETE waiting on the end of a stream it cancelled — in one read per
round. So a process holds at most COMMAND_CONNECTIONS + BLOCKING_CONNECTIONS
connections per Redis node, however many readers it serves.

On a Redis Cluster (a `redis+cluster://host:port,host:port/` URL) both
clients are redis-py's `RedisCluster` (discovery from the seeds, MOVED/ASK,
a new slot map after a failover); every key of one stream shares the slot of
its `{<stream_id>}` hash tag, so each command, pipeline and script here
names one slot. The flush groups its commands by shard (redis_sink.py), and
DELETE-anywhere uses sharded pub/sub (SSUBSCRIBE/SPUBLISH on the channel's
slot), whose listener count is exact where a plain PUBLISH counts one node.
A DELETE that heard nobody, or whose end never comes, is bounded by
`CANCEL_WAIT_S`. On a cluster the follower is also woken over sharded
pub/sub (redis_wakes.py), but it reads every followed log once per
`RECHECK_S` anyway, and each reader's wait is bounded, so nothing lost on
pub/sub can hang a reader.

Every Redis call is bounded: connect 1 s, a pool wait (`POOL_WAIT_S` for
commands, a block and a little for blocking reads), a read a little longer
than the longest XREAD BLOCK. A pool wait that runs out is a `RedisError`
like any outage. Redis failures are translated here, at the edge:
`Unavailable` (503) for a new stream that needs resume, a read before a
response starts, or a store that is not ready; nothing above sees redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import cast

import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from app.core.events import StreamMeta
from app.core.source import StreamSource
from app.errors import Unavailable
from app.redis_client import client_for, is_cluster, where
from app.resume.base import LogSink
from app.resume.presence import ReaderCounts
from app.resume.redis_codec import (
    FOLLOW,
    StreamKeys,
    cancel_channel,
    decode_meta,
    encode_meta,
    entry_id,
    last_of,
    owner_message,
)
from app.resume.redis_follow import Follower
from app.resume.redis_sink import Flusher, Health, RedisSink
from app.resume.redis_source import (
    Entries,
    RemoteSource,
    Timing,
    now_ms,
    settle_detaches,
)
from app.settings import Settings

COMMAND_CONNECTIONS = 64  # short commands: a burst queues for a few ms, it opens no sockets
BLOCKING_CONNECTIONS = 4  # the follower (+ its wake subscription), the cancels, reconnects
POOL_WAIT_S = 2.0  # a command that waits longer for a connection fails as an outage would
CANCEL_WAIT_S = 2.0  # a DELETE handled elsewhere waits this long for the terminal event
REFRESH_BATCH = 64  # streams per lease-renewal pipeline: a few ms of the event loop each
READ_SLACK_S = 2.0  # a read waits this much longer than the longest XREAD BLOCK
log = structlog.get_logger("sluice.resume")


def _policies(found: object) -> set[str]:
    """CONFIG GET's answer (per node, on a cluster) → the eviction policies in it."""
    if not isinstance(found, dict):
        return set()
    policies: set[str] = set()
    for name, value in found.items():
        if isinstance(value, dict):
            policies |= _policies(value)
        elif _text(name) == "maxmemory-policy":
            policies.add(_text(value))
    return policies


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def restarted_lately(uptime_s: int | None, process_up_s: float, lease_s: float) -> bool:
    """Whether a Redis node up for `uptime_s` (whole seconds, rounded down) restarted
    while this process, up for `process_up_s`, was running, and less than a lease
    ago. A Redis that was there before the process (a fresh deployment) did not
    lose anything the process knows of. Unknown uptime: no."""
    if uptime_s is None:
        return False
    return uptime_s <= lease_s and uptime_s + 1 <= process_up_s


def _node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class RedisStore:
    def __init__(self, settings: Settings, url: str) -> None:
        lease_s = settings.lease_ttl_s
        self.node = _node_id()
        self._started = time.monotonic()
        self.on_cancel: Callable[[str], None] = lambda stream_id: None
        self._required = settings.resume_required
        self._lease_ms = max(1, int(lease_s * 1000))
        self._ttl_ms = max(1, int(settings.resume_ttl_s * 1000))
        self._timing = Timing(check_s=lease_s / 3, presence_s=lease_s, ttl_ms=self._ttl_ms)
        read_s = self._timing.check_s + READ_SLACK_S  # longer than any XREAD BLOCK
        self._cluster = is_cluster(url)
        self._redis = client_for(
            url, size=COMMAND_CONNECTIONS, wait_s=POOL_WAIT_S, socket_timeout_s=read_s
        )
        self._blocking = client_for(
            url, size=BLOCKING_CONNECTIONS, wait_s=read_s, socket_timeout_s=read_s
        )
        self._follower = Follower(self._blocking, cluster=self._cluster)
        self._presence = ReaderCounts(self._redis, cluster=self._cluster)
        self._health = Health(where(url))
        maxlen = max(1024, 2 * settings.max_tokens_cap)  # trims nothing a stream can write
        self._flusher = Flusher(
            self._redis,
            self._health,
            maxlen,
            settings.resume_ttl_s,
            self._lease_ms,
            cluster=self._cluster,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._without_resume_logged = False

    async def start(self) -> None:
        self._flusher.start()
        self._follower.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._keep_leases(), name="sluice-leases"),
            loop.create_task(self._listen_for_cancels(), name="sluice-cancels"),
        ]
        problem = await self.problem()
        if problem is not None:
            log.error("resume.not_ready", problem=problem, resume_required=self._required)
        else:
            await self._check_eviction()

    async def _check_eviction(self) -> None:
        """An evicting Redis drops logs that readers still need: say so at start-up."""
        try:
            found: object = await self._redis.config_get("maxmemory-policy")
        except (RedisError, OSError):
            return  # managed services may refuse CONFIG; their console shows the policy
        policies = _policies(found)
        if policies and policies != {"noeviction"}:
            log.warning(
                "resume.redis_may_evict",
                maxmemory_policy=",".join(sorted(policies)),
                advice="set maxmemory-policy noeviction: an evicted log cannot be resumed",
            )

    # ---- the owner's side ------------------------------------------------

    async def create(self, meta: StreamMeta) -> LogSink | None:
        keys = StreamKeys.of(meta.stream_id)
        fields = encode_meta(meta, self.node)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.meta, mapping=fields)  # type: ignore[arg-type]
        pipe.pexpire(keys.meta, self._ttl_ms + self._lease_ms)
        pipe.set(keys.lease, self.node, px=self._lease_ms)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            problem = self._health.failed("creating a stream", exc)
            self._without_resume(problem)
            return None
        self._health.ok()
        sink = RedisSink(meta.stream_id, self._flusher, fields)
        self._flusher.add(sink)
        return sink

    def _without_resume(self, problem: str) -> None:
        if self._required:
            raise Unavailable(
                "the resume store (Redis) is unreachable, so no stream can start here; "
                "retry later or on another instance",
                code="resume_store_unavailable",
            )
        if not self._without_resume_logged:
            log.warning("resume.streaming_without_resume", problem=problem)
            self._without_resume_logged = True

    async def _keep_leases(self) -> None:
        interval = self._lease_ms / 3000
        while True:  # lives as long as the store; ends by cancellation in aclose()
            await asyncio.sleep(interval)
            live = [s for s in self._flusher.live.values() if not s.broken]
            for start in range(0, len(live), REFRESH_BATCH):
                # in slices: redis-py spends some 15 µs of Python per pipelined command,
                # and one pipeline for every stream would stall the tokens of all of them
                await self._refresh(live[start : start + REFRESH_BATCH])

    async def _refresh(self, live: list[RedisSink]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        running_ms = self._ttl_ms + self._lease_ms  # if this process dies, keys expire anyway
        # A cluster also checks, per stream, that the last entry Redis confirmed is still
        # there (a failover to a replica the entry had not reached yet loses it silently:
        # replication is asynchronous), and whether a reader elsewhere follows it (its
        # flushes then publish wakes). A single Redis loses entries only with the whole
        # stream, which the meta's PEXPIRE tells.
        per_sink = 5 if self._cluster else 3
        checked: list[tuple[str | None, int]] = []
        for sink in live:
            pipe.set(sink.keys.lease, self.node, px=self._lease_ms)
            pipe.pexpire(sink.keys.meta, running_ms)
            pipe.pexpire(sink.keys.log, running_ms)
            if self._cluster:
                checked.append((sink.acknowledged, sink.rewrites))
                pipe.xrange(sink.keys.log, min=sink.acknowledged or "-", count=1)
                pipe.zcount(sink.keys.readers, now_ms(), "+inf")
        try:
            kept = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._health.failed("refreshing leases", exc)
            return
        self._health.ok()
        for i, sink in enumerate(live):
            replies = kept[i * per_sink : (i + 1) * per_sink]
            lost_entries = False
            if self._cluster:
                (acknowledged, rewrites), found, readers = checked[i], replies[3], replies[4]
                sink.followed = bool(readers)
                lost_entries = (
                    acknowledged is not None
                    and rewrites == sink.rewrites  # a rewrite meanwhile: other entry ids
                    and not (found and found[0][0].decode() == acknowledged)
                )
            meta_kept = replies[1]
            if (not meta_kept or lost_entries) and sink.history is not None and not sink.lost:
                # Redis lost the stream (restarted empty, or evicted it), or entries
                # it had confirmed: the next flush writes meta, lease and the whole
                # log again
                log.warning("resume.stream_lost", stream_id=sink.stream_id, meta=bool(meta_kept))
                sink.lost = True
                self._flusher.mark(sink, urgent=True)

    async def _listen_for_cancels(self) -> None:
        while True:  # resubscribes after a Redis outage; ends by cancellation in aclose()
            try:
                await self._subscribed()
            except (RedisError, OSError) as exc:
                self._health.failed("listening for cancels", exc)
                await asyncio.sleep(self._timing.check_s)

    async def _subscribed(self) -> None:
        pubsub = self._blocking.pubsub()
        channel = cancel_channel(self.node)
        # On a cluster, sharded pub/sub: the channel lives on the shard of its slot
        # and SPUBLISH's count of listeners is exact (a plain PUBLISH is broadcast to
        # every node and counts the listeners of one).
        sharded = self._cluster
        try:
            await (pubsub.ssubscribe(channel) if sharded else pubsub.subscribe(channel))
            while True:
                receive = pubsub.get_sharded_message if sharded else pubsub.get_message
                message = await receive(
                    ignore_subscribe_messages=True, timeout=self._timing.check_s
                )
                if message is not None and message["type"] in ("message", "smessage"):
                    self._heard(bytes(message["data"]))
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    def _heard(self, data: bytes) -> None:
        kind, stream_id = owner_message(data)
        if kind == "cancel":
            self.on_cancel(stream_id)
        elif (sink := self._flusher.live.get(stream_id)) is not None:
            sink.followed = True  # its flushes wake the reader's follower from now on

    # ---- other processes' side -------------------------------------------

    async def open(self, stream_id: str) -> StreamSource | None:
        try:
            fields = cast(
                dict[bytes, bytes], await self._redis.hgetall(StreamKeys.of(stream_id).meta)
            )
        except (RedisError, OSError) as exc:
            raise self._unavailable("opening a stream", exc) from exc
        found = decode_meta(stream_id, fields)
        if found is None:
            await self._not_lost_lately(StreamKeys.of(stream_id).meta)
            return None
        meta, owner = found
        announce = partial(self._announce, stream_id, owner) if self._cluster else None
        return RemoteSource(
            self._redis, self._follower, meta, self.node, self._timing, self._health, announce
        )

    async def _announce(self, stream_id: str, owner: str) -> None:
        """Cluster: tell the owner a reader here follows `stream_id`, so that its
        flushes publish wakes for it. Best effort: the owner also counts the readers
        set at each lease renewal, and the follower re-reads every log once a second."""
        with contextlib.suppress(RedisError, OSError):
            await self._redis.spublish(cancel_channel(owner), FOLLOW + stream_id)

    async def _not_lost_lately(self, key: str) -> None:
        """Before a 404: raise a retryable 503 if the Redis node that would hold `key`
        restarted while this process ran, less than a lease ago. A Redis restarted
        empty has lost the running streams until their owners write them again
        (within a third of a lease), so a stream missing then may be one of those;
        after a lease, missing is missing."""
        try:
            uptime_s = await self._uptime_s(key)
        except ResponseError:
            uptime_s = None  # INFO refused (an ACL, a managed service): a plain 404
        except (RedisError, OSError) as exc:
            raise self._unavailable("checking a missing stream", exc) from exc
        up_s = time.monotonic() - self._started
        if restarted_lately(uptime_s, up_s, self._lease_ms / 1000):
            raise Unavailable(
                "the resume store (Redis) restarted moments ago and may not hold this "
                "stream again yet; retry shortly",
                code="resume_store_restarted",
                retry_after=max(1.0, self._timing.check_s),
            )

    async def _uptime_s(self, key: str) -> int | None:
        if self._cluster:
            cluster = cast(RedisCluster, self._redis)
            node = cluster.get_node_from_key(key)
            found: object = await cluster.info("server", target_nodes=node)
        else:
            found = await self._redis.info("server")
        uptime = found.get("uptime_in_seconds") if isinstance(found, dict) else None
        return int(uptime) if uptime is not None else None

    async def readers_elsewhere(self, stream_id: str) -> int:
        try:
            return await self._presence.count(stream_id)  # one round trip for a burst
        except (RedisError, OSError) as exc:
            raise self._unavailable("counting a stream's readers", exc) from exc

    async def cancel_elsewhere(self, stream_id: str) -> bool:
        keys = StreamKeys.of(stream_id)
        try:
            node = cast(bytes | None, await self._redis.hget(keys.meta, "node"))
            if node is None:
                return False
            channel = cancel_channel(node.decode())
            publish = self._redis.spublish if self._cluster else self._redis.publish
            heard: int = await publish(channel, stream_id)
            if heard:
                await self._await_end(keys)
        except (RedisError, OSError) as exc:
            raise self._unavailable("cancelling a stream", exc) from exc
        return bool(heard)

    async def _await_end(self, keys: StreamKeys) -> None:
        """Until the log has its terminal event, for at most CANCEL_WAIT_S."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT_S
        last = cast(Entries, await self._redis.xrevrange(keys.log, count=1))
        if last and last_of(*last[0])[1]:
            return
        cursor: bytes | str = last[0][0] if last else entry_id(0)
        while (left := deadline - loop.time()) > 0:
            entries = await self._follower.read(keys.log, cursor, left)
            if entries:
                cursor = entries[-1][0]
                if last_of(*entries[-1])[1]:
                    return

    def _unavailable(self, doing: str, exc: BaseException) -> Unavailable:
        problem = self._health.failed(doing, exc)
        return Unavailable(
            f"the resume store is unreachable ({problem})", code="resume_store_unavailable"
        )

    # ---- readiness and shutdown ------------------------------------------

    async def problem(self) -> str | None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            return self._health.failed("checking readiness", exc)
        self._health.ok()
        return None

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._follower.aclose()
        await self._presence.aclose()
        await self._flusher.aclose()
        await settle_detaches(timeout_s=2.0)
        await self._redis.aclose()
        await self._blocking.aclose()
