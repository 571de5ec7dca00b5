"""Concurrent streams per key in Redis, shared by every process (the interface
and the in-process slots are in app/security/limits.py).

Strategy (Redis): one sorted set per identity, `sluice:{key:<identity>}:streams`,
members are stream ids scored by the expiry of their lease (Redis' own
clock, so processes need not agree on the time). Acquiring drops expired
leases, counts and adds in one Lua script, so two processes cannot both take
the last slot. The process that holds a slot renews its leases every third of
the lease, in one pipelined round-trip for all of them; a process that dies
stops renewing, and its slots are free once the lease runs out.

Strategy (connections): the slots' client has its own bounded pool
(app/redis_client.py), `CONNECTIONS` at most. A burst of creations queues
for a connection (each script takes well under a millisecond) rather than
opening a socket per creation or being refused; a wait longer than
`WAIT_S`, like Redis being unreachable, is the 503 `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from app.errors import Unavailable
from app.redis_client import client_for
from app.security.limits import refusal

log = structlog.get_logger("sluice.limits")

LEASE_S = 30.0
CONNECTIONS = 64
WAIT_S = 2.0  # for a pooled connection, and for Redis' answer


_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] the identity's set; ARGV: limit, lease ms, stream id. 1 = taken, 0 = full.
_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
)

# KEYS[1] the identity's set; ARGV: lease ms, stream ids still held here.
_RENEW = (
    _NOW_MS
    + """
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""
)

_COUNT = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)


def slots_key(identity: str) -> str:
    return f"sluice:{{key:{identity}}}:streams"


class RedisSlots:
    def __init__(
        self,
        client: aioredis.Redis,
        limit: int,
        lease_s: float = LEASE_S,
        *,
        required: bool = True,
    ) -> None:
        self._client = client
        self._limit = limit
        self._required = required  # False: with Redis down, streams run uncounted
        self._unenforced_logged = False
        self._lease_ms = max(1, round(lease_s * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._count = client.register_script(_COUNT)
        self._held: dict[str, str] = {}  # stream id -> identity, slots this process holds
        self._releases: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None

    @classmethod
    def from_url(
        cls, url: str, limit: int, lease_s: float = LEASE_S, *, required: bool = True
    ) -> RedisSlots:
        client = client_for(url, size=CONNECTIONS, wait_s=WAIT_S, socket_timeout_s=WAIT_S)
        return cls(client, limit, lease_s, required=required)

    async def acquire(self, identity: str, stream_id: str) -> None:
        try:
            taken = await self._acquire(
                keys=[slots_key(identity)], args=[self._limit, self._lease_ms, stream_id]
            )
        except (RedisError, OSError) as exc:
            if self._required:
                raise Unavailable("cannot count this key's streams: Redis is unreachable") from exc
            self._unenforced(exc)
            return  # streams run without resume; without a count too (nothing to give back)
        if not taken:
            raise refusal(self._limit)
        self._held[stream_id] = identity
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    def release(self, identity: str, stream_id: str) -> None:
        if self._held.pop(stream_id, None) is None:
            return
        task = asyncio.get_running_loop().create_task(self._remove(identity, stream_id))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _remove(self, identity: str, stream_id: str) -> None:
        try:
            await self._client.zrem(slots_key(identity), stream_id)
        except (RedisError, OSError):  # the lease runs out on its own
            log.warning("limits.release_failed", identity=identity, stream_id=stream_id)

    def _unenforced(self, exc: BaseException) -> None:
        if not self._unenforced_logged:
            log.warning("limits.unenforced", problem=f"{type(exc).__name__}: {exc}")
            self._unenforced_logged = True

    async def held(self, identity: str) -> int:
        try:
            return int(await self._count(keys=[slots_key(identity)], args=[]))
        except (RedisError, OSError) as exc:
            raise Unavailable("cannot count this key's streams: Redis is unreachable") from exc

    async def _renew_forever(self) -> None:
        period = self._lease_ms / 3000
        while self._held:
            await asyncio.sleep(period)
            try:
                await self._renew_all()
            except (RedisError, OSError):  # retried next period; the lease is three periods long
                log.warning("limits.renew_failed", slots=len(self._held))

    async def _renew_all(self) -> None:
        by_identity: dict[str, list[str]] = {}
        for stream_id, identity in self._held.items():
            by_identity.setdefault(identity, []).append(stream_id)
        async with self._client.pipeline(transaction=False) as pipe:
            for identity, ids in by_identity.items():
                args: list[str | int] = [self._lease_ms, *ids]
                await self._renew(keys=[slots_key(identity)], args=args, client=pipe)
            await pipe.execute()

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._releases:
            await asyncio.wait(self._releases, timeout=5)
        await self._client.aclose()
