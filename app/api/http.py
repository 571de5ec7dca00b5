"""Small raw-ASGI helpers shared by the endpoints: bodies, JSON, errors, headers."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from app.errors import (
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    SluiceError,
    Unauthorized,
    UpstreamRateLimited,
)

Headers = Sequence[tuple[bytes, bytes]]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def query_params(scope: Scope) -> dict[str, str]:
    """The query string's parameters; the first occurrence of a name wins."""
    params: dict[str, str] = {}
    raw = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(raw, keep_blank_values=True):
        params.setdefault(key, value)
    return params


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refused with 413 as soon as it passes `limit`.

    A declared Content-Length over the limit is refused before reading; a
    chunked body is counted while it arrives and never buffered past the limit.
    """
    declared = header(scope, b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body over the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("the client went away while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over the limit of {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def send_json(send: Send, status: int, body: object, headers: Headers = ()) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def send_empty(send: Send, status: int, headers: Headers = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": b""})


def error_headers(error: SluiceError) -> list[tuple[bytes, bytes]]:
    if isinstance(error, Unauthorized):
        return [(b"www-authenticate", b"Bearer")]
    retry_after: float | None = None
    if isinstance(error, RateLimited | UpstreamRateLimited):
        retry_after = error.retry_after
    if retry_after is None:
        return []
    return [(b"retry-after", str(max(1, round(retry_after))).encode())]


async def send_error(send: Send, error: SluiceError) -> None:
    await send_json(send, error.status, error.to_openai(), error_headers(error))
