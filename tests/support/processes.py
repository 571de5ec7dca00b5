"""Sluice as a real process (`python -m app.serve`, hypercorn inside), for
tests that signal or kill it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SluiceProcess:
    process: asyncio.subprocess.Process
    url: str
    log_path: Path

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def exited(self, within_s: float) -> int:
        """The exit code; TimeoutError if the process is still running after `within_s`."""
        return await asyncio.wait_for(self.process.wait(), timeout=within_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.asynccontextmanager
async def sluice_process(env: Mapping[str, str]) -> AsyncIterator[SluiceProcess]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sluice-proc-") as tmp:
        log_path = Path(tmp) / "sluice.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "app.serve", "--bind", f"127.0.0.1:{port}"],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            running = SluiceProcess(process, f"http://127.0.0.1:{port}", log_path)
            try:
                await _until_healthy(running)
                yield running
            finally:
                if process.returncode is None:
                    process.kill()
                await asyncio.wait_for(process.wait(), timeout=10)


async def _until_healthy(running: SluiceProcess) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(1200):  # bounded: ~60 s, for a loaded 2-core machine
            if running.process.returncode is not None:
                raise RuntimeError(f"sluice exited at start-up:\n{running.log()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{running.url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"sluice did not become healthy:\n{running.log()}")
