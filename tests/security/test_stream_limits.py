"""Concurrent streams per key: 429 + Retry-After beyond the limit, and every exit
gives its slot back exactly once (the count returns to zero)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.errors import RateLimited, Unavailable
from app.redis_client import bounded_client
from app.security.keys import key_identity
from app.security.limits import MemorySlots, StreamSlots
from app.security.redis_slots import RedisSlots
from app.settings import Settings, load_settings
from tests.security.helpers import KEY_A, KEY_B, bearer, chat, create_stream, keyed_server
from tests.support.client import read_sse
from tests.support.redis_server import RedisServer
from tests.support.server import RunningServer, run_sluice

A = key_identity(KEY_A)
STALL = {"stall_after": 1}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def ended(server: RunningServer, stream_id: str) -> None:
    generation = server.services.generations.local(stream_id)
    assert generation is not None
    async with asyncio.timeout(10):
        await generation.wait_ended()


async def until_free(slots: StreamSlots, identity: str) -> None:
    """Redis state has no event to await: poll it, bounded (5 s)."""
    for _ in range(100):
        if await slots.held(identity) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{identity} still holds {await slots.held(identity)} slots")


async def test_streams_beyond_the_limit_get_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    async with keyed_server(max_streams_per_key=2) as server:
        for _ in range(2):
            await create_stream(client, server, KEY_A, sim=STALL)
        refused = await client.post(
            f"{server.url}/v1/streams", json=chat(sim=STALL), headers=bearer(KEY_A)
        )
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "rate_limited"
        assert "SLUICE_MAX_STREAMS_PER_KEY" in refused.json()["error"]["message"]
        for path in ("/v1/stream?model=sim/echo&prompt=x", "/v1/chat/completions"):
            method = "GET" if path.startswith("/v1/stream?") else "POST"
            body = chat(stream=True) if method == "POST" else None
            other = await client.request(
                method, server.url + path, json=body, headers=bearer(KEY_A)
            )
            assert other.status_code == 429
        assert await server.services.slots.held(A) == 2
        assert len(server.services.generations.running()) == 2  # the refusal created nothing
        await create_stream(client, server, KEY_B, sim=STALL)  # per key: B is unaffected


def _limit_of_one(**overrides: object) -> contextlib.AbstractAsyncContextManager[RunningServer]:
    return keyed_server(max_streams_per_key=1, idle_timeout_s=0.5, **overrides)


async def _assert_slot_free(server: RunningServer, client: httpx.AsyncClient) -> None:
    assert await server.services.slots.held(A) == 0
    await create_stream(client, server, KEY_A)  # and it can be taken again


async def test_done_gives_the_slot_back(client: httpx.AsyncClient) -> None:
    async with _limit_of_one() as server:
        created = await create_stream(client, server, KEY_A)
        result = await read_sse(client, server.url + created["url"])
        assert result.terminal is not None
        assert result.terminal.event == "done"
        await ended(server, created["id"])
        await _assert_slot_free(server, client)


async def test_an_upstream_error_gives_the_slot_back(client: httpx.AsyncClient) -> None:
    async with _limit_of_one() as server:
        created = await create_stream(client, server, KEY_A, sim={"fail_after": 2})
        result = await read_sse(client, server.url + created["url"])
        assert result.terminal is not None
        assert '"upstream_error"' in result.terminal.data
        await _assert_slot_free(server, client)


async def test_a_timeout_gives_the_slot_back(client: httpx.AsyncClient) -> None:
    async with _limit_of_one() as server:
        created = await create_stream(client, server, KEY_A, sim=STALL)
        result = await read_sse(client, server.url + created["url"])
        assert result.terminal is not None
        assert '"upstream_timeout"' in result.terminal.data
        await _assert_slot_free(server, client)


async def test_a_cancel_gives_the_slot_back(client: httpx.AsyncClient) -> None:
    async with _limit_of_one() as server:
        created = await create_stream(client, server, KEY_A, sim=STALL)
        deleted = await client.delete(
            f"{server.url}/v1/streams/{created['id']}", headers=bearer(KEY_A)
        )
        assert deleted.status_code == 204
        await _assert_slot_free(server, client)


async def test_an_abandoned_stream_gives_the_slot_back(client: httpx.AsyncClient) -> None:
    async with _limit_of_one(detach_grace_s=0.2, attach_timeout_s=0.2) as server:
        slow = {"tps": 2}  # still producing when the attach timeout ends it
        created = await create_stream(client, server, KEY_A, model="sim/lorem", sim=slow)
        await ended(server, created["id"])
        generation = server.services.generations.local(created["id"])
        assert generation is not None
        assert generation.stats.outcome == "abandoned"
        await _assert_slot_free(server, client)


async def test_a_client_disconnect_gives_the_slot_back(client: httpx.AsyncClient) -> None:
    async with keyed_server(max_streams_per_key=1, detach_grace_s=0) as server:
        url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=500&sim_tps=50"
        result = await read_sse(client, url, headers=bearer(KEY_A), stop_after=1)
        stream_id = result.headers["x-stream-id"]
        await ended(server, stream_id)
        await _assert_slot_free(server, client)


async def test_shutdown_gives_every_slot_back(client: httpx.AsyncClient) -> None:
    async with keyed_server(max_streams_per_key=3) as server:
        for _ in range(3):
            await create_stream(client, server, KEY_A, sim=STALL)
        assert await server.services.slots.held(A) == 3
    assert await server.services.slots.held(A) == 0


async def test_without_keys_every_request_shares_the_anonymous_limit(
    client: httpx.AsyncClient,
) -> None:
    async with run_sluice(Settings(max_streams_per_key=1, sim_tps=0)) as server:
        body = chat(sim=STALL)
        assert (await client.post(f"{server.url}/v1/streams", json=body)).status_code == 201
        refused = await client.post(f"{server.url}/v1/streams", json=body)
        assert refused.status_code == 429
        assert await server.services.slots.held("") == 1


async def test_a_slot_given_back_twice_frees_nothing_else() -> None:
    slots = MemorySlots(limit=2)
    await slots.acquire("k", "s1")
    await slots.acquire("k", "s2")
    slots.release("k", "s1")
    slots.release("k", "s1")
    assert await slots.held("k") == 1
    await slots.acquire("k", "s3")
    with pytest.raises(RateLimited):
        await slots.acquire("k", "s4")


async def test_redis_slots_are_counted_across_processes(redis_server: RedisServer) -> None:
    first = RedisSlots.from_url(redis_server.url, limit=2)
    second = RedisSlots.from_url(redis_server.url, limit=2)
    try:
        await first.acquire("key_shared0001", "s1")
        await second.acquire("key_shared0001", "s2")
        with pytest.raises(RateLimited):
            await second.acquire("key_shared0001", "s3")
        assert await first.held("key_shared0001") == 2
        first.release("key_shared0001", "s1")
        first.release("key_shared0001", "s1")  # exactly once, however often it is called
        await first.aclose()  # flushes the release
        await second.acquire("key_shared0001", "s3")
        assert await second.held("key_shared0001") == 2
        second.release("key_shared0001", "s2")
        second.release("key_shared0001", "s3")
    finally:
        await second.aclose()


async def test_a_burst_of_redis_slot_acquisitions_larger_than_the_pool_all_succeed(
    redis_server: RedisServer,
) -> None:
    slots = RedisSlots.from_url(redis_server.url, limit=1000)
    try:
        ids = [f"s{i}" for i in range(500)]  # redis-py's default pool refused the 101st
        await asyncio.gather(*(slots.acquire("key_burst00001", sid) for sid in ids))
        assert await slots.held("key_burst00001") == 500
        for sid in ids:
            slots.release("key_burst00001", sid)
    finally:
        await slots.aclose()


async def test_a_redis_slot_that_waits_too_long_for_a_connection_is_unavailable(
    redis_server: RedisServer,
) -> None:
    client = bounded_client(redis_server.url, size=1, wait_s=0.05, socket_timeout_s=1.0)
    slots = RedisSlots(client, limit=10)
    held = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(Unavailable, match="Redis"):
            await slots.acquire("key_waiting001", "s1")
    finally:
        await client.connection_pool.release(held)
        await slots.aclose()


async def test_redis_slots_of_a_dead_process_expire_with_their_lease(
    redis_server: RedisServer,
) -> None:
    dead = RedisSlots.from_url(redis_server.url, limit=1, lease_s=0.3)
    alive = RedisSlots.from_url(redis_server.url, limit=1, lease_s=0.3)
    try:
        await dead.acquire("key_dead000001", "s1")
        dead._held.clear()  # the process dies: no release, no more renewals
        await dead.aclose()
        with pytest.raises(RateLimited):
            await alive.acquire("key_dead000001", "s2")
        await until_free(alive, "key_dead000001")
        await alive.acquire("key_dead000001", "s2")
        assert await alive.held("key_dead000001") == 1
        alive.release("key_dead000001", "s2")
    finally:
        await alive.aclose()


async def test_redis_slots_are_renewed_while_their_streams_run(
    redis_server: RedisServer,
) -> None:
    slots = RedisSlots.from_url(redis_server.url, limit=1, lease_s=0.3)
    other = RedisSlots.from_url(redis_server.url, limit=1, lease_s=0.3)
    try:
        await slots.acquire("key_renewed001", "s1")
        for _ in range(10):  # ten leases' worth of renewals (3 s at most)
            await asyncio.sleep(0.1)
            assert await other.held("key_renewed001") == 1
        slots.release("key_renewed001", "s1")
    finally:
        await slots.aclose()
        await other.aclose()


async def test_one_key_limit_holds_across_two_servers_sharing_redis(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    shared = {"max_streams_per_key": 1, "redis_url": redis_server.url, "lease_ttl_s": 1.0}
    async with keyed_server(**shared) as one, keyed_server(**shared) as two:
        created = await create_stream(client, one, KEY_A, sim=STALL)
        refused = await client.post(
            f"{two.url}/v1/streams", json=chat(sim=STALL), headers=bearer(KEY_A)
        )
        assert refused.status_code == 429
        await client.delete(f"{one.url}/v1/streams/{created['id']}", headers=bearer(KEY_A))
        await until_free(two.services.slots, A)  # the release reaches Redis after the end
        await create_stream(client, two, KEY_A, sim=STALL)


async def test_an_open_server_is_not_capped_unless_the_limit_is_set(
    client: httpx.AsyncClient,
) -> None:
    settings = load_settings({"SLUICE_SIM_TPS": "0"})
    assert not settings.limit_anonymous
    async with run_sluice(replace(settings, max_streams_per_key=1)) as server:
        body = chat(sim=STALL)
        for _ in range(3):
            assert (await client.post(f"{server.url}/v1/streams", json=body)).status_code == 201
    assert load_settings({"SLUICE_MAX_STREAMS_PER_KEY": "5"}).limit_anonymous
