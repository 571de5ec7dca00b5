"""One buffer of RESP commands (resp.py) over one pooled redis-py connection.

`execute` is what redis-py's asyncio pipeline does for
`execute(raise_on_error=False)` without a transaction — one write, then
exactly one reply read per command, an error reply kept in its command's
place as a `ResponseError` — minus the Python it spends per command
(resp.py says why that matters). The connection and its timeouts, its
retry, its reply parser (hiredis) and its pool are redis-py's own.

Strategy: the connection goes back to the pool on every exit. A connection
or timeout error — or a cancellation — mid-batch leaves replies unread on
the socket, so redis-py's own `send_packed_command` and `read_response`
close the connection before they raise, and it can never hand a stale
reply to the next command. As the client's pipeline does, the batch is
then sent again as the connection's `Retry` allows (once: a pooled
connection Redis dropped), on a new socket; what still fails is raised to
the caller as a `RedisError`.

Strategy (timeout): the client's socket timeout bounds the reading of all
the batch's replies at once, not each reply as redis-py does: a timeout
per reply is a timer armed and cancelled per command, 4 of the 6 µs a
command cost here. Each reply is read with `timeout=math.inf` (redis-py's
"no timeout of its own") inside one `asyncio.timeout`; when that runs out,
the read it interrupts closes the connection, as a timeout of its own
would, and the caller gets redis-py's `TimeoutError`.
"""

from __future__ import annotations

import asyncio
import math

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.resume.resp import Commands


async def execute(redis: Redis, commands: Commands) -> list[object]:
    """The replies to `commands`, in order: a value, or the `ResponseError` it got."""
    if not commands.count:
        return []  # as redis-py's pipeline: no connection taken for nothing
    pool = redis.connection_pool
    buffer = commands.buffer()
    count = commands.count
    conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]

    async def drop(error: Exception, failures: int) -> None:
        await conn.disconnect(error=error, failure_count=failures)

    try:
        replies: list[object] = await conn.retry.call_with_retry(
            lambda: _exchange(conn, buffer, count), drop, with_failure_count=True
        )
        return replies
    finally:
        # shielded as redis-py's pipeline does: a second cancellation must not
        # leave the pool counting the connection as in use
        await asyncio.shield(pool.release(conn))


async def execute_grouped(redis: Redis, commands: Commands) -> list[object]:
    """`execute` on a Redis Cluster: the client's pipeline groups the commands by
    the shard that owns their keys' slot, writes one buffer per shard, all shards
    at once, and follows MOVED/ASK; one shard's commands (one stream's
    entries) keep their order. The replies come back in the commands' order."""
    if not commands.count:
        return []
    assert commands.args is not None, "Commands(keep_args=True) for a cluster"
    pipe = redis.pipeline(transaction=False)
    for args in commands.args:
        pipe.execute_command(*args)
    replies: list[object] = await pipe.execute(raise_on_error=False)
    return replies


async def _exchange(conn: AbstractConnection, buffer: bytes, count: int) -> list[object]:
    await conn.send_packed_command(buffer, check_health=True)
    replies: list[object] = []
    try:
        async with asyncio.timeout(conn.socket_timeout):  # one bound for the batch
            for _ in range(count):
                try:
                    reply = await conn.read_response(disable_decoding=True, timeout=math.inf)
                except ResponseError as error:  # an error reply: the socket is still in step
                    reply = error
                replies.append(reply)
    except TimeoutError:  # asyncio's, after read_response closed the connection
        raise RedisTimeoutError(f"Timeout reading {count} replies") from None
    return replies
