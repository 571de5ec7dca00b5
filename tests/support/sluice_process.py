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
# Worker pid, method, path, status, the stream (X-Stream-Id), the resume point and
# a test's own X-Request-Tag (hypercorn logs a response the client cut short
# without its status or headers; the tag still names the request).
ACCESS_FORMAT = (
    "%(p)s %(m)s %(U)s %(s)s %({x-stream-id}o)s %({last-event-id}i)s %({x-request-tag}i)s"
)


@dataclass(frozen=True, slots=True)
class Served:
    """One line of the access log: which worker answered which request."""

    pid: int
    method: str
    path: str
    status: int
    stream_id: str | None
    last_event_id: str | None
    tag: str | None


def _parse_served(line: str) -> Served | None:
    """hypercorn prefixes its own `[time] [pid] [INFO]`; the format starts at `<pid>`."""
    start = line.find(" <")
    parts = line[start + 1 :].split() if start >= 0 else []
    if len(parts) != 7:
        return None
    pid, method, path, status, stream_id, last_event_id, tag = parts
    return Served(
        int(pid.strip("<>")),
        method,
        path,
        0 if status == "-" else int(status),
        None if stream_id == "-" else stream_id,
        None if last_event_id == "-" else last_event_id,
        None if tag == "-" else tag,
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


def _command(fd: int, workers: int | None, access_log: Path) -> list[str]:
    """hypercorn's own CLI, or (`workers` None) Sluice's launcher `python -m app.serve`,
    which drains on SIGTERM before hypercorn closes its sockets."""
    if workers is None:
        return [
            *(sys.executable, "-m", "app.serve", "--config", str(HYPERCORN_TOML)),
            *("--bind", f"fd://{fd}"),
        ]
    return [
        *(sys.executable, "-m", "hypercorn", "--config", str(HYPERCORN_TOML)),
        *("--bind", f"fd://{fd}", "--workers", str(workers)),
        *("--access-logfile", str(access_log), "--access-logformat", ACCESS_FORMAT),
        "asgi:app",
    ]


async def _spawn(
    directory: Path, env: Mapping[str, str], workers: int | None, name: str
) -> SluiceProcess:
    sock = _listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    access_log, output = directory / f"{name}.access.log", directory / f"{name}.out"
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *_command(sock.fileno(), workers, access_log),
            cwd=REPO,
            env=_environment(env),
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
    sock.close()  # the child holds its own copy
    return SluiceProcess(url, process, access_log, output)


@contextlib.asynccontextmanager
async def sluice_processes(
    directory: Path,
    env: Mapping[str, str],
    *,
    count: int = 1,
    workers: int | None = 0,
) -> AsyncIterator[list[SluiceProcess]]:
    """`count` Sluice processes started side by side, healthy on entry, stopped on
    exit (SIGTERM, then SIGKILL after 15 s). `workers` 0: one hypercorn process;
    N: a hypercorn supervisor with N worker children; None: `python -m app.serve`."""
    running: list[SluiceProcess] = []
    try:
        for index in range(count):
            running.append(await _spawn(directory, env, workers, f"sluice-{index}"))
        await asyncio.gather(*(_wait_healthy(p.url, p.process, p.output) for p in running))
        yield running
    finally:
        for process in running:
            if await process.terminate(15) is None:
                await process.kill()
