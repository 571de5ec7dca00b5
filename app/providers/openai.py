"""OpenAI Chat Completions, and every OpenAI-compatible server, as a Provider.

The official SDK does what it is good at (base URL, auth headers, typed HTTP
errors) over its aiohttp transport; the body is read raw and parsed by the
pure decoders, because an SDK model object per token costs ~30x more
(shared/PERFORMANCE.md). The `finally` closes the HTTP response on every
exit, including `aclose()`/cancellation of the iterator mid-stream.

Strategy: the request body is built here and posted as JSON bytes through
the client's generic `post`, with the SDK's own raw-streaming marker header
(what `with_streaming_response` sets): `chat.completions.create` would
otherwise run its TypedDict transform over the body on every request, about
a third of a stream's set-up time in the gateway.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import aiohttp
import httpx2
import openai
import orjson
from aiohttp.connector import AddrInfoType
from openai._vendor.httpx_aiohttp import AiohttpTransport

from app.errors import UpstreamError
from app.providers.base import ChatRequest, Chunk
from app.providers.edge import CONNECT_TIMEOUT_S, TRANSPORT_ERRORS, status_error, transport_error
from app.providers.openai_chunks import ChatChunkParser
from app.providers.sse_decode import SSEDataDecoder

# Request options passed through when the client set them: they change the answer.
PASSTHROUGH = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "user")
NO_KEY = "sluice-no-key"  # local servers ignore the key, but the SDK wants one
# Strategy: aiohttp keeps reading an upstream into its buffer until it holds
# twice this many bytes. While a slow client holds the producer back, that
# buffer is memory per stream; the kernel's socket buffer beyond it is not.
READ_BUFSIZE = 2**14
# Likewise one read of the socket lands whole in that buffer, however far over
# it: a fixed receive buffer bounds a read (loopback grows it to megabytes).
RCVBUF = 2**16
# `with_streaming_response`'s marker: `post` returns the httpx response unread.
_RAW_STREAM = {"X-Stainless-Raw-Response": "stream", "Content-Type": "application/json"}


def _socket(addr_info: AddrInfoType) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    return sock


def aiohttp_client(timeout: httpx2.Timeout) -> httpx2.AsyncClient:
    """The SDK's `DefaultAioHttpClient`, with a smaller aiohttp read buffer."""
    limits = openai.DEFAULT_CONNECTION_LIMITS

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            keepalive_timeout=limits.keepalive_expiry,
            ssl=httpx2.create_ssl_context(),
            socket_factory=_socket,
        )
        return aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFSIZE)

    new_session: Callable[[], aiohttp.ClientSession] = session
    transport = AiohttpTransport(limits=limits, client=new_session)
    return openai.DefaultAioHttpClient(timeout=timeout, transport=transport)


class OpenAIProvider:
    accepts = frozenset(PASSTHROUGH)
    """`max_tokens_field`: api.openai.com wants `max_completion_tokens` (its
    reasoning models reject `max_tokens`); compatible servers mostly know
    only `max_tokens`."""

    def __init__(
        self,
        name: str,
        *,
        api_key: str | None,
        base_url: str | None = None,
        max_tokens_field: str = "max_tokens",
        max_retries: int = 0,
    ) -> None:
        self.name = name
        self._missing_key = api_key is None
        self._max_tokens_field = max_tokens_field
        timeout = httpx2.Timeout(None, connect=CONNECT_TIMEOUT_S)
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            # Strategy: no SDK retries. Before the first token, retrying is the
            # fallback layer's job (it knows the other targets and the deadline).
            max_retries=max_retries,
            timeout=timeout,
            http_client=aiohttp_client(timeout),
        )

    def _body(self, request: ChatRequest, model: str) -> dict[str, object]:
        extra: dict[str, object] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.max_tokens is not None:
            extra[self._max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            extra["temperature"] = request.temperature
        for key in PASSTHROUGH:
            value = request.option(key)
            if value is not None:
                extra[key] = value
        return extra

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        if self._missing_key:
            raise UpstreamError(f"{self.name}: no API key configured", code="missing_api_key")
        content = orjson.dumps(self._body(request, model))
        decoder = SSEDataDecoder()
        parser = ChatChunkParser(self.name)
        with self._translated():
            response = await self._client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                content=content,
                options={"headers": _RAW_STREAM},
            )
            try:
                async for piece in response.aiter_bytes():
                    for data in decoder.feed(piece):
                        chunk = parser.feed(data)
                        if chunk is not None:
                            yield chunk
                        if parser.done:
                            break
                    if parser.done:
                        break
            finally:
                await response.aclose()
        yield parser.finish()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except openai.APIConnectionError as exc:
            raise transport_error(exc, self.name) from exc
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.name) from exc

    def _status_error(self, exc: openai.APIStatusError) -> UpstreamError:
        body = exc.body if isinstance(exc.body, dict) else {}
        if isinstance(body.get("error"), dict):  # compatible servers may not unwrap
            body = body["error"]
        message = body.get("message")
        error = status_error(
            self.name, exc.status_code, str(message) if message else None, exc.response.headers
        )
        if exc.status_code == 429 and "insufficient_quota" in (body.get("code"), body.get("type")):
            # Same status as a rate limit, but waiting does not refill a quota.
            return UpstreamError(error.message, retryable=False, code="insufficient_quota")
        return error

    async def aclose(self) -> None:
        await self._client.close()
