"""A stream belongs to the key that created it: every other key gets 404, never 403,
through every endpoint that can name a stream, on every event-log backend.

`memory`: one process. `redis`: the log mirrored to a real redis-server.
`redis-elsewhere`: the stream runs on one server and every request lands on a
second one sharing that Redis, so the owner can only come from the log itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.security.helpers import KEY_A, KEY_B, bearer, chat, create_stream, keyed_server
from tests.support.client import read_sse
from tests.support.redis_server import RedisServer
from tests.support.server import RunningServer


@dataclass
class Scene:
    server: RunningServer  # runs the stream
    elsewhere: RunningServer  # receives every request (the same server, or not)
    client: httpx.AsyncClient
    stream_id: str  # created by key A, running (it stalls after one token)

    @property
    def url(self) -> str:
        return self.elsewhere.url

    @property
    def first_event(self) -> str:
        return f"{self.stream_id}:1"


@pytest.fixture(params=["memory", "redis", "redis-elsewhere"])
async def scene(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[Scene]:
    backend: str = request.param
    overrides: dict[str, object] = {"lease_ttl_s": 1.0}
    if backend != "memory":
        overrides["redis_url"] = redis_server.url
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        server = await stack.enter_async_context(keyed_server(**overrides))
        elsewhere = server
        if backend == "redis-elsewhere":
            elsewhere = await stack.enter_async_context(keyed_server(**overrides))
        created = await create_stream(client, server, KEY_A, sim={"stall_after": 1})
        yield Scene(server, elsewhere, client, created["id"])


def _requests(scene: Scene) -> dict[str, tuple[str, str, dict[str, str], object]]:
    """Every way to name a stream: (method, url, extra headers, JSON body)."""
    sid, first = scene.stream_id, scene.first_event
    streamed = chat(stream=True)
    return {
        "get": ("GET", f"/v1/streams/{sid}", {}, None),
        "resume by header": ("GET", f"/v1/streams/{sid}", {"Last-Event-ID": first}, None),
        "resume by query": ("GET", f"/v1/streams/{sid}?last_event_id={first}", {}, None),
        "one-shot resume by header": (
            "GET",
            "/v1/stream?model=sim/echo&prompt=x",
            {"Last-Event-ID": first},
            None,
        ),
        "one-shot resume by query": (
            "GET",
            f"/v1/stream?model=sim/echo&prompt=x&last_event_id={first}",
            {},
            None,
        ),
        "chat resume by header": (
            "POST",
            "/v1/chat/completions",
            {"Last-Event-ID": first},
            streamed,
        ),
        "chat resume by query": (
            "POST",
            f"/v1/chat/completions?last_event_id={first}",
            {},
            streamed,
        ),
        "delete": ("DELETE", f"/v1/streams/{sid}", {}, None),
    }


WAYS = list(_requests(Scene(None, None, None, "S" * 22)))  # type: ignore[arg-type]


async def _send(scene: Scene, way: str, key: str) -> httpx.Response:
    method, path, headers, body = _requests(scene)[way]
    request = scene.client.build_request(
        method, scene.url + path, headers={**headers, **bearer(key)}, json=body
    )
    response = await scene.client.send(request, stream=True)
    await response.aclose()  # the status is all that counts; a 200 would stream on
    return response


@pytest.mark.parametrize("way", WAYS)
async def test_another_key_gets_404_for_the_stream(scene: Scene, way: str) -> None:
    response = await _send(scene, way, KEY_B)
    assert response.status_code == 404
    generation = scene.server.services.generations.local(scene.stream_id)
    assert generation is not None
    assert generation.log.ended is False  # nothing happened to A's stream


@pytest.mark.parametrize("way", WAYS)
async def test_the_owner_reaches_the_stream(scene: Scene, way: str) -> None:
    response = await _send(scene, way, KEY_A)
    assert response.status_code == (204 if way == "delete" else 200)


async def test_the_404_for_another_keys_stream_is_the_404_for_no_stream(scene: Scene) -> None:
    unknown = "Z" * 22
    theirs = await scene.client.get(
        f"{scene.url}/v1/streams/{scene.stream_id}", headers=bearer(KEY_B)
    )
    nobodys = await scene.client.get(f"{scene.url}/v1/streams/{unknown}", headers=bearer(KEY_B))
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.json()["error"]["type"] == nobodys.json()["error"]["type"] == "not_found"
    assert (
        theirs.json()["error"]["message"].replace(scene.stream_id, unknown)
        == (nobodys.json()["error"]["message"])
    )


async def test_another_keys_delete_leaves_the_stream_to_its_owner(scene: Scene) -> None:
    response = await scene.client.delete(
        f"{scene.url}/v1/streams/{scene.stream_id}", headers=bearer(KEY_B)
    )
    assert response.status_code == 404
    result = await read_sse(
        scene.client,
        f"{scene.url}/v1/streams/{scene.stream_id}",
        headers=bearer(KEY_A),
        stop_after=1,
    )
    assert [e.event for e in result.events] == ["token"]
