"""A loopback TCP proxy that a test controls, to drop connections on demand.

It forwards bytes untouched between a client (a browser) and a server, records
the head of every HTTP/1.1 request the client sends (so a test can see the
`Last-Event-ID` of a reconnection), and `cut()` resets every connection open at
that moment, as a network failure would. New connections are accepted after a
cut: reconnecting is the client's business.

`cut_next(k)` cuts the next connection it accepts once the client has received
exactly k bytes of the first response's body (after its head, and inside any
chunked framing): the proxy forwards up to that byte and closes both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

_READ = 65_536
_MAX_HEAD = 65_536


@dataclass(frozen=True, slots=True)
class RequestHead:
    connection: int  # which accepted connection carried it, counting from 1
    method: str
    target: str
    headers: dict[str, str]  # names lower-cased

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class HeadParser:
    """Splits one connection's client bytes into request heads. Pure.

    Bodies are skipped by Content-Length; a chunked request body is refused,
    since no client this proxy serves sends one and guessing would misparse.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> list[tuple[str, str, dict[str, str]]]:
        self._buffer += data
        heads: list[tuple[str, str, dict[str, str]]] = []
        while True:
            dropped = min(self._skip, len(self._buffer))
            del self._buffer[:dropped]
            self._skip -= dropped
            end = self._buffer.find(b"\r\n\r\n")
            if self._skip or end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    raise ValueError("request head over 64 KiB")
                return heads
            head = _parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
            heads.append(head)
            if "chunked" in head[2].get("transfer-encoding", ""):
                raise ValueError("chunked request bodies are not supported")
            self._skip = int(head[2].get("content-length", "0"))


def _parse_head(raw: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *lines = raw.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


class BodyCutter:
    """How much of a response's bytes to forward so that the client receives
    exactly `limit` bytes of its body. Pure.

    The head is forwarded whole; a chunked body is followed through its size
    lines, so the count is of body bytes, not of chunk framing.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._head = bytearray()
        self._chunked: bool | None = None  # None: still in the head
        self._line = bytearray()  # a chunk-size line being read
        self._left = 0  # data bytes left in the current chunk
        self._crlf = 0  # bytes of the CRLF after a chunk's data still to pass
        self._body = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The part of `data` to forward, and whether to cut right after it."""
        for i in range(len(data)):
            if self._body >= self._limit and self._chunked is not None:
                return data[:i], True
            self._step(data[i])
        return data, self._chunked is not None and self._body >= self._limit

    def _step(self, byte: int) -> None:
        if self._chunked is None:
            self._head.append(byte)
            if self._head.endswith(b"\r\n\r\n"):
                self._chunked = b"transfer-encoding: chunked" in self._head.lower()
        elif not self._chunked:
            self._body += 1
        elif self._left:
            self._left -= 1
            self._body += 1
            self._crlf = 2 if not self._left else 0
        elif self._crlf:
            self._crlf -= 1
        else:
            self._line.append(byte)
            if self._line.endswith(b"\r\n"):
                self._left = int(bytes(self._line[:-2]).split(b";")[0], 16)
                self._line.clear()


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._cut_next: int | None = None
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._accepted = 0
        self._changed = asyncio.Condition()
        self.heads: list[RequestHead] = []

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not running"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    @property
    def accepted(self) -> int:
        return self._accepted

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._server is not None:
            await self._server.wait_closed()

    def cut_next(self, body_bytes: int) -> None:
        """Cut the next accepted connection after `body_bytes` of its response body."""
        self._cut_next = body_bytes

    def cut(self) -> int:
        """Reset every open connection, both sides; how many sockets were cut."""
        writers = list(self._open)
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    async def wait_for_head(self, matches: Callable[[RequestHead], bool]) -> RequestHead:
        """The first recorded head that `matches`, once there is one; bound the
        wait with `asyncio.timeout`."""

        def found() -> RequestHead | None:
            return next((head for head in self.heads if matches(head)), None)

        async with self._changed:
            head = await self._changed.wait_for(found)
        assert head is not None
        return head

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._accepted += 1
        connection = self._accepted
        cutter = BodyCutter(self._cut_next) if self._cut_next is not None else None
        self._cut_next = None
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._upstream(reader, up_writer, connection))
                group.create_task(_pump(up_reader, writer, cutter, up_writer))
        except* (ConnectionError, ValueError):
            pass  # a cut, or a peer gone: the other side was reset with it
        finally:
            self._open.difference_update((writer, up_writer))
            writer.close()
            up_writer.close()

    async def _upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int
    ) -> None:
        parser = HeadParser()
        while data := await reader.read(_READ):
            await self._record(connection, parser.feed(data))
            writer.write(data)
            await writer.drain()
        writer.close()  # the client is done sending: so is its request

    async def _record(self, connection: int, heads: list[tuple[str, str, dict[str, str]]]) -> None:
        if not heads:
            return
        async with self._changed:
            self.heads.extend(RequestHead(connection, *head) for head in heads)
            self._changed.notify_all()


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    cutter: BodyCutter | None = None,
    source: asyncio.StreamWriter | None = None,
) -> None:
    while data := await reader.read(_READ):
        cut = False
        if cutter is not None:
            data, cut = cutter.feed(data)
        writer.write(data)
        await writer.drain()
        if cut:
            # A clean close (FIN), not a reset: a reset may make the client's
            # kernel drop bytes it received but the client has not read yet.
            assert source is not None
            source.transport.abort()  # the server sees its client gone
            break
    writer.close()  # close, not abort: what was written still arrives


@contextlib.asynccontextmanager
async def running_proxy(upstream_port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(upstream_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()
