"""Run a Sluice app under real hypercorn on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette

from app.application import create_app
from app.providers.registry import ProviderRegistry
from app.services import Services
from app.settings import Settings


@dataclass
class RunningServer:
    url: str
    app: Starlette

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


@contextlib.asynccontextmanager
async def run_sluice(
    settings: Settings | None = None,
    providers: Callable[[], ProviderRegistry] | None = None,
) -> AsyncIterator[RunningServer]:
    """hypercorn on 127.0.0.1:<free port> in this event loop, stopped on exit."""
    app = create_app(settings or Settings(), providers)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.listen(128)
    sock.setblocking(False)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns and closes it
    config.graceful_timeout = 2.0
    config.accesslog = None
    config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        await _wait_until_listening(port, task)
        for _ in range(500):
            if hasattr(app.state, "services"):
                break
            await asyncio.sleep(0.01)
        yield RunningServer(f"http://127.0.0.1:{port}", app)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def _wait_until_listening(port: int, task: asyncio.Task[None]) -> None:
    """The lifespan has run once the services exist; hypercorn accepts right after."""
    for _ in range(500):
        if task.done():
            task.result()
            raise RuntimeError("hypercorn stopped during start-up")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError("hypercorn did not start listening")
