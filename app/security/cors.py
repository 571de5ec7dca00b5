"""CORS for browser frontends, as pure ASGI middleware (never BaseHTTPMiddleware,
which would hide `http.disconnect` from the SSE responder).

Origins come from SLUICE_CORS_ORIGINS; none is allowed by default, and `*`
allows any. Preflights are answered here; other requests pass through, and
an allowed origin's responses get the headers a browser needs to read them
(`X-Stream-Id` among the exposed ones). Credentials (cookies) are not used:
a browser sends its key in `Authorization` or opens a signed stream URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import InvalidRequest
from app.http_io import header, send_empty, send_error

ALLOW_METHODS = b"GET, POST, DELETE, OPTIONS"
# The last four are what Anthropic's clients send to the Messages door.
ALLOW_HEADERS = (
    b"Authorization, Content-Type, Last-Event-ID, Accept, Cache-Control, X-Api-Key, "
    b"Anthropic-Version, Anthropic-Beta, Anthropic-Dangerous-Direct-Browser-Access"
)
EXPOSE_HEADERS = b"X-Stream-Id, Retry-After, Location"
MAX_AGE_S = b"600"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    origins: frozenset[str]
    any_origin: bool

    @classmethod
    def of(cls, origins: Sequence[str]) -> CorsPolicy:
        cleaned = frozenset(o.rstrip("/") for o in origins)
        return cls(cleaned - {"*"}, "*" in cleaned)

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins


def _response_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", EXPOSE_HEADERS),
        (b"vary", b"Origin"),
    ]


def _preflight_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", ALLOW_METHODS),
        (b"access-control-allow-headers", ALLOW_HEADERS),
        (b"access-control-max-age", MAX_AGE_S),
        (b"vary", b"Origin"),
    ]


class CORS:
    """`origins_of(scope)` gives the allowed origins; they are read on the first
    request because settings are only loaded by the lifespan."""

    def __init__(self, app: ASGIApp, origins_of: Callable[[Scope], Sequence[str]]) -> None:
        self._app = app
        self._origins_of = origins_of
        self._policy: CorsPolicy | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = header(scope, b"origin") if scope["type"] == "http" else None
        if origin is None:
            await self._app(scope, receive, send)
            return
        if self._policy is None:
            self._policy = CorsPolicy.of(self._origins_of(scope))
        allowed = self._policy.allows(origin)
        if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method"):
            await self._preflight(send, origin, allowed)
        elif allowed:
            await self._app(scope, receive, _with_headers(send, _response_headers(origin)))
        else:
            await self._app(scope, receive, send)  # no CORS headers: the browser hides it

    async def _preflight(self, send: Send, origin: str, allowed: bool) -> None:
        if allowed:
            await send_empty(send, 204, _preflight_headers(origin))
        else:
            await send_error(
                send, InvalidRequest("this origin is not allowed (SLUICE_CORS_ORIGINS)")
            )


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return sending
