"""Sluice's errors in Anthropic's words: its error types and the statuses it uses."""

from __future__ import annotations

import pytest

from app.errors import (
    InvalidRequest,
    LogLost,
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
from app.wire.anthropic_errors import error_body, error_status, failure_type


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error"),
        (Unauthorized("who"), 401, "authentication_error"),
        (NotFound("gone"), 404, "not_found_error"),
        (PayloadTooLarge("big"), 413, "request_too_large"),
        (RateLimited("slow down"), 429, "rate_limit_error"),
        (UpstreamRateLimited("slow down"), 429, "rate_limit_error"),
        (Unavailable("draining"), 529, "overloaded_error"),
        (UpstreamTimeout("late"), 504, "timeout_error"),
        (UpstreamError("boom", code="overloaded_error"), 529, "overloaded_error"),
        (UpstreamError("boom", code="529"), 529, "overloaded_error"),
        (UpstreamError("bad model", code="404"), 404, "not_found_error"),
        (UpstreamError("boom", code="502"), 500, "api_error"),
        (SluiceError("bug"), 500, "api_error"),
        (LogLost("trimmed"), 410, "api_error"),
    ],
)
def test_each_error_has_anthropic_type_and_status(
    error: SluiceError, status: int, kind: str
) -> None:
    assert error_status(error) == status
    assert error_body(error) == {"type": "error", "error": {"type": kind, "message": error.message}}


@pytest.mark.parametrize(
    ("sluice", "anthropic"),
    [
        ("upstream_error", "api_error"),
        ("upstream_timeout", "timeout_error"),
        ("rate_limited", "rate_limit_error"),
        ("shutting_down", "overloaded_error"),
        ("cancelled", "api_error"),
        ("something_new", "api_error"),
    ],
)
def test_a_failure_in_a_log_maps_to_an_anthropic_type(sluice: str, anthropic: str) -> None:
    assert failure_type(sluice) == anthropic


@pytest.mark.parametrize(
    ("code", "anthropic"),
    [
        ("overloaded_error", "overloaded_error"),
        ("rate_limit_error", "rate_limit_error"),
        ("529", "overloaded_error"),
        ("502", "api_error"),
        ("server_error", "api_error"),
        (None, "api_error"),
    ],
)
def test_an_upstream_failure_keeps_the_kind_the_upstream_named(
    code: str | None, anthropic: str
) -> None:
    assert failure_type("upstream_error", code) == anthropic
