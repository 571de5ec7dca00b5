"""Through Sluice under hypercorn to a fake upstream and back, for every provider:
a client that goes away (grace 0) and a stalled upstream (idle timeout) must
both close the upstream connection."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from app.providers.registry import ProviderRegistry
from app.settings import CompatServer, Settings
from tests.providers.kinds import KIND_IDS, KINDS, Kind
from tests.providers.test_conformance import _stalled
from tests.support.client import read_sse
from tests.support.fake_upstreams import FakeUpstream
from tests.support.server import run_sluice


def wiring(kind: Kind, base_url: str) -> tuple[Settings, dict[str, str], str]:
    """Settings, environment and public model name that route to the fake upstream."""
    env = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": f"{base_url}/v1",
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "ANTHROPIC_BASE_URL": base_url,
        "OLLAMA_HOST": base_url,
    }
    servers = (CompatServer("vllm", f"{base_url}/v1"),)
    provider = "vllm" if kind.name == "compat" else kind.name
    return Settings(compat_servers=servers), env, f"{provider}/{kind.model}"


async def run_one(
    kind: Kind, settings_change: dict[str, float], stop_after: int | None
) -> list[tuple[str, str]]:
    """Stream one generation through Sluice; returns its SSE events (name, data)."""
    async with FakeUpstream(_stalled(kind)) as upstream:
        settings, env, model = wiring(kind, upstream.base_url)
        settings = replace(settings, **settings_change)  # type: ignore[arg-type]
        async with (
            run_sluice(settings, lambda: ProviderRegistry.from_settings(settings, env)) as server,
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        ):
            params = f"model={model}&prompt=hello"
            response = await read_sse(client, f"/v1/stream?{params}", stop_after=stop_after)
            await upstream.wait_all_closed()
    assert [c.closed_by_client for c in upstream.connections] == [True]
    assert response.status == 200
    return [(e.event or "message", e.data) for e in response.events]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_client_gone_closes_the_upstream_connection(kind: Kind) -> None:
    events = await run_one(kind, {"detach_grace_s": 0.0}, stop_after=1)
    assert [name for name, _ in events] == ["token"]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_stalled_upstream_times_out_and_closes_the_connection(kind: Kind) -> None:
    events = await run_one(kind, {"idle_timeout_s": 0.3}, stop_after=None)
    assert [name for name, _ in events][-2:] == ["token", "error"]
    assert json.loads(events[-1][1])["error"]["type"] == "upstream_timeout"
