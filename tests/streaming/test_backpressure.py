"""Backpressure and disconnects, end to end through hypercorn's socket."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx

from app.core.lifecycle import CREDIT_WINDOW
from app.settings import Settings
from tests.support.client import read_sse, transcript
from tests.support.providers import CountingSim, registry_with
from tests.support.server import run_sluice

LONG = 1_000_000  # tokens (~55 MB of events): far more than any socket buffer holds


async def open_raw(url: str, path: str, rcvbuf: int = 4096) -> socket.socket:
    """A blocking-free raw client socket with a small receive buffer, request sent."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await loop.sock_recv(sock, 1024)
    assert head.startswith(b"HTTP/1.1 200")
    return sock


async def settled(read: object, attr: str, quiet_s: float = 0.5, limit_s: float = 20) -> int:
    """Poll a counter until it stops changing for `quiet_s` (bounded by `limit_s`)."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = int(getattr(read, attr))
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{attr} kept changing: {last}")


async def test_a_reader_that_stops_reading_stops_the_upstream() -> None:
    sim = CountingSim(tps=0)
    settings = Settings(max_tokens_cap=LONG, detach_grace_s=0)
    async with run_sluice(settings, registry_with(sim)) as server:
        sock = await open_raw(
            server.url, f"/v1/stream?model=sim/lorem&prompt=x&max_tokens={LONG}&sim_tps=0"
        )
        try:
            pulled = await settled(sim, "pulled")
            # Bounded by socket buffers (a few hundred KB of ~60-byte events),
            # not by the response length.
            assert pulled < LONG // 10
            (generation,) = server.services.generations.running()
            assert len(generation.log.events) == pulled
        finally:
            sock.close()
        await asyncio.wait_for(sim.closed.wait(), 5)
        # The send that was blocked returns when the peer goes, which is one more
        # credit window before http.disconnect arrives; never more than that.
        assert pulled <= sim.pulled <= pulled + CREDIT_WINDOW


async def test_client_gone_cancels_upstream_at_once_with_grace_zero() -> None:
    sim = CountingSim(tps=50)
    async with run_sluice(Settings(detach_grace_s=0), registry_with(sim)) as server:
        async with httpx.AsyncClient() as client:
            url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=1000"
            result = await read_sse(client, url, stop_after=3)
            closed_by_client = time.monotonic()
        await asyncio.wait_for(sim.closed.wait(), 5)
        assert sim.closed_at is not None
        assert sim.closed_at - closed_by_client < 0.1  # the acceptance bound of the issue
        (generation,) = [
            g for g in [server.services.generations.local(result.headers["x-stream-id"])] if g
        ]
        await generation.wait_ended()
        assert generation.stats.outcome == "abandoned"


async def test_reconnect_within_grace_gets_everything_and_after_grace_it_is_abandoned() -> None:
    sim = CountingSim(tps=100)
    async with (
        run_sluice(Settings(detach_grace_s=1.0), registry_with(sim)) as server,
        httpx.AsyncClient() as client,
    ):
        if True:
            url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=60"
            first = await read_sse(client, url, stop_after=5)
            sid = first.headers["x-stream-id"]
            await asyncio.sleep(0.2)  # inside the grace: generation goes on
            last = first.events[-1].id or ""
            rest = await read_sse(client, url, headers={"Last-Event-ID": last})
            events = first.events + rest.events
            assert [e.id for e in events] == [f"{sid}:{i}" for i in range(1, 62)]
            assert events[-1].event == "done"
            assert len(transcript(events).split()) == 60

            long_url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=5000"
            second = await read_sse(client, long_url, stop_after=2)
            generation = server.services.generations.local(second.headers["x-stream-id"])
            assert generation is not None
            await asyncio.wait_for(generation.wait_ended(), 5)
            replay = await read_sse(
                client, f"{server.url}/v1/streams/{second.headers['x-stream-id']}"
            )
            assert replay.terminal is not None
            error = json.loads(replay.terminal.data)["error"]
            assert error["type"] == "abandoned"
