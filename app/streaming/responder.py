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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Scope, Send

from app.core.events import Event
from app.core.source import Opening

RELEASE_STATE = "sluice.release"  # lifespan-state key of the process's `Release`


class Wire(Protocol):
    """An encoding. A wire whose clients reconnect by themselves with
    Last-Event-ID (EventSource) says so with a true `reconnects` attribute;
    `heartbeat` is what it sends while no event is due."""

    @property
    def heartbeat(self) -> bytes: ...

    def encode(self, events: Sequence[Event]) -> bytes: ...


@dataclass(slots=True)
class Delivery:
    """What one response delivered, for metrics and the stream's log line."""

    bytes_sent: int = 0
    send_blocked_s: float = 0.0
    last_seq: int = 0
    complete: bool = False  # the terminal event was sent
    client_gone: bool = False
    released: bool = False  # shutdown let go of it at an event boundary
    waiting: bool = False  # the pump is waiting for the next batch (not sending)


class Release:
    """Set once, on shutdown: every response of a reconnecting wire ends at its
    next event boundary — after a complete event, without a terminal one — so
    that its EventSource reconnects with Last-Event-ID, to another process.

    Strategy: a response subscribes a callback, not a task. The callback
    cancels the pump only while it waits for the next batch; a pump that is
    sending finishes the send and then sees the flag: no event is ever cut.
    """

    __slots__ = ("_callbacks", "is_set")

    def __init__(self) -> None:
        self.is_set = False
        self._callbacks: set[Callable[[], None]] = set()

    def set(self) -> None:
        self.is_set = True
        callbacks, self._callbacks = self._callbacks, set()
        for callback in callbacks:
            callback()

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.add(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.discard(callback)


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
    stream_id: str,
    opening: Opening,
    wire: Wire,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> Delivery:
    """Send the response `opening` starts (`app.streaming.opening.open_response`)."""
    delivery = Delivery(last_seq=opening.last_seq)
    async with contextlib.aclosing(opening.batches):  # closing it detaches the reader
        headers = sse_headers(scope, stream_id) + list(extra_headers)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        pump = asyncio.current_task()
        assert pump is not None
        watcher = asyncio.create_task(_watch(receive, pump, delivery))
        release: Release | None = scope.get("state", {}).get(RELEASE_STATE)
        let_go = _let_go(pump, delivery)
        if release is not None and getattr(wire, "reconnects", False):
            delivery.released = release.is_set  # already draining: end after the opening
            release.subscribe(let_go)
        try:
            await _pump(send, opening, wire, delivery)
        except asyncio.CancelledError:
            if not (delivery.client_gone or delivery.released):
                raise
            pump.uncancel()
            if not delivery.client_gone:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if release is not None:
                release.unsubscribe(let_go)
            delivery.complete = delivery.complete and not delivery.client_gone
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return delivery


def _let_go(pump: asyncio.Task[object], delivery: Delivery) -> Callable[[], None]:
    def let_go() -> None:
        delivery.released = True
        if delivery.waiting:
            pump.cancel()

    return let_go


async def _watch(receive: Receive, pump: asyncio.Task[object], delivery: Delivery) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    if not delivery.complete:
        delivery.client_gone = True
        pump.cancel()


async def _pump(
    send: Send,
    opening: Opening,
    wire: Wire,
    delivery: Delivery,
) -> None:
    blocked = 0.0
    sent = 0
    clock = time.perf_counter
    try:
        if opening.head:
            await send({"type": "http.response.body", "body": opening.head, "more_body": True})
            sent += len(opening.head)
        delivery.complete = opening.complete
        iterator = opening.batches
        while not (delivery.released or delivery.complete):  # the end, or shutdown
            delivery.waiting = True
            try:
                batch = await anext(iterator)
            except StopAsyncIteration:
                break
            finally:
                delivery.waiting = False
            body = wire.encode(batch) if batch else wire.heartbeat
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
