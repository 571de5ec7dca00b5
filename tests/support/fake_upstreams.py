"""Fake upstream HTTP servers on loopback that replay recorded bodies byte-exact.

A raw asyncio protocol, not a framework, so that the test owns every byte and
every boundary: the body goes out in the pieces a test chooses (mid-line,
mid-UTF-8 character, between CR and LF), optionally paced or stalled, as one
HTTP/1.1 chunk per piece. Each connection is recorded, and `connection_lost`
marks who closed it, so a test can assert that a cancelled stream really
closed its upstream connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
_INDEX: dict[str, dict[str, object]] = json.loads((FIXTURES / "index.json").read_text())

Splitter = Callable[[bytes], list[bytes]]


# --- ways to cut a body into pieces ------------------------------------------------


def whole(body: bytes) -> list[bytes]:
    return [body]


def mid_line(body: bytes) -> list[bytes]:
    """Cut every line in half, so no piece ends where a line does."""
    pieces: list[bytes] = []
    for line in body.splitlines(keepends=True):
        half = max(1, len(line) // 2)
        pieces += [line[:half], line[half:]]
    return [p for p in pieces if p]


def mid_utf8(body: bytes) -> list[bytes]:
    """Cut inside every multi-byte UTF-8 character (and every 7 bytes elsewhere)."""
    cuts = {i + 1 for i, byte in enumerate(body) if byte >= 0xC0}  # after a lead byte
    cuts |= set(range(7, len(body), 7))
    return _cut(body, sorted(cuts))


def crlf(body: bytes) -> list[bytes]:
    """The body with CRLF line endings, cut between each CR and its LF."""
    body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return _cut(body, [i + 1 for i, byte in enumerate(body) if byte == 0x0D])


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *(c for c in cuts if 0 < c < len(body)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges) if b > a]


SPLITTERS: dict[str, Splitter] = {
    "whole": whole,
    "mid_line": mid_line,
    "mid_utf8": mid_utf8,
    "crlf": crlf,
}


# --- what the server answers -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    split: Splitter = whole
    delay_s: float = 0.0  # between pieces: a slow upstream
    stall_after: int | None = None  # send this many pieces, then nothing, never ending

    def pieces(self) -> list[bytes]:
        return self.split(self.body)


def fixture(name: str, **overrides: object) -> Reply:
    """A fixture file served with the status and content type from index.json."""
    meta = _INDEX[name]
    status, content_type = meta["status"], meta["content_type"]
    assert isinstance(status, int)
    assert isinstance(content_type, str)
    reply = Reply(status, content_type, (FIXTURES / name).read_bytes())
    return _replace(reply, overrides)


def _replace(reply: Reply, overrides: dict[str, object]) -> Reply:
    values: dict[str, object] = {
        "status": reply.status,
        "content_type": reply.content_type,
        "body": reply.body,
        "headers": reply.headers,
        "split": reply.split,
        "delay_s": reply.delay_s,
        "stall_after": reply.stall_after,
    }
    values.update(overrides)
    return Reply(**values)  # type: ignore[arg-type]


# --- what the server saw -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


@dataclass(slots=True)
class ConnectionRecord:
    requests: list[Request] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_by_client: bool = False
    response_complete: bool = False  # the last response was sent to its end


# --- the server --------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    def __init__(self, server: FakeUpstream) -> None:
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self.record = ConnectionRecord()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.append(self.record)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._maybe_respond()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def eof_received(self) -> bool:
        return False  # a half-close from the client closes the connection

    def connection_lost(self, exc: Exception | None) -> None:
        # The server only closes connections when it shuts down.
        self.record.closed_by_client = not self._server.shutting_down
        self.record.closed.set()
        if self._task is not None:
            self._task.cancel()

    def _maybe_respond(self) -> None:
        if self._task is not None and not self._task.done():
            return  # clients here never pipeline; the next request waits its turn
        request = self._parse()
        if request is not None:
            self.record.requests.append(request)
            self._task = asyncio.get_running_loop().create_task(self._respond(request))

    def _parse(self) -> Request | None:
        head, sep, rest = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            return None
        self._buffer = rest[length:]
        return Request(method, path, headers, rest[:length])

    async def _respond(self, request: Request) -> None:
        transport = self._transport
        assert transport is not None
        reply = self._server.next_reply(request)
        self.record.response_complete = False
        transport.write(_head(reply))
        for index, piece in enumerate(reply.pieces()):
            if reply.stall_after is not None and index >= reply.stall_after:
                await asyncio.Event().wait()  # until the client goes away
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            else:
                await asyncio.sleep(0)  # let each piece leave in its own segment
            transport.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        transport.write(b"0\r\n\r\n")
        self.record.response_complete = True
        self._maybe_respond()


def _head(reply: Reply) -> bytes:
    lines = [
        f"HTTP/1.1 {reply.status} X",
        f"Content-Type: {reply.content_type}",
        "Transfer-Encoding: chunked",
        *(f"{name}: {value}" for name, value in reply.headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class FakeUpstream:
    """A loopback HTTP/1.1 server answering each request with the next `Reply`
    from its script (the last one repeats). Use as `async with`."""

    def __init__(self, *replies: Reply) -> None:
        self._script = list(replies)
        self.connections: list[ConnectionRecord] = []
        self._server: asyncio.Server | None = None
        self._protocols: list[_Connection] = []
        self.shutting_down = False

    def script(self, *replies: Reply) -> None:
        self._script = list(replies)

    def next_reply(self, request: Request) -> Reply:
        assert self._script, f"no reply scripted for {request.method} {request.path}"
        return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    @property
    def requests(self) -> list[Request]:
        return [r for c in self.connections for r in c.requests]

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", 0)
        return self

    def _protocol(self) -> _Connection:
        protocol = _Connection(self)
        self._protocols.append(protocol)
        return protocol

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self.shutting_down = True
        self._server.close()
        for protocol in self._protocols:
            protocol.close()
        await self._server.wait_closed()

    async def wait_all_closed(self, timeout_s: float = 5.0) -> None:
        """Until every connection the client opened has been closed by it.

        Bounded so that a leak fails the test instead of hanging it; the bound
        is generous and the assertion is on the record, not on the time."""
        async with asyncio.timeout(timeout_s):
            for record in self.connections:
                await record.closed.wait()
