"""The process's Redis clients close for good: no socket outlives `aclose()`.

redis-py's own pool close is not final: a command issued after it, a
connect still under way during it, or a blocking read whose retry
reconnects after it, each opens a socket that goes back to a pool nobody
closes again, and is only found by the garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from app.redis_client import bounded_client
from tests.support.redis_server import RedisServer


def open_sockets(client: object) -> int:
    pool = client.connection_pool  # type: ignore[attr-defined]
    known = [*pool._available_connections, *pool._in_use_connections]
    return sum(1 for connection in known if connection.is_connected)


async def test_a_closed_client_refuses_commands_without_opening_a_socket(
    redis_server: RedisServer,
) -> None:
    client = bounded_client(redis_server.url, size=4, wait_s=0.5, socket_timeout_s=2.0)
    assert await client.ping() is True
    await client.aclose()
    with pytest.raises(RedisConnectionError, match="closed"):
        await client.ping()
    assert open_sockets(client) == 0
    gc.collect()  # a socket left open would warn here (warnings are errors)


async def test_a_blocking_read_in_flight_when_the_client_closes_leaves_no_socket_open(
    redis_server: RedisServer,
) -> None:
    client = bounded_client(redis_server.url, size=4, wait_s=0.5, socket_timeout_s=3.0)

    async def blocking_read() -> object:
        return await client.xread({"sluice:test:nothing": "0-0"}, block=1500)

    read = asyncio.create_task(blocking_read())
    for _ in range(200):  # bounded: until the read holds a connection
        if open_sockets(client):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the XREAD is on the wire
    await client.aclose()
    with contextlib.suppress(RedisError):  # the read may fail with the close, or be refused
        await read
    assert open_sockets(client) == 0
    gc.collect()
