"""A buffer of commands over one pooled connection: one reply each, in order, never out of step."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from app.redis_client import bounded_client
from app.resume.redis_packed import execute
from app.resume.resp import Commands
from tests.support.redis_server import RedisServer

KEY = "sluice:{PackedTestPackedTest00}:log"  # of this module only: the Redis server is shared


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = bounded_client(redis_server.url, size=1, wait_s=0.5, socket_timeout_s=2.0)
    await client.delete(KEY)
    yield client
    await client.delete(KEY)
    await client.aclose()


async def test_every_command_gets_its_own_reply_an_error_in_its_place(redis: Redis) -> None:
    commands = Commands(1024)
    commands.xadd(KEY, "0-2", {b"v": b"[]"})
    commands.xadd(KEY, "0-1", {b"v": b"[]"})  # not above the last id: refused
    commands.add("PEXPIRE", KEY, 60_000)
    commands.add("DEL", "sluice:{PackedTestPackedTest00}:none")
    replies = await execute(redis, commands)
    assert replies[0] == b"0-2"
    assert isinstance(replies[1], ResponseError)
    assert "equal or smaller" in str(replies[1])
    assert replies[2:] == [1, 0]
    assert await redis.xlen(KEY) == 1  # on the pool's one connection, still in step


async def test_replies_slower_than_the_socket_timeout_fail_and_free_the_connection(
    own_redis: RedisServer,
) -> None:
    client = bounded_client(own_redis.url, size=1, wait_s=0.5, socket_timeout_s=0.2)
    admin = Redis.from_url(own_redis.url)
    try:
        commands = Commands(1024)
        commands.xadd(KEY, "0-1", {b"v": b"[]"})
        await admin.client_pause(60_000, all=False)  # no reply comes
        with pytest.raises(RedisError, match="Timeout"):
            await execute(client, commands)
        await admin.client_unpause()
        assert await client.ping() is True  # a new socket from the pool's one slot
    finally:
        await admin.aclose()
        await client.aclose()
