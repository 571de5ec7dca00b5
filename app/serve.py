"""`python -m app.serve`: Sluice under hypercorn, with a shutdown that drains first.

Why not plain `hypercorn asgi:app`: hypercorn installs its own SIGTERM
handler (hypercorn/asyncio/run.py, `worker_serve`), and on the signal it
closes the listening sockets, waits up to its `graceful_timeout` for open
connections — our SSE responses, which do not end by themselves — and only
then runs the lifespan shutdown. The app would learn of the signal last.
With workers (the CLI's default), the signal even reaches only the parent,
which sets a multiprocessing event that the worker polls.

`hypercorn.asyncio.serve` takes a `shutdown_trigger` instead: this launcher
passes one that waits for SIGTERM/SIGINT, runs `app.shutdown.drain` (readyz
503 at once, readers released, generations finished into the log) while
the sockets stay open for /readyz, and then returns, so that hypercorn
closes the sockets and waits the short margin left for the last responses.
A second signal is not caught: it ends the process at once.

Under plain `hypercorn asgi:app` Sluice still works; a SIGTERM then stops
running generations with `shutting_down` when the lifespan ends.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable, Sequence

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette

from app.application import create_app
from app.services import Services
from app.settings import Settings, load_settings
from app.shutdown import drain, margin_s

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _arguments(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__)
    parser.add_argument(
        "--bind", action="append", help=f"host:port (default {settings.host}:{settings.port})"
    )
    parser.add_argument("--config", help="a hypercorn TOML config (its bind is overridden)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    return parser.parse_args(argv)


def _config(args: argparse.Namespace, settings: Settings) -> Config:
    config = Config.from_toml(args.config) if args.config else Config()
    config.bind = args.bind or [f"{settings.host}:{settings.port}"]
    config.graceful_timeout = margin_s(settings.graceful_timeout_s)
    return config


def _on_signal(app: Starlette) -> Callable[[], Awaitable[None]]:
    async def trigger() -> None:
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, signalled.set)
        await signalled.wait()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)  # a second signal ends the process at once
        services: Services = app.state.services
        await drain(services)

    return trigger


def main(argv: Sequence[str] | None = None) -> None:
    settings = load_settings()
    args = _arguments(argv, settings)
    app = create_app(settings)
    gc.freeze()  # as in asgi.py: no collection walks the imported modules' objects
    config = _config(args, settings)
    coroutine = serve(app, config, shutdown_trigger=_on_signal(app))  # type: ignore[arg-type]
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
