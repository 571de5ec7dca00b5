"""The cluster client waits for a turn when a burst needs more connections than a
node's pool may hold, where redis-py alone refuses at once (MaxConnectionsError)."""

from __future__ import annotations

import asyncio

import pytest

from app.redis_client import cluster_client
from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.slow


async def test_a_burst_of_commands_and_pipelines_beyond_the_pool_all_succeed(
    redis_cluster: RedisClusterServers,
) -> None:
    client = cluster_client(redis_cluster.url, size=4, socket_timeout_s=2.0)

    async def piped(i: int) -> list[object]:
        pipe = client.pipeline(transaction=False)
        pipe.set(f"burst:{{{i}}}:a", i)
        pipe.get(f"burst:{{{i}}}:a")
        return list(await pipe.execute())

    try:
        singles = await asyncio.gather(*(client.set(f"burst:{i}", i) for i in range(200)))
        pipelines = await asyncio.gather(*(piped(i) for i in range(100)))
    finally:
        await client.aclose()
    assert singles == [True] * 200
    assert pipelines == [[True, str(i).encode()] for i in range(100)]
