"""Sluice behind real nginx configured by ops/nginx.conf: nothing buffered,
heartbeats pass, and a reconnect that lands on the other process resumes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from app.core.lifecycle import Phase
from app.providers.simulated import lorem_tokens
from app.settings import Settings
from app.sse import PING
from app.streaming.generation import Generation
from tests.support.client import SSEResponse, read_sse, transcript
from tests.support.nginx import RENDER, RunningNginx, nginx_binary, render_config, run_nginx
from tests.support.redis_server import RedisServer
from tests.support.server import RunningServer, run_sluice
from tests.support.sluice_process import SluiceProcess, sluice_processes
from tests.support.sse_parser import SSEParser

pytestmark = pytest.mark.slow

PACED = {"model": "sim/lorem", "prompt": "hello", "max_tokens": "20", "sim_tps": "5"}


def address(server: RunningServer) -> str:
    return server.url.removeprefix("http://")


@pytest.fixture
async def sluices() -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    settings = Settings(heartbeat_s=0.2)
    async with run_sluice(settings) as a, run_sluice(settings) as b:
        yield a, b


@pytest.fixture
async def proxy_url(sluices: tuple[RunningServer, RunningServer]) -> AsyncIterator[str]:
    async with run_nginx((address(sluices[0]), address(sluices[1]))) as nginx:
        yield nginx.url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


def generation_of(sluices: tuple[RunningServer, ...], stream_id: str) -> Generation:
    found = [s.services.generations.local(stream_id) for s in sluices]
    generations = [g for g in found if g is not None]
    assert len(generations) == 1, "exactly one process runs the stream"
    return generations[0]


async def read_until_token(response: httpx.Response) -> SSEParser:
    parser = SSEParser()
    async for chunk in response.aiter_raw():
        parser.feed(chunk)
        if any(event.event == "token" for event in parser.events):
            break
    return parser


def test_render_refuses_a_placeholder_left_unset() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SLUICE_A", "SLUICE_B")}
    env |= {"NGINX_LISTEN": "8080", "NGINX_RUN_DIR": "/x", "NGINX_LOG_DIR": "/x"}
    result = subprocess.run(
        [sys.executable, str(RENDER)], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "SLUICE_A, SLUICE_B" in result.stderr


def test_rendered_config_passes_nginx_own_check(tmp_path: Path) -> None:
    conf = render_config(tmp_path, "127.0.0.1:1", ("127.0.0.1:2", "127.0.0.1:3"))
    lines = conf.read_text().splitlines()
    directives = [line for line in lines if not line.lstrip().startswith("#")]
    assert [line for line in directives if "${" in line] == []
    assert "        server 127.0.0.1:2 max_fails=1 fail_timeout=5s;" in directives
    check = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-e", f"{tmp_path}/error.log", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr


async def test_first_token_arrives_through_nginx_while_the_generation_still_runs(
    sluices: tuple[RunningServer, RunningServer], proxy_url: str, client: httpx.AsyncClient
) -> None:
    async with client.stream("GET", f"{proxy_url}/v1/stream", params=PACED) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        parser = await read_until_token(response)
        generation = generation_of(sluices, response.headers["x-stream-id"])
        last_seq, ended = await generation.tail()
        assert generation.phase is Phase.RUNNING
        assert ended is False
        assert last_seq < 20
    assert [e.event for e in parser.events] == ["token"]


async def test_heartbeats_pass_through_nginx_before_the_first_token(
    sluices: tuple[RunningServer, RunningServer], proxy_url: str, client: httpx.AsyncClient
) -> None:
    slow_start = {**PACED, "max_tokens": "2", "sim_ttft_ms": "1500"}
    async with client.stream("GET", f"{proxy_url}/v1/stream", params=slow_start) as response:
        raw = b""
        async for chunk in response.aiter_raw():
            raw += chunk
            if b"event: token" in raw:
                break
    before_first_token = raw.split(b"event: token")[0]
    assert before_first_token.startswith(b"retry: ")
    assert before_first_token.count(PING) >= 2


@pytest.fixture
async def redis_sluices(
    redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[list[SluiceProcess]]:
    """Two hypercorn processes sharing one private redis-server."""
    env = {"SLUICE_REDIS_URL": redis_server.url, "SLUICE_SECRET": "nginx-e2e-shared-secret"}
    async with sluice_processes(tmp_path, env, count=2) as processes:
        yield processes


async def logged(nginx: RunningNginx, stream_id: str, responses: int) -> list[str]:
    """The upstream of each response, once nginx has logged them all (it logs at the end)."""
    for _ in range(250):
        served = nginx.upstreams_of(stream_id)
        if len(served) >= responses:
            return served
        await asyncio.sleep(0.02)
    raise AssertionError(f"nginx logged {nginx.upstreams_of(stream_id)} for {responses}")


async def test_resume_through_nginx_on_the_other_process_gives_the_exact_transcript(
    redis_sluices: list[SluiceProcess], client: httpx.AsyncClient
) -> None:
    a, b = redis_sluices
    query = {**PACED, "max_tokens": "30", "sim_tps": "40"}
    async with run_nginx((a.address, b.address)) as nginx:
        url = f"{nginx.url}/v1/stream?{urlencode(query)}"
        responses: list[SSEResponse] = [await read_sse(client, url, stop_after=5)]
        stream_id = responses[0].headers["x-stream-id"]
        while responses[-1].terminal is None and len(responses) < 12:
            resume = {"Last-Event-ID": str(responses[-1].events[-1].id)}
            responses.append(await read_sse(client, url, headers=resume, stop_after=5))
        served = await logged(nginx, stream_id, len(responses))
    events = [event for response in responses for event in response.events]
    assert {r.status for r in responses} == {200}
    assert [e.id for e in events] == [f"{stream_id}:{seq}" for seq in range(1, 32)]
    assert transcript(events) == "".join(lorem_tokens(30))
    assert events[-1].event == "done"
    assert set(served) == {a.address, b.address}


async def test_metrics_through_nginx_answer_loopback_and_refuse_other_addresses(
    proxy_url: str, client: httpx.AsyncClient
) -> None:
    allowed = await client.get(f"{proxy_url}/metrics")
    # 127.0.0.2 is loopback too, but not on the allow list: nginx sees it as any other client.
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(transport=transport, timeout=30) as outsider:
        refused = await outsider.get(f"{proxy_url}/metrics")
        elsewhere = await outsider.get(f"{proxy_url}/healthz")
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain")
    assert refused.status_code == 403
    assert elsewhere.status_code == 200
