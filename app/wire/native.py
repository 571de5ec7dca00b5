"""The native SSE encoding, one block per event. Pure.

Each event kind is its own SSE event name, with a JSON payload:

    token               {"text": "Hel"}
    reasoning           {"text": "Let me think"}
    reasoning_signature {"signature": "EqQBCgIYAh..."}
    reasoning_redacted  {"data": "EmwKAhgBEgy..."}
    tool_call           {"index": 0, "id": "call_1", "name": "get_weather"}
    tool_call_delta     {"index": 0, "arguments": "{\\"city\\": "}
    refusal             {"text": "I can't help with that."}
    done                {"finish_reason", "usage", "ttft_ms", "tokens_per_second"}
    error               {"error": {"type", "message", "retryable"}}
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from app.core.events import Done, Event, Failure, Usage
from app.sse import encode_retry


def usage_payload(usage: Usage) -> dict[str, int]:
    payload = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cached_tokens is not None:
        payload["cached_tokens"] = usage.cached_tokens
    if usage.reasoning_tokens is not None:
        payload["reasoning_tokens"] = usage.reasoning_tokens
    return payload


def done_payload(done: Done) -> dict[str, object]:
    return {
        "finish_reason": done.finish_reason,
        "usage": usage_payload(done.usage),
        "ttft_ms": done.ttft_ms,
        "tokens_per_second": done.tokens_per_second,
    }


def failure_payload(failure: Failure) -> dict[str, object]:
    return {
        "error": {"type": failure.type, "message": failure.message, "retryable": failure.retryable}
    }


def _payload(event: Event) -> dict[str, object]:
    kind = event.kind
    if kind == "token" or kind == "reasoning" or kind == "refusal":
        return {"text": event.text}
    if kind == "tool_call_delta":
        return {"index": event.index, "arguments": event.text}
    if event.call is not None:
        return {"index": event.call.index, "id": event.call.id, "name": event.call.name}
    if kind == "reasoning_signature":
        return {"signature": event.text}
    if kind == "reasoning_redacted":
        return {"data": event.text}
    if event.done is not None:
        return done_payload(event.done)
    assert event.failure is not None
    return failure_payload(event.failure)


def encode(event: Event, stream_id: str) -> bytes:
    cached = event.native
    if cached is not None:
        return cached
    if event.kind == "token":
        payload = orjson.dumps({"text": event.text})
    else:
        payload = orjson.dumps(_payload(event))
    # orjson escapes every control character, so the payload is a single data line.
    encoded = b"id: %s:%d\nevent: %s\ndata: %s\n\n" % (
        stream_id.encode(),
        event.seq,
        event.kind.encode(),
        payload,
    )
    event.native = encoded
    return encoded


class NativeWire:
    """Native `text/event-stream` for EventSource: `retry:` first, then events."""

    reconnects = True  # EventSource resumes by itself: shutdown may release its responses

    def __init__(self, stream_id: str, retry_ms: int) -> None:
        self._stream_id = stream_id
        self._retry = encode_retry(retry_ms)

    def preamble(self) -> bytes:
        return self._retry

    def encode(self, events: Sequence[Event]) -> bytes:
        sid = self._stream_id
        if len(events) == 1:
            return encode(events[0], sid)
        return b"".join([encode(e, sid) for e in events])
