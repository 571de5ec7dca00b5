"""API keys over real HTTP: every /v1 route needs one; operations routes do not."""

from __future__ import annotations

import httpx
import pytest

from tests.security.helpers import KEY_A, bearer, chat, error_type, keyed_server

V1_ROUTES = [
    ("POST", "/v1/streams"),
    ("GET", "/v1/streams/AAAAAAAAAAAAAAAAAAAAAA"),
    ("DELETE", "/v1/streams/AAAAAAAAAAAAAAAAAAAAAA"),
    ("GET", "/v1/stream?model=sim/echo&prompt=hi"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
]

BAD_AUTHORIZATIONS = [
    None,
    "Bearer sk-not-a-key",
    "Bearer",
    f"Basic {KEY_A}",
    KEY_A,
    f"Bearer {KEY_A}x",
    f"Bearer {KEY_A[:-1]}",
]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS)
async def test_every_v1_route_refuses_a_request_without_a_valid_key(
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        for method, path in V1_ROUTES:
            body = chat() if method == "POST" else None
            response = await client.request(method, server.url + path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert error_type(response) == "unauthorized"
            assert KEY_A not in response.text


async def test_a_valid_key_is_accepted_on_every_v1_route() -> None:
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        models = await client.get(f"{server.url}/v1/models", headers=bearer(KEY_A))
        assert models.status_code == 200
        created = await client.post(f"{server.url}/v1/streams", json=chat(), headers=bearer(KEY_A))
        assert created.status_code == 201
        completion = await client.post(
            f"{server.url}/v1/chat/completions", json=chat(), headers=bearer(KEY_A)
        )
        assert completion.status_code == 200
        assert completion.json()["object"] == "chat.completion"
        scheme_any_case = {"Authorization": f"bearer {KEY_A}"}
        oneshot = await client.get(
            f"{server.url}/v1/stream?model=sim/echo&prompt=hi", headers=scheme_any_case
        )
        assert oneshot.status_code == 200
        assert b"event: done" in oneshot.content


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/", "/metrics"])
async def test_operations_routes_stay_open_with_auth_on(path: str) -> None:
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        response = await client.get(server.url + path)
        assert response.status_code == 200


async def test_a_stream_belongs_to_the_key_identity_never_the_key() -> None:
    async with keyed_server() as server, httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{server.url}/v1/streams", json=chat(), headers=bearer(KEY_A))
        source = await server.services.generations.find(response.json()["id"])
        assert source is not None
        assert source.meta.owner.startswith("key_")
        assert KEY_A not in source.meta.owner
        assert KEY_A not in response.text
