"""Shared by the security tests: two keys, a keyed server, request helpers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from app.settings import Settings
from tests.support.server import RunningServer, run_sluice

KEY_A = "sk-test-alpha-0123456789abcdef"
KEY_B = "sk-test-bravo-fedcba9876543210"
SECRET = b"a test secret shared by every process of the deployment"
PROMPT = "the quick brown fox jumps over the lazy dog"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keyed(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "api_keys": (KEY_A, KEY_B),
        "secret": SECRET,
        "secret_is_random": False,
        "sim_tps": 0,
        "heartbeat_s": 0.2,
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


def chat(model: str = "sim/echo", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}


@contextlib.asynccontextmanager
async def keyed_server(**overrides: object) -> AsyncIterator[RunningServer]:
    async with run_sluice(keyed(**overrides)) as server:
        yield server


async def create_stream(
    client: httpx.AsyncClient,
    server: RunningServer,
    key: str,
    model: str = "sim/echo",
    **body: object,
) -> dict[str, str]:
    payload = chat(model, **body)
    response = await client.post(f"{server.url}/v1/streams", json=payload, headers=bearer(key))
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


def error_type(response: httpx.Response) -> str:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return str(body["error"]["type"])
