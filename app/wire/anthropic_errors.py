"""Sluice's errors in Anthropic's words: the error type and the HTTP status Anthropic
uses for it, in Anthropic's envelope `{"type": "error", "error": {"type", "message"}}`.
Pure: no I/O.

The Messages door answers every refusal before its first byte with this body, and a
stream that fails after it with the same envelope as an `event: error` block, so the
`anthropic` SDK raises what it raises against Anthropic itself.

An upstream error keeps the upstream's own kind where Sluice knows it: the Anthropic
provider records a mid-stream error's type (`overloaded_error`, ...) as the error's
code, and an HTTP error status as its number.
"""

from __future__ import annotations

from app.errors import (
    NotFound,
    PayloadTooLarge,
    RateLimited,
    SluiceError,
    Unauthorized,
    Unavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)

# Anthropic's error types and the status it sends each with.
STATUS_OF_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# An upstream's HTTP status that says the client's request is at fault keeps its
# meaning; any other upstream failure is Anthropic's `api_error`.
_UPSTREAM_STATUS_TYPE = {
    "400": "invalid_request_error",
    "404": "not_found_error",
    "413": "request_too_large",
    "429": "rate_limit_error",
    "504": "timeout_error",
    "529": "overloaded_error",
}
# A failure recorded in a stream's log has only Sluice's wire type.
_TYPE_OF_FAILURE = {
    "invalid_request": "invalid_request_error",
    "unauthorized": "authentication_error",
    "not_found": "not_found_error",
    "rate_limited": "rate_limit_error",
    "unavailable": "overloaded_error",
    "shutting_down": "overloaded_error",  # retryable: another instance will answer
    "upstream_timeout": "timeout_error",
    "upstream_error": "api_error",
    "log_lost": "api_error",  # the resume store lost events: not retryable as a resume
    "cancelled": "api_error",
    "abandoned": "api_error",
}


def envelope(kind: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_type(error: SluiceError) -> str:
    """The Anthropic error type of a Sluice error."""
    if isinstance(error, UpstreamRateLimited | RateLimited):
        return "rate_limit_error"
    if isinstance(error, UpstreamTimeout):
        return "timeout_error"
    if isinstance(error, UpstreamError):
        code = error.code or ""
        if code in STATUS_OF_TYPE:
            return code
        return _UPSTREAM_STATUS_TYPE.get(code, "api_error")
    if isinstance(error, Unauthorized):
        return "authentication_error"
    if isinstance(error, NotFound):
        return "not_found_error"
    if isinstance(error, PayloadTooLarge):
        return "request_too_large"
    if isinstance(error, Unavailable):
        return "overloaded_error"
    if error.status == 400 or error.status == 405:
        return "invalid_request_error"
    return _TYPE_OF_FAILURE.get(error.type, "api_error")


def error_status(error: SluiceError) -> int:
    """The status Anthropic would answer with; a 405 stays a 405 (no Anthropic type
    says 'method'), and a 410 a 410: a resume into a log the store lost cannot
    succeed, and the SDK retries the 500 of an `api_error`, never a 410."""
    if error.status in (405, 410):
        return error.status
    return STATUS_OF_TYPE[error_type(error)]


def error_body(error: SluiceError) -> dict[str, object]:
    return envelope(error_type(error), error.message)


def failure_type(failure_type: str, code: str | None = None) -> str:
    """The Anthropic error type of a failure in a stream's log: the upstream's own
    where it named one (an Anthropic upstream's `overloaded_error`), else by its type."""
    if code in STATUS_OF_TYPE:
        return code
    if failure_type == "upstream_error" and code in _UPSTREAM_STATUS_TYPE:
        return _UPSTREAM_STATUS_TYPE[code]
    return _TYPE_OF_FAILURE.get(failure_type, "api_error")
