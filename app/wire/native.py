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

import orjson

from app.core.events import Done, Event, Failure, Usage
from app.sse import EventId, frame
from app.wire.framing import Block, FramedWire


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


def _data(event: Event) -> bytes:
    # orjson escapes every control character, so the payload is a single data line.
    if event.kind == "token":
        return orjson.dumps({"text": event.text})
    return orjson.dumps(_payload(event))


class NativeWire(FramedWire):
    """Native `text/event-stream` for EventSource: one block per event, opened
    by `retry:` with the id the response starts from (`<stream_id>:0` when it
    starts fresh), so a client cut before the first token still holds an id
    naming this stream and reconnects to it rather than starting another."""

    __slots__ = ("_retry",)
    reconnects = True  # EventSource resumes by itself: shutdown may release its responses

    def __init__(self, stream_id: str, retry_ms: int) -> None:
        super().__init__(stream_id)
        self._retry = retry_ms

    def opening(self, start: EventId | None) -> bytes:
        # A resumed response restates the id it resumes after: the client holds it already.
        held = self.framer.id(0) if start is None else str(start).encode()
        return frame(held, retry=self._retry)

    def blocks(self, event: Event) -> tuple[Block]:
        return (Block(_data(event), event.kind.encode()),)

    def encode_event(self, event: Event) -> bytes:
        # The bytes depend only on the stream: every reader shares them.
        cached = event.native
        if cached is None:
            if event.unlogged:  # a reader's own ending: no id (see FramedWire.frame)
                return self.frame(event, self.blocks(event))
            cached = event.native = self.framer.event(event.seq, _data(event), event.kind.encode())
        return cached
