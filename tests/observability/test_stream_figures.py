"""Per-stream figures, measured once, as logged (stream.end, response.end) and as
exported on /metrics, against a real hypercorn and the simulated model."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from app.providers.simulated import SimulatedProvider
from app.settings import Settings
from tests.observability.capture import LogLines, number, scrape
from tests.support.client import read_sse
from tests.support.providers import CountingSim, registry_with
from tests.support.server import run_sluice

# A noisy 2-core machine shared with other test runs: pace figures within ±35%.
TOLERANCE = 0.35
LONG = 1_000_000


def near(value: float, expected: float) -> bool:
    return expected * (1 - TOLERANCE) <= value <= expected * (1 + TOLERANCE)


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> LogLines:
    return LogLines(capsys)


async def test_ttft_and_tokens_per_second_follow_the_simulated_pace(logs: LogLines) -> None:
    sim = SimulatedProvider(default_tps=0, default_ttft_ms=0)
    async with run_sluice(Settings(), registry_with(sim)) as server, httpx.AsyncClient() as client:
        before = await scrape(client, server.url)
        url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=30"
        result = await read_sse(client, f"{url}&sim_ttft_ms=300&sim_tps=50")
        after = await scrape(client, server.url)
        sid = result.headers["x-stream-id"]
        end = await logs.one("stream.end", stream_id=sid)

    assert (end["outcome"], end["provider"], end["model"]) == ("done", "sim", "sim/lorem")
    assert near(number(end, "ttft_ms"), 300), end
    assert near(number(end, "upstream_ttft_ms"), 300), end
    assert number(end, "upstream_ttft_ms") <= number(end, "ttft_ms")
    assert near(number(end, "tokens_per_second"), 50), end
    assert end["output_tokens"] == 30
    assert number(end, "duration_s") >= number(end, "ttft_ms") / 1000

    labels = {"provider": "sim", "model": "sim/lorem"}

    def delta(name: str, **extra: str) -> float:
        return after.value(name, **labels, **extra) - before.value(name, **labels, **extra)

    assert delta("sluice_ttft_seconds_count") == 1
    assert near(delta("sluice_ttft_seconds_sum"), 0.300)
    assert near(delta("sluice_upstream_ttft_seconds_sum"), 0.300)
    assert delta("sluice_tokens_per_second_count") == 1
    assert near(delta("sluice_tokens_per_second_sum"), 50)
    assert delta("sluice_streams_total", outcome="done") == 1
    assert delta("sluice_output_tokens_total") == 30
    assert delta("sluice_stream_duration_seconds_count") == 1


async def test_a_resumed_stream_counts_one_reconnection(logs: LogLines) -> None:
    sim = SimulatedProvider(default_tps=50, default_ttft_ms=0)
    async with run_sluice(Settings(), registry_with(sim)) as server, httpx.AsyncClient() as client:
        before = await scrape(client, server.url)
        url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=40"
        first = await read_sse(client, url, stop_after=5)
        sid = first.headers["x-stream-id"]
        last_id = first.events[-1].id or ""
        rest = await read_sse(client, url, headers={"Last-Event-ID": last_id})
        assert rest.terminal is not None
        assert rest.terminal.event == "done"
        end = await logs.one("stream.end", stream_id=sid)
        generation = server.services.generations.local(sid)
        assert generation is not None
        after = await scrape(client, server.url)
        gone = await logs.one("response.end", stream_id=sid, outcome="client_gone")
        delivered = await logs.one("response.end", stream_id=sid, outcome="delivered")

    assert end["reconnections"] == 1
    assert generation.stats.reconnections == 1
    assert (
        after.value("sluice_reconnections_total") - before.value("sluice_reconnections_total") == 1
    )
    assert number(gone, "last_seq") >= 5
    assert delivered["last_seq"] == 41  # 40 tokens and the terminal event


async def open_raw(url: str, path: str, rcvbuf: int = 4096) -> tuple[socket.socket, str]:
    """A raw client with a small receive buffer that reads nothing after the head."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = (await loop.sock_recv(sock, 1024)).decode("latin-1")
    assert head.startswith("HTTP/1.1 200"), head
    stream_id = next(
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("x-stream-id:")
    )
    return sock, stream_id


async def pulled_settles(sim: CountingSim, quiet_s: float = 0.5, limit_s: float = 30) -> int:
    """The producer has stopped pulling: the server is blocked in `send` (bounded poll)."""
    last, since = -1, time.monotonic()
    deadline = since + limit_s
    while time.monotonic() < deadline:
        if sim.pulled != last:
            last, since = sim.pulled, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"the producer kept pulling: {last}")


async def test_a_slow_reader_shows_time_blocked_in_send(logs: LogLines) -> None:
    sim = CountingSim(tps=0)
    settings = Settings(max_tokens_cap=LONG, detach_grace_s=0)
    async with run_sluice(settings, registry_with(sim)) as server, httpx.AsyncClient() as client:
        before = await scrape(client, server.url)
        path = f"/v1/stream?model=sim/lorem&prompt=x&max_tokens={LONG}&sim_tps=0"
        sock, sid = await open_raw(server.url, path)
        try:
            await pulled_settles(sim)
        finally:
            sock.close()
        response = await logs.one("response.end", stream_id=sid)
        end = await logs.one("stream.end", stream_id=sid)
        after = await scrape(client, server.url)

    assert response["outcome"] == "client_gone"
    # Blocked for at least the quiet half-second the producer was seen stalled.
    assert number(response, "send_blocked_ms") >= 400, response
    assert number(response, "bytes_sent") > 100_000
    assert end["outcome"] == "abandoned"
    model = {"model": "sim/lorem"}
    blocked = after.value("sluice_send_blocked_seconds_sum", **model) - before.value(
        "sluice_send_blocked_seconds_sum", **model
    )
    assert blocked >= 0.4
    gone = {"model": "sim/lorem", "outcome": "client_gone"}
    assert (
        after.value("sluice_responses_total", **gone)
        - before.value("sluice_responses_total", **gone)
        == 1
    )
