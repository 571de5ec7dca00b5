"""The OpenAI Chat Completions encoding (docs/api.md, OpenAI-compatible): log events as
`chat.completion.chunk` SSE blocks, byte for byte in OpenAI's key order. Pure.

Every block carries an id next to its `data:` line (the official SDK raises on
a block without `data:`, so there is no `retry:` and no bare `id:` block), and
no two blocks share one (`app.wire.framing`):

- The role chunk opens a fresh response, as `<stream_id>:0`: a client that
  holds it resumes from event 1 and never sees it again. It says
  `content: ""` when the answer starts with text (or ends at once) and
  `content: null` otherwise, as OpenAI does before a tool call or a refusal,
  so it is written just before the first event.
- A delta event is one chunk, `<stream_id>:<seq>`, cached on `Event.openai`:
  every reader of the stream shares the same bytes (they depend only on the
  stream). A token is a `content` delta; reasoning a `reasoning_content`
  delta (as vLLM, DeepSeek and llama.cpp stream it); a refusal a `refusal`
  delta; a tool call's start `tool_calls: [{index, id, type: "function",
  function: {name, arguments: ""}}]` and each arguments fragment
  `tool_calls: [{index, function: {arguments}}]`, as OpenAI streams them.
  Anthropic's thinking signatures and redacted thinking have no place in
  this format: those events write no block (the native API carries them).
- The done event is the finish-reason chunk (`<seq>`), the usage chunk when
  the request asked for `stream_options.include_usage` (`<seq>.1`), and
  `data: [DONE]` (the next part). Resuming after the finish chunk sends the
  rest; after `[DONE]`, nothing (204). Not cached: include_usage is per request.
- An error event is `data: {"error": {...}}`, and nothing follows it.
- The heartbeat is a comment line with no blank line after it (see `heartbeat`).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from app.core.events import Done, Event, Failure, StreamMeta, Usage
from app.sse import EventId
from app.wire.framing import Block, FramedWire

OBJECT_CHUNK = "chat.completion.chunk"
_ROLE_DELTA = b'{"role":"assistant","content":"","refusal":null}'
_ROLE_NULL_DELTA = b'{"role":"assistant","content":null,"refusal":null}'
_DONE = Block(b"[DONE]")
# `_choice({"content": text}, null)` in one template.
_TOKEN = b'%s"choices":[{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":null}]}'
# An arguments fragment, as often as a token in a tool call: the same one operation.
_ARGUMENTS = (
    b'%s"choices":[{"index":0,"delta":{"tool_calls":[{"index":%%d,'
    b'"function":{"arguments":%%s}}]},"logprobs":null,"finish_reason":null}]}'
)


def completion_id(stream_id: str) -> str:
    return f"chatcmpl-{stream_id}"


def usage_payload(done: Done) -> dict[str, object]:
    usage: Usage = done.usage
    payload: dict[str, object] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_tokens is not None:
        payload["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        payload["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return payload


def delta_of(event: Event) -> bytes:
    """The `delta` object of a typed (non-token) delta event; b"" for none."""
    kind = event.kind
    if kind == "tool_call_delta":
        fragment = {"index": event.index, "function": {"arguments": event.text}}
        return orjson.dumps({"tool_calls": [fragment]})
    if event.call is not None:
        call = event.call
        start = {
            "index": call.index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        return orjson.dumps({"tool_calls": [start]})
    if kind == "reasoning":
        return orjson.dumps({"reasoning_content": event.text})
    if kind == "refusal":
        return orjson.dumps({"refusal": event.text})
    return b""


def error_body(failure: Failure) -> dict[str, object]:
    """OpenAI's error object; the same in a stream and in a non-streaming response."""
    return {
        "error": {"message": failure.message, "type": failure.type, "param": None, "code": None}
    }


class OpenAIWire(FramedWire):
    """One response's encoder. Strategy: the constant head of every chunk
    (`{"id":…,"system_fingerprint":null,`) is built once per response and the
    variable part spliced in, so a token costs one orjson call on its text."""

    __slots__ = ("_arguments_block", "_head", "_include_usage", "_role_due", "_token_block")
    # A comment line without the blank line after it. The official SDK's parser
    # keeps the last id, as the spec says, and turns any blank line after one
    # into an event with empty data, which it then fails to read as JSON; a
    # spec parser ignores the comment line either way.
    heartbeat = b": ping\n"

    def __init__(self, meta: StreamMeta, *, include_usage: bool) -> None:
        super().__init__(meta.stream_id)
        self._include_usage = include_usage
        self._role_due = False
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
        # A token's whole block as one template: its text, then its seq, go in.
        escaped_head = self._head.replace(b"%", b"%%")
        self._token_block = self.framer.template(_TOKEN % (escaped_head, b"%s"))
        # An arguments fragment's block: its call index, its text, then its seq.
        self._arguments_block = self.framer.template(_ARGUMENTS % escaped_head)

    def opening(self, start: EventId | None) -> bytes:
        # Nothing yet: the role chunk (`<stream_id>:0`) depends on the first
        # event, so it is written with it; a resumed response had it.
        self._role_due = start is None
        return b""

    def encode(self, events: Sequence[Event]) -> bytes:
        if self._role_due and events:
            return self._role(events[0]) + super().encode(events)
        return super().encode(events)

    def encode_event(self, event: Event) -> bytes:
        if event.kind == "token":
            cached = event.openai
            if cached is None:
                # One formatting operation per token: this is the hot path.
                block = self._token_block % (orjson.dumps(event.text), event.seq)
                cached = event.openai = block
            return cached
        if not event.terminal:
            cached = event.openai
            if cached is None:
                cached = event.openai = self._typed(event)
            return cached
        return self.frame(event, self.blocks(event))  # no id if unlogged

    def blocks(self, event: Event) -> tuple[Block, ...]:
        if event.kind == "token":
            return (Block(self._token(event)),)
        if event.done is not None:
            return self._done(event.done)
        if event.failure is not None:
            return (Block(orjson.dumps(error_body(event.failure))),)
        delta = delta_of(event)
        return (Block(self._choice(delta, b"null")),) if delta else ()

    def _typed(self, event: Event) -> bytes:
        if event.kind == "tool_call_delta":
            text = orjson.dumps(event.text)
            return self._arguments_block % (event.index, text, event.seq)
        return self.framer.blocks(event.seq, self.blocks(event))

    def _role(self, first: Event) -> bytes:
        self._role_due = False
        text_first = first.kind == "token" or first.terminal
        delta = _ROLE_DELTA if text_first else _ROLE_NULL_DELTA
        return self.framer.block(0, Block(self._choice(delta, b"null")))

    def _choice(self, delta: bytes, finish_reason: bytes) -> bytes:
        return b'%s"choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}' % (
            self._head,
            delta,
            finish_reason,
        )

    def _token(self, event: Event) -> bytes:
        return _TOKEN % (self._head, orjson.dumps(event.text))

    def _done(self, done: Done) -> tuple[Block, ...]:
        finish = Block(self._choice(b"{}", orjson.dumps(done.finish_reason)))
        if not self._include_usage:
            return finish, _DONE
        usage = b'%s"choices":[],"usage":%s}' % (self._head, orjson.dumps(usage_payload(done)))
        return finish, Block(usage), _DONE
