"""The native SSE encoding (docs/api.md, native streams), one block per event."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from app.sse import encode_retry
from app.streaming.events import Done, Event, Failure


def done_payload(done: Done) -> dict[str, object]:
    return {
        "finish_reason": done.finish_reason,
        "usage": {
            "input_tokens": done.usage.input_tokens,
            "output_tokens": done.usage.output_tokens,
        },
        "ttft_ms": done.ttft_ms,
        "tokens_per_second": done.tokens_per_second,
    }


def failure_payload(failure: Failure) -> dict[str, object]:
    return {
        "error": {"type": failure.type, "message": failure.message, "retryable": failure.retryable}
    }


def encode(event: Event, stream_id: str) -> bytes:
    cached = event.native
    if cached is not None:
        return cached
    if event.kind == "token":
        payload = orjson.dumps({"text": event.text})
    elif event.done is not None:
        payload = orjson.dumps(done_payload(event.done))
    else:
        assert event.failure is not None
        payload = orjson.dumps(failure_payload(event.failure))
    # orjson escapes every control character, so the payload is a single data line.
    head = b"" if event.unlogged else b"id: %s:%d\n" % (stream_id.encode(), event.seq)
    encoded = b"%sevent: %s\ndata: %s\n\n" % (head, event.kind.encode(), payload)
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
