"""GET /metrics: the Prometheus text exposition, open without auth.

Like /healthz it says nothing about any stream's content or owner, only
counts and timings under bounded labels, so a scraper needs no key.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive, Scope, Send

from app.observability import metrics


class MetricsEndpoint:
    """Raw ASGI (Starlette routes a non-function endpoint as an ASGI app)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if metrics.multiprocess_dir() is None:
            body = metrics.render()
        else:  # reads every worker's files: off the event loop
            body = await asyncio.to_thread(metrics.render)
        headers = [
            (b"content-type", metrics.CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


metrics_endpoint = MetricsEndpoint()
