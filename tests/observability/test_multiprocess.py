"""Several hypercorn workers: with PROMETHEUS_MULTIPROC_DIR, every worker's
/metrics shows the same totals, whichever worker served the streams."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.observability.capture import Scrape, scrape
from tests.support.client import read_sse

MAX_STREAMS = 60  # bound on streams sent while waiting for both workers to serve one
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Workers:
    url: str
    access_log: Path

    def stream_pids(self) -> set[str]:
        """Pids of the workers that served a /v1/stream (the access log names them)."""
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return {line.split()[-2] for line in text.splitlines() if line.endswith("/v1/stream")}


@contextlib.asynccontextmanager
async def hypercorn_workers(directory: Path, env: dict[str, str]) -> AsyncIterator[Workers]:
    """`hypercorn -w 2 asgi:app` on a loopback socket this test opened; stopped on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    access_log = directory / "access.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "hypercorn", "--workers", "2", "--bind", f"fd://{sock.fileno()}"),
        *("--access-logfile", str(access_log), "--access-logformat", "%(p)s %(U)s"),
        "asgi:app",
        cwd=REPO,
        env={**clean, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        pass_fds=(sock.fileno(),),
    )
    sock.close()
    try:
        await _healthy(url, process)
        yield Workers(url, access_log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(1200):  # a loaded 2-core machine imports slowly
            assert process.returncode is None, "hypercorn exited at start-up"
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise TimeoutError("hypercorn did not become healthy")


@pytest.mark.slow
async def test_two_workers_export_the_sum_of_their_streams(tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(prom), "SLUICE_SIM_TPS": "0"}
    async with hypercorn_workers(tmp_path, env) as server:
        sent = 0
        while sent < MAX_STREAMS:
            # A fresh connection per stream, so the kernel may hand it to either worker.
            async with httpx.AsyncClient(timeout=30) as client:
                url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=3"
                result = await read_sse(client, url)
            assert result.terminal is not None
            sent += 1
            stream_pids = server.stream_pids()
            if sent >= 4 and len(stream_pids) == 2:
                break
        assert len(stream_pids) == 2, "one worker served every stream"
        scrapes: list[Scrape] = []
        for _ in range(6):
            async with httpx.AsyncClient(timeout=30) as client:
                scrapes.append(await scrape(client, server.url))

    done = {"provider": "sim", "model": "sim/lorem", "outcome": "done"}
    for exported in scrapes:
        assert exported.value("sluice_streams_total", **done) == sent
        assert exported.value("sluice_output_tokens_total", provider="sim", model="sim/lorem") == (
            3 * sent
        )
        ttft = {"provider": "sim", "model": "sim/lorem"}
        assert exported.value("sluice_ttft_seconds_count", **ttft) == sent
        assert exported.value("sluice_active_streams") == 0
        assert exported.value("sluice_attached_readers") == 0
