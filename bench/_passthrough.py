"""The shared body of the two reference passthroughs: a raw ASGI app, no framework.

It forwards the request body to the upstream and every piece of the upstream's body
to the client unchanged, one `send` per piece, so the two variants differ in nothing
but the httpx transport underneath. A client that leaves cancels the upstream call at
once (hypercorn drops sends after a disconnect silently, so a watcher on `receive`
is the only way to notice), which is what scenario 5 measures.

The upstream is `BENCH_UPSTREAM` (default `http://127.0.0.1:8001`), prefixed to the
request's path.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Enough for the 1,000-stream scenario: both transports default to 100 connections,
# which would queue the rest of the streams inside the gateway.
LIMITS = httpx.Limits(max_connections=10_000, max_keepalive_connections=10_000)
TIMEOUT = httpx.Timeout(60.0)
_PASSED_HEADERS = (b"content-type", b"cache-control")


def make_app(new_client: Callable[[], httpx.AsyncClient]) -> ASGIApp:
    upstream = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8001").rstrip("/")
    clients: list[httpx.AsyncClient] = []  # created on first use, inside the running loop

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for client in clients:
                    await client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def forward(scope: Scope, body: bytes, send: Send) -> None:
        if not clients:
            clients.append(new_client())
        client = clients[0]
        url = upstream + scope["path"]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        request = client.build_request(
            scope["method"],
            url,
            content=body,
            headers={"content-type": "application/json", "accept": "text/event-stream"},
        )
        response = await client.send(request, stream=True)
        try:
            headers = [
                (name, value)
                for name, value in response.headers.raw
                if name.lower() in _PASSED_HEADERS
            ]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": headers}
            )
            async for piece in response.aiter_raw():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        task = asyncio.ensure_future(forward(scope, body, send))

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this app itself is being cancelled, not the forward
        finally:
            watcher.cancel()

    return app
