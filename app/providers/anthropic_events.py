"""Anthropic Messages stream events -> `Chunk`s.

PURE: no I/O. Follows the documented event order (message_start, content
blocks, message_delta, message_stop) and the versioning rule that unknown
event and delta types are ignored. Dispatches on the SSE `event:` name, as
the official SDK does, falling back to the JSON `type` for unnamed events.
Only `text_delta`s become text: thinking, signatures and tool-input JSON are
not part of Sluice's text stream.
"""

from __future__ import annotations

from app.core.events import FinishReason, Usage
from app.errors import UpstreamError, UpstreamRateLimited
from app.providers.base import Chunk
from app.providers.openai_chunks import parse_json
from app.providers.sse_decode import SSEEvent

_STOP: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Mid-stream error types that a second attempt (or another target) can cure.
_RETRYABLE = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}


def anthropic_error(envelope: dict[str, object], provider: str) -> UpstreamError:
    """`{"type": "error", "error": {"type", "message"}}`, from a stream or a body."""
    error = envelope.get("error")
    kind = message = ""
    if isinstance(error, dict):
        kind = str(error.get("type") or "")
        message = str(error.get("message") or "")
    text = f"{provider}: {message or kind or 'error in stream'}"
    if kind == "rate_limit_error":
        return UpstreamRateLimited(text, code=kind)
    return UpstreamError(text, retryable=kind in _RETRYABLE, code=kind or None)


def _int(mapping: object, key: str) -> int | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, int) else None


class MessageEventParser:
    """State of one Messages stream: usage so far, stop reason, and whether
    `message_stop` came (without it the stream was cut short)."""

    __slots__ = ("_input", "_output", "_provider", "_stop", "done")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._input = 0
        self._output = 0
        self._stop: FinishReason | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> Chunk | None:
        obj = parse_json(event.data, self._provider)
        kind = event.event if event.event != "message" else str(obj.get("type", ""))
        if kind == "content_block_delta":
            return self._delta(obj.get("delta"))
        if kind == "message_start":
            message = obj.get("message")
            self._count(message.get("usage") if isinstance(message, dict) else None)
        elif kind == "message_delta":
            self._message_delta(obj)
        elif kind == "message_stop":
            self.done = True
            return Chunk(finish_reason=self._stop or "stop", usage=self.usage)
        elif kind == "error":
            raise anthropic_error(obj, self._provider)
        return None  # ping, content_block_start/stop and anything newer

    @property
    def usage(self) -> Usage:
        return Usage(input_tokens=self._input, output_tokens=self._output)

    def _delta(self, delta: object) -> Chunk | None:
        if not isinstance(delta, dict) or delta.get("type") != "text_delta":
            return None
        text = delta.get("text")
        return Chunk(text=text) if isinstance(text, str) and text else None

    def _message_delta(self, obj: dict[str, object]) -> None:
        delta = obj.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if isinstance(reason, str):
            self._stop = _STOP.get(reason, "stop")
        self._count(obj.get("usage"))

    def _count(self, usage: object) -> None:
        # Counts in message_delta are cumulative totals, not increments.
        input_tokens = _int(usage, "input_tokens")
        output_tokens = _int(usage, "output_tokens")
        if input_tokens is not None:
            self._input = input_tokens
        if output_tokens is not None:
            self._output = output_tokens

    def check_complete(self) -> None:
        if not self.done:
            raise UpstreamError(
                f"{self._provider}: stream ended before message_stop", retryable=True
            )
