"""Signed stream URLs: what EventSource opens without an Authorization header."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx

from app.security.auth import Auth
from tests.security.helpers import KEY_A, create_stream, error_type, keyed_server
from tests.support.client import read_sse, transcript
from tests.support.server import RunningServer


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def test_the_signed_url_opens_its_stream_without_a_key() -> None:
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        created = await create_stream(client, server, KEY_A)
        assert created["url"].startswith(f"/v1/streams/{created['id']}?token=")
        result = await read_sse(client, server.url + created["url"])
        assert result.status == 200
        assert result.terminal is not None
        assert result.terminal.event == "done"
        assert transcript(result.events) == "the quick brown fox jumps over the lazy dog"


async def test_the_signed_url_resumes_with_last_event_id_like_an_eventsource() -> None:
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        created = await create_stream(client, server, KEY_A)
        url = server.url + created["url"]
        first = await read_sse(client, url, stop_after=3)
        rest = await read_sse(client, url, headers={"Last-Event-ID": first.events[2].id or ""})
        assert rest.status == 200
        assert rest.events[0].id == f"{created['id']}:4"
        assert transcript(first.events[:3] + rest.events) == (
            "the quick brown fox jumps over the lazy dog"
        )


async def test_a_token_for_stream_x_does_not_open_stream_y() -> None:
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        x = await create_stream(client, server, KEY_A)
        y = await create_stream(client, server, KEY_A)
        response = await client.get(f"{server.url}/v1/streams/{y['id']}?token={token_of(x['url'])}")
        assert response.status_code == 401
        assert error_type(response) == "unauthorized"
        assert response.json()["error"]["param"] == "token"


async def test_an_expired_token_gets_401() -> None:
    async with keyed_server(token_ttl_s=60) as server, httpx.AsyncClient(timeout=10) as client:
        created = await create_stream(client, server, KEY_A)
        later = Auth(server.services.settings, clock=lambda: time.time() + 61)
        server.services.auth = later  # the same secret, one minute and a second later
        response = await client.get(server.url + created["url"])
        assert response.status_code == 401
        assert "expired" in response.json()["error"]["message"]


async def test_truncated_and_altered_tokens_get_401() -> None:
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        created = await create_stream(client, server, KEY_A)
        token = token_of(created["url"])
        flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
        expiry, owner, mac = token.split(".")
        later = f"{int(expiry) + 3600}.{owner}.{mac}"
        for bad in (token[:-4], token[: len(token) // 2], flipped, later, "", "x.y.z"):
            path = f"/v1/streams/{created['id']}"
            response = await client.get(server.url + path, params={"token": bad})
            assert response.status_code == 401, bad
            assert error_type(response) == "unauthorized"


async def test_a_token_opens_only_the_stream_get_not_delete_nor_other_routes() -> None:
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        created = await create_stream(client, server, KEY_A, sim={"stall_after": 1})
        token = token_of(created["url"])
        delete = await client.delete(f"{server.url}/v1/streams/{created['id']}?token={token}")
        assert delete.status_code == 401
        models = await client.get(f"{server.url}/v1/models?token={token}")
        assert models.status_code == 401
        await _still_running(server, created["id"])


async def _still_running(server: RunningServer, stream_id: str) -> None:
    generation = server.services.generations.local(stream_id)
    assert generation is not None
    assert generation.log.ended is False
