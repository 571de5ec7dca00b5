"""Readers elsewhere, counted for streams on every shard of a real Redis Cluster
in one burst (app/resume/presence.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.redis_client import client_for
from app.resume.presence import ReaderCounts
from app.resume.redis_codec import StreamKeys
from app.sse import new_stream_id
from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.slow


async def test_a_burst_over_every_shard_gets_each_streams_count(
    redis_cluster: RedisClusterServers,
) -> None:
    redis = client_for(redis_cluster.url, size=8, wait_s=2.0, socket_timeout_s=2.0)
    counts = ReaderCounts(redis, cluster=True)
    try:
        now_ms = int(time.time() * 1000)
        sids = [new_stream_id() for _ in range(30)]  # their hash tags spread over the shards
        for i, sid in enumerate(sids):
            scores = {f"r{j}": now_ms + 60_000 for j in range(i % 4)} | {"gone": now_ms - 1}
            await redis.zadd(StreamKeys.of(sid).readers, scores)
        got = await asyncio.gather(*(counts.count(sid) for sid in sids))
        assert got == [i % 4 for i in range(len(sids))]
    finally:
        await counts.aclose()
        await redis.aclose()
