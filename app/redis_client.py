"""The one way this process makes a redis-py client: a bounded pool, bounded waits.

Strategy: redis-py's default pool is no bound at all. Depending on the
version it either opens a new connection for every concurrent command
(1,000 stream creations at once: a thousand sockets, each a connect to
Redis) or refuses the command beyond its cap at once with
`MaxConnectionsError` (redis-py 8 caps it at 100; a paced run of 1,000
streams got some creations answered 503 that way). A
`BlockingConnectionPool` makes a burst queue for one of `size` connections
instead, for at most `wait_s`. A wait that runs out raises redis-py's
`ConnectionError("No connection available.")`, a `RedisError` like any
outage, so the callers' `except RedisError` still turns it into
`Unavailable` and nothing above sees a new kind of failure.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

CONNECT_TIMEOUT_S = 1.0


def bounded_client(url: str, *, size: int, wait_s: float, socket_timeout_s: float) -> Redis:
    """A client owning a pool of at most `size` connections; `aclose()` closes it."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=size,
        timeout=wait_s,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 1),  # one retry: a pooled connection Redis dropped
    )
    return Redis.from_pool(pool)
