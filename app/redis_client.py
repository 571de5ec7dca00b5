"""The one way this process makes a redis-py client: a bounded pool, bounded waits,
and a close that is final.

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

Strategy (closing): redis-py's pool close disconnects the connections it
holds at that moment and nothing more; the pool stays usable. A command
that comes after it (a detach clean-up, a presence check), a connect still
under way during it, or a blocking read whose socket the close cut and
whose retry then reconnects on the same connection: each opens a socket
that goes back to a pool nobody closes again, and only the garbage
collector finds it (an "unclosed Connection" warning, a socket held until
then). `ClosingPool` makes the close final: after it, getting a connection
is refused (a `ConnectionError`, so callers treat it as an outage), and a
connection that comes back to the pool, or finishes connecting, is closed
on the spot.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

CONNECT_TIMEOUT_S = 1.0
CLOSED = "the Redis client is closed"


class ClosingPool(BlockingConnectionPool):
    """A `BlockingConnectionPool` that opens nothing once closed (see above)."""

    closed = False

    async def get_connection(self, *args: object, **kwargs: object) -> AbstractConnection:
        if self.closed:
            raise RedisConnectionError(CLOSED)
        connection: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
        if self.closed:  # closed while it connected: the close could not see this socket
            await self.release(connection)
            raise RedisConnectionError(CLOSED)
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        await super().release(connection)
        if self.closed:  # e.g. reconnected by a retry after the close cut its socket
            await connection.disconnect(nowait=True)

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()


def bounded_client(url: str, *, size: int, wait_s: float, socket_timeout_s: float) -> Redis:
    """A client owning a pool of at most `size` connections; `aclose()` closes it for good."""
    pool = ClosingPool.from_url(
        url,
        max_connections=size,
        timeout=wait_s,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 1),  # one retry: a pooled connection Redis dropped
    )
    return Redis.from_pool(pool)


# ---- Redis Cluster ------------------------------------------------------------

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def is_cluster(url: str) -> bool:
    """`redis+cluster://host:port,host:port/` (or `rediss+cluster://` for TLS)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def seed_nodes(url: str) -> list[tuple[str, int]]:
    """The host:port pairs of a cluster URL: where discovery starts, not every node."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    nodes: list[tuple[str, int]] = []
    for part in netloc.split(","):
        host, _, port = part.strip().rpartition(":")
        nodes.append((host or part.strip(), int(port) if host else 6379))
    return nodes


def where(url: str) -> str:
    """host:port of the URL (the first seed of a cluster), never its password."""
    host, port = seed_nodes(url)[0]
    return f"{host or 'localhost'}:{port}"


def cluster_client(url: str, *, size: int, socket_timeout_s: float) -> Redis:
    """A RedisCluster client: discovery from the seeds, MOVED/ASK redirects and a new
    slot map after a failover are redis-py's. At most `size` connections per node.

    Typed as `Redis`: it answers every command the store sends the same way (each
    of them names keys of one slot); where it differs (flush, pub/sub) the
    callers ask `is_cluster`."""
    parts = urlsplit(url)
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seed_nodes(url)],
        username=parts.username,
        password=parts.password,
        ssl=parts.scheme == "rediss+cluster",
        max_connections=size,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=socket_timeout_s,
    )
    return cast(Redis, client)


def client_for(url: str, *, size: int, wait_s: float, socket_timeout_s: float) -> Redis:
    """A cluster client for a cluster URL, else a bounded single-Redis client."""
    if is_cluster(url):
        return cluster_client(url, size=size, socket_timeout_s=socket_timeout_s)
    return bounded_client(url, size=size, wait_s=wait_s, socket_timeout_s=socket_timeout_s)
