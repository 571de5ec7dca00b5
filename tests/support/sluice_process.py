"""Sluice as it runs in production: `hypercorn --config ops/hypercorn.toml asgi:app`
in a subprocess, on a loopback socket the test opened (no port race), with an
access log that names the worker pid and the stream of every response.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
HYPERCORN_TOML = REPO / "ops" / "hypercorn.toml"
# Worker pid, method, path, status, the stream (X-Stream-Id) and the resume point.
ACCESS_FORMAT = "%(p)s %(m)s %(U)s %(s)s %({x-stream-id}o)s %({last-event-id}i)s"


@dataclass(frozen=True, slots=True)
class Served:
    """One line of the access log: which worker answered which request."""

    pid: int
    method: str
    path: str
    status: int
    stream_id: str | None
    last_event_id: str | None


def _parse_served(line: str) -> Served | None:
    """hypercorn prefixes its own `[time] [pid] [INFO]`; the format starts at `<pid>`."""
    start = line.find(" <")
    parts = line[start + 1 :].split() if start >= 0 else []
    if len(parts) != 6:
        return None
    pid, method, path, status, stream_id, last_event_id = parts
    return Served(
        int(pid.strip("<>")),
        method,
        path,
        0 if status == "-" else int(status),
        None if stream_id == "-" else stream_id,
        None if last_event_id == "-" else last_event_id,
    )


@dataclass
class SluiceProcess:
    url: str
    process: asyncio.subprocess.Process
    access_log: Path
    output: Path

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def served(self) -> list[Served]:
        """Responses completed so far (a line is written when a response ends)."""
        if not self.access_log.exists():
            return []
        lines = self.access_log.read_text().splitlines()
        return [s for s in map(_parse_served, lines) if s is not None]

    def log_text(self) -> str:
        return _text(self.output)

    async def terminate(self, within_s: float) -> int | None:
        """SIGTERM, then the exit code if the process exits within `within_s`, else None."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), within_s)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    """The outer SLUICE_* settings are dropped so the test alone decides."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    return {**base, "PYTHONUNBUFFERED": "1", **env}


async def _wait_healthy(url: str, process: asyncio.subprocess.Process, output: Path) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(1200):  # a loaded 2-core machine imports slowly
            if process.returncode is not None:
                raise RuntimeError(f"hypercorn exited at start-up:\n{_text(output)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"hypercorn did not become healthy:\n{_text(output)}")


@contextlib.asynccontextmanager
async def sluice_process(
    directory: Path, env: Mapping[str, str], *, workers: int = 0, name: str = "sluice"
) -> AsyncIterator[SluiceProcess]:
    """One hypercorn process (`workers` 0) or a supervisor with `workers` children,
    healthy on entry, stopped on exit (SIGTERM, then SIGKILL after 15 s)."""
    sock = _listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    access_log, output = directory / f"{name}.access.log", directory / f"{name}.out"
    command = [
        *(sys.executable, "-m", "hypercorn", "--config", str(HYPERCORN_TOML)),
        *("--bind", f"fd://{sock.fileno()}", "--workers", str(workers)),
        *("--access-logfile", str(access_log), "--access-logformat", ACCESS_FORMAT),
        "asgi:app",
    ]
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=REPO,
            env=_environment(env),
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
    sock.close()  # the child holds its own copy
    running = SluiceProcess(url, process, access_log, output)
    try:
        await _wait_healthy(url, process, output)
        yield running
    finally:
        if await running.terminate(15) is None:
            await running.kill()
