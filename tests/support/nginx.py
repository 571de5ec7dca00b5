"""Real nginx in front of Sluice processes, from the repository's ops/nginx.conf.

The template is rendered by ops/render-nginx.py, exactly as an operator does,
into a temporary prefix that holds the pid file, temp paths and logs, so no
root and no system path is needed. nginx runs in the foreground
(`daemon off`) as this test's child and is stopped on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RENDER = REPO / "ops" / "render-nginx.py"
_UPSTREAM = re.compile(r"upstream=(\S+) stream=(\S+)")


def nginx_binary() -> str:
    """Debian's nginx (ops/install-system-deps.sh installs it when missing)."""
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise RuntimeError("nginx is not installed: run `make system-deps`")
    return found


@dataclass
class RunningNginx:
    url: str
    prefix: Path
    process: asyncio.subprocess.Process

    def access_lines(self) -> list[str]:
        log = self.prefix / "access.log"
        return log.read_text().splitlines() if log.exists() else []

    def upstreams_of(self, stream_id: str) -> list[str]:
        """The Sluice process (host:port) of each finished response of this stream."""
        found = (_UPSTREAM.search(line) for line in self.access_lines())
        return [m.group(1) for m in found if m is not None and m.group(2) == stream_id]

    def error_log(self) -> str:
        return _error_log(self.prefix)


def _error_log(prefix: Path) -> str:
    log = prefix / "error.log"
    return log.read_text(errors="replace") if log.exists() else ""


def _new_prefix() -> Path:
    """A prefix of its own directly under the temp dir: run as root, nginx's
    workers drop to `nobody`, which must be able to reach the temp paths."""
    prefix = Path(tempfile.mkdtemp(prefix="sluice-nginx-"))
    prefix.chmod(0o755)
    return prefix


def _free_port() -> int:
    """nginx binds by itself; a port just released by the kernel is free in practice,
    and a lost race fails loudly at start-up (the caller retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render_config(prefix: Path, listen: str, upstreams: tuple[str, str]) -> Path:
    env = {
        **os.environ,
        "NGINX_LISTEN": listen,
        "SLUICE_A": upstreams[0],
        "SLUICE_B": upstreams[1],
        "NGINX_RUN_DIR": str(prefix),
        "NGINX_LOG_DIR": str(prefix),
    }
    out = prefix / "nginx.conf"
    subprocess.run(
        [sys.executable, str(RENDER), "--out", str(out)], env=env, check=True, timeout=30
    )
    return out


async def _start(prefix: Path, upstreams: tuple[str, str]) -> RunningNginx | None:
    port = _free_port()
    conf = render_config(prefix, f"127.0.0.1:{port}", upstreams)
    args = ("-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf))
    process = await asyncio.create_subprocess_exec(
        nginx_binary(), *args, "-g", "daemon off;", stderr=asyncio.subprocess.DEVNULL
    )
    for _ in range(500):
        if process.returncode is not None:
            return None
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return RunningNginx(f"http://127.0.0.1:{port}", prefix, process)
    process.kill()
    await process.wait()
    return None


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM is nginx's fast shutdown: open streams are closed, not waited for."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def run_nginx(upstreams: tuple[str, str]) -> AsyncIterator[RunningNginx]:
    """nginx on 127.0.0.1:<free port> balancing over two `host:port` Sluice processes."""
    prefix = _new_prefix()
    running = None
    try:
        for _ in range(3):
            running = await _start(prefix, upstreams)
            if running is not None:
                break
        if running is None:
            raise RuntimeError(f"nginx did not start:\n{_error_log(prefix)}")
        yield running
    finally:
        if running is not None:
            await _stop(running.process)
        shutil.rmtree(prefix, ignore_errors=True)
