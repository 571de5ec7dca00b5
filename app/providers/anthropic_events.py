"""Anthropic Messages stream events -> `Chunk`s.

PURE: no I/O. Follows the documented event order (message_start, content
blocks, message_delta, message_stop) and the versioning rule that unknown
event and delta types are ignored. Dispatches on the SSE `event:` name, as
the official SDK does, falling back to the JSON `type` for unnamed events.
Every content delta becomes a typed chunk: `text_delta` text,
`thinking_delta` reasoning, `signature_delta` the thinking's signature, a
`redacted_thinking` block its opaque data (both byte for byte: the strings are
passed on as decoded, never re-encoded or trimmed), a `tool_use` block a tool
call's start and each `input_json_delta` an arguments fragment, relayed as
it comes. Tool calls are numbered from 0 in the order their blocks start.
"""

from __future__ import annotations

from app.core.events import DeltaKind, FinishReason, ToolCall, UpstreamStop, Usage
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
# Reasons the finish reason alone loses: kept for the Messages door.
_TOLD_APART = frozenset({"stop_sequence", "pause_turn", "refusal", "model_context_window_exceeded"})
# Delta type -> (the field holding its text, the chunk's kind).
_DELTAS: dict[str, tuple[str, DeltaKind]] = {
    "text_delta": ("text", "token"),
    "thinking_delta": ("thinking", "reasoning"),
    "signature_delta": ("signature", "reasoning_signature"),
    "input_json_delta": ("partial_json", "tool_call_delta"),
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

    __slots__ = ("_cached", "_calls", "_input", "_output", "_provider", "_stop", "_told", "done")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._input = 0
        self._output = 0
        self._cached: int | None = None
        self._stop: FinishReason | None = None
        self._told: UpstreamStop | None = None
        self._calls: dict[object, int] = {}  # content block index -> tool call index
        self.done = False

    def feed(self, event: SSEEvent) -> Chunk | None:
        obj = parse_json(event.data, self._provider)
        kind = event.event if event.event != "message" else str(obj.get("type", ""))
        if kind == "content_block_delta":
            return self._delta(obj.get("delta"), obj.get("index"))
        if kind == "content_block_start":
            return self._block_start(obj.get("content_block"), obj.get("index"))
        if kind == "message_start":
            message = obj.get("message")
            self._count(message.get("usage") if isinstance(message, dict) else None)
        elif kind == "message_delta":
            self._message_delta(obj)
        elif kind == "message_stop":
            self.done = True
            return Chunk(finish_reason=self._stop or "stop", usage=self.usage, stop=self._told)
        elif kind == "error":
            raise anthropic_error(obj, self._provider)
        return None  # ping, content_block_stop and anything newer

    @property
    def usage(self) -> Usage:
        return Usage(self._input, self._output, cached_tokens=self._cached)

    def _delta(self, delta: object, block: object) -> Chunk | None:
        if not isinstance(delta, dict):
            return None
        field_kind = _DELTAS.get(str(delta.get("type")))
        if field_kind is None:
            return None
        field, kind = field_kind
        text = delta.get(field)
        if not isinstance(text, str) or not text:
            return None
        if kind == "tool_call_delta":
            call = self._calls.get(block)
            return None if call is None else Chunk(text, kind=kind, call_index=call)
        return Chunk(text, kind=kind)

    def _block_start(self, block: object, index: object) -> Chunk | None:
        if not isinstance(block, dict):
            return None
        kind = block.get("type")
        if kind == "tool_use":
            call = self._calls[index] = len(self._calls)
            call_id, name = block.get("id"), block.get("name")
            return Chunk(
                kind="tool_call",
                call=ToolCall(call, str(call_id or f"toolu_{call}"), str(name or "")),
            )
        if kind == "redacted_thinking":
            data = block.get("data")
            if isinstance(data, str) and data:
                return Chunk(data, kind="reasoning_redacted")
        return None  # text and thinking blocks start empty; their deltas carry them

    def _message_delta(self, obj: dict[str, object]) -> None:
        delta = obj.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if isinstance(reason, str):
            self._stop = _STOP.get(reason, "stop")
            if reason in _TOLD_APART:
                sequence = delta.get("stop_sequence") if isinstance(delta, dict) else None
                self._told = UpstreamStop(reason, sequence if isinstance(sequence, str) else None)
        self._count(obj.get("usage"))

    def _count(self, usage: object) -> None:
        # Counts in message_delta are cumulative totals, not increments.
        input_tokens = _int(usage, "input_tokens")
        output_tokens = _int(usage, "output_tokens")
        cached = _int(usage, "cache_read_input_tokens")
        if cached is not None:
            self._cached = cached
        if input_tokens is not None:
            self._input = input_tokens
        if output_tokens is not None:
            self._output = output_tokens

    def check_complete(self) -> None:
        if not self.done:
            raise UpstreamError(
                f"{self._provider}: stream ended before message_stop", retryable=True
            )
