"""CORS: no origin by default; configured origins get preflights and readable responses."""

from __future__ import annotations

import httpx

from tests.security.helpers import KEY_A, bearer, create_stream, keyed_server

SITE = "https://chat.example"


def preflight(method: str, headers: str) -> dict[str, str]:
    return {
        "Origin": SITE,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_no_origin_is_allowed_by_default() -> None:
    async with keyed_server() as server, httpx.AsyncClient() as client:
        response = await client.options(
            f"{server.url}/v1/streams", headers=preflight("POST", "authorization")
        )
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers
        models = await client.get(
            f"{server.url}/v1/models", headers={"Origin": SITE, **bearer(KEY_A)}
        )
        assert models.status_code == 200
        assert "access-control-allow-origin" not in models.headers


async def test_a_configured_origin_gets_its_preflight_answered() -> None:
    async with keyed_server(cors_origins=(SITE,)) as server, httpx.AsyncClient() as client:
        response = await client.options(
            f"{server.url}/v1/streams/abc", headers=preflight("GET", "last-event-id,authorization")
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == SITE
        allowed = response.headers["access-control-allow-headers"].lower()
        assert "last-event-id" in allowed
        assert "authorization" in allowed
        assert "DELETE" in response.headers["access-control-allow-methods"]


async def test_a_browser_may_send_anthropics_headers_to_the_messages_door() -> None:
    async with keyed_server(cors_origins=(SITE,)) as server, httpx.AsyncClient() as client:
        response = await client.options(
            f"{server.url}/v1/messages",
            headers=preflight("POST", "x-api-key,anthropic-version,anthropic-beta"),
        )
        allowed = response.headers["access-control-allow-headers"].lower()
    assert response.status_code == 204
    assert {"x-api-key", "anthropic-version", "anthropic-beta"} <= {
        name.strip() for name in allowed.split(",")
    }


async def test_a_configured_origin_can_read_the_stream_id_and_errors() -> None:
    async with keyed_server(cors_origins=(SITE,)) as server, httpx.AsyncClient() as client:
        created = await create_stream(client, server, KEY_A)
        stream = await client.get(server.url + created["url"], headers={"Origin": SITE})
        assert stream.status_code == 200
        assert stream.headers["access-control-allow-origin"] == SITE
        assert "X-Stream-Id" in stream.headers["access-control-expose-headers"]
        refused = await client.get(f"{server.url}/v1/models", headers={"Origin": SITE})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == SITE


async def test_another_origin_gets_no_cors_headers() -> None:
    async with keyed_server(cors_origins=(SITE,)) as server, httpx.AsyncClient() as client:
        other = {"Origin": "https://evil.example"}
        response = await client.get(f"{server.url}/v1/models", headers={**other, **bearer(KEY_A)})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
        pre = await client.options(
            f"{server.url}/v1/streams",
            headers={**preflight("POST", "authorization"), **other},
        )
        assert pre.status_code == 400
        assert "access-control-allow-origin" not in pre.headers
