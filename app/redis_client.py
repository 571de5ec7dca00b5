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

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any, cast
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

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


# The task holds a turn of a GatedCluster: what it runs inside (a pipeline's retries,
# the tasks redis-py starts per node) takes none of its own, so it never waits for itself.
_holding: ContextVar[bool] = ContextVar("sluice_cluster_turn", default=False)


class GatedCluster(RedisCluster):
    """A RedisCluster whose commands and pipelines queue for one of `turns` turns.

    Strategy: redis-py's cluster client refuses a command at once
    (`MaxConnectionsError`) when the node's pool has `max_connections` in use:
    200 readers arriving together on one process got 503s that way. A turn is
    taken before each command or pipeline, and a pipeline uses at most one
    connection per node, so `turns` below the per-node cap means no pool is ever
    full: a burst waits, as with a single Redis's BlockingConnectionPool, for at
    most `wait_s`, then fails as an outage would (a `ConnectionError`). Pub/sub
    takes no turn: it holds connections of its own, within the cap's margin."""

    def __init__(self, *, turns: int, wait_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._turns = asyncio.Semaphore(turns)
        self._wait_s = wait_s

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if _holding.get():
            yield
            return
        try:
            async with asyncio.timeout(self._wait_s):
                await self._turns.acquire()
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None
        token = _holding.set(True)
        try:
            yield
        finally:
            _holding.reset(token)
            self._turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        return _GatedPipeline(self, transaction, shard_hint)  # type: ignore[abstract]


class _GatedPipeline(ClusterPipeline):
    def __init__(self, client: GatedCluster, transaction: Any, shard_hint: Any) -> None:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        super().__init__(client, transaction)
        self._gated = client

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        async with self._gated.turn():
            return await super().execute(raise_on_error, allow_redirections)


PUBSUB_MARGIN = 2  # per node: the follower's wake subscription and the cancel listener


def cluster_client(url: str, *, size: int, socket_timeout_s: float, wait_s: float = 2.0) -> Redis:
    """A RedisCluster client: discovery from the seeds, MOVED/ASK redirects and a new
    slot map after a failover are redis-py's. At most `size` connections per node;
    commands beyond the turns left after pub/sub's margin wait (`GatedCluster`).

    Typed as `Redis`: it answers every command the store sends the same way (each
    of them names keys of one slot); where it differs (flush, pub/sub) the
    callers ask `is_cluster`."""
    parts = urlsplit(url)
    client = GatedCluster(
        turns=max(1, size - PUBSUB_MARGIN),
        wait_s=wait_s,
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
        return cluster_client(url, size=size, socket_timeout_s=socket_timeout_s, wait_s=wait_s)
    return bounded_client(url, size=size, wait_s=wait_s, socket_timeout_s=socket_timeout_s)
