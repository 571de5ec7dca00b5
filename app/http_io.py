"""Raw-ASGI helpers below both the endpoints and the security middleware:
headers, query parameters, JSON and error responses. Nothing here may import
`app.api` or `app.security` (both import it)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

import orjson
from starlette.types import Scope, Send

from app.errors import RateLimited, SluiceError, Unauthorized, Unavailable, UpstreamRateLimited

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
    if isinstance(error, RateLimited | UpstreamRateLimited | Unavailable):
        retry_after = error.retry_after
    if retry_after is None:
        return []
    return [(b"retry-after", str(max(1, round(retry_after))).encode())]


async def send_error(send: Send, error: SluiceError) -> None:
    await send_json(send, error.status, error.to_openai(), error_headers(error))
