"""Wake-ups over sharded pub/sub for the follower on a Redis Cluster: "the log
of this stream grew", heard without polling.

On a cluster the follower cannot block on one XREAD over every followed log
(each log has a slot of its own), so it sleeps instead, and the writer of a
log says when to look: after each flush that wrote entries for a stream,
the owner adds `SPUBLISH <log>:wake` to that flush, on the stream's shard
(one message per stream per flush, never per token), for the streams a
reader elsewhere follows: the reader's process says so on the owner's
channel when it starts (`follow:<sid>`, redis_streams.py), and the owner
counts each stream's readers set at every lease renewal besides. `Wakes` holds one
sharded subscription per followed log, through redis-py's `ClusterPubSub`:
it keeps one connection per node that holds a subscribed channel, routes
each channel to the shard of its slot, and moves the subscriptions after a
failover or a slot migration (its own slot-map reconciliation, or a MOVED).
So connections grow with shards, never with readers or streams.

Strategy (listening): one task reads the messages of every node in turn,
`LISTEN_S` at a time (redis-py splits the wait between the nodes and first
checks them all without waiting), so a wake reaches the follower within
about `LISTEN_S`, and an idle process sends Redis nothing at all. A woken
log is put in `woken` and the follower is stirred.

Strategy (losses): a pub/sub message can be lost (a reconnect, a failover,
a subscription still on its way when the entry was written). The follower
does not depend on one: it reads every followed log again every
`redis_follow.RECHECK_S`, so a lost wake delays a reader by at most that.

Strategy (unsubscribing): a reader leaves the follower between two reads
for a moment; a log is unsubscribed only when nobody has wanted it for
`LINGER_S`, so a stream that is read does not flap in and out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.resume.redis_codec import log_of_wake, wake_channel

LISTEN_S = 0.03  # the longest a wake waits for the listener to read its node
LINGER_S = 2.0  # a log nobody wanted for this long is unsubscribed
RETRY_S = 0.1  # after a failed read of the messages, before the next


class Wakes:
    """Sharded subscriptions to the wake channels of followed logs."""

    def __init__(self, redis: Redis, stirred: asyncio.Event) -> None:
        self._pubsub = redis.pubsub()  # on a cluster client: redis-py's ClusterPubSub
        self._stirred = stirred
        self._wanted: dict[str, float] = {}  # subscribed log key -> when last wanted
        self._listening = asyncio.Event()  # something is subscribed: read messages
        self.woken: set[str] = set()  # logs woken since the follower last took them
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="sluice-wakes")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()

    def take(self) -> set[str]:
        woken, self.woken = self.woken, set()
        return woken

    @property
    def subscribed(self) -> set[str]:
        return set(self._wanted)

    async def track(self, keys: Iterable[str], now: float) -> None:
        """Subscribe the wake channels of `keys` not subscribed yet; unsubscribe
        those nobody wanted for LINGER_S. Returns once the new SSUBSCRIBEs are
        sent, before the caller reads: an entry written after that read wakes it."""
        fresh = []
        for key in keys:
            if key not in self._wanted:
                fresh.append(key)
            self._wanted[key] = now
        stale = [key for key, when in self._wanted.items() if now - when >= LINGER_S]
        for key in stale:
            del self._wanted[key]
        try:
            for key in fresh:  # one command each: the channels have slots of their own
                await self._pubsub.ssubscribe(wake_channel(key))
            if stale:
                await self._pubsub.sunsubscribe(*[wake_channel(key) for key in stale])
        except BaseException:
            for key in fresh:  # subscribed again at the next round
                self._wanted.pop(key, None)
            raise
        if self._wanted:
            self._listening.set()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:  # lives as long as the follower; ends by cancellation in aclose()
            if not self._wanted:
                self._listening.clear()
                await self._listening.wait()
                continue
            started = loop.time()
            try:
                message = await self._pubsub.get_sharded_message(
                    ignore_subscribe_messages=True, timeout=LISTEN_S
                )
            except (RedisError, OSError):
                await asyncio.sleep(RETRY_S)  # the follower's re-check covers what is lost
                continue
            if message is not None and _text(message["type"]) == "smessage":
                self.woken.add(log_of_wake(message["channel"]))
                self._stirred.set()
            elif message is None and loop.time() - started < LISTEN_S / 2:
                # nothing to read yet (a node's subscription moving after a failover):
                # redis-py returns at once, and this loop must not spin
                await asyncio.sleep(LISTEN_S)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
