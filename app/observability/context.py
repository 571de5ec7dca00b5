"""Per-request context: a request id on every log line, and the arrival time.

`RequestContext` is pure ASGI middleware (never BaseHTTPMiddleware, which
hides `http.disconnect` from streaming endpoints). It accepts a client's
`X-Request-Id` when it is short and plain, otherwise makes one, echoes it in
the response header, and binds it with structlog's contextvars. The
generation a request starts runs in a task created inside that context, so
its lines carry the same id. The arrival time is what a stream's time to
first token is measured from.
"""

from __future__ import annotations

import re
import secrets
import time
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_MAX_PATH_CHARS = 200

_arrived: ContextVar[float | None] = ContextVar("sluice_request_arrived", default=None)
log = structlog.get_logger("sluice.http")


def request_arrival() -> float:
    """`time.monotonic()` when the current request reached the app (now, outside one)."""
    arrived = _arrived.get()
    return time.monotonic() if arrived is None else arrived


def new_request_id() -> str:
    return secrets.token_hex(16)


def accepted_request_id(value: bytes | None) -> str | None:
    """The client's id if it is safe to log and echo: printable, no spaces, short."""
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    return text if _SANE.fullmatch(text) else None


def _client_request_id(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            return bytes(value)
    return None


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()
        request_id = accepted_request_id(_client_request_id(scope)) or new_request_id()
        echoed = (HEADER, request_id.encode())
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        token = _arrived.set(arrived)
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    _log_request(scope, status, time.monotonic() - arrived)
        finally:
            _arrived.reset(token)


def _log_request(scope: Scope, status: int, seconds: float) -> None:
    """One line per request; never the query string, which may hold a prompt or a token."""
    path: str = scope["path"]
    emit = log.debug if path in _QUIET_PATHS else log.info
    emit(
        "http.request",
        method=scope["method"],
        path=path[:_MAX_PATH_CHARS],
        status=status,
        duration_ms=round(seconds * 1000, 1),
    )
