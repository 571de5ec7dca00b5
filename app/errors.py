"""Every error Sluice reports, as one tree.

    SluiceError                       type              HTTP  retryable
    ├── InvalidRequest                invalid_request   400
    │   └── BadLastEventId            invalid_request   400
    ├── Unauthorized                  unauthorized      401
    ├── NotFound                      not_found         404
    ├── MethodNotAllowed              invalid_request   405
    ├── PayloadTooLarge               invalid_request   413
    ├── RateLimited                   rate_limited      429   yes  (carries retry_after)
    ├── Unavailable                   unavailable       503   yes
    ├── LogLost                       log_lost          410        (events gone from the store)
    └── StreamEnded  (terminal SSE errors that are not the upstream's fault)
    │   ├── Cancelled                 cancelled         499
    │   ├── Abandoned                 abandoned         499
    │   └── ShuttingDown              shutting_down     503   yes
    └── UpstreamError                 upstream_error    502   per instance
        ├── UpstreamTimeout           upstream_timeout  504   yes
        └── UpstreamRateLimited       rate_limited      429   yes

Each error knows its wire `type`, its HTTP status and whether a retry may help.
Foreign exceptions (SDK, httpx, redis) are translated once, at the edge that
calls them, with `raise ... from exc`; nothing above the edges sees them.
This module is pure: no I/O.
"""

from __future__ import annotations

from typing import ClassVar


class SluiceError(Exception):
    type: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable
        self.param = param
        self.code = code

    def to_openai(self) -> dict[str, object]:
        """OpenAI's error body, used for every HTTP error response."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_event(self) -> dict[str, object]:
        """The payload of a terminal SSE `error` event."""
        return {"error": {"type": self.type, "message": self.message, "retryable": self.retryable}}


class InvalidRequest(SluiceError):
    type = "invalid_request"
    status = 400


class BadLastEventId(InvalidRequest):
    pass


class Unauthorized(SluiceError):
    type = "unauthorized"
    status = 401


class NotFound(SluiceError):
    type = "not_found"
    status = 404


class MethodNotAllowed(SluiceError):
    type = "invalid_request"
    status = 405


class PayloadTooLarge(SluiceError):
    type = "invalid_request"
    status = 413


class RateLimited(SluiceError):
    type = "rate_limited"
    status = 429
    default_retryable = True

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class Unavailable(SluiceError):
    type = "unavailable"
    status = 503
    default_retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class LogLost(SluiceError):
    """The resume store no longer has events a reader needs (evicted, trimmed, or
    lost in a Redis restarted without persistence): no exact resume is possible."""

    type = "log_lost"
    status = 410


class StreamEnded(SluiceError):
    """A stream stopped for a reason on Sluice's side, not the upstream's."""


class Cancelled(StreamEnded):
    type = "cancelled"
    status = 499


class Abandoned(StreamEnded):
    type = "abandoned"
    status = 499


class ShuttingDown(StreamEnded):
    type = "shutting_down"
    status = 503
    default_retryable = True


class UpstreamError(SluiceError):
    type = "upstream_error"
    status = 502


class UpstreamTimeout(UpstreamError):
    type = "upstream_timeout"
    status = 504
    default_retryable = True


class UpstreamRateLimited(UpstreamError):
    type = "rate_limited"
    status = 429
    default_retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


def upstream_status_error(
    status: int, message: str, *, retry_after: float | None = None
) -> UpstreamError:
    """Map an upstream HTTP status to the error tree (shared by every provider)."""
    if status == 429:
        return UpstreamRateLimited(message, retry_after=retry_after, code=str(status))
    if status in (408, 504):
        return UpstreamTimeout(message, code=str(status))
    retryable = status in (409, 425) or status >= 500
    return UpstreamError(message, retryable=retryable, code=str(status))
