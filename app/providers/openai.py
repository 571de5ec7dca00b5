"""OpenAI Chat Completions, and every OpenAI-compatible server, as a Provider.

The official SDK resolves who Sluice is to the upstream: base URL, API key,
organisation and project (from its arguments or the environment it
documents) and its identifying headers, once, at construction. Strategy: the
streaming POST itself goes over a plain aiohttp session, and the body is
parsed by the pure decoders. The SDK's request path (options, httpx2 request
and response objects, its transport adapter) costs about 0.4 ms of CPU per
request over aiohttp's own (measured: 580-640 against 170-190 µs per
five-token stream from the loopback fake), more than the whole time to first
token Sluice may add, and four more generator layers per network read. Its
typed HTTP errors are replaced by reading the error body here, as the SDK
does; its retries are off anyway (retrying is the fallback layer's job).
The `finally` releases the response on every exit, including
`aclose()`/cancellation mid-stream, which closes an unfinished connection.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import aiohttp
import httpx2
import openai
import orjson
from aiohttp.connector import AddrInfoType

from app.errors import UpstreamError
from app.providers.base import (
    IMAGE_FEATURES,
    JSON_FEATURES,
    TOOL_FEATURES,
    ChatRequest,
    Chunk,
)
from app.providers.edge import CONNECT_TIMEOUT_S, status_error, transport_error
from app.providers.openai_chunks import ChatChunkParser
from app.providers.openai_request import PASSTHROUGH, request_body
from app.providers.sse_decode import SSEDataDecoder

NO_KEY = "sluice-no-key"  # local servers ignore the key, but the SDK wants one
# Strategy: aiohttp keeps reading an upstream into its buffer until it holds
# twice this many bytes. While a slow client holds the producer back, that
# buffer is memory per stream; the kernel's socket buffer beyond it is not.
READ_BUFSIZE = 2**14
# Likewise one read of the socket lands whole in that buffer, however far over
# it: a fixed receive buffer bounds a read (loopback grows it to megabytes).
RCVBUF = 2**16
MAX_ERROR_BODY = 2**16  # of an error response, read to find its message
ERROR_BODY_TIMEOUT_S = 5.0
# Failures below HTTP, on connect or mid-body.
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def _socket(addr_info: AddrInfoType) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    return sock


def upstream_session() -> aiohttp.ClientSession:
    """The pool of one upstream: the SDK's limits, a small read buffer, no total timeout."""
    limits = openai.DEFAULT_CONNECTION_LIMITS
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections or 0,
        keepalive_timeout=limits.keepalive_expiry,
        ssl=httpx2.create_ssl_context(),
        socket_factory=_socket,
    )
    # Reads may wait as long as the model thinks: Sluice's own first-token and
    # idle timeouts bound every stream.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
    return aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFSIZE, timeout=timeout)


def env_proxy(url: str) -> str | None:
    """The proxy that HTTPS_PROXY / HTTP_PROXY / NO_PROXY name for `url`, as the
    SDK's client would use. Strategy: read once, at start-up; aiohttp's
    `trust_env` reads the environment and ~/.netrc on every request (~0.3 ms)."""
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def sdk_headers(client: openai.AsyncOpenAI) -> dict[str, str]:
    """The headers the SDK would send that mean something to the upstream: auth,
    organisation, project, user agent. (Its eight `X-Stainless-*` platform
    headers are telemetry; they cost every request ~1 KB and their parsing.)"""
    headers = {**client.default_headers, **client.auth_headers}
    return {
        name: value
        for name, value in headers.items()
        if isinstance(value, str) and not name.lower().startswith("x-stainless")
    }


OPENAI_HOST = "api.openai.com"


def max_tokens_field_for(base_url: str | None) -> str:
    """api.openai.com wants `max_completion_tokens` (its reasoning models reject
    `max_tokens`); every other server gets `max_tokens`, the only one most
    compatible servers know (llama.cpp ignores the other and runs past the
    limit). No base URL means the SDK's default, OpenAI itself."""
    if base_url is None:
        return "max_completion_tokens"
    host = urlsplit(base_url).hostname or ""
    return "max_completion_tokens" if host == OPENAI_HOST else "max_tokens"


# Everything a compatible server may honour is passed on; the server decides.
FEATURES = TOOL_FEATURES | IMAGE_FEATURES | JSON_FEATURES | {"reasoning_effort", "message_name"}


class OpenAIProvider:
    """`max_tokens_field`: None chooses by the base URL (`max_tokens_field_for`);
    `vision`: False refuses image parts (a server that would ignore them)."""

    def __init__(
        self,
        name: str,
        *,
        api_key: str | None,
        base_url: str | None = None,
        max_tokens_field: str | None = None,
        vision: bool = True,
    ) -> None:
        self.name = name
        features = FEATURES if vision else FEATURES - IMAGE_FEATURES
        self.accepts = frozenset(PASSTHROUGH) | features
        self._missing_key = api_key is None
        self._max_tokens_field = max_tokens_field or max_tokens_field_for(base_url)
        sdk = openai.AsyncOpenAI(api_key=api_key or NO_KEY, base_url=base_url, max_retries=0)
        self._sdk = sdk
        self._url = str(sdk.base_url.join("chat/completions"))
        self._headers = sdk_headers(sdk)
        self._proxy = env_proxy(self._url)
        self._session: aiohttp.ClientSession | None = None  # made in the loop that uses it

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        if self._missing_key:
            raise UpstreamError(f"{self.name}: no API key configured", code="missing_api_key")
        if self._session is None:
            self._session = upstream_session()
        try:
            response = await self._session.post(
                self._url,
                # Not kept in a local: orjson's bytes hold ~4 KB, for as long as the stream.
                data=orjson.dumps(request_body(request, model, self._max_tokens_field)),
                headers=self._headers,
                proxy=self._proxy,
                allow_redirects=False,  # as the SDK: a redirect is an error to report
            )
        except _TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.name) from exc
        decoder = SSEDataDecoder()
        parser = ChatChunkParser(self.name)
        try:
            if response.status >= 300:
                raise await self._status_error(response)
            async for piece in response.content.iter_any():
                for data in decoder.feed(piece):
                    for chunk in parser.feed(data):
                        yield chunk
                    if parser.done:
                        break
                if parser.done:
                    break
        except _TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.name) from exc
        finally:
            response.release()
        yield parser.finish()

    async def _status_error(self, response: aiohttp.ClientResponse) -> UpstreamError:
        raw = b""
        try:
            async with asyncio.timeout(ERROR_BODY_TIMEOUT_S):
                while len(raw) < MAX_ERROR_BODY:  # `read(n)` returns what has arrived
                    piece = await response.content.read(MAX_ERROR_BODY - len(raw))
                    if not piece:
                        break
                    raw += piece
        except _TRANSPORT_ERRORS:
            pass  # the status alone still says what happened
        return error_from_body(self.name, response.status, raw, response.headers)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self._sdk.close()


def error_from_body(
    provider: str, status: int, raw: bytes, headers: Mapping[str, str]
) -> UpstreamError:
    """An error status with its body: `{"error": {...}}` (OpenAI), or the error
    object itself (some compatible servers), or anything else."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if isinstance(body.get("error"), dict):
        body = body["error"]
    message = body.get("message")
    error = status_error(provider, status, str(message) if message else None, headers)
    if status == 429 and "insufficient_quota" in (body.get("code"), body.get("type")):
        # Same status as a rate limit, but waiting does not refill a quota.
        return UpstreamError(error.message, retryable=False, code="insufficient_quota")
    return error
