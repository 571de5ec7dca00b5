"""SIGTERM to one of two Sluice processes behind nginx, in the middle of 20 live
streams: every client, reconnecting as EventSource does, ends with the whole
transcript and a terminal event, and the stopped process exits in time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from app.providers.simulated import lorem_tokens
from tests.support.client import transcript
from tests.support.nginx import RunningNginx, run_nginx
from tests.support.redis_server import RedisServer
from tests.support.sluice_process import SluiceProcess, sluice_processes
from tests.support.sse_parser import SSEEvent, SSEParser

pytestmark = pytest.mark.slow

CLIENTS = 20
TOKENS = 40
TPS = 10  # each stream runs 4 s, so SIGTERM lands in the middle of all of them
GRACEFUL_S = 8.0
EXIT_SLACK_S = 2.0  # interpreter teardown after hypercorn returns, on a loaded machine
MAX_CONNECTIONS = 30  # per client: a bound, far above the few reconnects expected


@dataclass
class Progress:
    """Set `all_streaming` once every client has received a few tokens."""

    started: int = 0
    all_streaming: asyncio.Event = field(default_factory=asyncio.Event)

    def client_streaming(self) -> None:
        self.started += 1
        if self.started == CLIENTS:
            self.all_streaming.set()


class EventSource:
    """A client with EventSource's reconnection rules: on a cut or ended response,
    wait `retry` ms and reconnect with the last event id; on 204 stop; any other
    status fails it for good (what a browser does)."""

    def __init__(self, client: httpx.AsyncClient, url: str, progress: Progress) -> None:
        self._client = client
        self._url = url
        self._progress = progress
        self._streaming = False
        self.tokens = 0
        self.events: list[SSEEvent] = []
        self.statuses: list[int] = []
        self.stream_id: str | None = None
        self.cut_mid_event = 0  # responses that ended cleanly but inside an event

    @property
    def terminal(self) -> SSEEvent | None:
        last = self.events[-1] if self.events else None
        return last if last is not None and last.event in ("done", "error") else None

    async def run(self) -> EventSource:
        last_id: str | None = None
        retry_ms = 0
        for _ in range(MAX_CONNECTIONS):
            parser = await self._connect(last_id)
            if parser is None or self.terminal is not None:
                break
            last_id = parser.last_event_id or last_id
            retry_ms = parser.retry if parser.retry is not None else retry_ms
            await asyncio.sleep(retry_ms / 1000)  # EventSource's reconnection time
        self._report_streaming()  # a client that never got going must not block the test
        return self

    def _report_streaming(self) -> None:
        if not self._streaming:
            self._streaming = True
            self._progress.client_streaming()

    def _received(self, events: list[SSEEvent]) -> None:
        self.events += events
        self.tokens += sum(e.event == "token" for e in events)
        if self.tokens >= 3:
            self._report_streaming()

    async def _connect(self, last_id: str | None) -> SSEParser | None:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        parser = SSEParser()
        raw = b""
        try:
            async with self._client.stream("GET", self._url, headers=headers) as response:
                self.statuses.append(response.status_code)
                if response.status_code != 200:
                    return None
                self.stream_id = self.stream_id or response.headers["x-stream-id"]
                async for chunk in response.aiter_raw():
                    raw += chunk
                    self._received(parser.feed(chunk))
            self.cut_mid_event += not raw.endswith(b"\n\n")
        except httpx.TransportError:
            pass  # a cut connection: reconnect
        return parser


@pytest.fixture
async def two_draining_processes(
    redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[list[SluiceProcess]]:
    """Two `python -m app.serve` processes (the launcher that drains on SIGTERM)
    sharing one private redis-server."""
    env = {
        "SLUICE_REDIS_URL": redis_server.url,
        "SLUICE_SECRET": "shutdown-e2e-shared-secret",
        "SLUICE_GRACEFUL_TIMEOUT_S": str(GRACEFUL_S),
        "SLUICE_RETRY_MS": "300",
        "SLUICE_HEARTBEAT_S": "1",
    }
    async with sluice_processes(tmp_path, env, count=2, workers=None) as processes:
        yield processes


async def sigterm_when_streaming(stopped: SluiceProcess, progress: Progress) -> int | None:
    await asyncio.wait_for(progress.all_streaming.wait(), 60)
    return await stopped.terminate(within_s=GRACEFUL_S + EXIT_SLACK_S)


async def handovers(
    nginx: RunningNginx, clients: list[EventSource], stopped: str
) -> list[list[str]]:
    """The upstream of each response of the streams whose first response came from
    the stopped process, once nginx has logged them all (it logs when one ends)."""
    for _ in range(250):
        served = [nginx.upstreams_of(str(c.stream_id)) for c in clients]
        if all(len(s) >= len(c.statuses) for s, c in zip(served, clients, strict=True)):
            break
        await asyncio.sleep(0.02)
    return [upstreams for upstreams in served if upstreams[:1] == [stopped]]


async def test_sigterm_during_live_streams_loses_no_event_and_ends_every_stream(
    two_draining_processes: list[SluiceProcess],
) -> None:
    stopped, survivor = two_draining_processes
    query = {"model": "sim/lorem", "prompt": "drain", "max_tokens": TOKENS, "sim_tps": TPS}
    progress = Progress()
    async with (
        run_nginx((stopped.address, survivor.address)) as nginx,
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client,
    ):
        url = f"{nginx.url}/v1/stream?{urlencode(query)}"
        clients = [EventSource(client, url, progress) for _ in range(CLIENTS)]
        *_, exit_code = await asyncio.gather(
            *(c.run() for c in clients), sigterm_when_streaming(stopped, progress)
        )
        moved = await handovers(nginx, clients, stopped.address)
    expected = "".join(lorem_tokens(TOKENS))
    assert exit_code == 0, stopped.log_text()[-3000:]
    assert [c.terminal is not None for c in clients] == [True] * CLIENTS
    assert [c.terminal.event for c in clients if c.terminal] == ["done"] * CLIENTS
    assert [transcript(c.events) for c in clients] == [expected] * CLIENTS
    for c in clients:
        assert [e.id for e in c.events] == [f"{c.stream_id}:{s}" for s in range(1, TOKENS + 2)]
    assert {s for c in clients for s in c.statuses} == {200}
    assert [c.cut_mid_event for c in clients] == [0] * CLIENTS
    # Readers of the stopped process were released and resumed on the survivor.
    assert moved != []
    assert [survivor.address in upstreams[1:] for upstreams in moved] == [True] * len(moved)
