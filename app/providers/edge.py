"""Translation of HTTP-client failures into the error tree, shared by providers.

The SDKs speak httpx2 and the Ollama client speaks httpx; both run over
aiohttp (httpx-aiohttp), whose exception mapping turns a server that hangs up
into `ConnectTimeout`. So whether a failure was a timeout is decided from the
cause chain, not from the wrapper's class: a dropped connection must be a
retryable `upstream_error`, not an `upstream_timeout`.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping

import aiohttp
import httpx
import httpx2

from app.errors import UpstreamError, UpstreamTimeout, upstream_status_error

# Connect must not hang; reads may wait as long as the model thinks, because
# Sluice's own first-token and idle timeouts bound every stream.
CONNECT_TIMEOUT_S = 10.0
# The longest retry-after kept on an error; beyond it, "later" is all it says.
_MAX_RETRY_AFTER_S = 120.0

TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx2.TransportError)


def is_timeout(exc: BaseException) -> bool:
    """True when the root of a failure is a timeout, not a lost connection."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError | asyncio.TimeoutError):
            return True
        if isinstance(seen, aiohttp.ClientError | OSError):
            return False
        seen = seen.__cause__
    return isinstance(exc, httpx.TimeoutException | httpx2.TimeoutException)


def transport_error(exc: BaseException, provider: str) -> UpstreamError:
    """A failure below HTTP (connect, read, reset), before or during a stream."""
    if is_timeout(exc):
        return UpstreamTimeout(f"{provider}: timed out talking to the upstream")
    return UpstreamError(f"{provider}: connection to the upstream failed", retryable=True)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return _clamp(float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return _clamp(float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return _clamp(when.timestamp() - time.time())


def _clamp(seconds: float) -> float | None:
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return None
    return min(seconds, _MAX_RETRY_AFTER_S)


def status_error(
    provider: str, status: int, message: str | None, headers: Mapping[str, str]
) -> UpstreamError:
    """An HTTP error status from the upstream, before any byte of a stream."""
    text = f"{provider} returned {status}: {message or 'no message'}"
    return upstream_status_error(status, text, retry_after=retry_after(headers))
