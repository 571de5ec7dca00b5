"""The raw ASGI SSE responder: headers at once, one `send` per batch, and
disconnects noticed through `receive()`.

Strategy: pump and watcher race. The pump writes whatever the source has
(a reader that fell behind catches up in one `send`); a slow client makes
that `send` wait, which is the backpressure. The watcher awaits `receive()`
for `http.disconnect` (under hypercorn a write to a gone client does not
raise) and cancels the pump; the pump's source iterator is closed in turn,
which detaches the reader. Nothing here buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Scope, Send

from app.sse import PING
from app.streaming.events import Event
from app.streaming.source import StreamSource


class Wire(Protocol):
    def preamble(self) -> bytes: ...

    def encode(self, events: Sequence[Event]) -> bytes: ...


@dataclass(slots=True)
class Delivery:
    """What one response delivered, for metrics and the stream's log line."""

    bytes_sent: int = 0
    send_blocked_s: float = 0.0
    last_seq: int = 0
    complete: bool = False  # the terminal event was sent
    client_gone: bool = False


def sse_headers(scope: Scope, stream_id: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"x-stream-id", stream_id.encode()),
    ]
    if scope.get("http_version") == "1.1":
        headers.append((b"connection", b"keep-alive"))
    return headers


async def respond(
    scope: Scope,
    receive: Receive,
    send: Send,
    source: StreamSource,
    after: int,
    wire: Wire,
    heartbeat_s: float,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> Delivery:
    delivery = Delivery(last_seq=after)
    headers = sse_headers(scope, source.meta.stream_id) + list(extra_headers)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    pump = asyncio.current_task()
    assert pump is not None
    watcher = asyncio.create_task(_watch(receive, pump, delivery))
    try:
        await _pump(send, source, after, wire, heartbeat_s, delivery)
    except asyncio.CancelledError:
        if not delivery.client_gone:
            raise
        pump.uncancel()
    finally:
        delivery.complete = delivery.complete and not delivery.client_gone
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return delivery


async def _watch(receive: Receive, pump: asyncio.Task[object], delivery: Delivery) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    if not delivery.complete:
        delivery.client_gone = True
        pump.cancel()


async def _pump(
    send: Send,
    source: StreamSource,
    after: int,
    wire: Wire,
    heartbeat_s: float,
    delivery: Delivery,
) -> None:
    blocked = 0.0
    sent = 0
    clock = time.perf_counter
    try:
        preamble = wire.preamble()
        if preamble:
            await send({"type": "http.response.body", "body": preamble, "more_body": True})
            sent += len(preamble)
        iterator = source.follow(after, heartbeat_s)
        async with contextlib.aclosing(iterator):
            async for batch in iterator:
                body = wire.encode(batch) if batch else PING
                t0 = clock()
                try:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                finally:  # a client that leaves mid-send blocked us too: count that wait
                    blocked += clock() - t0
                sent += len(body)
                if batch:
                    delivery.last_seq = batch[-1].seq
                    delivery.complete = batch[-1].terminal
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        delivery.send_blocked_s += blocked
        delivery.bytes_sent += sent
