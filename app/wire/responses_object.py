"""The OpenAI Responses `response` object, folded from a stream's log. Pure.

A response is a view of one stream: its `ResponseHead` (what the request
asked for, echoed back as OpenAI does) plus what the log holds so far. The
fold is deterministic: every process that reads the same log builds the
same object, which is what makes the streamed and the retrieved forms agree.

Strategy: `completed_at` is null. A wall-clock time taken by whichever
process folds the log would differ between a live reader and a replay, and
the terminal event carries no timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson

from app.core.events import Failure, Usage
from app.wire.responses_fold import ResponseFold

Status = Literal["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]
RESPONSE_PREFIX = "resp_"

# The request fields a response echoes, in OpenAI's key order; their values
# come from the request (see app/api/responses_validation.py).
ECHO_FIELDS = (
    "instructions",
    "max_output_tokens",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "metadata",
)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """What stays fixed for a response's life; kept with the response's record."""

    stream_id: str
    created_at: int
    model: str
    background: bool
    echo: tuple[tuple[str, object], ...]  # ECHO_FIELDS, JSON values

    @property
    def response_id(self) -> str:
        return response_id(self.stream_id)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "stream_id": self.stream_id,
                "created_at": self.created_at,
                "model": self.model,
                "background": self.background,
                "echo": dict(self.echo),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ResponseHead:
        data = orjson.loads(raw)
        return cls(
            data["stream_id"],
            data["created_at"],
            data["model"],
            data["background"],
            tuple((name, data["echo"].get(name)) for name in ECHO_FIELDS),
        )


def response_id(stream_id: str) -> str:
    return RESPONSE_PREFIX + stream_id


def stream_id_of(response_id: str) -> str | None:
    """The stream behind a response id, or None when it is not one of ours."""
    if not response_id.startswith(RESPONSE_PREFIX):
        return None
    return response_id[len(RESPONSE_PREFIX) :]


def usage_object(usage: Usage) -> dict[str, object]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens or 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def error_object(failure: Failure) -> dict[str, object]:
    """`response.error`: OpenAI gives a code and a message; the code is Sluice's error type."""
    return {"code": failure.type, "message": failure.message}


_OPENAI_ONLY: dict[str, object] = {
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "prompt_cache_key": None,
    "prompt_cache_retention": None,
    "safety_identifier": None,
    "service_tier": "default",
}
INCOMPLETE_REASON = {"length": "max_output_tokens", "content_filter": "content_filter"}


def status_of(fold: ResponseFold, background: bool) -> Status:
    terminal = fold.terminal
    if terminal is None:
        return "queued" if background and not fold.items else "in_progress"
    if terminal.done is not None:
        return "incomplete" if terminal.done.finish_reason in INCOMPLETE_REASON else "completed"
    assert terminal.failure is not None
    return "cancelled" if terminal.failure.type == "cancelled" else "failed"


def to_object(
    head: ResponseHead, fold: ResponseFold, *, status: Status | None = None
) -> dict[str, object]:
    """The response as the fold has it; `status` overrides the fold's (the preamble's)."""
    status = status or status_of(fold, head.background)
    terminal = fold.terminal
    usage = terminal.done.usage if terminal is not None and terminal.done else None
    failure = terminal.failure if terminal is not None else None
    incomplete: dict[str, object] | None = None
    if terminal is not None and terminal.done is not None:
        reason = INCOMPLETE_REASON.get(terminal.done.finish_reason)
        incomplete = {"reason": reason} if reason else None
    output = [] if status == "queued" else fold.output()
    return response_object(head, status, output, usage, failure, incomplete)


def response_object(
    head: ResponseHead,
    status: Status,
    output: list[dict[str, object]],
    usage: Usage | None,
    failure: Failure | None,
    incomplete: dict[str, object] | None,
) -> dict[str, object]:
    """The `response` object in OpenAI's key order."""
    echo = dict(head.echo)
    body: dict[str, object] = {
        "id": head.response_id,
        "object": "response",
        "created_at": head.created_at,
        "status": status,
        "background": head.background,
        "completed_at": None,
        "error": None if failure is None else error_object(failure),
        "incomplete_details": incomplete,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": head.model,
        "output": output,
    }
    for name in ECHO_FIELDS[2:-1]:
        body[name] = echo.get(name)
    # What OpenAI reports and no other provider has: constant, so clients find the keys.
    body.update(_OPENAI_ONLY)
    body["top_logprobs"] = 0
    body["truncation"] = "disabled"
    body["usage"] = None if usage is None else usage_object(usage)
    body["user"] = None
    body["metadata"] = echo.get("metadata") or {}
    return body
