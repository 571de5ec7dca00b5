"""A fast fake OpenAI-compatible upstream for the benchmark.

It must cost far less per token than any gateway under test, because it shares a
core with the load client: a raw asyncio Protocol (no HTTP framework), every SSE
chunk pre-encoded once with its chunked-transfer framing, paced tokens driven by
timer callbacks instead of one task per stream, and TCP flow control honoured so a
slow gateway never makes this process buffer a whole stream.

The body of every stream has exactly the shape of the recorded Chat Completions
stream in tests/fixtures/upstream/openai-chat-stream.sse: a role chunk
(`"content":"","refusal":null`), content deltas, a `finish_reason:"stop"` chunk, a
usage chunk with `choices:[]`, then `data: [DONE]`.

Per-request shape, first match wins:
  1. fields of the model name, split on `-`, `/`, `_` or `:` — `tok2000` (content
     tokens), `tps20` (tokens per second, 0 = unpaced), `ttft50` (ms before the
     first token), `rid17` (an id recorded in /stats so a client can match its own
     request to the upstream connection). The model name is the one field every
     gateway forwards unchanged, e.g. `bench/tok2000-tps20-ttft0-rid17`.
  2. headers `x-bench-tokens`, `x-bench-tps`, `x-bench-ttft-ms`;
  3. `max_tokens` / `max_completion_tokens` of the body (token count only);
  4. the command-line defaults.

Control endpoints: `GET /stats` returns JSON with one record per streaming request:
when it arrived, how many chunks were written, when it finished, and when its
connection was closed and by whom. Times are `time.monotonic()` seconds, i.e.
CLOCK_MONOTONIC, which on Linux is one clock for every process, so they compare
with the load client's. `POST /reset` (or GET) forgets every record.

Run: `python -m bench.fake_upstream --port 0`; prints `listening <port>` once bound.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import orjson

# The 30 content deltas of the recorded fixture, cycled for longer streams.
_TOKENS = (
    "I'm", " unable", " to", " provide", " real", "-time", " weather", " updates", ".",
    " To", " get", " the", " current", " weather", " in", " San", " Francisco", ",",
    " I", " recommend", " checking", " a", " reliable", " weather", " website", " or",
    " a", " weather", " app", ".",
)  # fmt: skip

_HEAD = (
    b'{"id":"chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL","object":"chat.completion.chunk",'
    b'"created":1727346168,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd",'
    b'"choices":'
)


def _frame(payload: bytes) -> bytes:
    """One piece of a chunked transfer-encoded body."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(body: bytes) -> bytes:
    return b"data: " + body + b"\n\n"


ROLE_FRAME = _frame(
    _event(
        _HEAD + b'[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        b'"logprobs":null,"finish_reason":null}]}'
    )
)
TOKEN_FRAMES = tuple(
    _frame(
        _event(
            _HEAD + b'[{"index":0,"delta":{"content":' + orjson.dumps(text) + b"},"
            b'"logprobs":null,"finish_reason":null}]}'
        )
    )
    for text in _TOKENS
)
FINISH_FRAME = _frame(
    _event(_HEAD + b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}')
)
# `tools1`: one tool call whose arguments come in many fragments, shaped like
# tests/fixtures/upstream/openai-chat-stream-tool-calls.sse (its 11 fragments, cycled).
_ARGUMENTS = (
    '{"ci', 'ty": ', '"Edinb', "urgh", '", "c', "ountry", '": "', 'GB", ', '"units', '": "', 'c"}',
)  # fmt: skip
CALL_FRAME = _frame(
    _event(
        _HEAD
        + b'[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_JMW1whyEaYG438VE1OIflxA2",'
        b'"type":"function","function":{"name":"GetWeatherArgs","arguments":""}}]},'
        b'"logprobs":null,"finish_reason":null}]}'
    )
)
ARGUMENT_FRAMES = tuple(
    _frame(
        _event(
            _HEAD
            + b'[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
            + orjson.dumps(text)
            + b'}}]},"logprobs":null,"finish_reason":null}]}'
        )
    )
    for text in _ARGUMENTS
)
TOOLS_FINISH_FRAME = _frame(
    _event(_HEAD + b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}')
)
DONE_FRAME = _frame(b"data: [DONE]\n\n")
LAST_CHUNK = b"0\r\n\r\n"
PROMPT_TOKENS = 14

_USAGE_CACHE: dict[int, bytes] = {}


def usage_frame(completion_tokens: int) -> bytes:
    frame = _USAGE_CACHE.get(completion_tokens)
    if frame is None:
        usage = (
            b'[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
            b'"completion_tokens_details":{"reasoning_tokens":0}}}'
            % (PROMPT_TOKENS, completion_tokens, PROMPT_TOKENS + completion_tokens)
        )
        frame = _frame(_event(_HEAD + usage))
        _USAGE_CACHE[completion_tokens] = frame
    return frame


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
    b"\r\n"
)

# Unpaced streams are written in batches of about this many bytes: large enough that
# the upstream's own cost per token is small, small enough that one stream cannot hold
# the loop for long and that many connections progress side by side.
BATCH_BYTES = 32 * 1024

_T = TypeVar("_T")

_FIELD = re.compile(r"^(tok|tps|ttft|rid|tools)(\d+(?:\.\d+)?)$")
_SPLIT = re.compile(r"[-/_:]")


@dataclass(slots=True)
class StreamShape:
    tokens: int
    tps: float
    ttft_ms: float
    rid: str | None = None
    tools: bool = False  # the "tokens" are arguments fragments of one tool call


def parse_shape(
    model: str, headers: dict[str, str], body: dict[str, Any], default: StreamShape
) -> StreamShape:
    """The stream a request asks for (see the module docstring for the precedence)."""
    shape = StreamShape(default.tokens, default.tps, default.ttft_ms)
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0:
        shape.tokens = max_tokens
    if "x-bench-tokens" in headers:
        shape.tokens = int(headers["x-bench-tokens"])
    if "x-bench-tps" in headers:
        shape.tps = float(headers["x-bench-tps"])
    if "x-bench-ttft-ms" in headers:
        shape.ttft_ms = float(headers["x-bench-ttft-ms"])
    for part in _SPLIT.split(model):
        match = _FIELD.match(part)
        if match is None:
            continue
        key, value = match.group(1), match.group(2)
        if key == "tok":
            shape.tokens = int(float(value))
        elif key == "tps":
            shape.tps = float(value)
        elif key == "ttft":
            shape.ttft_ms = float(value)
        elif key == "tools":
            shape.tools = value != "0"
        else:
            shape.rid = value
    return shape


@dataclass(slots=True)
class RequestRecord:
    conn: int
    path: str
    model: str
    rid: str | None
    tokens: int
    tps: float
    ttft_ms: float
    arrived: float
    first_token_at: float | None = None
    chunks: int = 0  # SSE events written (role, content, finish, usage, [DONE])
    tokens_written: int = 0
    finished_at: float | None = None
    conn_closed_at: float | None = None
    closed_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class UpstreamState:
    default: StreamShape
    records: list[RequestRecord] = field(default_factory=list)
    next_conn: int = 0
    open_connections: int = 0


class UpstreamProtocol(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection; requests are answered one after another."""

    __slots__ = (
        "_buf",
        "_close_after",
        "_conn",
        "_frames",
        "_interval",
        "_loop",
        "_next_at",
        "_paused",
        "_rec",
        "_recs",
        "_remaining",
        "_sent",
        "_start",
        "_state",
        "_timer",
        "_transport",
    )

    def __init__(self, state: UpstreamState) -> None:
        self._state = state
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._rec: RequestRecord | None = None  # the stream being written, if any
        self._recs: list[RequestRecord] = []  # every streaming request on this connection
        self._conn = state.next_conn
        state.next_conn += 1
        self._paused = False
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._remaining = 0
        self._sent = 0
        self._start = 0.0
        self._interval = 0.0
        self._next_at = 0.0
        self._close_after = False
        self._frames = (ROLE_FRAME, TOKEN_FRAMES, FINISH_FRAME)  # first, deltas, finish

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._state.open_connections += 1
        # Pause (and so stop producing) once this much is unsent: the upstream must not
        # absorb a slow gateway's backpressure into its own memory.
        self._transport.set_write_buffer_limits(high=64 * 1024)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._rec is None:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._state.open_connections -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rec = self._rec
        if rec is not None:
            # Closed while streaming: the gateway gave up on this generation.
            rec.conn_closed_at = time.monotonic()
            rec.closed_by = "client"
        # Records of finished requests on this connection learn when it closed, too.
        for other in self._recs:
            if other.conn_closed_at is None:
                other.conn_closed_at = time.monotonic()
                other.closed_by = "server" if self._close_after else "client"
        self._rec = None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._rec is not None and self._timer is None:
            self._tick()

    # -- requests -----------------------------------------------------------------------

    def _process(self) -> None:
        transport = self._transport
        assert transport is not None
        while self._rec is None and not transport.is_closing():
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buf[:end].decode("latin-1").split("\r\n")
            method, target, _version = head[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self._buf) < end + 4 + length:
                return
            body = self._buf[end + 4 : end + 4 + length]
            self._buf = self._buf[end + 4 + length :]
            self._close_after = headers.get("connection", "").lower() == "close"
            self._dispatch(method, target.partition("?")[0], headers, body)

    def _reply(self, status: str, payload: bytes, content_type: bytes) -> None:
        transport = self._transport
        assert transport is not None
        transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (status.encode(), content_type, len(payload), payload)
        )
        if self._close_after:
            transport.close()

    def _dispatch(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> None:
        state = self._state
        if path == "/stats":
            stats = {
                "now": time.monotonic(),
                "open_connections": state.open_connections,
                "requests": [rec.as_json() for rec in state.records],
            }
            self._reply("200 OK", orjson.dumps(stats), b"application/json")
            return
        if path == "/reset":
            state.records.clear()
            self._reply("200 OK", b'{"ok":true}', b"application/json")
            return
        if path.endswith("/models"):
            self._reply(
                "200 OK",
                b'{"object":"list","data":[{"id":"bench","object":"model","owned_by":"bench"}]}',
                b"application/json",
            )
            return
        if method != "POST" or not path.endswith("/chat/completions"):
            self._reply("404 Not Found", b'{"error":{"message":"not found"}}', b"application/json")
            return
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            self._reply("400 Bad Request", b'{"error":{"message":"bad json"}}', b"application/json")
            return
        model = str(body.get("model", ""))
        shape = parse_shape(model, headers, body, state.default)
        if not body.get("stream"):
            self._reply_whole(shape)
            return
        rec = RequestRecord(
            conn=self._conn,
            path=path,
            model=model,
            rid=shape.rid,
            tokens=shape.tokens,
            tps=shape.tps,
            ttft_ms=shape.ttft_ms,
            arrived=time.monotonic(),
        )
        state.records.append(rec)
        self._recs.append(rec)
        self._start_stream(rec, shape)

    def _reply_whole(self, shape: StreamShape) -> None:
        text = "".join(_TOKENS[i % len(_TOKENS)] for i in range(shape.tokens))
        completion = {
            "id": "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL",
            "object": "chat.completion",
            "created": 1727346168,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": shape.tokens,
                "total_tokens": PROMPT_TOKENS + shape.tokens,
            },
        }
        self._reply("200 OK", orjson.dumps(completion), b"application/json")

    # -- streaming ----------------------------------------------------------------------

    def _start_stream(self, rec: RequestRecord, shape: StreamShape) -> None:
        transport = self._transport
        assert transport is not None
        self._rec = rec
        self._remaining = shape.tokens
        self._sent = 0
        if shape.tools:
            self._frames = (ROLE_FRAME + CALL_FRAME, ARGUMENT_FRAMES, TOOLS_FINISH_FRAME)
        else:
            self._frames = (ROLE_FRAME, TOKEN_FRAMES, FINISH_FRAME)
        # Headers go out at once, as a real upstream's do; the first token after TTFT.
        transport.write(STREAM_HEAD)
        self._start = self._loop.time() + shape.ttft_ms / 1000.0
        self._interval = 1.0 / shape.tps if shape.tps > 0 else 0.0
        self._next_at = self._start
        if shape.ttft_ms > 0:
            self._timer = self._loop.call_at(self._start, self._tick)
        else:
            self._tick()

    def _tick(self) -> None:
        self._timer = None
        rec = self._rec
        transport = self._transport
        if rec is None or transport is None or transport.is_closing():
            return
        if self._paused:
            return  # resume_writing() calls back in
        pieces: list[bytes] = []
        first, frames, finish = self._frames
        if self._sent == 0:
            pieces.append(first)
            rec.chunks += 1
            rec.first_token_at = time.monotonic()
        if self._interval > 0:
            # Every token due by now: one per tick normally, several after a stall.
            due = int((self._loop.time() - self._start) / self._interval) + 1
            count = max(1, min(self._remaining, due - self._sent))
        else:
            count = min(self._remaining, BATCH_BYTES // len(TOKEN_FRAMES[0]) + 1)
        n_frames = len(frames)
        base = self._sent
        pieces.extend(frames[(base + i) % n_frames] for i in range(count))
        self._sent += count
        self._remaining -= count
        rec.chunks += count
        rec.tokens_written += count
        if self._remaining <= 0:
            pieces += (finish, usage_frame(rec.tokens), DONE_FRAME, LAST_CHUNK)
            rec.chunks += 3
            transport.write(b"".join(pieces))
            self._finish(rec)
            return
        transport.write(b"".join(pieces))
        if self._interval > 0:
            self._timer = self._loop.call_at(self._start + self._sent * self._interval, self._tick)
        elif not self._paused:
            # Yield to the loop between batches so every connection makes progress.
            self._timer = self._loop.call_soon(self._tick)

    def _finish(self, rec: RequestRecord) -> None:
        rec.finished_at = time.monotonic()
        self._rec = None
        transport = self._transport
        assert transport is not None
        if self._close_after:
            transport.close()
        elif self._buf:
            self._process()


async def serve(
    host: str, port: int, default: StreamShape, ready: asyncio.Future[int] | None = None
) -> None:
    state = UpstreamState(default)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(state), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready.set_result(bound)
    print(f"listening {bound}", flush=True)
    async with server:
        await server.serve_forever()


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run under uvloop, as every process of the benchmark does."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--tokens", type=int, default=30, help="default content tokens")
    parser.add_argument("--tps", type=float, default=0.0, help="default tokens/s, 0 = unpaced")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="default time to first token")
    args = parser.parse_args(argv)
    default = StreamShape(args.tokens, args.tps, args.ttft_ms)
    try:
        run(serve(args.host, args.port, default))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
