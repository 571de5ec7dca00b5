"""The OpenAI Chat Completions encoding (docs/api.md, OpenAI-compatible): log events as
`chat.completion.chunk` SSE blocks, byte for byte in OpenAI's key order. Pure.

Every block carries `id: <stream_id>:<seq>` of the log event it belongs to,
next to its `data:` line: the official SDK raises on a block without `data:`,
so there is no `retry:` preamble and no bare `id:` block.

- The role chunk is part of the encoding of event 1 (unless event 1 is an
  error), so a resume after any id never repeats it.
- A token event is one content chunk, cached on `Event.openai`: every reader
  of the stream shares the same bytes (they depend only on the stream).
- The done event is the finish-reason chunk, the usage chunk when the request
  asked for `stream_options.include_usage`, and `data: [DONE]`, all with the
  done event's id. It is not cached: include_usage differs per request.
- An error event is `data: {"error": {...}}`, and nothing follows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from app.streaming.events import Done, Event, Failure, StreamMeta

OBJECT_CHUNK = "chat.completion.chunk"
_ROLE_DELTA = b'{"role":"assistant","content":"","refusal":null}'
# `_block(seq, _choice({"content": text}, null))` in one template.
_TOKEN = (
    b'%s%d\ndata: %s"choices":[{"index":0,"delta":{"content":%s},'
    b'"logprobs":null,"finish_reason":null}]}\n\n'
)


def completion_id(stream_id: str) -> str:
    return f"chatcmpl-{stream_id}"


def usage_payload(done: Done) -> dict[str, int]:
    usage = done.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def error_body(failure: Failure) -> dict[str, object]:
    """OpenAI's error object; the same in a stream and in a non-streaming response."""
    return {
        "error": {"message": failure.message, "type": failure.type, "param": None, "code": None}
    }


class OpenAIWire:
    """One response's encoder. Strategy: the constant head of every chunk
    (`{"id":…,"system_fingerprint":null,`) is built once per response and the
    variable part spliced in, so a token costs one orjson call on its text."""

    __slots__ = ("_head", "_include_usage", "_stream_id", "_token_head")

    def __init__(self, meta: StreamMeta, *, include_usage: bool) -> None:
        self._stream_id = meta.stream_id.encode()
        self._include_usage = include_usage
        head = orjson.dumps(
            {
                "id": completion_id(meta.stream_id),
                "object": OBJECT_CHUNK,
                "created": meta.created,
                "model": meta.model,
                "system_fingerprint": None,
            }
        )
        self._head = head[:-1] + b","  # the object left open for `choices`
        self._token_head = b"id: %s:" % self._stream_id

    def preamble(self) -> bytes:
        # Nothing: hypercorn sends the headers on http.response.start, and a
        # `retry:` block alone would make the SDK raise.
        return b""

    def encode(self, events: Sequence[Event]) -> bytes:
        if len(events) == 1:
            return self.encode_event(events[0])
        return b"".join([e.openai or self.encode_event(e) for e in events])

    def encode_event(self, event: Event) -> bytes:
        if event.kind == "token":
            cached = event.openai
            if cached is None:
                cached = event.openai = self._token(event)
            return cached
        if event.done is not None:
            return self._done(event, event.done)
        assert event.failure is not None
        body = orjson.dumps(error_body(event.failure))
        if event.unlogged:  # no id of its own: see Event.unlogged
            return b"data: %s\n\n" % body
        return self._block(event.seq, body)

    def _block(self, seq: int, data: bytes) -> bytes:
        # orjson escapes every control character: the payload is one data line.
        return b"id: %s:%d\ndata: %s\n\n" % (self._stream_id, seq, data)

    def _choice(self, delta: bytes, finish_reason: bytes) -> bytes:
        return b'%s"choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}' % (
            self._head,
            delta,
            finish_reason,
        )

    def _role(self, event: Event) -> bytes:
        return self._block(event.seq, self._choice(_ROLE_DELTA, b"null")) if event.seq == 1 else b""

    def _token(self, event: Event) -> bytes:
        # One formatting operation per token: this is the hot path.
        block = _TOKEN % (self._token_head, event.seq, self._head, orjson.dumps(event.text))
        return self._role(event) + block if event.seq == 1 else block

    def _done(self, event: Event, done: Done) -> bytes:
        finish = self._choice(b"{}", orjson.dumps(done.finish_reason))
        parts = [self._role(event), self._block(event.seq, finish)]
        if self._include_usage:
            usage = b'%s"choices":[],"usage":%s}' % (self._head, orjson.dumps(usage_payload(done)))
            parts.append(self._block(event.seq, usage))
        parts.append(self._block(event.seq, b"[DONE]"))
        return b"".join(parts)


def completion_body(meta: StreamMeta, text: str, done: Done) -> dict[str, object]:
    """The `chat.completion` object of a non-streaming request, in OpenAI's key order."""
    return {
        "id": completion_id(meta.stream_id),
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
        ],
        "usage": usage_payload(done),
        "system_fingerprint": None,
    }
