"""The per-key stream limit on a Redis Cluster holds across two Sluice OS
processes: the slots of one key live in its own slot, counted by both."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.support.processes import sluice_process
from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.slow
KEY = "cluster-limit-key-0001"


async def test_the_per_key_limit_answers_429_across_two_processes(
    redis_cluster: RedisClusterServers,
) -> None:
    env = {
        "SLUICE_SECRET": "cluster-limits-secret",
        "SLUICE_REDIS_URL": redis_cluster.url,
        "SLUICE_API_KEYS": KEY,
        "SLUICE_MAX_STREAMS_PER_KEY": "2",
        "SLUICE_SIM_TPS": "0",
    }
    body = {
        "model": "sim/lorem",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 400,
        "sim": {"tps": 20},  # still running while the others are created
    }
    headers = {"Authorization": f"Bearer {KEY}"}
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=20) as client:
        a, b = await asyncio.gather(
            stack.enter_async_context(sluice_process(env)),
            stack.enter_async_context(sluice_process(env)),
        )
        first = await client.post(f"{a.url}/v1/streams", json=body, headers=headers)
        second = await client.post(f"{b.url}/v1/streams", json=body, headers=headers)
        third = await client.post(f"{a.url}/v1/streams", json=body, headers=headers)
        fourth = await client.post(f"{b.url}/v1/streams", json=body, headers=headers)
    assert [r.status_code for r in (first, second, third, fourth)] == [201, 201, 429, 429]
    assert third.json()["error"]["code"] == "too_many_streams"
