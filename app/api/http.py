"""Reading request bodies for the endpoints (the helpers the security
middleware shares with them live in `app.http_io`)."""

from __future__ import annotations

from starlette.types import Receive, Scope

from app.errors import InvalidRequest, PayloadTooLarge
from app.http_io import header


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
