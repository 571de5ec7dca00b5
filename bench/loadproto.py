"""The load client's hot path: one HTTP/1.1 SSE response per call, parsed in an
asyncio Protocol's `data_received`.

Strategy: 1,000 paced streams through one core leave no room for a task wake-up,
a `StreamReader` copy and a `wait_for` timer per read, which is what streams
cost; here a read is counted in the callback that receives it, and a stream's
only timer is its overall deadline. Slow readers keep the streams path in
`loadclient.py` (they need a reader that can pause).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from bench.loadclient import StreamResult

# A token is a non-empty content (or text) string; so is a tool call's arguments fragment.
_CONTENT_MARKERS = (b'"content":"', b'"content": "', b'"arguments":"', b'"arguments": "')
_EMPTY_CONTENT = (b'"content":""', b'"content": ""', b'"arguments":""', b'"arguments": ""')


def count_events(complete: bytes) -> tuple[int, bool, bool]:
    """(tokens, done, failed) in a run of complete SSE events."""
    tokens = complete.count(b"event: token")
    for marker, empty in zip(_CONTENT_MARKERS, _EMPTY_CONTENT, strict=True):
        tokens += complete.count(marker) - complete.count(empty)
    done = b"data: [DONE]" in complete or b"event: done" in complete
    failed = b"event: error" in complete or b'data: {"error"' in complete
    return tokens, done, failed


class Dechunker:
    """Incremental decoder of a chunked transfer-encoded body."""

    __slots__ = ("buf", "done", "need")

    def __init__(self) -> None:
        self.buf = b""
        self.need = -1  # >0: data bytes left in this chunk; -1 size line; -2 CRLF; -3 end
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        pos = 0
        out: list[bytes] = []
        end = len(buf)
        while pos < end:
            need = self.need
            if need > 0:
                take = min(need, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self.need = need - take
                if self.need == 0:
                    self.need = -2
            elif need == -2:
                if end - pos < 2:
                    break
                pos += 2
                self.need = -1
            else:
                idx = buf.find(b"\r\n", pos)
                if idx < 0:
                    break
                if need == -3:  # trailer lines, then the empty line that ends the body
                    empty = idx == pos
                    pos = idx + 2
                    if empty:
                        self.done = True
                        break
                    continue
                size = int(buf[pos:idx].split(b";", 1)[0], 16)
                pos = idx + 2
                self.need = size if size else -3
        self.buf = buf[pos:]
        return b"".join(out)


class SSEClientProtocol(asyncio.Protocol):
    """One connection; `request()` runs one response on it (keep-alive between)."""

    def __init__(self, leave_after: int | None, duration_s: float | None) -> None:
        self._leave_after = leave_after
        self._duration_s = duration_s
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._res: StreamResult | None = None
        self._done: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self._head: bytes | None = b""  # None once the headers are parsed
        self._dechunker: Dechunker | None = None
        self._length: int | None = None
        self._received = 0
        self._keep_alive = False
        self._sse = b""
        self._last = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def request(self, data: bytes, res: StreamResult, timeout_s: float) -> asyncio.Future[bool]:
        """Send `data`; the future says whether the connection may be reused."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._reset()
        self._res = res
        self._done = loop.create_future()
        res.started = time.monotonic()
        limit = self._duration_s if self._duration_s is not None else timeout_s
        self._timer = loop.call_later(limit, self._expired)
        self.transport.write(data)
        return self._done

    def _finish(self, keep_alive: bool, close: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if close and self.transport is not None:
            self.transport.close()
        if self._done is not None and not self._done.done():
            self._done.set_result(keep_alive and not close)

    def _expired(self) -> None:
        res = self._res
        assert res is not None
        if self._duration_s is not None:
            res.left_at = time.monotonic()
        elif res.error is None:
            res.error = "timeout"
        self._finish(False, close=True)

    def data_received(self, data: bytes) -> None:
        res = self._res
        if res is None or self._done is None or self._done.done():
            return
        res.bytes += len(data)
        if self._head is not None:
            head = self._head + data
            if b"\r\n\r\n" not in head:
                self._head = head
                return
            self._head = None
            data = self._headers(head, res)
        self._body(data, res)

    def _headers(self, head: bytes, res: StreamResult) -> bytes:
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        res.status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        chunked = "chunked" in headers.get("transfer-encoding", "")
        self._length = int(headers["content-length"]) if "content-length" in headers else None
        self._keep_alive = headers.get("connection") != "close" and (
            chunked or self._length is not None
        )
        self._dechunker = Dechunker() if chunked else None
        return rest

    def _body(self, data: bytes, res: StreamResult) -> None:
        if data:
            self._count(data, res)
            if self._leave_after is not None and res.tokens >= self._leave_after:
                res.left_at = time.monotonic()
                self._finish(False, close=True)
                return
        dechunker = self._dechunker
        if (dechunker is not None and dechunker.done) or (
            self._length is not None and self._received >= self._length
        ):
            if res.status != 200 and res.error is None:
                res.error = f"HTTP {res.status}"
            self._finish(self._keep_alive)

    def _count(self, data: bytes, res: StreamResult) -> None:
        now = time.monotonic()
        if self._dechunker is not None:
            payload = self._dechunker.feed(data)
        else:
            payload = data
            self._received += len(data)
        if res.status != 200:
            return  # the body of an error response is not an event stream
        sse = self._sse + payload if self._sse else payload
        cut = max(sse.rfind(b"\n\n") + 2, sse.rfind(b"\r\n\r\n") + 4)
        if cut <= 3:
            self._sse = sse
            return
        tokens, done, failed = count_events(sse[:cut])
        self._sse = sse[cut:]
        if tokens:
            if res.ttft is None:
                res.ttft = now - res.started
            else:
                res.gaps.append(now - self._last)
            if tokens > 1:
                res.gaps.extend([0.0] * (tokens - 1))
            self._last = now
            res.tokens += tokens
        if failed and res.error is None:
            res.error = "error event"
        if done:
            res.complete = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        res = self._res
        if res is None or self._done is None or self._done.done():
            return
        if self._head is not None:
            res.error = "closed before headers"
        elif self._dechunker is None and self._length is None:
            pass  # a close-delimited body ends here
        elif res.error is None:
            res.error = "connection closed mid-stream"
        self._finish(False)
