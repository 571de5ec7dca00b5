"""The native SSE encoding (native streams), one block per event. Pure."""

from __future__ import annotations

import orjson

from app.sse import EventId, frame
from app.streaming.events import Done, Event, EventKind, Failure
from app.wire.framing import Block, FramedWire

_KINDS: dict[EventKind, bytes] = {"token": b"token", "done": b"done", "error": b"error"}


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
        return (Block(_payload(event), _KINDS[event.kind]),)

    def encode_event(self, event: Event) -> bytes:
        # The bytes depend only on the stream: every reader shares them.
        cached = event.native
        if cached is None:
            cached = event.native = self.framer.event(
                event.seq, _payload(event), _KINDS[event.kind]
            )
        return cached


def _payload(event: Event) -> bytes:
    # orjson escapes every control character, so the payload is a single data line.
    if event.kind == "token":
        return orjson.dumps({"text": event.text})
    if event.done is not None:
        return orjson.dumps(done_payload(event.done))
    assert event.failure is not None
    return orjson.dumps(failure_payload(event.failure))
