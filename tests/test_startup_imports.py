"""What a process loads at start: the SDKs and the HTTP stacks of the upstreams
come in with the first request that resolves to one of them, not before.

Each case runs in a fresh interpreter (this test process has imported them all
long ago): `import asgi`, the app's lifespan as hypercorn runs it, then one-shot
streams sent straight to the ASGI app, and `sys.modules` read in between.
The objects a lazy import made must be frozen (asgi.py says why).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Loaded only for the upstreams a request uses (app/providers/registry.py).
LAZY = ("openai", "anthropic", "pydantic", "pydantic_core", "httpx", "httpx2", "aiohttp", "redis")

_SCRIPT = """
import asyncio, gc, json, sys

import asgi

LAZY = %r


def loaded():
    return sorted(name for name in LAZY if name in sys.modules)


async def get(state, path, query):
    ended = asyncio.Event()
    body = []
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                ended.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "state": dict(state),
    }
    await asyncio.wait_for(asgi.app(scope, receive, send), 30)
    return b"".join(body).decode()


async def main():
    report = {"imported": loaded()}
    async with asgi.app.router.lifespan_context(asgi.app) as state:
        report["started"] = loaded()
        report["sim_body"] = await get(state, "/v1/stream", "model=sim/echo&prompt=hi")
        report["after_sim"] = loaded()
        report["openai_body"] = await get(state, "/v1/stream", "model=openai/gpt-x&prompt=hi")
        report["after_openai"] = loaded()
        sdk_class = sys.modules["openai"].AsyncOpenAI
        report["sdk_frozen"] = not any(o is sdk_class for o in gc.get_objects())
    print(json.dumps(report))


asyncio.run(main())
"""


def _run_fresh() -> dict[str, object]:
    """The script in a fresh interpreter with the default settings: no config file,
    no Redis, no provider keys (so the openai stream fails without the network)."""
    cleared = ("SLUICE_", "OPENAI_", "ANTHROPIC_", "OLLAMA_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(cleared)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT % (LAZY,)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_sdks_and_http_stacks_load_with_the_first_request_to_their_upstream() -> None:
    report = _run_fresh()
    # Importing and starting the app, and serving the simulated model, load none of them.
    assert report["imported"] == []
    assert report["started"] == []
    assert "event: done" in str(report["sim_body"])
    assert report["after_sim"] == []
    # A request resolved to OpenAI builds that provider, with its SDK, then.
    assert "openai: no API key configured" in str(report["openai_body"])
    loaded = report["after_openai"]
    assert isinstance(loaded, list)
    assert {"openai", "aiohttp"} <= set(loaded)
    assert "anthropic" not in loaded
    # ... and its objects, kept for the life of the process, are frozen out of collections.
    assert report["sdk_frozen"] is True
