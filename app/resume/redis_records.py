"""Response records in Redis (`sluice:{<sid>}:response`, in the stream's hash
slot). Its own module so that a process without Redis never imports redis-py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.errors import Unavailable
from app.redis_client import client_for
from app.resume.responses import RUNNING_TTL_S, ResponseRecord


def _key(stream_id: str) -> str:
    return f"sluice:{{{stream_id}}}:response"


class RedisRecords:
    """Records in Redis; a Redis failure is `Unavailable` (503), never a silent miss."""

    def __init__(self, url: str, ttl_s: float) -> None:
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._redis: Redis = client_for(url, size=16, wait_s=2.0, socket_timeout_s=2.0)

    async def put(self, record: ResponseRecord) -> None:
        key = _key(record.head.stream_id)
        with _translated():
            await self._redis.set(key, record.to_json(), px=int(RUNNING_TTL_S * 1000))

    async def get(self, stream_id: str) -> ResponseRecord | None:
        with _translated():
            raw = await self._redis.get(_key(stream_id))
        return (
            None
            if raw is None
            else ResponseRecord.from_json(raw if isinstance(raw, bytes) else raw.encode())
        )

    async def ended(self, stream_id: str) -> None:
        with _translated():
            await self._redis.pexpire(_key(stream_id), self._ttl_ms)

    async def delete(self, stream_id: str) -> bool:
        with _translated():
            deleted: int = await self._redis.delete(_key(stream_id))
        return deleted > 0

    async def aclose(self) -> None:
        await self._redis.aclose()


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise Unavailable(f"the response store is unreachable: {type(exc).__name__}") from exc
