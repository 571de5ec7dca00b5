"""Sluice as shipped (`hypercorn --config ops/hypercorn.toml asgi:app`) in a
subprocess, for tests that need its whole log: stderr and the access log."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.security.helpers import KEY_A, KEY_B, SECRET

REPO = Path(__file__).resolve().parents[2]
ENV = {
    "SLUICE_API_KEYS": f"{KEY_A},{KEY_B}",
    "SLUICE_SECRET": SECRET.decode(),
    "SLUICE_SIM_TPS": "0",
    "SLUICE_DETACH_GRACE_S": "0",
    "SLUICE_ATTACH_TIMEOUT_S": "1",
    "SLUICE_HEARTBEAT_S": "1",
    "SLUICE_IDLE_TIMEOUT_S": "2",
    "SLUICE_MAX_TOKENS_CAP": "2000",
}


@dataclass
class Served:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):  # bounded: 30 s on a loaded machine
        if process.poll() is not None:
            raise RuntimeError(f"hypercorn exited:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError("hypercorn did not become healthy")


@contextlib.contextmanager
def served() -> Iterator[Served]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    with tempfile.TemporaryDirectory(prefix="sluice-security-") as directory:
        log = Path(directory) / "sluice.log"
        command = [
            *(sys.executable, "-m", "hypercorn", "--config", "ops/hypercorn.toml"),
            *("--bind", f"fd://{sock.fileno()}", "--workers", "0"),
            *("--access-logfile", "-", "--error-logfile", "-", "asgi:app"),
        ]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**env, **ENV, "PYTHONUNBUFFERED": "1"},
                stdout=sink,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
            )
        sock.close()
        try:
            _wait_healthy(url, process, log)
            yield Served(url, log)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
